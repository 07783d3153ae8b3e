"""How to call a loaded model, decided once at load by trying the cheap ways first.

``sklearn-array``
    the raw scikit-learn estimator (``pyfunc.get_raw_model()``, the flavour's
    ``predict_fn``) called with a 2-D numpy array in signature column order. This
    skips pyfunc's per-call schema enforcement and pandas altogether (~3-7x less
    time per call for the demo models).
``sklearn-frame``
    the raw estimator called with a DataFrame in signature column order.
``pyfunc``
    ``PyFuncModel.predict`` with a DataFrame: any flavour, any signature.

A shortcut is taken only if it gives *identical* predictions to ``pyfunc.predict``
on the model's input example (or on a row of zeros when there is no example) and
raises no warning, with one exception: an estimator fitted on a DataFrame warns
"X does not have valid feature names" whenever it gets an array. The array path is
still taken when the estimator's ``feature_names_in_`` are exactly the signature's
columns in order (the plan always builds arrays in that order), and exactly those
warning messages are then ignored; every other warning stays visible.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from predictor.inputs import InputPlan

log = logging.getLogger("predictor")

Batch = np.ndarray | pd.DataFrame
PredictFn = Callable[[Batch], Any]

STRATEGY_SKLEARN_ARRAY = "sklearn-array"
STRATEGY_SKLEARN_FRAME = "sklearn-frame"
STRATEGY_PYFUNC = "pyfunc"
_FEATURE_NAMES_WARNING = re.compile(
    r"X does not have valid feature names, but \w+ was fitted with feature names"
)


def _identical(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, pd.DataFrame | pd.Series):
        return bool(a.equals(b))
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _pyfunc_predict(pyfunc: Any, plan: InputPlan) -> PredictFn:
    if plan.has_signature:

        def predict(batch: Batch) -> Any:
            if isinstance(batch, np.ndarray):
                batch = plan.frame(batch)
            return pyfunc.predict(batch)

        return predict
    return pyfunc.predict


def _raw_sklearn(pyfunc: Any) -> Callable[[Any], Any] | None:
    """The estimator's own predict method (the one pyfunc calls), if this is sklearn."""
    flavor = pyfunc.metadata.flavors.get("python_function", {})
    if flavor.get("loader_module") != "mlflow.sklearn":
        return None
    try:
        raw = pyfunc.get_raw_model()
    except (NotImplementedError, AttributeError):
        return None
    return getattr(raw, flavor.get("predict_fn", "predict"), None)


def _try(fn: Callable[[Any], Any], batch: Any) -> tuple[Any, list[str]] | None:
    """Call ``fn`` recording warnings; ``None`` if it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            output = fn(batch)
        except Exception as err:
            log.debug("shortcut refused: %s", err)
            return None
    return output, [str(w.message) for w in caught]


def choose_strategy(
    pyfunc: Any, plan: InputPlan, probe: Batch | None, reference: Any
) -> tuple[str, PredictFn]:
    """The cheapest way to call ``pyfunc`` that reproduces ``reference`` on ``probe``.

    ``probe`` is an input as the plan builds it, ``reference`` pyfunc's prediction on
    the same data (``None``: unknown, so only pyfunc itself is safe). May set
    ``plan.layout`` and install the narrow warning filter described above.
    """
    fallback = (STRATEGY_PYFUNC, _pyfunc_predict(pyfunc, plan))
    raw_predict = _raw_sklearn(pyfunc)
    if raw_predict is None or probe is None or reference is None or not plan.has_signature:
        return fallback

    fitted = getattr(getattr(raw_predict, "__self__", None), "feature_names_in_", None)
    names_ok = fitted is None or list(fitted) == list(plan.names)
    if isinstance(probe, np.ndarray) and names_ok:
        for layout in ("F", "C"):
            tried = _try(raw_predict, np.asarray(probe, order=layout))
            if tried is None:
                break
            output, messages = tried
            if not _identical(output, reference):
                continue
            if any(not _FEATURE_NAMES_WARNING.fullmatch(m) for m in messages):
                break
            if messages and fitted is None:
                break  # fitted with names somewhere we cannot check
            for message in set(messages):
                warnings.filterwarnings(
                    "ignore", message=re.escape(message) + r"\Z", category=UserWarning
                )
            plan.layout = layout
            return STRATEGY_SKLEARN_ARRAY, raw_predict

    def predict_frame(batch: Batch) -> Any:
        return raw_predict(plan.frame(batch) if isinstance(batch, np.ndarray) else batch)

    tried = _try(predict_frame, probe)
    if tried is not None and not tried[1] and _identical(tried[0], reference):
        return STRATEGY_SKLEARN_FRAME, predict_frame
    return fallback
