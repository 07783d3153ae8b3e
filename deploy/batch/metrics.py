"""Prometheus metrics of inference jobs, read at scrape time from what the supervisor keeps.

Per job (label ``job``):

- ``mlgate_batch_rows_total{job,result}`` (counter): rows the job's runners predicted
  (``result="predicted"``) or saw refused (``"failed"``) since this mlgate started; a row
  redone after a crash counts again. ``rate()`` of it is the job's rows/s.
- ``mlgate_batch_job_rows{job,kind}`` (gauge): the job's status counts, ``kind`` =
  ``total``, ``done``, ``failed`` (as ``GET /api/v1/batch/job/<id>`` shows them).
- ``mlgate_batch_job_objects{job,kind}`` (gauge): ``total``, ``done``, ``failed``.
- ``mlgate_batch_job_state{job,state}`` (gauge): 1 for the job's current state.

The collector runs in the thread that renders ``/metrics``; it reads a snapshot the
supervisor replaces as a whole (no lock needed).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from deploy.control.jobs import InferenceJobStatus


class JobMetrics(Collector):
    def __init__(self) -> None:
        self._jobs: dict[str, InferenceJobStatus] = {}
        self._predicted: dict[str, int] = {}
        self._refused: dict[str, int] = {}

    def set_statuses(self, statuses: dict[str, InferenceJobStatus]) -> None:
        """The jobs as the store holds them now (deleted ones disappear)."""
        self._jobs = dict(statuses)

    def set_status(self, job_id: str, status: InferenceJobStatus) -> None:
        self._jobs = {**self._jobs, job_id: status}

    def count(self, job_id: str, predicted: int, refused: int) -> None:
        """Rows predicted and refused since the last call (never negative)."""
        self._predicted[job_id] = self._predicted.get(job_id, 0) + max(0, predicted)
        self._refused[job_id] = self._refused.get(job_id, 0) + max(0, refused)

    def describe(self) -> Iterable[Any]:
        return ()

    def collect(self) -> Iterable[Any]:
        jobs = self._jobs
        rows_total = CounterMetricFamily(
            "mlgate_batch_rows", "Rows an inference job's runners predicted or saw refused",
            labels=["job", "result"])
        rows = GaugeMetricFamily("mlgate_batch_job_rows",
                                 "An inference job's rows: total, done (in outputs), failed "
                                 "(in _errors/)", labels=["job", "kind"])
        objects = GaugeMetricFamily("mlgate_batch_job_objects",
                                    "An inference job's input objects: total, done, failed",
                                    labels=["job", "kind"])
        state = GaugeMetricFamily("mlgate_batch_job_state",
                                  "1 for the inference job's current state", labels=["job",
                                                                                     "state"])
        for job_id in sorted(jobs):
            s = jobs[job_id]
            rows_total.add_metric([job_id, "predicted"], self._predicted.get(job_id, 0))
            rows_total.add_metric([job_id, "failed"], self._refused.get(job_id, 0))
            for kind, value in (("total", s.rows_total), ("done", s.rows_done),
                                ("failed", s.rows_failed)):
                rows.add_metric([job_id, kind], value)
            for kind, value in (("total", s.objects_total), ("done", s.objects_done),
                                ("failed", s.objects_failed)):
                objects.add_metric([job_id, kind], value)
            state.add_metric([job_id, s.state], 1)
        yield from (rows_total, rows, objects, state)
