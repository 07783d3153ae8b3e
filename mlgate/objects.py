"""What the SDK returns for API resources: thin views over the API's JSON.

Each view keeps the JSON it came from (``.raw``; ``to_dict()`` gives a copy), exposes the
fields people use as attributes, prints as one readable line (``str``) and shows as a table
in Jupyter (``_repr_html_``). Lists of them (:class:`Table`) print and show as one table.
The columns are the CLI's (``mlgate deployment get -o table``): one definition for both.
"""

from __future__ import annotations

import copy
import html
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

Row = dict[str, str]


def deployment_row(d: dict[str, Any]) -> Row:
    """A deployment's table columns: ID, STATE, AVAILABLE, MIN-MAX, MODEL, IMAGE, REASON."""
    spec, status = d.get("spec", {}), d.get("status", {})
    model = ":".join(x for x in (status.get("modelName"), status.get("modelVersion")) if x)
    return {
        "ID": d.get("id", ""),
        "STATE": status.get("state", ""),
        "AVAILABLE": f"{status.get('availableReplicas', 0)}/{status.get('replicas', 0)}",
        "MIN-MAX": f"{spec.get('minReplicas', '')}-{spec.get('maxReplicas', '')}",
        "MODEL": model or "-",
        "IMAGE": spec.get("image", ""),
        "REASON": status.get("reason", ""),
    }


def route_row(r: dict[str, Any]) -> Row:
    """A route's table columns: ID, DEFAULT, URL PREFIX, TARGETS, MIRROR, STATE, EDGE URL,
    and ROLLOUT (phase and step of a canary rollout, when a route has one)."""
    spec, status = r.get("spec", {}), r.get("status", {})
    targets = ", ".join(f"{t['mdName']}:{t.get('weight', 100)}"
                        for t in spec.get("modelDeployments", []))
    rollout = status.get("rollout")
    return {
        "ID": r.get("id", ""),
        "DEFAULT": "yes" if r.get("default") else "no",
        "URL PREFIX": spec.get("urlPrefix", ""),
        "TARGETS": targets,
        "MIRROR": spec.get("mirror") or "-",
        "STATE": status.get("state", ""),
        "EDGE URL": status.get("edgeUrl", ""),
        "ROLLOUT": f"{rollout['phase']} {rollout['step']}/{rollout['steps']}" if rollout else "",
    }


def revocation_row(r: dict[str, Any]) -> Row:
    """A token revocation's table columns: ID, JTI, SUB, BEFORE, EXPIRES, REASON."""
    return {"ID": str(r.get("id", "")), "JTI": r.get("jti") or "", "SUB": r.get("sub") or "",
            "BEFORE": r.get("before") or "", "EXPIRES": r.get("expiresAt") or "",
            "REASON": r.get("reason") or ""}


def format_eta(seconds: float | None) -> str:
    """``h:mm:ss``, or ``-:--:--`` when unknown."""
    if seconds is None:
        return "-:--:--"
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def job_figures(job: dict[str, Any]) -> dict[str, Any]:
    """What a job's progress shows, from the job as the API answers it: state, rows done
    (predicted or failed) of the total, rows/s, time left at that rate, errors, reason."""
    status = job.get("status", {})
    done = int(status.get("rowsDone", 0)) + int(status.get("rowsFailed", 0))
    total = max(int(status.get("rowsTotal", 0)), done)
    rate = float(status.get("rowsPerSecond", 0.0))
    eta = (total - done) / rate if rate > 0 and total > done else None
    errors = int(status.get("rowsFailed", 0)) + int(status.get("objectsFailed", 0))
    return {"state": status.get("state", ""), "done": done, "total": total, "rate": rate,
            "eta": eta, "errors": errors, "reason": status.get("reason", "")}


