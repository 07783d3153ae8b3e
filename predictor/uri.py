"""Where a ``--model-uri`` points: a local directory, or a remote URI for MLflow to fetch."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit


def local_model_path(uri: str, base: Path | None = None) -> Path | None:
    """The local directory ``uri`` names, or ``None`` if it is a remote URI.

    Accepted local forms: ``/abs/dir``, ``rel/dir``, ``./rel/dir``, ``file:///abs/dir``,
    ``file://localhost/abs/dir``, ``file://./rel/dir`` and ``file:rel/dir``. Relative
    paths are resolved against ``base`` (default: the current directory). Other
    schemes (``s3://``, ``runs:/``, ``models:/`` ...) give ``None``.
    """
    parts = urlsplit(uri)
    if parts.scheme == "file":
        if parts.netloc in ("", "localhost"):
            raw = parts.path
        else:  # file://./rel or file://rel/dir: the "host" is the first path segment
            raw = parts.netloc + parts.path
        path = Path(unquote(raw))
    elif parts.scheme == "" or (len(parts.scheme) == 1 and uri[1:2] == ":"):
        path = Path(uri)  # a plain path (or a Windows drive letter)
    else:
        return None
    path = path.expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    return path
