"""The storage and spool keys of mlgate's configuration (file + env), and the backend they pick."""

import pytest

from deploy.compose import build_backend, build_writer
from deploy.config import ConfigError, load_settings


def test_s3_from_env_with_spool_keys(tmp_path):
    settings = load_settings(env={
        "MLGATE_STORAGE_KIND": "s3", "MLGATE_STORAGE_BUCKET": "logs",
        "MLGATE_STORAGE_ENDPOINT_URL": "http://127.0.0.1:9000",
        "MLGATE_STORAGE_SPOOL_MAX_BYTES": "1048576",
        "MLGATE_STORAGE_SPOOL_SHUTDOWN_TIMEOUT": "2.5"}, overrides={"data_dir": str(tmp_path)})
    s = settings.storage
    assert (s.kind, s.bucket, s.endpoint_url, s.region) == (
        "s3", "logs", "http://127.0.0.1:9000", "us-east-1")
    assert s.spool.max_bytes == 1 << 20 and s.spool.shutdown_timeout == 2.5
    backend = build_backend(settings)
    assert backend.name == "s3" and backend.bucket == "logs"
    writer = build_writer(settings)
    assert writer.spool.directory == tmp_path.resolve() / "spool"
    assert writer.config.spool_max_bytes == 1 << 20


def test_gcs_from_file(tmp_path):
    path = tmp_path / "mlgate.yaml"
    path.write_text("storage:\n  kind: gcs\n  bucket: b\n  endpoint_url: http://127.0.0.1:9023\n"
                    "  spool:\n    upload_concurrency: 1\n")
    settings = load_settings(path, env={})
    assert settings.storage.spool.upload_concurrency == 1
    backend = build_backend(settings)
    assert backend.name == "gcs" and backend.endpoint_url == "http://127.0.0.1:9023"


@pytest.mark.parametrize(("env", "fragment"), [
    ({"MLGATE_STORAGE_KIND": "azure"}, "storage.kind"),
    ({"MLGATE_STORAGE_KIND": "s3", "MLGATE_STORAGE_BUCKET": ""}, "storage.bucket"),
    ({"MLGATE_STORAGE_SPOOL_MAX_BYTES": "lots"}, "storage.spool.max_bytes"),
    ({"MLGATE_STORAGE_SPOOL_NOPE": "1"}, None),
])
def test_bad_storage_config_names_the_key(env, fragment):
    if fragment is None:  # unknown env names are simply not config keys
        load_settings(env=env)
        return
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        load_settings(env=env)


def test_unknown_spool_key_in_file_is_refused(tmp_path):
    path = tmp_path / "mlgate.yaml"
    path.write_text("storage:\n  spool:\n    max_byte: 1\n")
    with pytest.raises(ConfigError, match="max_byte"):
        load_settings(path, env={})
