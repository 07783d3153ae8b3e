"""The canary rollouts' driver: the thin shell around the rollout state machine (``rollout.py``),
run by the reconciler on each of its passes (at least every ``autoscaler.interval``, and at
once when the store changes).

Per route with ``spec.analysis``, :meth:`RolloutDriver.tick`:

1. ``sync`` the stored state with the spec: start a rollout, or start it again when the spec
   changed (a stored state that cannot be read starts it again too, with a warning).
2. When a judgement is ``due``, read what the canary and the stable target did with this
   route's requests over ``window`` from the live join (``feedback.variant_samples``: whole
   minutes of prediction time, labels credited to their prediction's minute so late labels
   count, records of every process since the join reads the bucket), ``judge`` it and
   ``advance``. While the join is still reading the bucket after a start, nothing is judged:
   its figures would be partial.
3. Store the state, its history and the route's weights in one transaction, only if the
   route's analysis is still the one this pass read (else the next pass starts over). The
   route's weights are always the state's, so a PUT with stale weights, or a crash between
   two writes, is put right on the next pass. The store's listener publishes the route
   table, which the primary pushes to every gateway worker as one snapshot
   (``deploy.serve.worker_link``): the new weights hold for every worker's next request.

A pass writes nothing when nothing changed. A rollout whose route lost ``spec.analysis`` is
forgotten (the weights stay as they are). Manual control (:meth:`RolloutDriver.act`:
promote, abort, pause, resume) goes the same way, through ``rollout_manual``.

Judging needs the ``analysis`` extra (numpy, scipy) and the live join (``quality.enabled``);
without them ``unavailable`` says why: the API refuses a new ``spec.analysis`` with that
reason, and rollouts already stored keep their weights without being judged.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import feedback

from .analysis import AnalysisSpec
from .rollout import advance, due, sync, window
from .rollout_manual import abort, pause, promote, resume
from .rollout_metrics import RolloutFigures, RolloutMetrics
from .rollout_state import RolloutError, RolloutState, route_weights, step_label
from .rollout_view import record, rollout_document, weights_differ
from .routes import ModelRoute, route_analysis
from .store import Conflict, Store, StoredRollout, StoreError

if TYPE_CHECKING:
    from .verdicts import Judgement, WindowData

log = logging.getLogger("mlgate.rollouts")

Clock = Callable[[], datetime]
ACTIONS = {"promote": promote, "abort": abort, "pause": pause, "resume": resume}
EXTRA = ("numpy", "scipy")


class JoinSource(Protocol):
    """What the driver reads of the live join (``feedback.Joiner``)."""

    complete: bool

    @property
    def index(self) -> feedback.QualityIndex: ...


class NoRollout(StoreError):
    """The route has no rollout (no ``spec.analysis``): 404."""

    status = 404


def utc_now() -> datetime:
    """The wall clock to the second: the times a rollout shows and stores."""
    return datetime.now(UTC).replace(microsecond=0)


def unavailable_reason(source: JoinSource | None) -> str:
    """Why this process cannot judge canaries, or "" when it can."""
    missing = [name for name in EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        return (f"canary analysis needs {' and '.join(missing)}, which this mlgate does not "
                "have: pip install 'mlgate[analysis]'")
    if source is None:
        return ("canary analysis judges the live join of feedback to predictions, which is "
                "off here (quality.enabled: false)")
    return ""


def state_of(route_id: str, stored: StoredRollout | None) -> RolloutState | None:
    if stored is None:
        return None
    try:
        return RolloutState.from_dict(stored.state)
    except ValueError as exc:
        log.warning("rollout %s: the stored state cannot be read (%s); starting it again",
                    route_id, exc)
        return None


class RolloutDriver:
    """Drives every route's rollout; ``clock`` gives the UTC wall-clock time (a simulated
    one in tests)."""

    def __init__(self, store: Store, source: JoinSource | None,
                 metrics: RolloutMetrics | None = None, clock: Clock = utc_now,
                 unavailable: str | None = None) -> None:
        self.store = store
        self.source = source
        self.metrics = metrics or RolloutMetrics()
        self.clock = clock
        self.unavailable = unavailable_reason(source) if unavailable is None else unavailable
        self._told: set[str] = set()

    # -- the reconciler's pass -----------------------------------------------------------------

    def tick(self, route_ids: Collection[str] | None = None) -> None:
        """One pass over every route with ``spec.analysis`` (or only ``route_ids``)."""
        now = self.clock()
        stored = self.store.list_rollouts()
        analysed = set()
        for route in self.store.list_routes():
            if route.default or route.spec.analysis is None:
                continue
            analysed.add(route.id)
            if route_ids is not None and route.id not in route_ids:
                continue
            try:
                self._pass(route, stored.get(route.id), now)
            except Exception:  # one broken rollout must not stop the others
                log.exception("rollout %s: the pass failed; retrying at the next one", route.id)
        for route_id in stored.keys() - analysed:
            if route_ids is None or route_id in route_ids:
                self.store.delete_rollout(route_id)
                log.info("rollout %s forgotten: the route has no spec.analysis now", route_id)
        self.publish_metrics()

    def _pass(self, route: ModelRoute, stored: StoredRollout | None, now: datetime) -> None:
        spec = route_analysis(route)
        assert spec is not None
        before = state_of(route.id, stored)
        state, _ = sync(spec, before, now)
        judgement = None
        if due(spec, state, now):
            data = self._window(route.id, spec, state, now)
            if data is not None:
                judgement = self._judge(spec, data)
                state, _ = advance(spec, state, judgement, now)
        if self._save(route, spec, stored, before, state, now) and judgement is not None:
            self.metrics.count(route.id, [(m.name, m.verdict) for m in judgement.metrics])

    def _window(self, route_id: str, spec: AnalysisSpec, state: RolloutState,
                now: datetime) -> WindowData | None:
        if self.unavailable or self.source is None:
            if route_id not in self._told:
                self._told.add(route_id)
                log.warning("rollout %s is not judged: %s", route_id, self.unavailable)
            return None
        if not self.source.complete:
            return None  # the join is still reading the bucket: its figures are partial
        from .verdicts import VariantData, WindowData

        since, until = window(state, now)
        index = self.source.index

        def variant(deployment_id: str) -> VariantData:
            s = feedback.variant_samples(index, deployment_id, since, until, route_id)
            return VariantData(s.requests, s.errors, s.latencies, s.quality)

        return WindowData(canary=variant(spec.canary), stable=variant(spec.stable))

    @staticmethod
    def _judge(spec: AnalysisSpec, data: WindowData) -> Judgement:
        from .judge import judge  # numpy and scipy: the analysis extra

        return judge(spec, data)

    def _save(self, route: ModelRoute, spec: AnalysisSpec, stored: StoredRollout | None,
              before: RolloutState | None, state: RolloutState, now: datetime) -> bool:
        """Write ``state`` when it or the route's weights changed; False if not written."""
        weights = route_weights(spec, state)
        targets = [(t.md_name, t.weight) for t in route.spec.model_deployments]
        if state is before and not weights_differ(targets, weights):
            return False
        restarted = before is None or before.spec_hash != state.spec_hash
        history = record(stored.history if stored else [], spec, state, now, restarted)
        if not self.store.save_rollout(route.id, route.spec.analysis or {}, state.to_dict(),
                                       history, weights):
            return False
        if restarted or before is None or (before.phase, before.step, before.failed_checks) != (
                state.phase, state.step, state.failed_checks):
            log.info("rollout %s: %s at %s, canary %s %d%%: %s", route.id, state.phase,
                     step_label(spec, state.step), spec.canary, state.canary_weight,
                     state.message)
        return True

    # -- manual control ------------------------------------------------------------------------

    def act(self, route_id: str, action: str) -> dict[str, Any]:
        """Promote, abort, pause or resume a route's rollout now; its document after.

        ``NotFound``/``NoRollout`` (404) without the route or its ``spec.analysis``,
        ``Conflict`` (409) for an action the rollout's phase does not allow.
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown rollout action {action!r}; known: {', '.join(ACTIONS)}")
        now = self.clock()
        route = self.store.get_route(route_id)
        spec = route_analysis(route) if not route.default else None
        if spec is None:
            raise NoRollout(f"model route {route_id} has no spec.analysis: there is no rollout "
                            f"to {action}")
        stored = self.store.get_rollout(route_id)
        before = state_of(route_id, stored)
        state, _ = sync(spec, before, now)
        try:
            state, _ = ACTIONS[action](spec, state, now)
        except RolloutError as exc:
            raise Conflict(f"model route {route_id}: {exc}") from None
        if not self._save(route, spec, stored, before, state, now):
            raise Conflict(f"model route {route_id} changed meanwhile; try again")
        self.publish_metrics()
        saved = self.store.get_rollout(route_id)
        return rollout_document(route_id, spec, state, saved.history if saved else [])

    # -- what others read ----------------------------------------------------------------------

    def publish_metrics(self) -> None:
        stored = self.store.list_rollouts()
        figures = {}
        for route in self.store.list_routes():
            spec = route_analysis(route) if not route.default else None
            state = state_of(route.id, stored.get(route.id)) if spec is not None else None
            if spec is None or state is None:
                continue
            figures[route.id] = RolloutFigures(state.phase, route_weights(spec, state),
                                               tuple(m.label for m in spec.metrics))
        self.metrics.set_routes(figures)
