"""The OpenAPI 3 document of the management API (shown by the Swagger UI at /swagger/)."""

from __future__ import annotations

from typing import Any

from deploy.api import revocations
from deploy.control.analysis import (
    DEFAULT_MIN_SAMPLES,
    DEFAULT_STEP_WEIGHTS,
    DEFAULT_THRESHOLD,
)
from deploy.control.analysis_metrics import DEFAULT_CONFIDENCE, METRIC_NAMES, QUALITY_METRICS
from deploy.control.deployments import DEFAULT_LIMITS, DEFAULT_REQUESTS, PREDICTORS
from deploy.control.jobs import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_ERROR_RATE,
    DEFAULT_PARALLELISM,
    DEFAULT_RETRIES,
    FORMATS,
    MAX_BATCH_SIZE,
    MAX_CONCURRENCY,
    MAX_PARALLELISM,
    MAX_REPLICAS,
    MAX_RETRIES,
)

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


ERRORS = {
    "400": _body(_ref("HTTPResult"), "Validation failed; the message names every broken field"),
    "401": _body(_ref("HTTPResult"), "Missing or invalid bearer token"),
    "403": _body(_ref("HTTPResult"), "Not allowed"),
    "404": _body(_ref("HTTPResult"), "Not found"),
    "409": _body(_ref("HTTPResult"), "Already exists (or being deleted)"),
    "503": _body(_ref("HTTPResult"), "A bucket the request needs cannot be reached now"),
}
ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}


def _crud(kind: str, tag: str, noun: str) -> dict[str, Any]:
    listing = {"type": "array", "items": _ref(kind)}
    return {
        "get": {"tags": [tag], "summary": f"Get all {noun}s", "operationId": f"list{kind}",
                "responses": {"200": _body(listing, f"All {noun}s")}},
        "post": {"tags": [tag], "summary": f"Create a {noun}", "operationId": f"create{kind}",
                 "requestBody": _body(_ref(kind), f"The {noun}"),
                 "responses": {"201": _body(_ref(kind), f"The created {noun}"),
                               **{k: ERRORS[k] for k in ("400", "401", "403", "409")}}},
        "put": {"tags": [tag], "summary": f"Update a {noun}", "operationId": f"update{kind}",
                "requestBody": _body(_ref(kind), f"The {noun}, with its id"),
                "responses": {"200": _body(_ref(kind), f"The updated {noun}"),
                              **{k: ERRORS[k] for k in ("400", "401", "403", "404", "409")}}},
    }


def _item(kind: str, tag: str, noun: str, delete_note: str) -> dict[str, Any]:
    return {
        "parameters": [ID_PARAM],
        "get": {"tags": [tag], "summary": f"Get a {noun}", "operationId": f"get{kind}",
                "responses": {"200": _body(_ref(kind), f"The {noun}"), "404": ERRORS["404"]}},
        "delete": {"tags": [tag], "summary": f"Delete a {noun}", "description": delete_note,
                   "operationId": f"delete{kind}",
                   "responses": {"200": _body(_ref("HTTPResult"), "Deleted"),
                                 **{k: ERRORS[k] for k in ("401", "403", "404")}}},
    }


