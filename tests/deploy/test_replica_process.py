"""Which images the local runtime can run, and what it says about the others."""

import pytest

from deploy.control.runtime import GiveUp
from deploy.local.process import model_uri


def test_file_uri_and_absolute_path_name_a_model_directory(tmp_path):
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    assert model_uri(f"file://{tmp_path}") == str(tmp_path)
    assert model_uri(str(tmp_path)) == str(tmp_path)


def test_directory_without_mlmodel_is_refused(tmp_path):
    with pytest.raises(GiveUp, match="not an MLflow model directory"):
        model_uri(f"file://{tmp_path}")


def test_container_image_is_refused_with_the_reason():
    with pytest.raises(GiveUp, match="cannot run container image 'registry/wine:1'"):
        model_uri("registry/wine:1")


def test_registry_uri_needs_a_tracking_uri():
    with pytest.raises(GiveUp, match="no tracking URI is configured"):
        model_uri("models:/wine/1")
    assert model_uri("models:/wine/1", "http://127.0.0.1:5000") == "models:/wine/1"


def test_each_predictor_has_its_starter():
    from deploy.local.process import start_replica
    from deploy.local.runtime import starter_for
    from deploy.local.triton import start_triton_replica

    assert starter_for("odahu-ml-server") is start_replica
    assert starter_for("triton") is start_triton_replica
    with pytest.raises(GiveUp, match="cannot run the 'onnx' predictor"):
        starter_for("onnx")
