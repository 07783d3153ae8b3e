"""Where a deployment's model comes from: ``image`` as written, and how a path is resolved."""

from __future__ import annotations

from pathlib import Path

FILE_SCHEME = "file://"


def resolve_image(image: str, base_dir: Path) -> str:
    """Make a ``file://`` or plain-path image absolute, relative to the manifest's directory.

    ``file://./models/wine-v1`` and ``models/wine-v1`` become ``file:///abs/models/wine-v1``;
    anything with another scheme (a container image, ``models:/...``) is kept as written.
    """
    if image.startswith(FILE_SCHEME):
        path = image[len(FILE_SCHEME):]
    elif "://" in image or image.startswith("models:/"):
        return image
    elif image.startswith(("/", ".")):
        path = image
    else:
        return image
    resolved = (base_dir / path).resolve() if not path.startswith("/") else Path(path)
    return FILE_SCHEME + str(resolved)
