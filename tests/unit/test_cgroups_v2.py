"""Where cells' cgroups go on a cgroup v2 host (the VM target proves them for real:
tests/vm): an ordinary user's helper starts in a scope systemd's user manager delegates,
root's cells go to a cgroup of their own at the top; the messages are each one's own."""

from __future__ import annotations

import os
import stat

from rootfs_kernel.sandbox import cgroups


def v2_host(tmp_path, monkeypatch, euid: int, manager: bool):
    root = tmp_path / "cgroup"
    root.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    monkeypatch.setattr(cgroups, "ROOT", root)
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    runtime = tmp_path / "run-user"
    (runtime / "systemd").mkdir(parents=True)
    if manager:
        (runtime / "systemd" / "private").touch()
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    run = bin_ / "systemd-run"
    run.write_text("#!/bin/sh\n")
    run.chmod(run.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("PATH", str(bin_))
    return root


HELPER = ["python", "-S", "-m", "rootfs_kernel.sandbox.helper", "5", "init", "base"]


def test_a_users_helper_starts_in_a_delegated_scope(tmp_path, monkeypatch):
    v2_host(tmp_path, monkeypatch, euid=1000, manager=True)
    argv = cgroups.delegating(HELPER)
    assert argv[1:8] == ["--user", "--scope", "--quiet", "--collect", "-p", "Delegate=yes",
                         "--"] and argv[0].endswith("/systemd-run") and argv[8:] == HELPER


def test_no_scope_without_a_user_manager_or_as_root(tmp_path, monkeypatch):
    v2_host(tmp_path, monkeypatch, euid=1000, manager=False)
    assert cgroups.delegating(HELPER) == HELPER
    v2_host(tmp_path / "r", monkeypatch, euid=0, manager=True)
    assert cgroups.delegating(HELPER) == HELPER


def test_a_user_without_a_delegated_cgroup_is_told_what_to_do(tmp_path, monkeypatch):
    v2_host(tmp_path, monkeypatch, euid=1000, manager=False)
    home = cgroups.Home.find(None, "the kernel's cgroup /x is not delegated to this user")
    assert home.version == 2 and home.path is None
    try:
        cgroups.CellCgroup.create("1-1", {"pids": 20}, home)
    except cgroups.LimitsUnavailable as err:
        said = str(err)
    else:
        raise AssertionError("no LimitsUnavailable")
    assert said.startswith("cgroup limits are unavailable here (the kernel's cgroup /x is not "
                           "delegated to this user): the cell needs a cgroup v2 subtree")
    assert "systemd-run --user --scope -p Delegate=yes" in said and "enable-linger" in said


def test_roots_message_gives_roots_advice(tmp_path, monkeypatch):
    root = v2_host(tmp_path, monkeypatch, euid=0, manager=False)
    text = cgroups._advice(f"Device or resource busy: {root}", 2)
    assert "as root the kernel makes its cells' cgroups in" in text
    assert "systemd-run" not in text and "delegated to this user" not in text


def test_a_delegated_home_gets_the_cells_cgroup_with_its_limits(tmp_path, monkeypatch):
    v2_host(tmp_path, monkeypatch, euid=1000, manager=True)
    scope = tmp_path / "cgroup" / "user.slice" / "run-r1.scope"
    scope.mkdir(parents=True)
    group = cgroups.CellCgroup.create("9-1", {"pids": 20, "memory": 32 << 20, "cpu": 0.5},
                                      cgroups.Home.find(str(scope), None))
    cell = scope / "9-1"
    assert group.procs_files() == [str(cell / "cgroup.procs")]
    assert (cell / "pids.max").read_text() == "20"
    assert (cell / "memory.max").read_text() == str(32 << 20)
    assert (cell / "cpu.max").read_text() == "50000 100000"
    watch = group.watch()
    assert watch["forks"] == str(cell / "pids.events")
    assert watch["ooms"] == str(cell / "memory.events")
