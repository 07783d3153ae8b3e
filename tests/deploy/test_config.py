import pytest

from deploy.config import ConfigError, load_settings


def test_defaults_need_no_file():
    s = load_settings(env={})
    assert (s.host, s.port, s.data_dir, s.storage.kind, s.runtime) == (
        "127.0.0.1", 5080, ".mlgate", "local", "local")


def test_file_then_env_then_flags(tmp_path):
    path = tmp_path / "mlgate.yaml"
    path.write_text("port: 6000\nstorage:\n  prefix: logs\n  flush_interval: 2\n")
    s = load_settings(path, env={"MLGATE_STORAGE_PREFIX": "env-logs", "MLGATE_PORT": "6100"},
                      overrides={"port": 6200, "host": None})
    assert s.port == 6200 and s.host == "127.0.0.1"
    assert s.storage.prefix == "env-logs" and s.storage.flush_interval == 2.0


def test_lists_and_optionals_from_env():
    s = load_settings(env={"MLGATE_STORAGE_REDACT_HEADERS": "x-secret, x-other",
                           "MLGATE_STORAGE_ENDPOINT_URL": "null"})
    assert s.storage.redact_headers == ("x-secret", "x-other")
    assert s.storage.endpoint_url is None


@pytest.mark.parametrize(("text", "message"), [
    ("bogus: 1\n", "unknown config key(s): bogus"),
    ("storage:\n  nope: 1\n", "unknown config key(s) in storage: nope"),
    ("port: abc\n", "port must be an integer"),
    ("storage:\n  kind: ftp\n", "storage.kind must be"),
    ("port: 70000\n", "port must be 0-65535"),
    ("- a\n", "must be a mapping"),
    ("storage: 3\n", "storage must be a mapping"),
])
def test_errors_name_the_key(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(path, env={})


def test_missing_file():
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings("/nonexistent/mlgate.yaml", env={})


def test_workers_from_file_env_and_flag(tmp_path):
    path = tmp_path / "mlgate.yaml"
    path.write_text("workers: 2\n")
    assert load_settings(path, env={}).workers == 2
    assert load_settings(path, env={"MLGATE_WORKERS": "3"}).workers == 3
    assert load_settings(path, env={"MLGATE_WORKERS": "3"}, overrides={"workers": 4}).workers == 4
    assert load_settings(None, env={}).workers == 1
    for bad in ("0", "65", "two"):
        with pytest.raises(ConfigError, match="workers"):
            load_settings(None, env={"MLGATE_WORKERS": bad})


def test_autoscaler_config_becomes_every_deployments_scaling_defaults(tmp_path) -> None:
    from deploy.control.autoscaler import ScalingPolicy

    assert load_settings(None, env={}).autoscaler.policy() == ScalingPolicy()
    path = tmp_path / "mlgate.yaml"
    path.write_text("autoscaler: {target_concurrency: 4, cold_start_timeout: 45}\n")
    policy = load_settings(path, env={"MLGATE_AUTOSCALER_WINDOW": "7"}).autoscaler.policy()
    assert (policy.target_concurrency, policy.cold_start_timeout, policy.window) == (4, 45, 7)
    assert policy.scale_down_delay == ScalingPolicy().scale_down_delay


def test_protection_settings_from_the_file_and_the_environment(tmp_path):
    from deploy.compose import build_admission, build_gateway_config
    from gateway import Admission, RateRule

    path = tmp_path / "mlgate.yaml"
    path.write_text(
        "admission:\n  max_in_flight_per_replica: 4\n  timeout: 5\n"
        "rate_limits:\n  rules:\n    - name: per-user\n      deployments: [\"*\"]\n"
        "      rate: 600/m\n      burst: 20\n"
        "overload:\n  max_memory_mb: 512\n"
        "auth:\n  invalid_token_rate: 0\n")
    s = load_settings(path, env={"MLGATE_ADMISSION_MAX_WAITING": "7", "MLGATE_WORKERS": "2"})
    assert build_admission(s) == Admission(4, 7, 5.0, 300.0)
    assert s.rate_limits.rules == (RateRule("per-user", 10.0, 20, "sub", ("*",)),)
    config = build_gateway_config(s, None)
    assert config.rate_limits == s.rate_limits.rules and config.processes == 2
    assert config.overload.max_memory_mb == 512 and config.overload.max_loop_lag_ms == 1000
    assert config.invalid_tokens.rate == 0
    assert build_gateway_config(load_settings(None, env={}), None).invalid_tokens.rate == 2.0


@pytest.mark.parametrize(("text", "message"), [
    ("rate_limits:\n  rules:\n    - rate: 5\n", "rate_limits.rules\\[0\\]: name the deploy"),
    ("admission:\n  max_waiting: -1\n", "admission.max_in_flight_per_replica and"),
    ("admission:\n  timeout: 0\n", "admission.timeout"),
    ("tls:\n  cert_file: a.pem\n", "set both cert_file and key_file"),
    ("overload:\n  max_memory_mb: -5\n", "overload.max_memory_mb"),
    ("auth:\n  invalid_token_rate: often\n", "auth.invalid_token_rate: not a rate"),
])
def test_protection_settings_errors_name_the_key(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path, env={})
