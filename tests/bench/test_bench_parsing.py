"""The pure parts of the benchmark harness: wrk's report, statistics, py-spy stacks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import hotspots
import run

WRK_REPORT = """\
Running 10s test @ http://127.0.0.1:33681/model/fast/api/model/invoke
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.92ms    3.10ms  48.11ms   80.12%
    Req/Sec     9.41k   512.33    10.20k    71.00%
  Latency Distribution
     50%    6.40ms
     75%    8.01ms
     90%   10.52ms
     99%  812.00us
  93601 requests in 10.00s, 25.71MB read
  Non-2xx or 3xx responses: 3
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:   9360.08
Transfer/sec:      2.57MB
"""


def test_wrk_report_gives_rate_count_errors_and_percentiles_in_ms() -> None:
    result = run.parse_wrk(WRK_REPORT)
    assert result["rps"] == pytest.approx(9360.08)
    assert result["requests"] == 93601
    assert result["non_2xx"] == 3
    assert result["socket_errors"] == 3
    assert result["p50_ms"] == pytest.approx(6.40)
    assert result["p99_ms"] == pytest.approx(0.812)


def test_wrk_report_without_error_lines_has_zero_errors() -> None:
    clean = "\n".join(line for line in WRK_REPORT.splitlines()
                      if not line.lstrip().startswith(("Non-2xx", "Socket errors")))
    result = run.parse_wrk(clean)
    assert (result["non_2xx"], result["socket_errors"]) == (0, 0)


@pytest.mark.parametrize(("text", "ms"), [("812.00us", 0.812), ("6.40ms", 6.4), ("1.50s", 1500.0)])
def test_wrk_durations_in_milliseconds(text: str, ms: float) -> None:
    assert run._ms(text) == pytest.approx(ms)


def test_spread_is_min_median_max_with_the_runs() -> None:
    assert run.spread([3.0, 1.0, 2.0]) == {"min": 1.0, "median": 2.0, "max": 3.0,
                                           "runs": [3.0, 1.0, 2.0]}


def test_py_spy_stacks_sum_inclusive_once_per_stack_and_self_at_the_leaf(tmp_path: Path) -> None:
    raw = tmp_path / "profile-1.txt"
    raw.write_text(
        "main (a/cli.py:9);handle (gateway/proxy.py:5);send (gateway/http1.py:138) 7\n"
        "main (a/cli.py:9);handle (gateway/proxy.py:5);handle (gateway/proxy.py:5) 3\n"
        "garbage line\n")
    total, inclusive, own = hotspots.summarise([raw])
    assert total == 10
    assert inclusive["main cli.py:9"] == 10
    assert inclusive["handle proxy.py:5"] == 10  # recursion counted once per stack
    assert own == {"send http1.py:138": 7, "handle proxy.py:5": 3}


def test_the_overload_rows_report_ratios_and_whether_each_target_is_met() -> None:
    import overload

    one = {"capacity_rps": 19.0, "unloaded_p99_ms": 60.0, "goodput_rps": 18.0,
           "admitted_p99_ms": 70.0, "refused_p50_ms": 0.4, "refused_p99_ms": 4.0,
           "statuses": {200: 90, 503: 850}, "other_5xx": 0, "rss_idle_mb": 80.0,
           "rss_peak_mb": 81.0, "after_p99_ms": 62.0}
    spread = run.spread
    s = {"overload": {
        "runs": [one], "capacity_rps": spread([19.0]), "goodput_ratio": spread([18 / 19]),
        "admitted_p99_ratio": spread([70 / 60]), "refused_p99_ratio": spread([4 / 60]),
        "refused_p99_ms": spread([4.0]), "refused_p50_ms": spread([0.4]),
        "after_p99_ratio": spread([62 / 60]), "rss_growth_mb": spread([1.0]),
        "unloaded_p99_ms": spread([60.0]), "admitted_p99_ms": spread([70.0]),
        "targets": overload.TARGETS, "met": True}}
    rows = overload.markdown_rows(s, run.fmt)
    assert len(rows) == 4 and all(row.endswith("| yes |") for row in rows)
    assert "0.95 (0.95-0.95) of capacity" in rows[0]
    assert "1.17 (1.17-1.17)x unloaded" in rows[1]
    assert "200: 90, 503: 850" in rows[3]
    assert overload.markdown_rows({}, run.fmt) == []
