"""The ``runtime: kubernetes`` settings: file, environment, and clear errors."""

import pytest

from deploy.config import ConfigError, load_settings


def test_kubernetes_section_from_file_and_env(tmp_path):
    path = tmp_path / "mlgate.yaml"
    path.write_text("runtime: kubernetes\nkubernetes:\n  namespace: models\n  sidecar: true\n")
    s = load_settings(path, env={"MLGATE_KUBERNETES_SERVICE_PORT": "8080",
                                 "MLGATE_KUBERNETES_KEDA": "false"})
    k = s.kubernetes
    assert s.runtime == "kubernetes"
    assert (k.namespace, k.sidecar, k.service_port, k.keda) == ("models", True, 8080, False)
    assert k.kubeconfig is None and k.service_host == "{id}.{namespace}.svc"


@pytest.mark.parametrize(("text", "message"), [
    ("runtime: nomad\n", "runtime must be 'local' or 'kubernetes'"),
    ("kubernetes:\n  service_port: 0\n", "kubernetes.service_port must be 1-65535"),
    ("kubernetes:\n  image_pull_policy: Sometimes\n", "image_pull_policy must be"),
    ("kubernetes:\n  service_host: '{name}.svc'\n", "may use only {id} and {namespace}"),
    ("kubernetes:\n  bogus: 1\n", "unknown config key(s) in kubernetes: bogus"),
])
def test_errors_name_the_key(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert message in str(info.value)


def test_the_cold_start_hold_is_the_autoscalers_setting(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("runtime: kubernetes\nautoscaler:\n  cold_start_timeout: 45\n")
    assert load_settings(path, env={}).autoscaler.cold_start_timeout == 45
    path.write_text("kubernetes:\n  activation_timeout: 45\n")
    with pytest.raises(ConfigError, match="unknown config key"):
        load_settings(path, env={})