def _records() -> dict[str, Any]:
    def param(name: str, description: str, **schema: Any) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "description": description,
                "schema": {"type": "string", **schema}}

    return {"get": {
        "tags": ["Records"], "summary": "Stored records, as JSON Lines",
        "description": "What `mlgate records cat` reads from the bucket: request/response "
                       "records, response bodies or feedback (records still in a spool are "
                       "not there yet). At most `limit` lines.",
        "operationId": "getRecords",
        "parameters": [
            param("kind", "record kind (default request_response)",
                  enum=["request_response", "response_body", "feedback"]),
            param("model", "model name"),
            param("version", "model version (needs model)"),
            param("since", "from this UTC date or time on (2026-12-01, 2026-12-01T09:30)"),
            param("until", "before this UTC date or time"),
            {"name": "limit", "in": "query", "required": False,
             "description": "most records (default and most 100000)",
             "schema": {"type": "integer", "minimum": 1, "maximum": 100000}},
        ],
        "responses": {
            "200": {"description": "One record per line",
                    "content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
            **{k: ERRORS[k] for k in ("400", "401", "403")},
            "503": _body(_ref("HTTPResult"), "The record storage cannot be read now"),
        }}}


def _schemas() -> dict[str, Any]:
    string_map = {"type": "object", "additionalProperties": {"type": "string"}}
    resource_list = {"type": "object", "properties": {
        "cpu": {"type": "string", "example": "250m"},
        "memory": {"type": "string", "example": "256Mi"},
        "gpu": {"type": "string", "example": "1"}}}
    return {
        "HTTPResult": {"type": "object", "properties": {"message": {"type": "string"}}},
        "ResourceList": resource_list,
        "ResourceRequirements": {"type": "object", "properties": {
            "requests": {**_ref("ResourceList"), "description": f"default {DEFAULT_REQUESTS}"},
            "limits": {**_ref("ResourceList"), "description": f"default {DEFAULT_LIMITS}"}}},
        "ModelDeploymentSpec": {"type": "object", "required": ["image", "predictor"],
                                "properties": {
            "image": {"type": "string", "example": "file:///srv/models/wine-v1",
                      "description": "file://<MLflow model dir> (local runtime), models:/<name>/"
                                     "<version> with a tracking URI, or a container image"},
            "predictor": {"type": "string", "enum": list(PREDICTORS)},
            "resources": _ref("ResourceRequirements"),
            "minReplicas": {"type": "integer", "minimum": 0, "default": 0},
            "maxReplicas": {"type": "integer", "minimum": 1,
                            "description": "default max(1, minReplicas)"},
            "imagePullConnID": {"type": "string"},
            "roleName": {"type": "string", "description": "default role-<id>"},
            "annotations": {**string_map, "description":
                            "mlgate.io/target-concurrency, mlgate.io/window, "
                            "mlgate.io/scale-down-delay, mlgate.io/scale-to-zero-after, "
                            "mlgate.io/cold-start-timeout override the autoscaler; "
                            "mlgate.io/max-in-flight-per-replica, mlgate.io/max-waiting, "
                            "mlgate.io/timeout, mlgate.io/max-timeout the admission bounds; "
                            "mlgate.io/rate-limit (-burst, -key) a rate limit of its own"},
            "nodeSelector": string_map,
            "livenessProbeInitialDelay": {"type": "integer", "minimum": 0, "default": 2},
            "readinessProbeInitialDelay": {"type": "integer", "minimum": 0, "default": 2},
            "quality": _ref("QualitySpec")}},
        "QualitySpec": {"type": "object", "additionalProperties": False, "description":
                        "mlgate extension: how live quality is measured; every field optional "
                        "(inferred; status.quality says which). Mirrored in the "
                        "mlgate.io/quality annotation, which ODAHU clients keep.",
                        "properties": {
            "task": {"type": "string", "enum": ["regression", "classification"]},
            "prediction": {"type": "string", "example": "$.prediction",
                           "description": "JSONPath into the response body"},
            "label": {"type": "string", "example": "$.truthful",
                      "description": "JSONPath into the feedback JSON"},
            "window": {"type": "string", "example": "1h",
                       "description": "bucket width, whole minutes"},
            "classes": {"type": "array", "items": {"oneOf": [
                {"type": "string"}, {"type": "integer"}, {"type": "boolean"}]},
                        "description": "classification: the known classes"}}},
        "QualityStatus": {"type": "object", "readOnly": True, "properties": {
            "state": {"type": "string", "enum": ["configured", "inferred", "not configured"]},
            "task": {"type": "string"}, "prediction": {"type": "string"},
            "label": {"type": "string"}, "window": {"type": "string"},
            "defaults": {"type": "array", "items": {"type": "string"},
                         "description": "the fields that were inferred"},
            "reason": {"type": "string"}}},
        "QualityFigures": {"type": "object", "properties": {
            **{name: {"type": "integer"} for name in (
                "requests", "errors", "predictions", "labelled", "unlabelled", "count")},
            "invalid": {"type": "object", "additionalProperties": {"type": "integer"},
                        "description": "labels that could not be read, by reason"},
            **{name: {"type": "number", "nullable": True} for name in (
                "mae", "rmse", "bias", "accuracy", "median_label_delay_seconds")},
            "classes": {"type": "object", "additionalProperties": {"type": "object"}},
            "start": {"type": "string", "format": "date-time"},
            "end": {"type": "string", "format": "date-time"}}},
        "DeploymentQuality": {"type": "object", "properties": {
            "deployment_id": {"type": "string"}, "model_name": {"type": "string"},
            "model_version": {"type": "string"}, "quality": _ref("QualityStatus"),
            "since": {"type": "string", "format": "date-time"},
            "until": {"type": "string", "format": "date-time"}, "window": {"type": "string"},
            "complete": {"type": "boolean", "description": "false while figures are rebuilt "
                                                            "from storage after a start"},
            "totals": _ref("QualityFigures"),
            "series": {"type": "array", "items": _ref("QualityFigures")}}},
        "RouteQuality": {"type": "object", "properties": {
            "route_id": {"type": "string"}, "since": {"type": "string"},
            "until": {"type": "string"}, "window": {"type": "string"},
            "targets": {"type": "array", "items": _ref("DeploymentQuality")},
            "mirror": _ref("DeploymentQuality")}},
        "ModelDeploymentStatus": {"type": "object", "readOnly": True, "properties": {
            "state": {"type": "string", "enum": ["Processing", "Ready", "Failed", "Deleting"]},
            "replicas": {"type": "integer"},
            "availableReplicas": {"type": "integer"},
            "modelName": {"type": "string"},
            "modelVersion": {"type": "string"},
            "reason": {"type": "string", "description": "why it is Failed (or not Ready yet)"},
            "lastUpdatedTime": {"type": "string", "format": "date-time"},
            "quality": _ref("QualityStatus")}},
        "ModelDeployment": {"type": "object", "required": ["id", "spec"], "properties": {
            "id": {"type": "string", "pattern": "^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$",
                   "example": "wine"},
            "spec": _ref("ModelDeploymentSpec"),
            "status": _ref("ModelDeploymentStatus"),
            "createdAt": {"type": "string", "format": "date-time", "readOnly": True},
            "updatedAt": {"type": "string", "format": "date-time", "readOnly": True}}},
        "ModelDeploymentTarget": {"type": "object", "required": ["mdName"], "properties": {
            "mdName": {"type": "string"},
            "weight": {"type": "integer", "minimum": 0, "maximum": 100}}},
        "ModelRouteSpec": {"type": "object", "required": ["urlPrefix", "modelDeployments"],
                           "properties": {
            "urlPrefix": {"type": "string", "example": "/custom/wine"},
            "modelDeployments": {"type": "array", "items": _ref("ModelDeploymentTarget"),
                                 "description": "weights sum to 100"},
            "mirror": {"type": "string", "description": "a deployment that gets a copy"},
            "mirrorPercentage": {"type": "number", "minimum": 0, "maximum": 100,
                                 "description": "share of requests copied (default 100)"},
            "sticky": {"type": "object", "minProperties": 1, "maxProperties": 1,
                       "additionalProperties": False,
                       "description": "one user keeps one target: the key is a header, "
                                      "a cookie or a JWT claim (e.g. sub)",
                       "properties": {"header": {"type": "string"},
                                      "cookie": {"type": "string"},
                                      "jwtClaim": {"type": "string"}}},
            "override": {"type": "object", "required": ["roles"],
                         "additionalProperties": False,
                         "description": "roles that may pick a target with the "
                                        "x-mlgate-override-target header "
                                        "(default admin, odahu_admin)",
                         "properties": {"roles": {"type": "array",
                                                  "items": {"type": "string"}}}},
            "analysis": _ref("RolloutAnalysis")}},
        "ModelRouteStatus": {"type": "object", "readOnly": True, "properties": {
            "state": {"type": "string", "enum": ["Processing", "Ready", "Failed"]},
            "edgeUrl": {"type": "string"},
            "reason": {"type": "string"},
            "rollout": _ref("RolloutStatus")}},
        **_job_schemas(),
        **_rollout_schemas(),
        "ModelRoute": {"type": "object", "required": ["id", "spec"], "properties": {
            "id": {"type": "string"},
            "default": {"type": "boolean", "readOnly": True},
            "spec": _ref("ModelRouteSpec"),
            "status": _ref("ModelRouteStatus"),
            "createdAt": {"type": "string", "format": "date-time", "readOnly": True},
            "updatedAt": {"type": "string", "format": "date-time", "readOnly": True}}},
    }


def _rollout_schemas() -> dict[str, Any]:
    duration = {"type": "string", "description": "a duration: 30s, 5m, 1h30m (or seconds)"}
    number = {"type": "number", "nullable": True}
    verdict = {"type": "string", "enum": ["pass", "fail", "inconclusive"]}
    phase = {"type": "string",
             "enum": ["Progressing", "Paused", "Inconclusive", "Succeeded", "Failed"]}
    return {
        "RolloutMetric": {"type": "object", "required": ["name"], "additionalProperties": False,
                          "properties": {
            "name": {"type": "string", "enum": list(METRIC_NAMES)},
            "metric": {"type": "string", "enum": list(QUALITY_METRICS),
                       "description": "name: quality only"},
            "max": {"type": "number", "minimum": 0, "description": "ceiling of the canary's "
                    "figure (error-rate and accuracy: percent; latency: seconds; mae)"},
            "maxIncrease": {"type": "number", "minimum": 0,
                            "description": "allowed increase over stable, percent of it"},
            "confidence": {"type": "number", "minimum": 0.5, "exclusiveMaximum": True,
                           "maximum": 1, "default": DEFAULT_CONFIDENCE}}},
        "RolloutAnalysis": {
            "type": "object", "required": ["canary", "metrics"], "additionalProperties": False,
            "description": "Automatic canary analysis: the canary's weight moves through "
                           "stepWeights while every metric judged against the stable target "
                           "passes; threshold failures roll it back. A PUT without it keeps "
                           "the stored one; null removes it.",
            "properties": {
                "canary": {"type": "string", "description": "one of the route's two targets"},
                "interval": {**duration, "default": "1m", "description": "one judgement per "
                             "interval, at least 1s"},
                "stepWeights": {"type": "array", "minItems": 1,
                                "items": {"type": "integer", "minimum": 1, "maximum": 99},
                                "default": list(DEFAULT_STEP_WEIGHTS),
                                "description": "strictly increasing canary weights"},
                "threshold": {"type": "integer", "minimum": 1, "default": DEFAULT_THRESHOLD},
                "minSamples": {"type": "integer", "minimum": 1, "default": DEFAULT_MIN_SAMPLES},
                "progressDeadline": {**duration, "default": "30m"},
                "metrics": {"type": "array", "minItems": 1, "items": _ref("RolloutMetric")}}},
        "RolloutVerdict": {"type": "object", "properties": {
            "name": {"type": "string", "example": "quality-mae"}, "verdict": verdict,
            "canary": number, "stable": number, "bound": number, "pValue": number,
            "effect": number, "reason": {"type": "string"},
            "samples": {"type": "object", "properties": {"canary": {"type": "integer"},
                                                         "stable": {"type": "integer"}}}}},
        "RolloutStatus": {"type": "object", "readOnly": True, "properties": {
            "phase": phase,
            "step": {"type": "integer", "description": "from 1; the last one once promoted"},
            "steps": {"type": "integer"},
            "canary": {"type": "string"}, "stable": {"type": "string"},
            "canaryWeight": {"type": "integer"},
            "weights": {"type": "object", "additionalProperties": {"type": "integer"}},
            "failedChecks": {"type": "integer"}, "threshold": {"type": "integer"},
            "message": {"type": "string"},
            **{name: {"type": "string", "format": "date-time", "nullable": True}
               for name in ("startedAt", "stepStartedAt", "lastJudgedAt", "deadline")},
            "lastJudgement": {"type": "object", "nullable": True, "properties": {
                "at": {"type": "string", "format": "date-time"}, "verdict": verdict,
                "metrics": {"type": "array", "items": _ref("RolloutVerdict")}}}}},
        "Rollout": {"allOf": [_ref("RolloutStatus"), {"type": "object", "properties": {
            "routeId": {"type": "string"}, "interval": {"type": "string"},
            "stepWeights": {"type": "array", "items": {"type": "integer"}},
            "history": {"type": "array", "items": {"type": "object", "properties": {
                "at": {"type": "string", "format": "date-time"}, "phase": phase,
                "step": {"type": "integer"}, "canaryWeight": {"type": "integer"},
                "failedChecks": {"type": "integer"}, "message": {"type": "string"}}}}}}]},
    }


def _rollout_paths(route: str) -> dict[str, Any]:
    unavailable = _body(_ref("HTTPResult"), "this mlgate runs no canary rollouts")
    paths: dict[str, Any] = {route + "/{id}/rollout": {"parameters": [ID_PARAM], "get": {
        "tags": ["Route"], "summary": "A route's canary rollout, with its history",
        "operationId": "getRollout",
        "responses": {"200": _body(_ref("Rollout"), "The rollout"),
                      **{k: ERRORS[k] for k in ("401", "403")},
                      "404": _body(_ref("HTTPResult"), "No such route, or no spec.analysis")}}}}
    notes = {"promote": "The canary gets 100 now (also after a Failed rollout).",
             "abort": "Back to stable 100, phase Failed.",
             "pause": "Keep the weights, judge nothing, stop the deadline's clock.",
             "resume": "Continue a paused rollout at its step."}
    for action, note in notes.items():
        paths[f"{route}/{{id}}/rollout/{action}"] = {"parameters": [ID_PARAM], "post": {
            "tags": ["Route"], "summary": f"{action.capitalize()} a route's canary rollout",
            "description": note, "operationId": f"{action}Rollout",
            "responses": {"200": _body(_ref("Rollout"), "The rollout after it"),
                          **{k: ERRORS[k] for k in ("401", "403", "404")},
                          "409": _body(_ref("HTTPResult"), "Not in this phase"),
                          "503": unavailable}}}
    return paths


def _job_schemas() -> dict[str, Any]:
    count = {"type": "integer", "minimum": 0}
    location = {"type": "string", "description": "a local path (under batch.local_roots), "
                "s3://bucket/prefix or gs://bucket/prefix"}
    return {
        "InferenceJobSpec": {"type": "object", "required": ["input", "output"], "properties": {
            "deployment": {"type": "string", "description": "the model deployment every call "
                           "goes through (its default route); or modelUri"},
            "modelUri": {"type": "string", "description": "an MLflow model the job runs in a "
                         "deployment of its own (<id>-job), deleted when it ends"},
            "predictor": {"type": "string", "enum": ["odahu-ml-server"],
                          "description": "with modelUri"},
            "replicas": {"type": "integer", "minimum": 1, "maximum": MAX_REPLICAS,
                         "default": 1, "description": "with modelUri"},
            "input": {**location, "description": "every object under this prefix ("
                      "names with a segment starting with _ or . are skipped)"},
            "output": {**location, "description": "one object per input object, same "
                       "relative name; _errors/<object>.jsonl lists what failed"},
            "format": {"type": "string", "enum": list(FORMATS), "default": "jsonl"},
            "dropColumns": {"type": "array", "items": {"type": "string"},
                            "description": "input columns not sent to the model (a label, "
                                           "an id)"},
            "batchSize": {"type": "integer", "minimum": 1, "maximum": MAX_BATCH_SIZE,
                          "default": DEFAULT_BATCH_SIZE, "description": "rows per model call"},
            "concurrency": {"type": "integer", "minimum": 1, "maximum": MAX_CONCURRENCY,
                            "default": DEFAULT_CONCURRENCY,
                            "description": "model calls in flight per runner"},
            "retries": {"type": "integer", "minimum": 0, "maximum": MAX_RETRIES,
                        "default": DEFAULT_RETRIES,
                        "description": "per call, for 408/429/502/503/504 and lost "
                                       "connections, with exponential backoff"},
            "parallelism": {"type": "integer", "minimum": 1, "maximum": MAX_PARALLELISM,
                            "default": DEFAULT_PARALLELISM, "description": "runners, each "
                            "taking the objects whose name hashes to its index"},
            "maxErrorRate": {"type": "number", "minimum": 0, "maximum": 1,
                             "default": DEFAULT_MAX_ERROR_RATE,
                             "description": "Failed once more rows than this share failed"}}},
        "InferenceJobStatus": {"type": "object", "readOnly": True, "properties": {
            "state": {"type": "string", "enum": ["Scheduling", "Running", "Succeeded",
                                                 "SucceededWithErrors", "Failed"]},
            "reason": {"type": "string"},
            "objectsTotal": count, "objectsDone": count,
            "objectsFailed": {**count, "description": "objects that could not be read"},
            "rowsTotal": count,
            "rowsDone": {**count, "description": "rows written to outputs"},
            "rowsFailed": {**count, "description": "rows listed in _errors/"},
            "rowsPerSecond": {"type": "number"},
            "deployment": {"type": "string"},
            "runs": {**count, "description": "times the job was started (resumes count)"},
            "startTime": {"type": "string"}, "completionTime": {"type": "string"},
            "lastUpdatedTime": {"type": "string"}}},
        "InferenceJob": {"type": "object", "required": ["id", "spec"], "properties": {
            "kind": {"type": "string", "enum": ["InferenceJob"]},
            "id": {"type": "string", "pattern": "^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$",
                   "example": "wine-nightly"},
            "spec": _ref("InferenceJobSpec"),
            "status": _ref("InferenceJobStatus"),
            "createdAt": {"type": "string", "format": "date-time", "readOnly": True},
            "updatedAt": {"type": "string", "format": "date-time", "readOnly": True}}},
        "ResumeRequest": {"type": "object", "properties": {
            "retryErrors": {"type": "boolean", "default": False,
                            "description": "re-run only the rows listed in _errors/"}}},
    }


def _jobs(tag: str) -> dict[str, Any]:
    listing = {"type": "array", "items": _ref("InferenceJob")}
    return {
        "get": {"tags": [tag], "summary": "Get all inference jobs", "operationId":
                "listInferenceJob", "responses": {"200": _body(listing, "All jobs")}},
        "post": {"tags": [tag], "summary": "Create (and start) an inference job",
                 "description": "Refused with 400 before anything runs: an invalid spec, an "
                                "input prefix with no object, an output inside the input, a "
                                "deployment that does not exist.",
                 "operationId": "createInferenceJob",
                 "requestBody": _body(_ref("InferenceJob"), "The job"),
                 "responses": {"201": _body(_ref("InferenceJob"), "The job, Scheduling"),
                               **{k: ERRORS[k] for k in ("400", "401", "403", "409", "503")}}},
    }
SPAN_PARAMS = [
    {"name": "since", "in": "query", "schema": {"type": "string"}, "description":
     "UTC date/time (2026-11-25T10:00) or a duration back from now (6h); default: 24 "
     "windows before until"},
    {"name": "until", "in": "query", "schema": {"type": "string"},
     "description": "UTC date/time or a duration back from now; default: now"},
    {"name": "window", "in": "query", "schema": {"type": "string"},
     "description": "bucket width, whole minutes (1m, 15m, 1h); default spec.quality.window"},
]
DATASET_PARAMS = [
    {"name": "model", "in": "query", "required": True, "schema": {"type": "string"}},
    *({"name": n, "in": "query", "schema": {"type": "string"}} for n in (
        "version", "deployment", "since", "until", "prediction", "label")),
    {"name": "labelled_only", "in": "query", "schema": {"type": "boolean", "default": False}},
    {"name": "task", "in": "query", "schema": {"type": "string",
                                               "enum": ["regression", "classification"]}},
    {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["parquet", "jsonl"],
                                                 "default": "parquet"}},
]


