"""The data plane: the aiohttp gateway, its filter chain, routing and upstream pool."""

from .app import POOL, TABLE, GatewayConfig, create_app
from .auth import AuthConfig
from .errors import GatewayError, error_response, json_response
from .limits import Limits, server_settings
from .routing import Deployment, Replica, RouteTable, pick_replica
from .upstream import Timeouts, UpstreamPool

__all__ = [
    "POOL",
    "TABLE",
    "AuthConfig",
    "Deployment",
    "GatewayConfig",
    "GatewayError",
    "Limits",
    "Replica",
    "RouteTable",
    "Timeouts",
    "UpstreamPool",
    "create_app",
    "error_response",
    "json_response",
    "pick_replica",
    "server_settings",
]
