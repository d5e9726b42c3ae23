"""The host conditions this machine can produce for real, with the real kernel.

- user.max_user_namespaces=0 (RHEL, hardened hosts): the limit set to 0 in a user
  namespace of the test's own (limited_userns.py), as root and as an ordinary user;
- Docker's default seccomp profile, built with libseccomp from the published profile
  (docker_seccomp.py), without CAP_SYS_ADMIN as Docker gives it;
- a seccomp filter that refuses clone(2) with namespace flags and allows unshare(2)
  (clone_seccomp.py): the cell, doctor's namespace and id-map probes name clone;
- a root on the initial ramfs, where pivot_root fails with EINVAL, a chroot, a chroot
  whose directory was made a mount point first (`mount --bind DIR DIR`, which changes
  nothing: the kernel refuses a chrooted process user namespaces), and the same directory
  entered with pivot_root as doctor advises, where cells run (ramfs_root.py; root only).

Each time: the cell fails with the cause and the fix in one line, `%%host` cells still
run, and `rootfs-kernel doctor` exits non-zero naming the same cause.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from launched import (
    HERE,
    SYSTEM_PYTHON,
    LaunchedKernel,
    can_load_docker_profile,
    docker_seccomp,
    doctor,
    limited_userns,
)

ROOT = os.geteuid() == 0
ORDINARY = os.environ.get("ROOTFS_TEST_USER", "rkuser")   # scripts/test.sh's ordinary user


def assert_fails_with(kernel: LaunchedKernel, *words: str) -> str:
    ran = kernel.run("echo inside a container")
    assert ran.reply["status"] == "error" and ran.reply["ename"] == "ContainerError", ran
    assert "inside a container" not in ran.stdout
    for word in words:
        assert word in ran.evalue, (word, ran.evalue)
    assert "%%host cells still run" in ran.evalue and "rootfs-kernel doctor" in ran.evalue
    assert "\n" not in ran.evalue.strip()      # one line
    return ran.evalue


def assert_host_cells_run(kernel: LaunchedKernel) -> None:
    ran = kernel.run("%%host\necho host cell; test -d /proc/self && echo proc-ok")
    assert ran.reply["status"] == "ok", ran
    assert ran.stdout == "host cell\nproc-ok\n"


# -- user.max_user_namespaces = 0 ---------------------------------------------------------
def test_max_user_namespaces_zero_in_a_cell(tmp_path):
    with LaunchedKernel(limited_userns(), tmp_path) as k:
        assert_fails_with(k, "No space left on device", "user.max_user_namespaces = 0",
                          "sysctl -w user.max_user_namespaces=")
        assert_host_cells_run(k)
        # the kernel stays usable: the same answer again, no hang, no crash
        assert_fails_with(k, "user.max_user_namespaces = 0")


def test_max_user_namespaces_zero_in_doctor():
    code, out = doctor(limited_userns())
    assert code == 1, out
    fail = [line for line in out.splitlines() if line.startswith("[FAIL]")]
    assert any("user namespaces: user.max_user_namespaces = 0" in line for line in fail), out
    assert any(line.startswith("[FAIL] container:") and "No space left" in line
               for line in fail), out
    assert "sysctl -w user.max_user_namespaces=" in out
    assert "Still working: %%host cells" in out


# -- Docker's default seccomp profile -----------------------------------------------------
docker = pytest.mark.skipif(bool(can_load_docker_profile()),
                            reason=can_load_docker_profile() or "")


@docker
def test_the_docker_profile_refuses_namespaces_and_allows_the_rest():
    """The premise: under the profile unshare is refused, ordinary programs run."""
    res = subprocess.run([*docker_seccomp(), "sh", "-c",
                          "unshare --mount true 2>&1; echo status=$?; "
                          "grep '^Seccomp:' /proc/self/status; ls / >/dev/null && echo ls"],
                         capture_output=True, text=True, timeout=30)
    assert "status=1" in res.stdout and "Operation not permitted" in res.stdout, res
    assert "Seccomp:\t2" in res.stdout and res.stdout.endswith("ls\n"), res


@docker
def test_docker_default_seccomp_in_a_cell(tmp_path):
    with LaunchedKernel(docker_seccomp(), tmp_path) as k:
        evalue = assert_fails_with(k, "failed (Operation not permitted)",
                                   "cannot create the cell's namespaces: clone(CLONE_NEW",
                                   "a seccomp filter is active",
                                   "--security-opt seccomp=unconfined")
        assert "--cap-add SYS_ADMIN" in evalue and "--privileged" in evalue
        assert_host_cells_run(k)


@docker
def test_docker_default_seccomp_in_doctor():
    code, out = doctor(docker_seccomp())
    assert code == 1, out
    assert "[warn] seccomp: a seccomp filter is active" in out, out
    assert any(line.startswith("[FAIL] container:") and "seccomp" in line
               for line in out.splitlines()), out


# -- a filter that refuses clone(2) with namespace flags, not unshare(2) -------------------
def clone_seccomp() -> list[str]:
    return [SYSTEM_PYTHON, str(HERE / "clone_seccomp.py")]


seccomp_bindings = pytest.mark.skipif(
    subprocess.run([SYSTEM_PYTHON, "-c", "import seccomp"], capture_output=True).returncode != 0,
    reason="python3-seccomp is not installed: run scripts/setup.sh")


@seccomp_bindings
def test_the_clone_filter_refuses_clone_and_allows_unshare():
    """The premise: unshare(1) (unshare(2)) still makes namespaces, a clone(2) does not."""
    done = subprocess.run([*clone_seccomp(), "sh", "-c",
                           "unshare --user --mount true && echo unshare-ok; "
                           "grep '^Seccomp:' /proc/self/status; "
                           f"{sys.executable} -m rootfs_kernel.sandbox.probes namespaces uts"],
                          capture_output=True, text=True, timeout=60)
    lines = done.stdout.splitlines()
    assert lines[:2] == ["unshare-ok", "Seccomp:\t2"], done
    probe = json.loads(lines[2])
    assert probe["ok"] is False and "refused: Operation not permitted" in probe["detail"]
    assert "unshare(2) with the same flags is allowed" in probe["detail"], probe


@seccomp_bindings
def test_clone_filter_in_a_cell_names_clone_not_unshare(tmp_path):
    with LaunchedKernel(clone_seccomp(), tmp_path) as k:
        evalue = assert_fails_with(k, "cannot create the cell's namespaces: clone(CLONE_NEW",
                                   "failed (Operation not permitted)",
                                   "a seccomp filter is active",
                                   "--security-opt seccomp=unconfined")
        assert "unshare failed" not in evalue
        assert_host_cells_run(k)


@seccomp_bindings
def test_clone_filter_in_doctor_names_seccomp_not_the_kernel():
    code, out = doctor(clone_seccomp())
    assert code == 1, out
    assert "[warn] seccomp: a seccomp filter is active" in out, out
    lines = out.splitlines()
    probe = next(i for i, line in enumerate(lines) if "ipc and uts namespaces" in line)
    assert lines[probe].startswith("[warn]") and "clone(CLONE_NEW" in lines[probe], out
    assert "unshare(2) with the same flags is allowed" in lines[probe], out
    assert "seccomp (above)" in lines[probe + 1], out
    if ROOT:   # the id map's user namespace: seccomp's doing, not Linux's nor the store's
        idmap = next(i for i, line in enumerate(lines) if "idmapped mounts" in line)
        assert "no user namespace for the id map" in lines[idmap], out
        assert "seccomp (above)" in lines[idmap + 1] and "5.19" not in lines[idmap + 1], out
    assert any(line.startswith("[FAIL] container:") and "clone(" in line
               and "unshare failed" not in line for line in lines), out


# -- a ramfs root -------------------------------------------------------------------------
RAMFS = [sys.executable, str(HERE / "ramfs_root.py")]
INSIDE = """
import json, subprocess, sys
import rootfs_kernel
out = {}
with rootfs_kernel.Sandbox() as sandbox:   # one kernel session for the three cells
    for name, code in (("cell", "echo in-cell; head -1 /proc/self/mountinfo"),
                       ("escape", ESCAPE), ("host", "%%host\\necho on-host")):
        try:
            r = sandbox.run(code, check=True)
            out[name] = {"ok": True, "stdout": r.stdout, "stderr": r.stderr}
        except rootfs_kernel.ContainerError as err:
            out[name] = {"ok": False, "error": str(err)}