def _quality_path(kind: str, tag: str, summary: str) -> dict[str, Any]:
    return {"parameters": [ID_PARAM, *SPAN_PARAMS], "get": {
        "tags": [tag], "summary": summary, "operationId": f"get{kind}",
        "responses": {"200": _body(_ref(kind), "Totals and the series per bucket"),
                      **{k: ERRORS[k] for k in ("400", "401", "403", "404")},
                      "503": _body(_ref("HTTPResult"), "quality.enabled is false")}}}


def openapi_document() -> dict[str, Any]:
    deployment = "/api/v1/model/deployment"
    route = "/api/v1/model/route"
    job = "/api/v1/batch/job"
    return {
        "openapi": "3.0.3",
        "info": {"title": "mlgate management API", "version": "v1",
                 "description": "ODAHU v1 compatible API for model deployments, routes and "
                                "inference jobs. "
                                "Errors are {\"message\": ...}."},
        "tags": [{"name": "Deployment"}, {"name": "Route"}, {"name": "InferenceJob"},
                 {"name": "Records"}, {"name": "Quality"}, {"name": "Dataset"},
                 {"name": "Token"}],
        "paths": {
            deployment: _crud("ModelDeployment", "Deployment", "model deployment"),
            deployment + "/{id}": _item(
                "ModelDeployment", "Deployment", "model deployment",
                "Marks it Deleting; its replicas stop, then it and its default route are gone."),
            deployment + "/{id}/default-route": {
                "parameters": [ID_PARAM],
                "get": {"tags": ["Deployment"], "summary": "Get a deployment's default route",
                        "operationId": "getDefaultRoute",
                        "responses": {"200": _body(_ref("ModelRoute"), "Its default route"),
                                      "404": ERRORS["404"]}}},
            route: _crud("ModelRoute", "Route", "model route"),
            route + "/{id}": _item("ModelRoute", "Route", "model route",
                                   "Default routes cannot be deleted (403)."),
            **_rollout_paths(route),
            job: _jobs("InferenceJob"),
            job + "/{id}": _item("InferenceJob", "InferenceJob", "inference job",
                                 "Stops its runners; what it wrote stays."),
            job + "/{id}/resume": {
                "parameters": [ID_PARAM],
                "post": {"tags": ["InferenceJob"], "summary": "Run an ended job again",
                         "description": "Objects whose output exists are skipped; with "
                                        "retryErrors only the rows in _errors/ run again.",
                         "operationId": "resumeInferenceJob",
                         "requestBody": {**_body(_ref("ResumeRequest"), "Options"),
                                         "required": False},
                         "responses": {"200": _body(_ref("InferenceJob"), "The job, "
                                                    "Scheduling"),
                                       **{k: ERRORS[k] for k in ("400", "401", "403", "404",
                                                                 "409")}}}},
            "/api/v1/records": _records(),
            deployment + "/{id}/quality": _quality_path(
                "DeploymentQuality", "Quality",
                "Live model quality of a deployment (labels credited to the prediction's "
                "bucket)"),
            route + "/{id}/quality": _quality_path(
                "RouteQuality", "Quality", "Live model quality per target of a route"),
            "/api/v1/dataset": {"get": {
                "tags": ["Dataset"], "operationId": "getDataset",
                "summary": "A training data set: one row per predicted input row (inputs, "
                           "prediction, label, feedback), streamed as one file",
                "parameters": DATASET_PARAMS,
                "responses": {
                    "200": {"description": "The data set", "content": {
                        "application/vnd.apache.parquet": {
                            "schema": {"type": "string", "format": "binary"}},
                        "application/x-ndjson": {"schema": {"type": "string"}}}},
                    **{k: ERRORS[k] for k in ("400", "401", "403")},
                    "503": _body(_ref("HTTPResult"), "the dataset extra is not installed")}}},
            **revocations.openapi_paths("/api/v1"),
        },
        "components": {
            "schemas": {**_schemas(), **revocations.openapi_schemas()},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}},
        },
        "security": [{"bearer": []}],
    }
