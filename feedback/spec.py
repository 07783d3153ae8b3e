"""What a deployment's quality is measured on: ``spec.quality``, or what is inferred without it.

``spec.quality`` of a ModelDeployment (parsed and validated in ``deploy.control.quality``)::

    task: regression            # regression | classification
    prediction: $.prediction    # JSONPath into the response body; one value per input row
    label: $.truthful           # JSONPath into the feedback JSON; one value, or one per row
    window: 1h                  # bucket width of the time series (whole minutes)
    classes: [a, b]             # classification only, optional: the known classes

A field left out is inferred, per record, with rules that are safe to apply blindly:

- ``prediction``: ``$.prediction`` when the answer has it (the odahu-ml-server protocol),
  else ``$.predictions`` (MLflow's ``/invocations``), else ``$.outputs[0].data`` when the
  answer has exactly one output (KServe v2 / Triton);
- ``task``: regression, and only when the predictions are numbers (a model answering
  strings gets ``quality: not configured`` until its spec says ``classification``);
- ``label``: the feedback JSON's only numeric top-level field (``{"truthful": 6}``), or the
  document itself when it is a number; for a classification, its only top-level field
  holding a string, integer or boolean. A feedback with none or several is an invalid
  label (reason ``ambiguous``), never a guess;
- ``window``: one hour.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .paths import JsonPath, compile_path

REGRESSION = "regression"
CLASSIFICATION = "classification"
TASKS = (REGRESSION, CLASSIFICATION)
DEFAULT_WINDOW = 3600
CELL_SECONDS = 60
"""Figures are kept per minute of prediction time: windows are whole minutes."""
FIELDS = ("task", "prediction", "label", "window")

INFERRED_PREDICTIONS = ("$.prediction", "$.predictions", "$.outputs[0].data")
LABEL_INFERRED = "the feedback's only numeric field"
CLASS_LABEL_INFERRED = "the feedback's only field"


@dataclass(frozen=True)
class QualitySpec:
    """A deployment's quality spec; ``None`` fields are inferred (module docstring)."""

    task: str | None = None
    prediction: str | None = None
    label: str | None = None
    window: int = DEFAULT_WINDOW
    classes: tuple[str, ...] | None = None
    defaults: tuple[str, ...] = FIELDS
    """The fields the user left out (all of them: no ``spec.quality`` at all)."""
    configured: bool = False
    """The deployment has a ``spec.quality`` (else everything is inferred)."""
    prediction_path: JsonPath | None = field(default=None, init=False, repr=False,
                                             compare=False)
    label_path: JsonPath | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.task is not None and self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.window < CELL_SECONDS or self.window % CELL_SECONDS:
            raise ValueError(f"window must be a whole number of minutes, got {self.window}s")
        object.__setattr__(self, "prediction_path",
                           compile_path(self.prediction) if self.prediction else None)
        object.__setattr__(self, "label_path", compile_path(self.label) if self.label else None)

    @property
    def key(self) -> tuple[object, ...]:
        """What the figures depend on (not ``window``, which only groups them)."""
        return (self.task, self.prediction, self.label, self.classes)


INFERRED = QualitySpec()
"""A deployment without ``spec.quality``."""


def window_text(seconds: int) -> str:
    """``1h``, ``15m``, ``1d``, ``1h30m`` for a whole number of minutes."""
    out, rest = "", seconds // CELL_SECONDS
    for unit, minutes in (("d", 1440), ("h", 60), ("m", 1)):
        count, rest = divmod(rest, minutes)
        if count:
            out += f"{count}{unit}"
    return out or "0m"
