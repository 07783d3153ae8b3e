"""Records, partitioned object keys and the writers that store them."""

from .backends import Backend, LocalBackend, ObjectNotFound, StorageError
from .keys import UnsafeSegmentError, check_segment, is_safe_segment, object_key, partition_prefix
from .records import (
    DEFAULT_REDACTED_HEADERS,
    FEEDBACK,
    KINDS,
    REQUEST_RESPONSE,
    RESPONSE_BODY,
    Exchange,
    feedback_record,
    format_time,
    request_response_record,
    response_body_record,
)
from .writer import RecordWriter, WriterConfig, WriterStats

__all__ = [
    "DEFAULT_REDACTED_HEADERS",
    "FEEDBACK",
    "KINDS",
    "REQUEST_RESPONSE",
    "RESPONSE_BODY",
    "Backend",
    "Exchange",
    "LocalBackend",
    "ObjectNotFound",
    "RecordWriter",
    "StorageError",
    "UnsafeSegmentError",
    "WriterConfig",
    "WriterStats",
    "check_segment",
    "feedback_record",
    "format_time",
    "is_safe_segment",
    "object_key",
    "partition_prefix",
    "request_response_record",
    "response_body_record",
]
