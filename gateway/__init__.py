"""The data plane: the aiohttp gateway, its filter chain, routing and upstream pool.

This is the package's public face: other packages import these names from ``gateway``,
never a submodule (an import-linter contract checks it).
"""

from .access_log import JsonFormatter, configure_logging
from .admission import DEADLINE_HEADER, DEFAULT_ADMISSION, Admission
from .app import (
    MIRROR,
    OBSERVER,
    OVERLOAD,
    POOL,
    REVOCATIONS,
    TABLE,
    GatewayConfig,
    add_data_plane_route,
    build_filter_chain,
    create_app,
    create_sidecar_app,
)
from .auth import (
    DEFAULT_POLICY,
    PRINCIPAL_KEY,
    AuthConfig,
    Authenticator,
    AuthError,
    ClaimRules,
    InvalidTokenLimit,
    JwksSettings,
    KeyConfigError,
    Policy,
    PolicyError,
    RevocationList,
    Revocations,
    StaticKeys,
    key_from_pem,
    key_from_secret,
    keys_from_jwks,
    parse_policy,
)
from .buckets import Buckets, LocalBuckets, SharedBuckets
from .errors import (
    GatewayError,
    Handler,
    add_exception_handler,
    error_response,
    json_response,
    set_error_format,
)
from .filters import Answer, answer_json
from .forward import make_forward_filter, served_here
from .limits import Limits, quiet_protocol_errors, server_settings
from .metrics import ControlPlaneView, DeploymentState, ReplicaUsage
from .mirror import Mirror, MirrorStats
from .observe import SERVED_BY, Observer
from .openapi import add_openapi_route
from .outlier import OutlierPolicy
from .overload import OverloadConfig
from .proxy import RecordSink, hold_for_replica, send_to_deployment
from .ratelimit import RateRule, parse_rate, parse_rules
from .routing import Deployment, Replica, RouteTable, pick_replica
from .server import GatewayRunner
from .sticky import StickyKey
from .tls import CertificateReloader, TlsConfigError, TlsFiles
from .traffic import DEFAULT_OVERRIDE_ROLES, TrafficRoute, WeightedTarget
from .upstream import Timeouts, UpstreamPool

__all__ = [
    "DEADLINE_HEADER",
    "DEFAULT_ADMISSION",
    "DEFAULT_OVERRIDE_ROLES",
    "DEFAULT_POLICY",
    "MIRROR",
    "OBSERVER",
    "OVERLOAD",
    "POOL",
    "PRINCIPAL_KEY",
    "REVOCATIONS",
    "SERVED_BY",
    "TABLE",
    "Admission",
    "Answer",
    "AuthConfig",
    "AuthError",
    "Authenticator",
    "Buckets",
    "CertificateReloader",
    "ClaimRules",
    "ControlPlaneView",
    "Deployment",
    "DeploymentState",
    "GatewayConfig",
    "GatewayError",
    "GatewayRunner",
    "Handler",
    "InvalidTokenLimit",
    "JsonFormatter",
    "JwksSettings",
    "KeyConfigError",
    "Limits",
    "LocalBuckets",
    "Mirror",
    "MirrorStats",
    "Observer",
    "OutlierPolicy",
    "OverloadConfig",
    "Policy",
    "PolicyError",
    "RateRule",
    "RecordSink",
    "Replica",
    "ReplicaUsage",
    "RevocationList",
    "Revocations",
    "RouteTable",
    "SharedBuckets",
    "StaticKeys",
    "StickyKey",
    "Timeouts",
    "TlsConfigError",
    "TlsFiles",
    "TrafficRoute",
    "UpstreamPool",
    "WeightedTarget",
    "add_data_plane_route",
    "add_exception_handler",
    "add_openapi_route",
    "answer_json",
    "build_filter_chain",
    "configure_logging",
    "create_app",
    "create_sidecar_app",
    "error_response",
    "hold_for_replica",
    "json_response",
    "key_from_pem",
    "key_from_secret",
    "keys_from_jwks",
    "make_forward_filter",
    "parse_policy",
    "parse_rate",
    "parse_rules",
    "pick_replica",
    "quiet_protocol_errors",
    "send_to_deployment",
    "served_here",
    "server_settings",
    "set_error_format",
]
