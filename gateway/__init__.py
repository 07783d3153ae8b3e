"""The data plane: the aiohttp gateway, its filter chain, routing and upstream pool."""

from .app import OBSERVER, POOL, TABLE, GatewayConfig, create_app
from .auth import AuthConfig
from .errors import GatewayError, error_response, json_response
from .limits import Limits, server_settings
from .metrics import DeploymentState, ReplicaUsage
from .observe import SERVED_BY, Observer
from .routing import Deployment, Replica, RouteTable, pick_replica
from .upstream import Timeouts, UpstreamPool

__all__ = [
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
    "Observer",
    "Replica",
    "ReplicaUsage",
    "RouteTable",
    "Timeouts",
    "UpstreamPool",
    "create_app",
    "error_response",
    "json_response",
    "pick_replica",
    "server_settings",
]
