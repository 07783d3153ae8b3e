"""Records, partitioned object keys, the durable spool and the backends that store them."""

from .backends import (
    BACKEND_KINDS,
    Backend,
    LocalBackend,
    ObjectNotFound,
    StorageError,
    make_backend,
)
from .keys import UnsafeSegmentError, check_segment, is_safe_segment, object_key, partition_prefix
from .reader import RecordQuery, iter_records, list_objects, object_hour, parse_bound
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
from .spool import SpoolFull
from .stats import WriterStats
from .writer import RecordWriter, Tap, WriterConfig

__all__ = [
    "BACKEND_KINDS",
    "DEFAULT_REDACTED_HEADERS",
    "FEEDBACK",
    "KINDS",
    "REQUEST_RESPONSE",
    "RESPONSE_BODY",
    "Backend",
    "Exchange",
    "LocalBackend",
    "ObjectNotFound",
    "RecordQuery",
    "RecordWriter",
    "SpoolFull",
    "StorageError",
    "Tap",
    "UnsafeSegmentError",
    "WriterConfig",
    "WriterStats",
    "check_segment",
    "feedback_record",
    "format_time",
    "is_safe_segment",
    "iter_records",
    "list_objects",
    "make_backend",
    "object_hour",
    "object_key",
    "parse_bound",
    "partition_prefix",
    "request_response_record",
    "response_body_record",
]
