"""What users of a Jupyter kernel expect: streams, errors, interrupts, completion."""

from __future__ import annotations

import os
import signal
import time

import pytest
from kerneldriver import KernelDriver, alive, children, descendants, kernel_mounts


def test_stdout_and_stderr_are_separate_streams(kernel):
    res = kernel.ok("echo out; echo err >&2")
    assert res.stdout == "out\n" and res.stderr == "err\n"


def test_output_is_streamed_while_the_cell_runs(kernel):
    res = kernel.ok("echo early; sleep 1.5; echo late")
    times = dict((text.strip(), t) for t, text in res.stream_times)
    assert times["late"] - times["early"] > 1.0


def test_nonzero_exit_is_an_error_reply_and_iopub_error(kernel):
    res = kernel.run("echo before; exit 7")
    assert res.reply["status"] == "error"
    assert res.reply["ename"] == "ExitStatus" and "status 7" in res.reply["evalue"]
    assert len(res.errors) == 1 and "status 7" in res.errors[0]["evalue"]
    assert res.stdout == "before\n"


@pytest.mark.parametrize("line, expected", [
    ("%frobnicate", "unknown header line %frobnicate"),
    ("%mount tmpfs", "wrong number of arguments"),
    ("%root sideways", "unknown root mode 'sideways'"),
    ("%timeout soon", "SECONDS must be a number"),
    ("%image no-such-image", "no-such-image"),
    ("%bind /no/such/path /x", "does not exist"),
    ("%bind relative /x", "must be an absolute path"),
    ("%mount tmpfs /a/../../etc", "contains '..'"),
])
def test_bad_header_lines_fail_before_anything_runs(kernel, line, expected):
    res = kernel.run(f"%keep\n{line}\necho ran")
    assert res.reply["status"] == "error"
    assert "line 2" in res.reply["evalue"] and expected in res.reply["evalue"]
    assert "ran" not in res.stdout
    assert kernel.ok("echo alive").stdout == "alive\n"


def test_help_lists_every_header_line(kernel):
    res = kernel.ok("%help")
    (shown,) = res.displays
    assert {"text/markdown", "text/plain"} <= set(shown["data"])
    for name in ("%image", "%root", "%mount", "%bind", "%propagation", "%unshare", "%keep",
                 "%timeout", "%env", "%shell", "%show", "%help", "%%host"):
        assert name in shown["data"]["text/plain"] and name in shown["data"]["text/markdown"]


def test_env_persists_to_later_cells(kernel):
    kernel.ok("%env GREETING=hello world")
    assert kernel.ok("echo $GREETING").stdout == "hello world\n"


def test_host_cell_runs_outside_any_namespace(kernel):
    res = kernel.ok("%%host\nreadlink /proc/self/ns/mnt /proc/self/ns/pid")
    assert res.stdout.split() == [os.readlink("/proc/self/ns/mnt"),
                                  os.readlink("/proc/self/ns/pid")]


def test_bind_read_only_and_read_write(kernel, tmp_path):
    os.chmod(tmp_path, 0o777)
    res = kernel.run(f"%bind {tmp_path} /data ro\ntouch /data/x")
    assert not res.ok and "Read-only" in res.stderr
    kernel.ok(f"%bind {tmp_path} /data\necho hi > /data/y")
    assert (tmp_path / "y").read_text() == "hi\n"


def test_bind_target_through_a_symlink_stays_inside_the_root(kernel, tmp_path):
    os.chmod(tmp_path, 0o777)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.chmod(outside, 0o777)
    kernel.ok(f"%keep\nln -s {outside} /escape")
    res = kernel.run(f"%bind {tmp_path} /escape/target\nls /escape")
    assert not (outside / "target").exists()
    assert not res.ok and "symlink to a path that does not exist inside the root" in \
        res.reply["evalue"]


def test_every_cell_names_its_own_host_and_what_it_sets_stays_in_it(kernel):
    """Every cell has a UTS namespace of its own (`%unshare uts` adds nothing): its names
    are the container's, not the host's, and a cell may change them (the script owns the
    namespace) without the host or the next cell seeing it."""
    host = os.uname().nodename
    res = kernel.ok("hostname; cat /proc/sys/kernel/domainname; hostname set-by-cell && "
                    "hostname")
    assert res.stdout.split() == ["rootfs", "(none)", "set-by-cell"]
    assert os.uname().nodename == host != "set-by-cell"
    assert kernel.ok("hostname").stdout.strip() == "rootfs"


def test_timeout_ends_the_cell_and_says_so(kernel):
    start = time.monotonic()
    res = kernel.run("%timeout 1\n%show ns\necho started; sleep 60")
    assert time.monotonic() - start < 10
    assert res.reply["ename"] == "Timeout" and "%timeout 1" in res.reply["evalue"]
    assert len(res.displays) == 1  # the script was killed, the snapshot still taken
    assert kernel.ok("echo next").stdout == "next\n"


def test_interrupt_kills_a_cell_that_ignores_sigint(kernel):
    msgs = []

    def interrupt_once(content):
        if not msgs:
            msgs.append(content)
            kernel.km.interrupt_kernel()

    start = time.monotonic()
    res = kernel.run("%show ns\ntrap '' INT\necho ready\nsleep 60; echo survived",
                     on_stream=interrupt_once)
    assert time.monotonic() - start < 5
    assert res.reply["ename"] == "Interrupted"
    assert len(res.displays) == 1
    assert "survived" not in res.stdout
    assert kernel.ok("echo next").stdout == "next\n"