d = subprocess.run([sys.executable, "-m", "rootfs_kernel.cli", "doctor", "--json"],
                   capture_output=True, text=True)
out["doctor"] = json.loads(d.stdout)
print(json.dumps(out))
"""
# The classic chroot escape, as a C cell: whatever it reaches, it lists.
ESCAPE = ('%%c\\n#include <stdio.h>\\n#include <unistd.h>\\n#include <sys/stat.h>\\n'
          'int main(void) { mkdir(\\"e\\", 0755); chroot(\\"e\\"); '
          'for (int i = 0; i < 64; i++) chdir(\\"..\\"); chroot(\\".\\"); '
          'execl(\\"/bin/ls\\", \\"ls\\", \\"/\\", (char *)0); return 1; }\\n')


def run_inside(launcher: list[str]) -> dict:
    code = INSIDE.replace("ESCAPE", f'"{ESCAPE}"')
    env = {**os.environ, "XDG_DATA_HOME": "/tmp/rk-ramfs-data", "XDG_CACHE_HOME": "/tmp/c"}
    done = subprocess.run([*launcher, sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def checks(answer: dict) -> dict:
    return {c["key"]: c for c in answer["doctor"]["checks"]}


@pytest.mark.rootonly
@pytest.mark.skipif(not ROOT, reason="making a ramfs the root needs root")
def test_a_ramfs_root_is_detected_and_host_cells_run():
    answer = run_inside(RAMFS)
    found = checks(answer)["root-ramfs"]
    assert "initial ramfs (rootfs)" in found["detail"] and "EINVAL" in found["detail"]
    assert answer["host"] == {"ok": True, "stdout": "on-host\n", "stderr": ""}
    if not answer["cell"]["ok"]:   # an init without the fallback says why
        assert "pivot_root" in answer["cell"]["error"], answer
        assert "initial ramfs" in answer["cell"]["error"], answer


@pytest.mark.rootonly
@pytest.mark.skipif(not ROOT, reason="making a ramfs the root needs root")
def test_on_a_ramfs_root_cells_move_their_root_over_it():
    answer = run_inside(RAMFS)
    assert answer["cell"]["ok"], answer["cell"]
    lines = answer["cell"]["stdout"].splitlines()
    assert lines[0] == "in-cell" and " / / " in lines[1] and " overlay " in lines[1]
    # said once, in the first cell (report.NO_PIVOT_NOTE)
    assert "as runc --no-pivot does" in answer["cell"]["stderr"], answer["cell"]
    assert "runc" not in answer["escape"]["stderr"], answer["escape"]
    # the chroot escape ends in the cell's own root, not in the ramfs below it
    assert answer["escape"]["ok"], answer["escape"]
    listing = answer["escape"]["stdout"].split()
    assert "e" in listing and "process_api" not in listing and "work" not in listing
    assert checks(answer)["cell"]["ok"], checks(answer)["cell"]


@pytest.mark.rootonly
@pytest.mark.skipif(not ROOT, reason="making a ramfs the root needs root")
def test_in_a_chroot_cells_fail_with_the_fix_and_host_cells_run():
    answer = run_inside([*RAMFS, "--chroot"])
    assert not answer["cell"]["ok"], answer
    error = answer["cell"]["error"]
    # (root mode: refused when the cell's user namespace is made, before any mount)
    assert "this process is in a chroot (/ is not even a mount point" in error, error
    assert "pivot_root . ." in error and "mount --bind DIR DIR" not in error, error
    assert answer["host"]["ok"] and answer["host"]["stdout"] == "on-host\n"
    assert not checks(answer)["root-chroot"]["ok"]
    assert answer["doctor"]["ok"] is False


CHROOT_WORDS = ("this process is in a chroot (PID 1 sees this root at /tmp/rk-ramfs-",
                "the kernel refuses a chrooted process new user namespaces (EPERM)",
                "making the directory a mount point does not change that",
                "enter the directory with pivot_root instead of chroot")


@pytest.mark.rootonly
@pytest.mark.skipif(not ROOT, reason="making a ramfs the root needs root")
@pytest.mark.parametrize("user", ["root", "ordinary"])
def test_in_a_chroot_of_a_mount_point_cells_fail_naming_the_chroot(user):
    """`mount --bind DIR DIR` before chroot (the old advice): / is a mount point, cells
    still fail with EPERM, and the message and doctor name the chroot, not the sysctls,
    AppArmor or seccomp."""
    if user != "root" and subprocess.run(["id", "-u", ORDINARY], capture_output=True).returncode:
        pytest.skip(f"no user {ORDINARY} (scripts/test.sh makes it)")
    as_user = [] if user == "root" else ["runuser", "-u", ORDINARY, "--", "env", "HOME=/tmp"]
    answer = run_inside([*RAMFS, "--bound-chroot", *as_user])
    error = answer["cell"]["error"]
    assert not answer["cell"]["ok"] and "clone(CLONE_NEWUSER" in error, answer
    for words in CHROOT_WORDS:
        assert words in error, (words, error)
    for blamed in ("max_user_namespaces", "apparmor", "seccomp"):
        assert blamed not in error, (blamed, error)
    assert answer["host"] == {"ok": True, "stdout": "on-host\n", "stderr": ""}
    found = checks(answer)
    assert not found["root-chroot"]["ok"] and CHROOT_WORDS[0] in found["root-chroot"]["detail"]
    assert "mount --rbind /tmp/rk-ramfs-" in found["root-chroot"]["advice"]
    assert not found["cell"]["ok"] and answer["doctor"]["ok"] is False
    if user == "root":   # the id-map probe blames the chroot, not Linux or the filesystem
        assert "root directory (above)" in found["idmap"]["advice"], found["idmap"]


@pytest.mark.rootonly
@pytest.mark.skipif(not ROOT, reason="making a ramfs the root needs root")
def test_the_same_directory_entered_with_pivot_root_as_advised_runs_cells():
    """doctor's fix (hostfacts.PIVOT_INTO), run as written: cells run, doctor passes."""
    answer = run_inside([*RAMFS, "--pivot-root"])
    assert answer["cell"]["ok"], answer["cell"]
    lines = answer["cell"]["stdout"].splitlines()
    assert lines[0] == "in-cell" and " / / " in lines[1] and " overlay " in lines[1]
    found = checks(answer)
    assert found["root-chroot"]["ok"] and found["cell"]["ok"], found
    assert answer["doctor"]["ok"] is True, answer["doctor"]


