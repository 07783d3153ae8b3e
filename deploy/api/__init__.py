"""The management API (ODAHU v1 REST): deployments, routes, and its Swagger UI.

``add_management_api(app, store, settings)`` adds the routes to the gateway's
application, so they run behind the same filter chain (errors, Request-ID,
authentication) as everything else.
"""

from deploy.api.app import API_PREFIX, add_management_api
from deploy.api.dataset import DatasetSource

__all__ = ["API_PREFIX", "DatasetSource", "add_management_api"]