def job_row(job: dict[str, Any]) -> Row:
    """A job's table columns: ID, STATE, ROWS, ERRORS, ROWS/S, DEPLOYMENT, OUTPUT, REASON."""
    spec, f = job.get("spec", {}), job_figures(job)
    return {"ID": job.get("id", ""), "STATE": f["state"],
            "ROWS": f"{f['done']}/{f['total']}", "ERRORS": str(f["errors"]),
            "ROWS/S": f"{f['rate']:,.0f}", "DEPLOYMENT": job.get("status", {}).get(
                "deployment") or spec.get("deployment") or spec.get("modelUri", ""),
            "OUTPUT": spec.get("output", ""), "REASON": f["reason"]}


def text_table(rows: Sequence[Row]) -> str:
    """Aligned columns, headers first; columns empty in every row are left out."""
    if not rows:
        return "No resources found."
    headers = [h for h in rows[0] if any(r[h] for r in rows)]
    widths = {h: max(len(h), *(len(r[h]) for r in rows)) for h in headers}
    lines = ["  ".join(h.ljust(widths[h]) for h in headers).rstrip()]
    lines += ["  ".join(r[h].ljust(widths[h]) for h in headers).rstrip() for r in rows]
    return "\n".join(lines)


def html_table(rows: Sequence[Row]) -> str:
    if not rows:
        return "<p>No resources found.</p>"
    headers = [h for h in rows[0] if any(r[h] for r in rows)]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(r[h])}</td>" for h in headers) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Resource:
    """A resource as the API returned it."""

    row: ClassVar[Callable[[dict[str, Any]], Row]]
    """The resource's columns in a table (the CLI's ``-o table``)."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    @property
    def id(self) -> str:
        return self.raw.get("id", "")

    @property
    def spec(self) -> dict[str, Any]:
        return self.raw.get("spec", {})

    @property
    def status(self) -> dict[str, Any]:
        return self.raw.get("status", {})

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.raw)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.raw == self.raw  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        return text_table([type(self).row(self.raw)])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id!r} {self._summary()}>"

    def _summary(self) -> str:
        return self.status.get("state", "")

    def _repr_html_(self) -> str:
        return html_table([type(self).row(self.raw)])


class Deployment(Resource):
    """A ModelDeployment: ``id``, ``state``, ``ready``, replicas, model name and version."""

    row = staticmethod(deployment_row)

    @property
    def state(self) -> str:
        """``Processing``, ``Ready``, ``Failed`` or ``Deleting``."""
        return self.status.get("state", "")

    @property
    def ready(self) -> bool:
        """Whether the state is ``Ready``."""
        return self.state == "Ready"

    @property
    def replicas(self) -> int:
        """Replicas the deployment has now (``status.replicas``)."""
        return int(self.status.get("replicas", 0))

    @property
    def available_replicas(self) -> int:
        """Replicas that answer (``status.availableReplicas``)."""
        return int(self.status.get("availableReplicas", 0))

    @property
    def model_name(self) -> str:
        """The model's name as its predictor reports it (``status.modelName``)."""
        return self.status.get("modelName", "")

    @property
    def model_version(self) -> str:
        """The model's version (``status.modelVersion``)."""
        return self.status.get("modelVersion", "")

    @property
    def image(self) -> str:
        """Where the model comes from (``spec.image``)."""
        return self.spec.get("image", "")

    @property
    def predictor(self) -> str:
        """``odahu-ml-server`` or ``triton``."""
        return self.spec.get("predictor", "")

    @property
    def reason(self) -> str:
        """Why it is Failed or restarting, else empty."""
        return self.status.get("reason", "")

    def describe(self) -> str:
        """``wine: Ready (1/1 replicas available), model wine 1.0`` — one line for humans."""
        text = (f"{self.id}: {self.state} ({self.available_replicas}/{self.replicas} "
                "replicas available)")
        if self.model_name:
            text += f", model {self.model_name} {self.model_version}"
        if self.reason:
            text += f": {self.reason}"
        return text


