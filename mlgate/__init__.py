"""mlgate's Python SDK: deploy, call, give feedback and read records from Python or a notebook::

    from mlgate import Client
    mg = Client("http://127.0.0.1:5080", token=...)      # or $MLGATE_URL / $MLGATE_TOKEN
    dep = mg.deploy("./models/wine-v2", id="wine-v2", min_replicas=1, wait=True)
    pred = mg.invoke("wine-v2", df)                       # DataFrame in -> DataFrame out
    mg.feedback(pred, df["quality"])                      # one label per predicted row
    mg.rollout("wine").watch()                            # a canary rollout, live

:class:`AsyncClient` has the same methods, awaited. Errors are :mod:`mlgate.errors`
exceptions carrying the server's message and status. The SDK is a client of mlgate's REST
API only; DataFrames need pandas (``pip install 'mlgate[sdk]'``).
"""

from .client import (
    AsyncClient,
    BaseClient,
    Client,
    Deployments,
    Jobs,
    RolloutControl,
    Routes,
    Tokens,
)
from .errors import (
    ApiError,
    Conflict,
    ConnectionFailed,
    DeploymentFailed,
    Forbidden,
    Invalid,
    MlgateError,
    NotFound,
    ServerError,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    WaitTimeout,
)
from .objects import Deployment, Job, Quality, Revocation, Rollout, Route, Table

__all__ = [
    "ApiError",
    "AsyncClient",
    "BaseClient",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Deployment",
    "DeploymentFailed",
    "Deployments",
    "Forbidden",
    "Invalid",
    "Job",
    "Jobs",
    "MlgateError",
    "NotFound",
    "Quality",
    "Revocation",
    "Rollout",
    "RolloutControl",
    "Route",
    "Routes",
    "ServerError",
    "Table",
    "Tokens",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "WaitTimeout",
]
