from .base import Backend, ObjectNotFound, StorageError
from .local import LocalBackend

BACKEND_KINDS = ("local", "s3", "gcs")

__all__ = ["BACKEND_KINDS", "Backend", "LocalBackend", "ObjectNotFound", "StorageError",
           "make_backend"]


def make_backend(kind: str, *, root: str | None = None, bucket: str = "",
                 endpoint_url: str | None = None, region: str | None = None,
                 timeout: float = 30.0) -> Backend:
    """The backend for ``kind``; S3 and GCS clients are imported only when chosen."""
    if kind == "local":
        if root is None:
            raise ValueError("the local backend needs a root directory")
        return LocalBackend(root)
    if kind == "s3":
        from .s3 import S3Backend

        return S3Backend(bucket, endpoint_url=endpoint_url, region=region,
                         read_timeout=timeout)
    if kind == "gcs":
        from .gcs import GCSBackend

        return GCSBackend(bucket, endpoint_url=endpoint_url, timeout=timeout)
    raise ValueError(f"storage kind must be one of {', '.join(BACKEND_KINDS)}, got {kind!r}")
