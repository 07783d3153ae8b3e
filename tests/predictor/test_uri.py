"""--model-uri forms: paths and file: URIs are local, other schemes are remote."""

from __future__ import annotations

from pathlib import Path

import pytest

from predictor.uri import local_model_path

BASE = Path("/srv/manifests")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/models/wine-v1", "/models/wine-v1"),
        ("models/wine-v1", "/srv/manifests/models/wine-v1"),
        ("./models/wine-v1", "/srv/manifests/models/wine-v1"),
        ("file:///models/wine-v1", "/models/wine-v1"),
        ("file://localhost/models/wine-v1", "/models/wine-v1"),
        ("file://./models/wine-v1", "/srv/manifests/models/wine-v1"),
        ("file://models/wine-v1", "/srv/manifests/models/wine-v1"),
        ("file:models/wine-v1", "/srv/manifests/models/wine-v1"),
        ("file:///models/wine%20v1", "/models/wine v1"),
    ],
)
def test_local_forms(uri: str, expected: str) -> None:
    assert local_model_path(uri, BASE) == Path(expected)


@pytest.mark.parametrize(
    "uri", ["s3://bucket/models/wine", "runs:/abc/model", "models:/wine/1", "gs://b/m"]
)
def test_remote_forms(uri: str) -> None:
    assert local_model_path(uri, BASE) is None


def test_relative_to_the_current_directory_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert local_model_path("m") == tmp_path / "m"
