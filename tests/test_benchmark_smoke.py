"""The benchmark script still runs: `benchmarks/run.py --quick` ends and reports every measure.

Timings are never asserted (the machine is shared and noisy); only that each measure
produced a number. Deselect with `-m "not benchmark_smoke"`.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Every key run.py reports in --quick mode (views at 5,000 mounts is a full-run size).
EXPECTED = {
    "startup", "roundtrip_p50", "roundtrip_p95", "roundtrip_caches", "caches_alone",
    "roundtrip_on_demand",
    "runall", "roundtrip_host_mounts", "roundtrip_host_mounts_before_start",
    "roundtrip_host_mounts_private", "script_mb_s", "showls_usr", "memory_idle", "scale_memory",
    "scale_roundtrip", "stream_mb_s",
    "keep_last_vs_first", "keep_cell_vs_plain", "keep_8m_vs_plain", "setup", "setup_on_demand",
    "setup_no_template", "setup_many_mounts",
    "steps_cell", "mounts_cell", "plain_after_steps",
    "views_mounts_100", "views_mounts_1000", "views_listing", "image_import", "image_minimal",
    "net_own_vs_host", "net_own_vs_host_back_to_back", "net_own_vs_host_on_demand", "net_user",
    "net_user_on_demand", "net_own_idle_memory", "net_user_idle_memory", "net_series_last_vs_first",
}


def _number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x >= 0


@pytest.mark.benchmark_smoke
@pytest.mark.timeout(180)
def test_quick_benchmark_reports_every_measure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=170)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["failures"] == {}
    rows = {r["key"]: r for r in result["rows"]}
    assert set(rows) == EXPECTED
    for key, row in rows.items():
        if row["value"] is None:  # allowed only where the feature says it is missing
            assert row["note"].startswith("n/a"), (key, row)
            continue
        assert _number(row["value"]), (key, row)
        for name, base in row["baselines"].items():
            # A missing baseline (bwrap, bash_kernel not installed) is None and noted.
            assert base is None and row["note"] or _number(base), (key, name, row)
        assert row["ratio"] is None or _number(row["ratio"]), (key, row)
    assert "| measure | rootfs-kernel |" in proc.stdout
    meta = result["meta"]
    assert meta["quick"] and meta["nproc"] and meta["python"] and meta["kernel"]
