"""Object key layout: the seed document's hive-style partitions.

``[<prefix>/]<tag>/<model_name>/<model_version>/year=YYYY/month=MM/day=DD/YYYYMMDDHH_<n>.json``

Model name and version become path segments, so they are checked against a
safe character set before any key is built from them.
"""

from __future__ import annotations

import re
from datetime import datetime

SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class UnsafeSegmentError(ValueError):
    """A value that would become a path segment is not in the safe set."""


def is_safe_segment(value: str) -> bool:
    """Letters, digits, ``.``, ``_``, ``-``; starts alphanumeric; not only dots; <= 128 chars."""
    return bool(SAFE_SEGMENT.match(value)) and ".." not in value


def check_segment(name: str, value: str) -> str:
    if not is_safe_segment(value):
        raise UnsafeSegmentError(
            f"{name} {value!r} is not allowed: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, without '..'"
        )
    return value


def partition_prefix(prefix: str, tag: str, model_name: str, model_version: str,
                     when: datetime) -> str:
    """The directory-like part of a key, ending with ``/``."""
    check_segment("model name", model_name)
    check_segment("model version", model_version)
    head = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    return (
        f"{head}{tag}/{model_name}/{model_version}/"
        f"year={when.year:04d}/month={when.month:02d}/day={when.day:02d}/"
    )


def object_name(when: datetime, n: int | str) -> str:
    """``YYYYMMDDHH_<n>.json``."""
    return f"{when:%Y%m%d%H}_{n}.json"


def object_key(prefix: str, tag: str, model_name: str, model_version: str,
               when: datetime, n: int | str) -> str:
    return partition_prefix(prefix, tag, model_name, model_version, when) + object_name(when, n)
