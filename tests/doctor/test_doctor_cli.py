"""`rootfs-kernel doctor` on this host: its JSON, and the AppArmor profile it prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from rootfs_kernel.sandbox import initbin


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rootfs_kernel.cli", "doctor", *args],
                          capture_output=True, text=True, timeout=120)


def test_the_apparmor_profile_names_this_installations_init():
    done = cli("--apparmor-profile")
    assert done.returncode == 0, done.stderr
    init = initbin.path().resolve()
    lines = [ln for ln in done.stdout.splitlines() if ln and not ln.startswith("#")]
    # Ubuntu's form for programs that need user namespaces (AppArmor ABI 4.0)
    assert lines[0] == "abi <abi/4.0>," and lines[1] == "include <tunables/global>"
    assert f"profile rootfs-kernel-init {init} flags=(unconfined) {{" in lines
    assert "  userns," in lines and lines[-1] == "}"
    assert os.access(init, os.X_OK)
    assert "apparmor_parser -r /etc/apparmor.d/rootfs-kernel-init" in done.stdout


def test_json_lists_every_check_and_the_cell_runs_here():
    done = cli("--json")
    answer = json.loads(done.stdout)
    keys = [c["key"] for c in answer["checks"]]
    for key in ("user", "kernel", "overlay", "root-chroot", "limits", "ipc-uts", "cell"):
        assert key in keys, keys
    cell = answer["checks"][-1]
    assert cell["key"] == "cell" and cell["ok"], cell
    assert answer["ok"] is (done.returncode == 0) is True


def test_no_cell_only_reads_the_host():
    answer = json.loads(cli("--json", "--no-cell").stdout)
    assert "cell" not in [c["key"] for c in answer["checks"]]
