"""The management API (ODAHU v1 REST): deployments, routes, inference jobs, records, and its
Swagger UI.

``add_management_api(app, store, settings)`` adds the routes to the gateway's
application, so they run behind the same filter chain (errors, Request-ID,
authentication) as everything else.
"""

from deploy.api.app import API_PREFIX, add_management_api
from deploy.api.batch_jobs import BatchConfig
from deploy.api.records import RecordSource

__all__ = ["API_PREFIX", "BatchConfig", "RecordSource", "add_management_api"]
