"""The VM target: the project on a distribution's default host, booted for real.

scripts/vm.py builds (once, cached) a Debian 12 guest from Debian's packages — its own
6.1 kernel with AppArmor on and overlayfs as a module, systemd, cgroup v2 only — boots it
under qemu (TCG) with this checkout's wheel in a shared folder, and runs the smoke suite
(guest.py) there as root, from a systemd service (as a server's Jupyter runs), and as the
lingering user `rkuser` through its systemd user manager (`systemd-run --user`, as a
desktop's or JupyterHub's user's Jupyter runs). Each test here asserts on what the guest
recorded. Run with scripts/test-vm.sh (scripts/test.sh runs it; ROOTFS_VM_TESTS=0 skips).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.vm, pytest.mark.rootonly, pytest.mark.timeout(1800),
              pytest.mark.skipif(os.geteuid() != 0, reason="builds a VM image: root only")]

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MODES = ("root", "user")
USER_CGROUP = "/user.slice/user-1000.slice/user@1000.service/"

# The guest's command: install this checkout's wheel into the image's venv (which holds
# its dependencies), run the suite as root, place the root-owned marker in the user's
# home, then run the suite as the user, in its systemd user manager.
RUN = """#!/bin/sh
set -u
venv=/opt/rootfs-kernel/venv
cd /mnt/share
$venv/bin/pip install -q --no-deps --no-index --disable-pip-version-check wheel/*.whl
mkdir -p results && chmod 777 results
export PYTHONPATH=/mnt/share/py
echo "== guest: the smoke suite as root (system.slice/rkvm-run.service)"
$venv/bin/python py/guest.py root results/root.json
$venv/bin/python py/hostmarkers.py place-root-marker /home/rkuser 1000
echo "== guest: the smoke suite as rkuser (its user manager, user@1000.service)"
systemd-run --machine=rkuser@.host --user --wait --pipe --quiet \\
  --setenv=PYTHONPATH=/mnt/share/py --setenv=PATH=$venv/bin:/usr/bin:/bin \\
  $venv/bin/python /mnt/share/py/guest.py user /mnt/share/results/user.json
"""


@pytest.fixture(scope="module")
def guest(tmp_path_factory) -> dict:
    share = tmp_path_factory.mktemp("vm-share")
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(share / "wheel"), str(REPO)], check=True)
    py = share / "py"
    py.mkdir()
    for f in (HERE / "guest.py", REPO / "tests/security/hostmarkers.py",
              REPO / "notebooks/08-docker-three-steps.ipynb"):
        shutil.copy(f, py)
    (share / "run").write_text(RUN)
    (share / "run").chmod(0o755)
    os.chmod(share, 0o755)
    done = subprocess.run([sys.executable, str(REPO / "scripts/vm.py"), "run", str(share)],
                          timeout=1700)
    print(f"vm target: {time.monotonic() - started:.0f} s (image build included when it "
          "was not cached)")
    results = {}
    for mode in MODES:
        path = share / "results" / f"{mode}.json"
        results[mode] = json.loads(path.read_text()) if path.exists() else None
    results["status"] = done.returncode
    results["console"] = (share / "console.log").read_text(errors="replace")
    for mode in MODES:   # what the guest said, for the test command's log
        if results[mode]:
            r = results[mode]
            print(f"-- guest, {mode}: {r['seconds']} s (kernel start "
                  f"{r['kernel_start_seconds']} s, notebook 08 {r['notebook']['seconds']} s); "
                  f"rootfs-kernel doctor:\n{r['doctor']['stdout']}")
    return results


def of(guest: dict, mode: str) -> dict:
    r = guest[mode]
    assert r is not None, f"the guest wrote no results as {mode}:\n{guest['console'][-4000:]}"
    return r


def test_the_guest_ran_both_passes(guest):
    assert guest["status"] == 0, guest["console"][-4000:]
    assert of(guest, "root")["uid"] == 0 and of(guest, "user")["uid"] == 1000
    # root's kernel runs in a system service, the user's in its own user manager
    assert "0::/system.slice/rkvm-run.service" in of(guest, "root")["cgroup"]
    assert USER_CGROUP in of(guest, "user")["cgroup"]


@pytest.mark.parametrize("mode", MODES)
def test_doctor_passes_and_proves_every_line(guest, mode):
    doctor = of(guest, mode)["doctor"]
    out = doctor["stdout"]
    assert doctor["status"] == 0, out + doctor["stderr"]
    lines = out.strip().splitlines()
    assert all(ln.startswith("[ok  ] ") for ln in lines), out   # every line, proved here
    names = {ln[7:].split(":")[0] for ln in lines}
    assert {"user", "kernel", "overlayfs", "limits", "ipc and uts namespaces",
            "container"} <= names, names
    # overlayfs is a module on Debian's kernel: checked by what a mount does
    assert "overlayfs" in out and "not in /proc/filesystems" not in out
    assert "[ok  ] container: a cell ran `true`" in out
    limits = next(ln for ln in out.splitlines() if "limits" in ln)
    assert limits.startswith("[ok  ]") and "cgroup v2" in limits, out


@pytest.mark.parametrize("mode", MODES)
def test_a_cell_runs_in_its_container(guest, mode):
    hello = of(guest, mode)["cells"]["hello"]
    assert hello["status"] == "ok", hello
    lines = hello["stdout"].splitlines()
    assert lines[0] == "hello from rootfs" and lines[1] == "0", hello["stdout"]
    assert of(guest, mode)["cells"]["after"]["stdout"] == "still here\n"


@pytest.mark.parametrize("mode", MODES)
def test_show_mounts(guest, mode):
    cell = of(guest, mode)["cells"]["mounts"]
    assert cell["status"] == "ok", cell
    (view,) = cell["displays"]
    assert "application/vnd.rootfs-kernel.compare+json" in view
    added = [ln for ln in view["text/plain"].splitlines() if ln.startswith("+")]
    assert any("/mnt" in ln and "tmpfs" in ln for ln in added), view["text/plain"]


def limits_view(cell: dict) -> dict:
    (view,) = [d for d in cell["displays"] if "application/vnd.rootfs-kernel.limits+json" in d]
    return view["application/vnd.rootfs-kernel.limits+json"]


@pytest.mark.parametrize("mode", MODES)
def test_memory_limit_is_the_cgroups(guest, mode):
    cell = of(guest, mode)["cells"]["memory"]
    text = cell["stderr"] + json.dumps(cell["errors"])
    # the OOM killer ends the hog, and sometimes the shell that waits for it too
    assert re.search(r"the memory limit \(32 MiB\) ended \d process\(es\) \(OOM kill\)",
                     text), cell
    assert "RLIMIT_AS" not in text and "setrlimit" not in text, text
    assert "pids limit" not in text, text   # v2's memory.events "max" is no refused fork
    payload = limits_view(cell)
    assert payload["mechanism"] == "cgroup v2", payload
    memory = payload["rows"][0]
    assert memory["by"] == "cgroup v2 memory.max" and memory["limit"] == 32 << 20
    assert memory["used_by"] == "memory.peak" and memory["used"] >= 30 << 20, memory
    assert payload["oom_kills"] >= 1


@pytest.mark.parametrize("mode", MODES)
def test_fork_bomb_is_held_by_pids_max(guest, mode):
    cell = of(guest, mode)["cells"]["pids"]
    text = cell["stderr"] + json.dumps(cell["errors"])
    assert "the pids limit (20)" in text, cell
    payload = limits_view(cell)
    pids = payload["rows"][1]
    assert pids["by"] == "cgroup v2 pids.max" and pids["limit"] == 20
    assert pids["used_by"] == "pids.peak" and pids["used"] == 20, pids
    assert payload["forks_refused"] > 0


@pytest.mark.parametrize("mode", MODES)
def test_show_limits_shows_the_peaks(guest, mode):
    cell = of(guest, mode)["cells"]["limits"]
    assert cell["status"] == "ok" and cell["stdout"] == "plain\n", cell
    payload = limits_view(cell)
    assert payload["mechanism"] == "cgroup v2"
    rows = {r["key"]: r for r in payload["rows"]}
    assert rows["memory"]["used_by"] == "memory.peak" and rows["memory"]["used"] > 0
    assert rows["pids"]["used_by"] == "pids.peak" and rows["pids"]["used"] >= 1
    assert rows["cpu"]["used_by"] == "cpu.stat usage_usec"
    # the default pids bound of an unprivileged root stays RLIMIT_NPROC
    assert rows["pids"]["by"] == "RLIMIT_NPROC" and rows["pids"]["limit"] == 1024
    if mode == "root":
        assert payload["cgroup"][0].startswith("/sys/fs/cgroup/rootfs-kernel/")
    else:   # in the scope systemd delegated to the user's helper
        assert payload["cgroup"][0].startswith("/sys/fs/cgroup" + USER_CGROUP), payload
        assert ".scope/" in payload["cgroup"][0]


def test_the_users_helper_runs_in_a_delegated_scope(guest):
    helper = of(guest, "user")["helper_cgroup"]
    assert helper.startswith("0::" + USER_CGROUP) and helper.endswith(".scope/helper"), helper


@pytest.mark.parametrize("mode", MODES)
def test_no_cell_reads_or_changes_the_markers(guest, mode):
    security = of(guest, mode)["security"]
    assert security["markers"], "no marker was placed"
    for marker in security["markers"]:
        assert marker["owner"] == 0
        assert not marker["read"], marker
        assert not marker["changed"], marker


@pytest.mark.parametrize("mode", MODES)
def test_notebook_08_runs(guest, mode):
    nb = of(guest, mode)["notebook"]
    assert nb["error"] is None, nb
    # the two cells tagged raises-exception, each ended by its own limit alone
    pids, memory = nb["errors"]
    assert pids.startswith("the pids limit (8) refused"), pids
    assert memory.startswith("the memory limit (32 MiB) ended"), memory
    assert "pids" not in memory, memory   # v2's memory.events "max" is no refused fork
    assert "application/vnd.rootfs-kernel.limits+json" in nb["mimes"], nb
