"""Where a saturated gateway spends its time: py-spy on every mlgate process under wrk.

    .venv/bin/python bench/hotspots.py [--seconds 12] [--workers 2] [--top 30]

Starts the same stack as ``make bench`` (fixed upstream, mlgate with every feature
on), drives ``POST /model/<id>/api/model/invoke`` with wrk, samples each mlgate
process with ``py-spy record --format raw`` and prints, over all of them, the
functions with the most samples: inclusive (the function and what it calls) and
self (the function's own lines, C calls included). Keeps the raw stacks in
``bench/profile-<pid>.txt`` for a flame graph. py-spy needs ptrace rights (root,
or ``kernel.yama.ptrace_scope=0``).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # bench/run.py: the stack and the load generator


def frame_name(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func file.py:12``."""
    name, _, where = frame.partition(" (")
    return f"{name} {where.rstrip(')').rsplit('/', 1)[-1]}" if where else name


def summarise(paths: list[Path]) -> tuple[int, collections.Counter, collections.Counter]:
    """Samples in total, inclusive and self counts per frame, from py-spy raw files."""
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total = 0
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = [frame_name(f) for f in stack.split(";")]
            for name in set(frames):
                inclusive[name] += n
            own[frames[-1]] += n
    return total, inclusive, own


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    py_spy = Path(sys.executable).parent / "py-spy"
    outputs: list[Path] = []
    with run.temporary_dir(keep=False) as tmp, run.Stack(tmp, args.workers) as stack:
        url = stack.mlgate_url + run.INVOKE_PATH
        script = run.lua_script(tmp, "POST", run.INVOKE_BODY,
                                stack.auth | {"Content-Type": "application/json"})
        run.run_wrk(url, script, 3, args.connections)  # warm-up
        load = subprocess.Popen(run.wrk_command(url, script, args.seconds + 4, args.connections),
                                stdout=subprocess.PIPE, text=True)
        time.sleep(2)
        spies = []
        for proc in stack.mlgate.processes():
            if "python" not in " ".join(proc.cmdline()):
                continue
            out = run.BENCH / f"profile-{proc.pid}.txt"
            outputs.append(out)
            spies.append(subprocess.Popen(
                [str(py_spy), "record", "--nonblocking", "--format", "raw", "-r", "250",
                 "-d", f"{args.seconds:g}", "-p", str(proc.pid), "-o", str(out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for spy in spies:
            spy.wait()
        result = run.parse_wrk(load.communicate()[0])
    total, inclusive, own = summarise([p for p in outputs if p.exists()])
    if not total:
        print("py-spy recorded nothing (ptrace not allowed?)", file=sys.stderr)
        return 1
    print(f"{result['rps']:.0f} req/s under py-spy; {total} samples over "
          f"{len(outputs)} processes")
    for title, counts in (("inclusive", inclusive), ("self", own)):
        print(f"\n{title} (% of samples)")
        for name, n in counts.most_common(args.top):
            print(f"{100 * n / total:5.1f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