# -- a runtime directory that cannot be idmapped, mounted noexec ---------------------------
# Debian 12's /run: a tmpfs, which Linux idmaps only from 6.3 on (its 6.1 refuses with
# EINVAL), mounted noexec by its initramfs; a ramfs refuses idmapping on any Linux. The
# kernel sees one in a mount namespace of its own, over /run/rootfs-kernel, where root's
# helpers keep their directories (rundir.py).
RUNDIR = "/run/rootfs-kernel"
RAMFS_RUNDIR = ["unshare", "-m", "sh", "-c",
                f"mkdir -p {RUNDIR} && mount -t ramfs -o noexec,nosuid,nodev,mode=0711 "
                f'rk-test-ramfs {RUNDIR} && exec "$@"', "sh"]


@pytest.mark.rootonly
@pytest.mark.skipif(not ROOT, reason="root's runtime directory is /run/rootfs-kernel")
def test_c_cells_run_where_the_runtime_directory_is_debian_12s_run(tmp_path):
    """Root's %%c failed in the Debian 12 VM, first with `cc1: fatal error: cell.c:
    Permission denied` (its 0600 source, bound into the compile with an idmapped mount,
    was a plain bind there: root's file, not the compile's unprivileged id's), then with
    `cannot run /dev/.rootfs-kernel-cell: Permission denied` (the program's bind kept
    /run's noexec)."""
    probe = subprocess.run([*RAMFS_RUNDIR, sys.executable, "-m",
                            "rootfs_kernel.sandbox.probes", "idmap", RUNDIR],
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode in (0, 1), probe.stderr
    if json.loads(probe.stdout)["idmap"]:
        pytest.skip("this Linux idmaps a ramfs: the condition cannot be made here")
    with LaunchedKernel(RAMFS_RUNDIR, tmp_path) as k:
        where = k.run(f"%%host\nstat -f -c %T {RUNDIR}; findmnt -no OPTIONS {RUNDIR}")
        fstype, options = where.stdout.splitlines()
        assert fstype == "ramfs" and "noexec" in options.split(","), where
        program = ('#include <stdio.h>\n#include <unistd.h>\n'
                   'int main(void) { printf("compiled, uid %d\\n", (int)getuid()); }\n')
        ran = k.run("%%c\n" + program)
        assert ran.reply["status"] == "ok", (ran.reply, ran.stderr)
        assert ran.stdout == "compiled, uid 0\n", ran.stdout
        ran = k.run("%%c\n%root none\n" + program)   # run on the host's tree, by its path
        assert ran.reply["status"] == "ok", (ran.reply, ran.stderr)
        assert ran.stdout == "compiled, uid 0\n", ran.stdout
        # gcc's messages still name the source cell.c, by its lines (after the %%c line)
        bad = k.run("%%c\nint main(void) {\n  return missing;\n}\n")
        assert bad.reply["ename"] == "CompileError", bad.reply
        assert "cell.c:2:10: error: 'missing' undeclared" in bad.evalue.replace(
            "\u2018", "'").replace("\u2019", "'"), bad.evalue
