"""The data plane: the aiohttp gateway, its filter chain, routing and upstream pool."""

from .app import MIRROR, OBSERVER, POOL, TABLE, GatewayConfig, create_app
from .auth import AuthConfig
from .errors import GatewayError, error_response, json_response
from .limits import Limits, server_settings
from .metrics import DeploymentState, ReplicaUsage
from .mirror import Mirror, MirrorStats
from .observe import SERVED_BY, Observer
from .outlier import OutlierPolicy
from .routing import Deployment, Replica, RouteTable, pick_replica
from .sticky import StickyKey
from .traffic import DEFAULT_OVERRIDE_ROLES, TrafficRoute, WeightedTarget
from .upstream import Timeouts, UpstreamPool

__all__ = [
    "DEFAULT_OVERRIDE_ROLES",
    "MIRROR",
    "OBSERVER",
    "POOL",
    "SERVED_BY",
    "TABLE",
    "AuthConfig",
    "Deployment",
    "DeploymentState",
    "GatewayConfig",
    "GatewayError",
    "Limits",
    "Mirror",
    "MirrorStats",
    "Observer",
    "OutlierPolicy",
    "Replica",
    "ReplicaUsage",
    "RouteTable",
    "StickyKey",
    "Timeouts",
    "TrafficRoute",
    "UpstreamPool",
    "WeightedTarget",
    "create_app",
    "error_response",
    "json_response",
    "pick_replica",
    "server_settings",
]
