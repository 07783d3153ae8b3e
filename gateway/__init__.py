"""The data plane: the aiohttp gateway, its filter chain, routing and upstream pool."""

from .app import MIRROR, POOL, TABLE, GatewayConfig, create_app
from .auth import AuthConfig
from .errors import GatewayError, error_response, json_response
from .limits import Limits, server_settings
from .mirror import Mirror, MirrorStats
from .outlier import OutlierPolicy
from .routing import Deployment, Replica, RouteTable, pick_replica
from .sticky import StickyKey
from .traffic import DEFAULT_OVERRIDE_ROLES, TrafficRoute, WeightedTarget
from .upstream import Timeouts, UpstreamPool

__all__ = [
    "DEFAULT_OVERRIDE_ROLES",
    "MIRROR",
    "POOL",
    "TABLE",
    "AuthConfig",
    "Deployment",
    "GatewayConfig",
    "GatewayError",
    "Limits",
    "Mirror",
    "MirrorStats",
    "OutlierPolicy",
    "Replica",
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
