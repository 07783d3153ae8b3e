from pathlib import Path

import pytest

from deploy.control.images import resolve_image
from deploy.control.manifest import ManifestError, load_deployments
from deploy.control.manifest import load_deployment_files as load_manifests


@pytest.mark.parametrize(("image", "expected"), [
    ("file://./models/w", "file:///base/models/w"),
    ("file://models/w", "file:///base/models/w"),
    ("file:///abs/w", "file:///abs/w"),
    ("./m", "file:///base/m"),
    ("/abs/m", "file:///abs/m"),
    ("registry.example/wine:1.0", "registry.example/wine:1.0"),
    ("models:/wine/1", "models:/wine/1"),
    ("s3://bucket/m", "s3://bucket/m"),
])
def test_resolve_image(image, expected):
    assert resolve_image(image, Path("/base")) == expected


def test_multi_document_file(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text(
        "kind: ModelDeployment\nid: a\nspec: {image: file://./m, predictor: odahu-ml-server}\n"
        "---\n"
        "kind: ModelRoute\nid: r\nspec: {urlPrefix: /custom/r}\n"
        "---\n"
        "kind: ModelDeployment\nid: b\nspec: {image: x/y:1, predictor: triton}\n")
    deps = load_deployments(path)
    assert [d.id for d in deps] == ["a", "b"]
    assert deps[0].spec.image == f"file://{tmp_path}/m"


@pytest.mark.parametrize(("text", "message"), [
    ("kind: ModelDeployment\nid: Bad\nspec: {image: x, predictor: triton}\n", "document 1"),
    (": : :\n", "not valid YAML"),
    ("- 1\n", "expected a mapping"),
])
def test_errors_name_file_and_document(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError, match=message) as info:
        load_deployments(path)
    assert str(path) in str(info.value)


def test_duplicate_ids_across_files(tmp_path):
    text = "kind: ModelDeployment\nid: a\nspec: {image: x/y, predictor: triton}\n"
    (tmp_path / "1.yaml").write_text(text)
    (tmp_path / "2.yaml").write_text(text)
    with pytest.raises(ManifestError, match="defined twice"):
        load_manifests([str(tmp_path / "1.yaml"), str(tmp_path / "2.yaml")])
