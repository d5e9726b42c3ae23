"""Issue 13, the front door: classes 1 (protocol injection), 10 (requests without a reply),
12 (%export replacing images) and 13 (messages), driven through jupyter_client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import hostmarkers as hm
import pytest
from kerneldriver import ROOT, KernelDriver, helper_of

from rootfs_kernel.images import ImageStore

INJECTIONS = [
    # What the hand-over to a prepared container (and rootfs-init's argv) would have taken
    # for keys of its own: no user namespace for the script, the host's identity, a shell.
    "%env A=x\x00lock\x000\x00ns\x000",
    "%env A=x\x00host\x001\x00argv\x00/bin/sh\x00-c\x00cat {secret}",
    "%env A=\x00",
    "%env A=ok\n%env B=x\x00rootless\x000",
]


def _check_refused(res, lineno: int, what: str = "NUL byte") -> None:
    assert res.reply["status"] == "error" and res.reply["ename"] == "HeaderError", res.reply
    assert res.reply["evalue"].startswith(f"line {lineno}: "), res.reply["evalue"]
    assert what in res.reply["evalue"] and "remove it" in res.reply["evalue"]
    assert "\x00" not in res.reply["evalue"]


# -- class 1: NUL and what the wire cannot carry ---------------------------------------------------
@pytest.mark.parametrize("attack", INJECTIONS, ids=range(len(INJECTIONS)))
@pytest.mark.parametrize("prepare", ["1", "0"])
def test_class1_nul_in_env_is_refused_and_later_cells_stay_contained(attack, prepare, secret):
    k = KernelDriver(env={**os.environ, "ROOTFS_KERNEL_PREPARE": prepare})
    try:
        k.ok("true")   # with preparation on, the next container is made now
        code = attack.format(secret=secret.path) + "\nid -u"
        refused = k.run(code, timeout=30)
        _check_refused(refused, code.split("\n").index(next(
            ln for ln in code.split("\n") if "\x00" in ln)) + 1)
        later = [k.run(f"cat {secret.path}; echo A=${{A-unset}} B=${{B-unset}}", timeout=30)
                 for _ in range(3)]
        for res in later:   # no later cell is broken by it, nor runs on the host
            assert "No such file" in res.stderr and "A=unset B=unset" in res.stdout, res.stderr
            assert "restart the kernel" not in hm.texts_of(res)
        secret.assert_unread(hm.texts_of(refused, *later))
        assert k.ok("echo alive").stdout == "alive\n"
    finally:
        k.shutdown()


def test_class1_nul_in_the_script_is_refused_not_truncated(kernel, empty_dir):
    res = kernel.run(f"echo one\necho two\x00; touch {empty_dir.path}/x; echo three")
    _check_refused(res, 2)
    assert res.stdout == ""   # nothing of the script ran, not even the part before it


@pytest.mark.parametrize("line", [
    "%bind /tmp\x00/etc /mnt", "%mount tmpfs /mnt/\x00x", "%mount tmpfs /mnt size=1m\x00,x",
    "%show ls /etc\x00/x", "%shell /bin/sh\x00x", "%image mini\x00mal", "%export x\x00y",
    "%unshare mnt,\x00pid", "%timeout 1\x00", "%limit pids=10\x00", "%%c -D\x00X",
    "%%host\x00", "%root pivot\x00",
])
def test_class1_nul_in_any_header_argument_is_refused_at_its_line(kernel, line):
    res = kernel.run(line + "\ntrue", timeout=30)
    _check_refused(res, 1)
    assert kernel.ok("echo alive").stdout == "alive\n"


@pytest.mark.parametrize("char", ["\x1b", "\r", "\x7f", "\x08"])
def test_class1_control_characters_in_header_lines_are_refused(kernel, char):
    res = kernel.run(f"%mount tmpfs /mnt/a{char}b\ntrue", timeout=30)
    _check_refused(res, 1, "control character")


def test_class1_the_python_api_refuses_nul_through_the_same_parser(secret):
    code = ("import rootfs_kernel, sys\n"
            "for kw in ({'env': {'A': 'x\\x00lock\\x000'}}, {'binds': ['/tmp\\x00:/mnt']},"
            "           {'mounts': [('tmpfs', '/mnt\\x00')]}):\n"
            "    try:\n"
            "        rootfs_kernel.run('true', **kw)\n"
            "    except rootfs_kernel.HeaderError as e:\n"
            "        print('refused', 'NUL byte' in str(e))\n"
            f"print(rootfs_kernel.run('cat {secret.path}').stderr)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.count("refused True") == 3, out
    secret.assert_unread(out.stdout, out.stderr)


# -- class 10: every request gets a reply ----------------------------------------------------------
@pytest.mark.parametrize("code,problem", [
    ("%%c -o /var/tmp/rk-c-out\nint main(void){return 0;}", "drop -o"),
    ("%%c -Wall -o/var/tmp/rk-c-out\nint main(void){return 0;}", "drop -o"),
    ("%%c -D'X\nint main(void){return 0;}", "No closing quotation"),
    ('%%c -DX="a\nint main(void){return 0;}', "No closing quotation"),
])
def test_class10_bad_c_flags_get_a_reply_that_says_what_happened(kernel, code, problem):
    res = kernel.run(code, timeout=15)
    assert res.reply["ename"] == "HeaderError" and problem in res.reply["evalue"], res.reply
    assert not Path("/var/tmp/rk-c-out").exists()
    assert kernel.ok("echo alive").stdout == "alive\n"


def test_class10_a_helper_killed_between_cells_is_restarted(fresh_kernel):
    k = fresh_kernel
    for _ in range(3):
        old = helper_of(k)
        os.kill(old, signal.SIGKILL)
        time.sleep(0.3)
        res = k.ok("echo next", timeout=30)
        assert res.stdout == "next\n"
        assert "the sandbox helper had gone away (killed by SIGKILL); a new one runs this " \
               "cell" in res.stderr
        assert helper_of(k) != old
        assert k.ok("echo again").stderr == ""


def test_class10_a_helper_killed_during_a_cell_fails_that_cell_only(fresh_kernel):
    k = fresh_kernel
    k.ok("%keep\necho kept > /kept")
    old = helper_of(k)
    timer = threading.Timer(1.0, os.kill, (old, signal.SIGKILL))
    timer.start()
    res = k.run("echo started; sleep 30; echo never", timeout=30)
    timer.join()
    assert res.reply["ename"] == "SandboxError" and res.elapsed < 15, res.reply
    evalue = res.reply["evalue"]
    assert "the sandbox helper went away (killed by SIGKILL) while this cell ran" in evalue
    assert "run the cell again" in evalue and "%keep went with the old one" in evalue
    assert "restart the kernel" not in evalue and "never" not in res.stdout
    after = k.ok("echo next; test -e /kept || echo no-kept")
    assert after.stdout == "next\nno-kept\n" and after.stderr == ""


# -- class 12: %export replaces nothing by accident ------------------------------------------------
def _image_state(name: str) -> tuple:
    path = ImageStore().images_dir / name / "image.json"
    return path.stat().st_mtime_ns, json.loads(path.read_text())["layers"]


def test_class12_export_cannot_shadow_the_default_image(kernel):
    before = _image_state("minimal")
    res = kernel.run("%export minimal\necho replaced > /etc/rk-replaced")
    assert res.reply["ename"] == "HeaderError", res.reply
    assert "`%export my-minimal`" in res.reply["evalue"] and res.stdout == ""
    assert _image_state("minimal") == before
    fresh = KernelDriver()
    try:   # a new kernel's first cell runs the built-in image
        out = fresh.ok("test -e /etc/rk-replaced && echo replaced || echo built-in").stdout
        assert out == "built-in\n"
    finally:
        fresh.shutdown()


def test_class12_replacing_an_image_takes_replace(kernel):
    name = f"rk-sec-{os.getpid()}"
    try:
        kernel.ok(f"%export {name}\necho one > /version")
        first = _image_state(name)
        res = kernel.run(f"%export {name}\necho two > /version")
        assert res.reply["ename"] == "HeaderError", res.reply
        assert f"`%export {name} --replace`" in res.reply["evalue"] and res.stdout == ""
        assert _image_state(name) == first
        assert kernel.ok(f"%image {name}\ncat /version").stdout == "one\n"
        kernel.ok(f"%export {name} --replace\necho two > /version")
        assert kernel.ok(f"%image {name}\ncat /version").stdout == "two\n"
    finally:
        subprocess.run([sys.executable, "-m", "rootfs_kernel.cli", "image", "rm", name],
                       capture_output=True)


# -- class 13: messages that say what happened -----------------------------------------------------
def test_class13_an_env_value_over_128_kib_is_refused_at_its_line(kernel):
    res = kernel.run("%env OK=1\n%env BIG=" + "x" * 140_000 + "\necho ran", timeout=60)
    assert res.reply["ename"] == "HeaderError" and res.reply["evalue"].startswith("line 2: ")
    assert "128 KiB" in res.reply["evalue"] and len(res.reply["evalue"]) < 2000
    for _ in range(2):   # later cells are not broken by it
        later = kernel.ok("echo ${BIG-unset} ${OK-unset}")
        assert later.stdout == "unset unset\n"


@pytest.mark.skipif(not ROOT, reason="the ordinary-user pass checks the hint instead")
def test_class13_unshare_user_as_root_just_works(kernel):
    """It failed with "devpts ... Invalid argument": every cell's script now has a user
    namespace of its own, so asking for one changes nothing."""
    res = kernel.run("%unshare mnt,pid,user\nid -u; cat /proc/self/uid_map", timeout=30)
    assert res.ok, (res.reply, res.stderr)
    assert res.stdout.split()[:2] == ["0", "0"] and res.stdout.split()[2] != "0"


def test_class13_an_overlay_with_one_layer_says_what_to_do(kernel):
    res = kernel.run("%mount overlay /mnt lowerdir=/etc\ntrue", timeout=30)
    assert res.reply.get("ename") == "ContainerError", res.reply
    assert not res.reply["evalue"].rstrip().endswith("Invalid argument"), res.reply["evalue"]
    assert "overlay needs lowerdir=A:B" in res.reply["evalue"], res.reply["evalue"]


def test_class13_a_shell_that_cannot_run_the_script_says_so(kernel):
    res = kernel.run("%shell /proc/self/exe\ntrue", timeout=30)
    assert not res.ok
    assert "%shell" in res.reply["evalue"] + res.stderr, (res.reply, res.stderr)


@pytest.mark.skipif(ROOT, reason="the rootless mount hint")
@pytest.mark.parametrize("code", ["%unshare mnt,pid,net\n%mount sysfs /mnt\ntrue",
                                  "%unshare mnt,pid,ipc\n%mount mqueue /mnt\ntrue"])
def test_class13_the_rootless_hint_does_not_claim_what_fails(kernel, code):
    res = kernel.run(code, timeout=30)
    if res.ok:
        return   # the sandbox lets it work now: then there is nothing to explain
    assert "sysfs with %unshare net" not in res.reply["evalue"]
    assert "is refused in a user namespace here" in res.reply["evalue"], res.reply


def _user_tasks() -> int:
    uid = os.getuid()
    n = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            st = os.stat(f"/proc/{pid}")
            if st.st_uid == uid:
                n += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            continue
    return n


@pytest.mark.skipif(ROOT, reason="root is not held by RLIMIT_NPROC")
def test_class13_no_free_processes_is_said_without_restart_the_kernel(tmp_path, monkeypatch):
    """The user's process limit reached by other processes: the cell that needs a new
    container says what happened and what to do, and runs once they are gone. (The first
    cell after may still run: in the container prepared before the limit was reached,
    whose shell was running already.)"""
    spec = tmp_path / "kernels" / "rootfs-nproc"
    spec.mkdir(parents=True)
    limit = _user_tasks() + 120
    spec.joinpath("kernel.json").write_text(json.dumps({
        "argv": ["prlimit", f"--nproc={limit}", sys.executable, "-m", "rootfs_kernel", "-f",
                 "{connection_file}"],
        "display_name": "nproc", "language": "shell", "interrupt_mode": "signal"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    k = KernelDriver(kernel_name="rootfs-nproc")
    sleepers: list[subprocess.Popen] = []
    try:
        k.ok("true")
        while _user_tasks() < limit + 5:
            sleepers.append(subprocess.Popen(["sleep", "300"]))
        res = k.run("echo ran", timeout=30)
        if res.ok:   # the prepared container; the next cell needs a new one
            res = k.run("echo ran", timeout=30)
        assert not res.ok, res.stdout
        message = res.reply["evalue"] + res.stderr
        assert "restart the kernel" not in message, message
        assert "out of processes" in message and "run the cell again" in message, message
        for p in sleepers:
            p.kill()
            p.wait()
        sleepers.clear()
        assert k.ok("echo ran", timeout=30).stdout == "ran\n"
    finally:
        for p in sleepers:
            p.kill()
            p.wait()
        k.shutdown()