class Revocation(Resource):
    """A token revocation: one token (``jti``) or a subject's tokens issued ``before`` a time
    (``sub``); ``id`` is what :meth:`mlgate.client.Tokens.delete_revocation` takes."""

    row = staticmethod(revocation_row)

    @property
    def id(self) -> str:
        """The revocation's number (as a string, like every resource's id)."""
        return str(self.raw.get("id", ""))

    @property
    def jti(self) -> str | None:
        """The revoked token's ``jti`` (None for a subject's revocation)."""
        return self.raw.get("jti")

    @property
    def sub(self) -> str | None:
        """The subject whose tokens issued before :attr:`before` are revoked."""
        return self.raw.get("sub")

    @property
    def before(self) -> str | None:
        """RFC 3339 time: the subject's tokens issued (``iat``) earlier are revoked."""
        return self.raw.get("before")

    @property
    def expires_at(self) -> str | None:
        """When the entry is forgotten (its tokens have expired by then), if set."""
        return self.raw.get("expiresAt")

    @property
    def reason(self) -> str:
        """Why it was revoked (free text, as given)."""
        return self.raw.get("reason") or ""

    def _summary(self) -> str:
        return f"jti {self.jti}" if self.jti else f"sub {self.sub} before {self.before}"


class Route(Resource):
    """A ModelRoute: ``id``, ``url_prefix``, ``targets`` (deployment id -> weight)."""

    row = staticmethod(route_row)

    @property
    def default(self) -> bool:
        """Whether this is a deployment's default route (``/model/<id>``)."""
        return bool(self.raw.get("default"))

    @property
    def url_prefix(self) -> str:
        """Where the route serves (``spec.urlPrefix``)."""
        return self.spec.get("urlPrefix", "")

    @property
    def targets(self) -> dict[str, int]:
        """Deployment id -> weight, in the route's order."""
        return {t["mdName"]: int(t.get("weight", 100))
                for t in self.spec.get("modelDeployments", [])}

    @property
    def edge_url(self) -> str:
        """The URL clients call (``status.edgeUrl``)."""
        return self.status.get("edgeUrl", "")

    def _summary(self) -> str:
        split = " ".join(f"{k}={v}" for k, v in self.targets.items())
        return f"{self.url_prefix} {split}".strip()


class Job(Resource):
    """An InferenceJob: a model over every object under a prefix; counts of its progress."""

    row = staticmethod(job_row)

    @property
    def state(self) -> str:
        """``Scheduling``, ``Running``, ``Succeeded``, ``SucceededWithErrors`` or ``Failed``."""
        return self.status.get("state", "")

    @property
    def ended(self) -> bool:
        """Whether the job has ended (succeeded, with errors or not, or failed)."""
        return self.state in JOB_END_STATES

    @property
    def rows_done(self) -> int:
        """Rows predicted and written."""
        return int(self.status.get("rowsDone", 0))

    @property
    def rows_failed(self) -> int:
        """Rows the model refused (listed under ``<output>/_errors/``)."""
        return int(self.status.get("rowsFailed", 0))

    @property
    def rows_total(self) -> int:
        """Rows in the input, as far as read."""
        return int(self.status.get("rowsTotal", 0))

    @property
    def reason(self) -> str:
        """Why it failed or what went wrong, else empty."""
        return self.status.get("reason", "")

    @property
    def output(self) -> str:
        """Where the predictions go (``spec.output``)."""
        return self.spec.get("output", "")

    def describe(self) -> str:
        """``wine: Running 5000/20000 rows (25%), 9,800 rows/s, 0 errors, ETA 0:00:02``."""
        f = job_figures(self.raw)
        percent = f"{100 * f['done'] / f['total']:.0f}%" if f["total"] else "-"
        return (f"{self.id}: {f['state']} {f['done']}/{f['total']} rows ({percent}), "
                f"{f['rate']:,.0f} rows/s, {f['errors']} error{'s' if f['errors'] != 1 else ''}"
                f", ETA {format_eta(f['eta'])}")

    def summary(self) -> str:
        """One line on how it ended."""
        status = self.status
        return (f"Inference job {self.id} {self.state}: {self.rows_done} rows predicted, "
                f"{self.rows_failed} failed, {status.get('objectsDone', 0)} of "
                f"{status.get('objectsTotal', 0)} objects written to {self.output}")


JOB_END_STATES = frozenset({"Succeeded", "SucceededWithErrors", "Failed"})


