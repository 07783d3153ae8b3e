"""Where a replica's start goes: import, model load, first prediction — cold and in the zygote.

    .venv/bin/python bench/predictor_phases.py MODEL_DIR

Prints one JSON object; each part runs in its own interpreter. ``fresh``: a new
interpreter importing what ``python -m predictor`` imports, then loading the model
(MLflow's load, the input plan, the probe prediction the predictor makes at load), then
predicting one row as a request would.
``forked``: the zygote's warm-up (:func:`predictor.zygote.warm_up`, paid once per
``mlgate up``), then the same load and prediction in a child forked after it: what a
replica forked from the zygote pays.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def load_and_predict(uri: str) -> dict[str, float]:
    from predictor.model import load_model

    started = time.perf_counter()
    model = load_model(uri)
    loaded = time.perf_counter()
    if model.example is not None:
        columns, rows = model.example
        model.predict(model.plan.convert(columns, rows[:1]))
    return {"load_s": loaded - started, "first_predict_s": time.perf_counter() - loaded}


def fresh(uri: str) -> dict[str, float]:
    started = time.perf_counter()
    import mlflow.pyfunc  # noqa: F401 - what python -m predictor imports before loading
    import uvloop  # noqa: F401
    from aiohttp import web  # noqa: F401

    import predictor.model
    import predictor.server  # noqa: F401

    return {"import_s": time.perf_counter() - started, **load_and_predict(uri)}


def forked(uri: str) -> dict[str, float]:
    from predictor.zygote import warm_up

    import_s, warm_s = warm_up()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.write(write, json.dumps(load_and_predict(uri)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        out = json.loads(answer.read())
    os.waitpid(pid, 0)
    return {"zygote_import_s": import_s, "zygote_warm_up_s": warm_s, **out}


def main() -> int:
    uri = sys.argv[1]
    if len(sys.argv) > 2:
        print(json.dumps(fresh(uri) if sys.argv[2] == "fresh" else forked(uri)))
        return 0
    out = {}
    for mode in ("fresh", "forked"):  # each in its own interpreter: nothing warm from the other
        done = subprocess.run([sys.executable, __file__, uri, mode], capture_output=True,
                              text=True, check=True)
        out[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
