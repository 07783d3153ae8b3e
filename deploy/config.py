"""mlgate's configuration: embedded defaults, a YAML file, environment, flags — in that order.

Every key of the file has an environment override named after its path:
``storage.kind`` -> ``MLGATE_STORAGE_KIND``, ``port`` -> ``MLGATE_PORT``.
Settings are validated once into frozen dataclasses shared by everything.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deploy.control.autoscaler import ScalingPolicy
from gateway import RateRule, parse_rate, parse_rules

ENV_PREFIX = "MLGATE_"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


@dataclass(frozen=True)
class SpoolSettings:
    max_bytes: int = 1 << 30
    feedback_reserve: float = 0.1
    upload_concurrency: int = 4
    retry_max_delay: float = 30.0
    shutdown_timeout: float = 10.0


@dataclass(frozen=True)
class StorageSettings:
    kind: str = "local"
    bucket: str = "model-logs"
    prefix: str = ""
    endpoint_url: str | None = None
    region: str = "us-east-1"
    timeout: float = 30.0
    flush_interval: float = 1.0
    flush_records: int = 1000
    flush_bytes: int = 4 << 20
    max_pending_records: int = 100_000
    redact_headers: tuple[str, ...] = ()
    spool: SpoolSettings = field(default_factory=SpoolSettings)

    def __post_init__(self) -> None:
        if self.kind not in ("local", "s3", "gcs"):
            raise ConfigError(f"storage.kind must be 'local', 's3' or 'gcs', got {self.kind!r}")
        if self.kind != "local" and not self.bucket:
            raise ConfigError(f"storage.bucket is required for storage.kind {self.kind!r}")


@dataclass(frozen=True)
class GatewaySettings:
    connect_timeout: float = 2.0
    read_timeout: float = 60.0
    max_body_bytes: int = 8 << 20
    max_headers: int = 100
    max_header_bytes: int = 16384
    idle_timeout: float = 30.0
    body_timeout: float = 60.0
    max_json_depth: int = 64
    mirror_max_in_flight: int = 100
    eject_after_failures: int = 5
    ejection_time: float = 10.0
    max_ejection_time: float = 300.0

    def __post_init__(self) -> None:
        if self.mirror_max_in_flight < 0:
            raise ConfigError("gateway.mirror_max_in_flight must be >= 0")
        if self.eject_after_failures < 1:
            raise ConfigError("gateway.eject_after_failures must be >= 1")
        if not 0 < self.ejection_time <= self.max_ejection_time:
            raise ConfigError("gateway.ejection_time must be > 0 and <= "
                              "gateway.max_ejection_time")


@dataclass(frozen=True)
class AuthSettings:
    """``auth:``. No key source set: a local RS256 key pair in the data dir (``mlgate token``)."""

    enabled: bool = True
    issuer: str | None = None
    audience: tuple[str, ...] = ()
    jwks_url: str | None = None
    jwks_file: str | None = None
    public_key_file: str | None = None
    hs256_secret: str | None = field(default=None, repr=False)
    policy_file: str | None = None
    leeway: float = 30.0
    roles_claim: tuple[str, ...] = ("realm_access.roles", "roles")
    require_exp: bool = True
    token_cache_size: int = 10_000
    max_token_bytes: int = 8192
    jwks_cache_ttl: float = 600.0
    jwks_refresh_min_interval: float = 30.0
    jwks_timeout: float = 5.0
    jwks_retired_key_grace: float = 86400.0
    """Seconds a key the JWKS stopped publishing still verifies tokens (0: drop it at once)."""
    invalid_token_rate: str = "2/s"
    """Invalid tokens one client address may keep sending (``0``: no limit) ..."""
    invalid_token_burst: int = 30
    """... after this many; beyond, its unverified tokens get 429 before any check."""

    def __post_init__(self) -> None:
        if str(self.invalid_token_rate).strip() not in ("0", "0.0"):
            try:
                parse_rate(self.invalid_token_rate)
            except ValueError as exc:
                raise ConfigError(f"auth.invalid_token_rate: {exc}") from None
        if self.invalid_token_burst < 1 or self.jwks_retired_key_grace < 0:
            raise ConfigError("auth.invalid_token_burst must be >= 1 and "
                              "auth.jwks_retired_key_grace >= 0")
        sources = [name for name in ("jwks_url", "jwks_file", "public_key_file", "hs256_secret")
                   if getattr(self, name)]
        if len(sources) > 1:
            raise ConfigError(f"auth: set at most one key source, got {', '.join(sources)}")
        if not 0 <= self.leeway <= 300:
            raise ConfigError(f"auth.leeway must be 0-300 seconds, got {self.leeway}")
        if not self.roles_claim:
            raise ConfigError("auth.roles_claim needs at least one claim path")


ZYGOTE_MODES = ("auto", "always", "never")


@dataclass(frozen=True)
class RuntimeSettings:
    replica_start_timeout: float = 180.0
    replica_stop_timeout: float = 10.0
    health_interval: float = 5.0
    health_timeout: float = 2.0
    health_failures: int = 3
    restart_backoff: float = 1.0
    restart_backoff_max: float = 60.0
    mlflow_tracking_uri: str | None = None
    zygote: str = "auto"
    """odahu-ml-server replicas fork from a warm process with MLflow already imported
    (``predictor.zygote``): ``auto`` starts it once a deployment can scale to zero
    (``minReplicas: 0``: a request waits for its first replica), ``always`` at start,
    ``never`` (every replica a fresh interpreter). true/false mean always/never."""

    def __post_init__(self) -> None:
        mode = {"true": "always", "false": "never"}.get(str(self.zygote).lower(),
                                                         str(self.zygote).lower())
        if mode not in ZYGOTE_MODES:
            raise ConfigError(f"local.zygote must be one of {', '.join(ZYGOTE_MODES)}, "
                              f"got {self.zygote!r}")
        object.__setattr__(self, "zygote", mode)
        for name in ("replica_start_timeout", "replica_stop_timeout", "health_interval",
                     "health_timeout", "restart_backoff", "restart_backoff_max"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"local.{name} must be > 0")
        if self.health_failures < 1:
            raise ConfigError("local.health_failures must be >= 1")


_POLICY = ScalingPolicy()


@dataclass(frozen=True)
class AutoscalerSettings:
    """Defaults for every deployment; ``mlgate.io/*`` annotations override them per deployment."""

    interval: float = 0.5
    target_concurrency: float = _POLICY.target_concurrency
    window: float = _POLICY.window
    scale_down_delay: float = _POLICY.scale_down_delay
    scale_to_zero_after: float = _POLICY.scale_to_zero_after
    cold_start_timeout: float = _POLICY.cold_start_timeout

    def policy(self) -> ScalingPolicy:
        """The scaling defaults every deployment starts from (bounds and annotations later)."""
        return dataclasses.replace(_POLICY, **{name: getattr(self, name) for name in (
            "target_concurrency", "window", "scale_down_delay", "scale_to_zero_after",
            "cold_start_timeout")})

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.target_concurrency <= 0:
            raise ConfigError("autoscaler.interval and autoscaler.target_concurrency must be > 0")
        for name in ("window", "scale_down_delay", "scale_to_zero_after", "cold_start_timeout"):
            if getattr(self, name) < 0:
                raise ConfigError(f"autoscaler.{name} must not be negative")


@dataclass(frozen=True)
class AdmissionSettings:
    """``admission:``: every deployment's bounds; ``mlgate.io/*`` annotations override them
    per deployment (:mod:`gateway.admission`)."""

    max_in_flight_per_replica: int = 32
    """Requests sent to one replica at once (0: no bound)."""
    max_waiting: int = 100
    """Requests waiting for a replica (its bound reached, or a cold start); beyond, 503."""
    timeout: float | None = None
    """Seconds a request may take when the client sends no ``x-mlgate-timeout-ms``; null:
    no deadline of its own."""
    max_timeout: float = 300.0
    """The longest deadline a client may ask for."""

    def __post_init__(self) -> None:
        if self.max_in_flight_per_replica < 0 or self.max_waiting < 0:
            raise ConfigError("admission.max_in_flight_per_replica and admission.max_waiting "
                              "must be >= 0")
        if (self.timeout is not None and self.timeout <= 0) or self.max_timeout <= 0:
            raise ConfigError("admission.timeout (or null) and admission.max_timeout must be > 0")


@dataclass(frozen=True)
class RateLimitSettings:
    """``rate_limits:``: token buckets by route or deployment and caller (:mod:`gateway.ratelimit`).

    ``rules`` is a list of ``{name, deployments: [globs], routes: [globs], key, rate,
    burst}`` (file only, no environment override); a deployment's ``mlgate.io/rate-limit``
    annotations add its own."""

    rules: tuple[Any, ...] = ()
    """Validated into ``gateway.RateRule`` objects."""

    def __post_init__(self) -> None:
        raw = [r for r in self.rules if not isinstance(r, RateRule)]
        if not raw:
            return
        try:
            rules = parse_rules(list(self.rules), "rate_limits.rules")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        object.__setattr__(self, "rules", rules)


@dataclass(frozen=True)
class OverloadSettings:
    """``overload:``: marks of one gateway process past which it sheds (:mod:`gateway.overload`)."""

    max_memory_mb: float = 2048.0
    """Resident memory of one gateway process (0: not watched)."""
    max_loop_lag_ms: float = 1000.0
    """Event-loop lag, sustained over three samples (0: not watched)."""
    interval: float = 0.1
    recover_after: float = 2.0

    def __post_init__(self) -> None:
        if self.max_memory_mb < 0 or self.max_loop_lag_ms < 0:
            raise ConfigError("overload.max_memory_mb and overload.max_loop_lag_ms must be >= 0")
        if self.interval <= 0 or self.recover_after < 0:
            raise ConfigError("overload.interval must be > 0 and overload.recover_after >= 0")


@dataclass(frozen=True)
class TlsSettings:
    """``tls:``: terminate TLS on the port (for an edge without an ingress in front)."""

    cert_file: str | None = None
    """PEM certificate (chain); with ``key_file``: serve HTTPS."""
    key_file: str | None = None
    reload_interval: float = 10.0
    """Seconds between looks at both files; a renewed pair is loaded without a restart."""

    def __post_init__(self) -> None:
        if bool(self.cert_file) != bool(self.key_file):
            raise ConfigError("tls: set both cert_file and key_file, or neither")
        if self.reload_interval <= 0:
            raise ConfigError("tls.reload_interval must be > 0")

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file)


@dataclass(frozen=True)
class ApiSettings:
    edge_url: str | None = None
    """Base URL clients reach the gateway at (routes' ``edgeUrl``); default: the request's."""


@dataclass(frozen=True)
class LoggingSettings:
    """``logging:``. ``log_level`` (top level) still sets the level."""

    format: str = "text"
    """``text``: ``time level logger: message``; ``json``: one JSON object per line (for a
    log collector: every field of an access line is a key)."""
    access_log: bool = True
    """One line per request (``mlgate.access``, info level): request id, deployment,
    status, durations."""

    def __post_init__(self) -> None:
        if self.format not in ("json", "text"):
            raise ConfigError(f"logging.format must be 'json' or 'text', got {self.format!r}")


@dataclass(frozen=True)
class QualitySettings:
    """``quality:``: the live join of feedback to predictions, in the process that serves the
    management API (``mlgate up``; its gateway workers only write records)."""

    enabled: bool = True
    horizon: float = 7 * 86400.0
    """Seconds of prediction time kept: figures, and predictions still waiting for a label;
    rebuilt from storage at start."""
    max_pending: int = 1_000_000
    """Predictions kept for their label; beyond, the oldest is evicted (counted)."""
    max_waiting: int = 100_000
    """Feedback waiting for its prediction (a client-chosen Request-ID sent first) ..."""
    feedback_wait: float = 600.0
    """... for at most this many seconds; then it is counted as unmatched."""
    poll_interval: float = 2.0
    """Seconds between looks at the bucket for records other processes wrote."""
    rescan_interval: float = 300.0
    """Seconds between full listings of the last day (late uploads)."""
    latency_samples: int = 256
    """Latency samples kept per deployment, route and minute (for canary analysis)."""

    def __post_init__(self) -> None:
        if self.horizon < 60 or self.feedback_wait < 0:
            raise ConfigError("quality.horizon must be >= 60 and quality.feedback_wait >= 0")
        if min(self.max_pending, self.max_waiting, self.latency_samples) < 1:
            raise ConfigError("quality.max_pending, quality.max_waiting and "
                              "quality.latency_samples must be >= 1")
        if self.poll_interval <= 0 or self.rescan_interval <= 0:
            raise ConfigError("quality.poll_interval and quality.rescan_interval must be > 0")


@dataclass(frozen=True)
class KubernetesSettings:
    """``runtime: kubernetes``: where and how the controller creates the backing objects.

    How long a request is held while a deployment has no replica is the autoscaler's
    ``cold_start_timeout`` (and the ``mlgate.io/cold-start-timeout`` annotation), as for
    the local runtime.
    """

    namespace: str = "mlgate-models"
    kubeconfig: str | None = None      # None: in-cluster service account, else $KUBECONFIG
    context: str | None = None         # kubeconfig context; None: its current-context
    service_port: int = 80
    # The address the edge gateway sends a deployment's traffic to (one "replica": the Service).
    service_host: str = "{id}.{namespace}.svc"
    image_pull_policy: str = "IfNotPresent"
    sidecar: bool = False              # put the mlgate gateway in front of each predictor
    sidecar_image: str = "mlgate:0.1.0"
    sidecar_port: int = 8080
    sidecar_records: bool = False      # the sidecar logs records too (when no mlgate edge does)
    keda: bool = True                  # minReplicas 0 -> KEDA ScaledObject (scale to zero)
    prometheus_url: str = "http://prometheus-server.monitoring.svc"
    keda_in_flight_per_replica: int = 4
    keda_cooldown_period: int = 300
    hpa_cpu_utilization: int = 75
    api_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.service_port <= 65535:
            raise ConfigError(f"kubernetes.service_port must be 1-65535, got {self.service_port}")
        if not 1 <= self.sidecar_port <= 65535:
            raise ConfigError(f"kubernetes.sidecar_port must be 1-65535, got {self.sidecar_port}")
        if self.image_pull_policy not in ("Always", "IfNotPresent", "Never"):
            raise ConfigError("kubernetes.image_pull_policy must be Always, IfNotPresent or "
                              f"Never, got {self.image_pull_policy!r}")
        if not 1 <= self.hpa_cpu_utilization <= 100:
            raise ConfigError("kubernetes.hpa_cpu_utilization must be 1-100")
        if self.keda_in_flight_per_replica < 1:
            raise ConfigError("kubernetes.keda_in_flight_per_replica must be >= 1")
        if self.api_timeout <= 0:
            raise ConfigError("kubernetes.api_timeout must be positive")
        try:
            self.service_host.format(id="x", namespace="y")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError("kubernetes.service_host may use only {id} and {namespace}, "
                              f"got {self.service_host!r}") from exc


@dataclass(frozen=True)
class BatchSettings:
    """``batch:``: how inference jobs run (:mod:`deploy.batch`)."""

    s3_endpoint_url: str | None = None
    """For ``s3://`` inputs and outputs; None: ``storage.endpoint_url`` when it is S3's."""
    s3_region: str | None = None
    """None: ``storage.region``."""
    gcs_endpoint_url: str | None = None
    """For ``gs://``; None: ``storage.endpoint_url`` when it is GCS's (or
    ``STORAGE_EMULATOR_HOST``)."""
    timeout: float = 60.0
    """Seconds for one bucket call of a job."""
    call_timeout: float = 300.0
    """Seconds for one model call through the gateway."""
    gateway_url: str | None = None
    """Where runners call the model; None: this mlgate's own port on 127.0.0.1 (local
    runtime), ``http://mlgate.mlgate.svc`` (kubernetes: the kustomize base's Service)."""
    token_ttl: float = 604800.0
    """Lifetime of the token mlgate signs for a run's calls (the submitter's roles)."""
    token_file: str | None = None
    """A file holding the runners' bearer token, for an external issuer mlgate cannot sign for."""
    restart_limit: int = 2
    """A runner process that dies is started again this many times, then the job is Failed."""
    progress_interval: float = 0.5
    """Seconds between a runner's progress reports."""
    read_ahead_bytes: int = 256 << 20
    """Input bytes a runner keeps from counting rows to predicting them (read once)."""
    local_roots: tuple[str, ...] = ()
    """Directories local job inputs and outputs must lie under; empty: the directory
    ``mlgate up`` was started in."""
    image: str = "mlgate:0.1.0"
    """``runtime: kubernetes``: the image the Job's pods run (``python -m deploy.batch``)."""
    service_account: str | None = None
    """``runtime: kubernetes``: the pods' service account (bucket credentials: IRSA,
    workload identity); None: the namespace's default."""

    def __post_init__(self) -> None:
        for name in ("timeout", "call_timeout", "token_ttl", "progress_interval"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"batch.{name} must be > 0")
        if self.restart_limit < 0 or self.read_ahead_bytes < 0:
            raise ConfigError("batch.restart_limit and batch.read_ahead_bytes must be >= 0")


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 5080
    data_dir: str = ".mlgate"
    runtime: str = "local"
    log_level: str = "info"
    workers: int = 1
    """Processes serving the port (``SO_REUSEPORT``): the primary and ``workers - 1``
    gateway-only workers (:mod:`deploy.serve.workers`)."""
    storage: StorageSettings = field(default_factory=StorageSettings)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    local: RuntimeSettings = field(default_factory=RuntimeSettings)
    autoscaler: AutoscalerSettings = field(default_factory=AutoscalerSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)
    batch: BatchSettings = field(default_factory=BatchSettings)
    quality: QualitySettings = field(default_factory=QualitySettings)
    admission: AdmissionSettings = field(default_factory=AdmissionSettings)
    rate_limits: RateLimitSettings = field(default_factory=RateLimitSettings)
    overload: OverloadSettings = field(default_factory=OverloadSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)

    def __post_init__(self) -> None:
        if self.runtime not in ("local", "kubernetes"):
            raise ConfigError(f"runtime must be 'local' or 'kubernetes', got {self.runtime!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, got {self.port}")
        if not 1 <= self.workers <= 64:
            raise ConfigError(f"workers must be 1-64, got {self.workers}")

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).resolve()


def load_settings(path: str | os.PathLike[str] | None = None,
                  env: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Settings:
    """Defaults, then the YAML file, then ``MLGATE_*`` variables, then flag overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must be a mapping of keys")
        raw = loaded
    merged = _merge(raw, env_overrides(Settings, os.environ if env is None else env))
    merged = _merge(merged, {k: v for k, v in (overrides or {}).items() if v is not None})
    return build(Settings, merged, "")


def env_overrides(cls: type, env: Mapping[str, str], prefix: str = ENV_PREFIX) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        name = prefix + f.name.upper()
        if _is_dataclass_type(cls, f):
            nested = env_overrides(_field_type(cls, f), env, name + "_")
            if nested:
                out[f.name] = nested
        elif name in env:
            out[f.name] = env[name]
    return out


def build(cls: type, raw: Mapping[str, Any], path: str) -> Any:
    """Build dataclass ``cls`` from ``raw``, converting strings and naming any bad key."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path or 'config'} must be a mapping")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(names))
    if unknown:
        where = f" in {path}" if path else ""
        raise ConfigError(f"unknown config key(s){where}: {', '.join(map(str, unknown))}")
    kwargs: dict[str, Any] = {}
    for name, value in raw.items():
        f = names[name]
        key = f"{path}.{name}" if path else name
        if _is_dataclass_type(cls, f):
            kwargs[name] = build(_field_type(cls, f), value or {}, key)
        else:
            kwargs[name] = _convert(typing.get_type_hints(cls)[name], value, key)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path or 'config'}: {exc}") from exc


def _field_type(cls: type, f: dataclasses.Field[Any]) -> type:
    return typing.get_type_hints(cls)[f.name]


def _is_dataclass_type(cls: type, f: dataclasses.Field[Any]) -> bool:
    t = _field_type(cls, f)
    return isinstance(t, type) and dataclasses.is_dataclass(t)


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("", "null", "none")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, key)
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return tuple(_convert(args[0], v.strip() if isinstance(v, str) else v, key)
                     for v in items if v != "")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        try:
            return hint(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be {'an integer' if hint is int else 'a number'}, "
                              f"got {value!r}") from None
    if hint is str:
        if isinstance(value, dict | list):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return str(value)
    return value


def _merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