REGRESSION_COLUMNS = ("count", "mae", "rmse", "bias")
CLASSIFICATION_COLUMNS = ("count", "accuracy")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def quality_text(doc: dict[str, Any]) -> str:
    """A deployment's quality document as the CLI prints it: how quality is measured, the
    totals, then one line per bucket that saw requests or labels."""
    quality = doc["quality"]
    head = [f"deployment {doc['deployment_id']} (model {doc['model_name'] or '?'} "
            f"{doc['model_version'] or '?'}): quality {quality['state']}"]
    if quality["state"] == "not configured":
        head.append(f"  {quality.get('reason', '')}")
    else:
        defaults = ", ".join(quality.get("defaults") or []) or "none"
        head.append(f"  task {quality['task']}, prediction {quality['prediction']}, label "
                    f"{quality['label']}, window {quality['window']} (inferred: {defaults})")
        if quality.get("reason"):
            head.append(f"  {quality['reason']}")
    if not doc.get("complete", True):
        head.append("  (still reading the bucket: figures are partial)")
    columns = (REGRESSION_COLUMNS if quality.get("task") == "regression" else
               CLASSIFICATION_COLUMNS) if quality["state"] != "not configured" else ()
    rows = []
    for name, bucket in [("TOTAL", doc["totals"]), *((b["start"], b) for b in doc["series"])]:
        if name != "TOTAL" and not bucket["requests"] and not bucket["labelled"]:
            continue
        row = {"FROM": name if name == "TOTAL" else name.replace("T", " ").rstrip("Z"),
               "REQUESTS": _fmt(bucket["requests"]), "5XX": _fmt(bucket["errors"]),
               "LABELLED": _fmt(bucket["labelled"]), "UNLABELLED": _fmt(bucket["unlabelled"]),
               "INVALID": _fmt(sum(bucket["invalid"].values()))}
        for column in columns:
            row[column.upper()] = _fmt(bucket.get(column))
        row["MEDIAN DELAY"] = _fmt(bucket.get("median_label_delay_seconds"))
        rows.append(row)
    span = f"from {doc['since']} to {doc['until']}, by {doc['window']}"
    return "\n".join([*head, f"  {span}", "", text_table(rows)])


def route_quality_text(doc: dict[str, Any]) -> str:
    """A deployment's or a route's quality document as text (a route: one part per target)."""
    if "route_id" not in doc:
        return quality_text(doc)
    parts = [f"route {doc['route_id']}: {len(doc['targets'])} target(s)"]
    for target in doc["targets"]:
        parts += ["", quality_text(target)]
    if doc.get("mirror"):
        parts += ["", "mirror (shadow copies):", quality_text(doc["mirror"])]
    return "\n".join(parts)




class Quality:
    """Live model quality of a deployment, or of each target of a route, as the API answers
    ``GET .../quality``: ``totals`` over the span and ``series`` per bucket of prediction time
    (``count``, ``mae``/``rmse``/``bias`` or ``accuracy`` and per-class figures, ``labelled``,
    ``unlabelled``, ``invalid``, ``median_label_delay_seconds``). Prints as the CLI's table;
    ``frame()`` gives the series as a DataFrame (one row per bucket, and per target of a
    route)."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    @property
    def route(self) -> bool:
        """Whether this is a route's document (one part per target)."""
        return "route_id" in self.raw

    @property
    def parts(self) -> list[dict[str, Any]]:
        """The deployments' documents: this one, or the route's targets (and its mirror)."""
        if not self.route:
            return [self.raw]
        return [*self.raw.get("targets", []), *([self.raw["mirror"]] if self.raw.get("mirror")
                                               else [])]

    @property
    def totals(self) -> dict[str, Any]:
        """The figures over the whole span (a route: per target deployment id)."""
        if not self.route:
            return self.raw.get("totals", {})
        return {p["deployment_id"]: p.get("totals", {}) for p in self.parts}

    @property
    def state(self) -> str:
        """``configured``, ``inferred`` or ``not configured`` (a deployment's document)."""
        return self.raw.get("quality", {}).get("state", "")

    def frame(self) -> Any:
        """The series as a DataFrame: ``start`` (UTC), ``deployment`` and one column per
        figure (per-class figures flattened as ``class.<name>.<figure>``)."""
        from .frames import pandas

        pd = pandas()
        rows = []
        for part in self.parts:
            for bucket in part.get("series", []):
                row = {"start": bucket.get("start"), "deployment": part.get("deployment_id")}
                for key, value in bucket.items():
                    if key == "start":
                        continue
                    if isinstance(value, dict):
                        row.update(_flatten(key, value))
                    else:
                        row[key] = value
                rows.append(row)
        frame = pd.DataFrame(rows)
        if not frame.empty:
            frame["start"] = pd.to_datetime(frame["start"], utc=True)
        return frame

    def __str__(self) -> str:
        return route_quality_text(self.raw)

    def __repr__(self) -> str:
        what = f"route {self.raw.get('route_id')}" if self.route else \
            f"deployment {self.raw.get('deployment_id')}"
        return f"<Quality {what} {self.raw.get('since')}..{self.raw.get('until')}>"

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"


