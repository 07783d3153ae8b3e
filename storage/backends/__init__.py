from .base import Backend, ObjectNotFound, StorageError
from .local import LocalBackend

__all__ = ["Backend", "LocalBackend", "ObjectNotFound", "StorageError"]