def test_interrupt_reaches_a_cell_that_handles_sigint(kernel):
    def interrupt_once(content):
        if "ready" in content["text"]:
            kernel.km.interrupt_kernel()

    res = kernel.run("trap 'echo got-int; exit 3' INT\necho ready\nsleep 60 & wait",
                     on_stream=interrupt_once)
    assert "got-int" in res.stdout


def test_large_output_streams_without_hanging(kernel):
    received = []
    res = kernel.run("head -c 30000000 /dev/zero | tr '\\0' a; echo; echo done", timeout=120,
                     on_stream=lambda c: received.append(len(c["text"])))
    assert res.ok
    assert sum(received) >= 30_000_000
    rss_kb = int(next(line.split()[1] for line in open(f"/proc/{kernel.pid}/status")
                      if line.startswith("VmRSS")))
    assert rss_kb < 400_000, f"kernel RSS grew to {rss_kb} kB"


def test_completion_of_commands_paths_and_header_lines(kernel):
    def complete(code):
        kernel.kc.complete(code, len(code))
        return kernel.kc.get_shell_msg(timeout=10)["content"]

    assert "mount" in complete("mou")["matches"]
    assert "/etc/" in complete("ls /et")["matches"]
    assert "/etc/passwd" in complete("cat /etc/pas")["matches"]
    assert "%root" in complete("%ro")["matches"]


def test_completion_never_builds_an_image(tmp_path):
    """A completion request answers from what the store holds: an image not built yet
    offers no names (a build would hold every other request up), a built one its own."""
    k = KernelDriver(env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")})
    images = tmp_path / "data" / "rootfs-kernel" / "images"

    def complete(code):
        k.kc.complete(code, len(code))
        return k.kc.get_shell_msg(timeout=30)["content"]

    try:
        for code in ("ls /et", "%image busybox\nls /b"):
            reply = complete(code)
            assert reply["status"] == "ok" and reply["matches"] == [], (code, reply)
        assert not images.exists() or not list(images.iterdir())
        assert "%root" in complete("%ro")["matches"]   # header lines need no image
        k.ok("true")   # the first cell builds the default image
        assert "/etc/" in complete("ls /et")["matches"]
        assert [p.name for p in images.iterdir()] == ["minimal"]
    finally:
        k.shutdown()


def test_is_complete(kernel):
    def status(code):
        kernel.kc.is_complete(code)
        return kernel.kc.get_shell_msg(timeout=10)["content"]["status"]

    assert status("echo hi") == "complete"
    assert status("if true; then") == "incomplete"
    assert status("echo 'open") == "incomplete"
    assert status("%frob") == "invalid"


def test_kernel_info(kernel):
    kernel.kc.kernel_info()
    info = kernel.kc.get_shell_msg(timeout=10)["content"]
    assert info["language_info"]["name"] == "shell"
    assert info["language_info"]["file_extension"] == ".sh"
    assert info["implementation"] == "rootfs_kernel"


def test_sigkilled_kernel_leaves_nothing_behind(fresh_kernel):

    before = kernel_mounts()
    fresh_kernel.kc.execute("%mount tmpfs /tmp\nsleep 300")
    time.sleep(1.5)
    helper = children(fresh_kernel.pid)
    os.kill(fresh_kernel.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in descendants_of(helper)):
        time.sleep(0.1)
    assert not [p for p in descendants_of(helper) if alive(p)]
    assert kernel_mounts() == before
    # the helper's own directory (named after its pid) is gone
    assert not [d for d in _runtime_dirs() if os.path.basename(d).split("-")[0] in
                {str(p) for p in helper}]


def descendants_of(pids: list[int]) -> list[int]:
    return [q for p in pids for q in (p, *descendants(p))]


def _runtime_dirs() -> set[str]:
    import glob

    from rootfs_kernel.sandbox import rundir

    return set(glob.glob(os.path.join(rundir.base(), "*")))


C_HELLO = """#include <stdio.h>
#include <unistd.h>
int main(void) { printf("pid %d\\n", (int)getpid()); return 0; }
"""


def test_c_cell_is_compiled_on_the_host_and_run_in_the_container(kernel):
    res = kernel.ok("%%c\n%show mounts\n" + C_HELLO)
    assert res.stdout.strip() in ("pid 1", "pid 2")
    assert len(res.displays) == 1


def test_c_compile_errors_are_a_cell_error_with_gcc_messages(kernel):
    res = kernel.run("%%c\nint main(void) { return undefined_name; }\n")
    assert res.reply["ename"] == "CompileError"
    assert "undefined_name" in res.reply["evalue"] and "cell.c" in res.reply["evalue"]


def test_c_cell_with_root_none_runs_the_binary_on_the_host_tree(kernel):
    res = kernel.ok("%%c -DGREETING=42\n%root none\n#include <stdio.h>\n"
                    "int main(void) { printf(\"%d\\n\", GREETING); return 0; }\n")
    assert res.stdout == "42\n"


def test_a_cell_of_header_lines_alone_is_still_carried_out(kernel):
    res = kernel.run("%image no-such-image-anywhere")
    assert res.reply["ename"] == "HeaderError" and "no-such-image-anywhere" in res.reply["evalue"]
    res = kernel.run("%bind /no/such/dir /x")
    assert res.reply["ename"] == "HeaderError"
    assert kernel.ok("%env ONLY=env").stdout == ""  # %env alone runs nothing
    assert kernel.ok("echo $ONLY").stdout == "env\n"