def _flatten(prefix: str, value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}.{key}"
        if isinstance(item, dict):
            out.update(_flatten(name, item))
        else:
            out[name] = item
    return out


ROLLOUT_FINISHED = frozenset({"Succeeded", "Failed"})


def rollout_figure(metric: str, value: float | None) -> str:
    """A judged figure in its metric's unit: percent of 5xx answers or of wrong predictions,
    seconds of latency, label units of absolute error."""
    if value is None:
        return "-"
    if metric == "error-rate":
        return f"{value:.3g}%"
    if metric == "quality-accuracy":
        return f"{value:.3g}% wrong"
    if metric.startswith("latency-"):
        return f"{value:.4g}s"
    return f"{value:.4g}"


def judgement_rows(judgement: dict[str, Any] | None) -> list[Row]:
    """A rollout's last judgement as table rows: METRIC, VERDICT, CANARY, STABLE, BOUND,
    P-VALUE, SAMPLES (canary/stable)."""
    rows = []
    for m in (judgement or {}).get("metrics", []):
        name, samples = m.get("name", ""), m.get("samples") or {}
        p_value = m.get("pValue")
        rows.append({"METRIC": name, "VERDICT": m.get("verdict", ""),
                     "CANARY": rollout_figure(name, m.get("canary")),
                     "STABLE": rollout_figure(name, m.get("stable")),
                     "BOUND": rollout_figure(name, m.get("bound")),
                     "P-VALUE": "-" if p_value is None else f"{p_value:.3g}",
                     "SAMPLES": f"{samples.get('canary', 0)}/{samples.get('stable', 0)}"})
    return rows


def rollout_text(doc: dict[str, Any]) -> str:
    """A rollout as ``mlgate route status`` prints it: where it is, then its last judgement."""
    weights = ", ".join(f"{name} {weight}%" for name, weight in doc.get("weights", {}).items())
    lines = [
        f"route {doc.get('routeId', '?')}: canary {doc.get('canary')} over stable "
        f"{doc.get('stable')}, {doc.get('phase')} at step {doc.get('step')} of "
        f"{doc.get('steps')}",
        f"  weights    {weights}",
        f"  checks     {doc.get('failedChecks', 0)} of {doc.get('threshold', '?')} failed"
        + (f"; judged every {doc['interval']}" if doc.get("interval") else "")
        + (f"; the step fails at {doc['deadline']} unless it passes" if doc.get("deadline")
           else ""),
        f"  message    {doc.get('message', '')}",
    ]
    judged = doc.get("lastJudgement")
    if judged:
        lines += ["", f"last judgement at {judged.get('at')}: {judged.get('verdict')}",
                  text_table(judgement_rows(judged))]
    return "\n".join(lines)


class Rollout:
    """A route's canary rollout (its ``spec.analysis``), as ``GET .../rollout`` answers it:
    ``phase`` (Progressing, Paused, Inconclusive, Succeeded, Failed), ``step`` of ``steps``,
    ``canary_weight``, ``failed_checks`` of ``threshold``, ``message``, ``last_judgement``
    (every metric's canary and stable figure, bound and verdict) and ``history`` (one entry
    per change: the weight over time). Prints as ``mlgate route status`` does."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    @property
    def route_id(self) -> str:
        """The route whose rollout this is."""
        return self.raw.get("routeId", "")

    @property
    def phase(self) -> str:
        """``Progressing``, ``Paused``, ``Inconclusive``, ``Succeeded`` or ``Failed``."""
        return self.raw.get("phase", "")

    @property
    def finished(self) -> bool:
        """Whether it ended: ``Succeeded`` (canary 100) or ``Failed`` (stable 100)."""
        return self.phase in ROLLOUT_FINISHED

    @property
    def succeeded(self) -> bool:
        """Whether the canary was promoted."""
        return self.phase == "Succeeded"

    @property
    def step(self) -> int:
        """The step it is on, from 1 (the last one once promoted)."""
        return int(self.raw.get("step", 0))

    @property
    def steps(self) -> int:
        """How many steps (``len(stepWeights)``)."""
        return int(self.raw.get("steps", 0))

    @property
    def canary(self) -> str:
        """The deployment rolled out."""
        return self.raw.get("canary", "")

    @property
    def stable(self) -> str:
        """The deployment it is judged against."""
        return self.raw.get("stable", "")

    @property
    def canary_weight(self) -> int:
        """The canary's weight now, 0-100."""
        return int(self.raw.get("canaryWeight", 0))

    @property
    def weights(self) -> dict[str, int]:
        """Both targets' weights now."""
        return dict(self.raw.get("weights", {}))

    @property
    def failed_checks(self) -> int:
        """Failed judgements so far."""
        return int(self.raw.get("failedChecks", 0))

    @property
    def threshold(self) -> int:
        """Failed judgements that roll it back."""
        return int(self.raw.get("threshold", 0))

    @property
    def message(self) -> str:
        """What happened last and why."""
        return self.raw.get("message", "")

    @property
    def last_judgement(self) -> dict[str, Any] | None:
        """``{at, verdict, metrics: [{name, verdict, canary, stable, bound, pValue, effect,
        samples, reason}]}``, or None before the first."""
        return self.raw.get("lastJudgement")

    @property
    def history(self) -> list[dict[str, Any]]:
        """One entry per change: ``at``, ``phase``, ``step``, ``canaryWeight``,
        ``failedChecks``, ``message``."""
        return list(self.raw.get("history", []))

    def describe(self) -> str:
        """``wine: Progressing at step 2 of 3, canary wine-v2 25%, 0/3 failed checks: ...``"""
        return (f"{self.route_id}: {self.phase} at step {self.step} of {self.steps}, canary "
                f"{self.canary} {self.canary_weight}%, {self.failed_checks}/{self.threshold} "
                f"failed checks: {self.message}")

    def frame(self) -> Any:
        """The history as a DataFrame: ``at`` (UTC), ``phase``, ``step``, ``canaryWeight``,
        ``failedChecks``, ``message``."""
        from .frames import pandas

        pd = pandas()
        frame = pd.DataFrame(self.history)
        if not frame.empty:
            frame["at"] = pd.to_datetime(frame["at"], utc=True)
        return frame

    def __str__(self) -> str:
        return rollout_text(self.raw)

    def __repr__(self) -> str:
        return (f"<Rollout {self.route_id!r} {self.phase} step {self.step}/{self.steps} "
                f"canary {self.canary_weight}%>")

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"


R = TypeVar("R", bound=Resource)


class Table(list[R], Generic[R]):
    """A list of resources that prints (and shows in Jupyter) as one table."""

    def __init__(self, items: Iterable[R] = ()) -> None:
        super().__init__(items)

    def _rows(self) -> list[Row]:
        return [type(item).row(item.raw) for item in self]

    def __str__(self) -> str:
        return text_table(self._rows())

    __repr__ = __str__  # a REPL shows the table too

    def _repr_html_(self) -> str:
        return html_table(self._rows())

    def to_dicts(self) -> list[dict[str, Any]]:
        """The resources as the API returned them (copies)."""
        return [item.to_dict() for item in self]
