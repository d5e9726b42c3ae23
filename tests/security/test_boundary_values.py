"""Issue 21, "error messages seen in the same pass": numbers and lengths a header line
hands on to the system (cgroup files, setrlimit, tmpfs sizes, mount(2) options, paths,
rootfs-init's plan, the compiler's command line) are checked where they are typed. An
out-of-range value is a HeaderError naming its line and the range; it changes nothing for
later cells. Driven through jupyter_client, as root and as an ordinary user."""

from __future__ import annotations

import pytest
from kerneldriver import cgroup_limits_here

# Not what the kernel says when it fails itself, nor a raw Python structure.
RAW = ("InternalError", "Traceback", "{'op'", "did not understand its plan", "/bin/sh -c")


def _header_error(res, lineno: int, *words: str) -> str:
    assert res.reply["status"] == "error", res.reply
    assert res.reply["ename"] == "HeaderError", res.reply
    evalue = res.reply["evalue"]
    assert evalue.startswith(f"line {lineno}: "), evalue
    for word in words:
        assert word in evalue, evalue
    for raw in RAW:
        assert raw not in evalue and raw not in res.stderr, (raw, evalue, res.stderr)
    assert res.stdout == "" and len(evalue) < 2000   # nothing ran; the line is shortened
    return evalue


@pytest.mark.parametrize(("line", "words"), [
    ("%limit cpu=1e308", ("cpu <= 8192", "cpu=none")),
    ("%limit cpu=inf", ("cpu <= 8192",)),
    ("%limit cpu=nan", ("cpu must be a number",)),
    ("%limit cpu=0.0001", ("cpu >= 0.01",)),
    ("%limit pids=99999999999999999999999", ("pids <= 4194304", "pids=none")),
    ("%limit memory=99999999999999999999g", ("memory:", "1024t")),
    ("%limit disk=" + "9" * 400, ("disk:", "1024t")),
    ("%limit memory=64m cpu=1e309", ("cpu <= 8192",)),
])
def test_an_out_of_range_limit_is_a_header_error_naming_the_range(kernel, line, words):
    res = kernel.run(f"%env A=1\n{line}\necho ran", timeout=60)
    _header_error(res, 2, *words)
    assert kernel.ok("echo alive").stdout == "alive\n"


def test_an_out_of_range_pids_limit_changes_nothing_for_later_cells(fresh_kernel):
    """It was written to pids.max, which refused it (ERANGE): "cgroup limits are unavailable
    here", and setrlimit "in this and later cells" said once and never again."""
    res = fresh_kernel.run("%limit pids=99999999999999999999999\necho ran", timeout=60)
    _header_error(res, 1, "pids <= 4194304")
    later = fresh_kernel.ok("%limit pids=64\necho ran", timeout=60)
    assert later.stdout == "ran\n"
    # The first cell that asks for a limit is the one that hears how it is enforced here.
    assert "Numerical result out of range" not in later.stderr
    if cgroup_limits_here():
        assert later.stderr == "", later.stderr
    else:
        assert "setrlimit" in later.stderr and "RLIMIT_NPROC=64" in later.stderr, later.stderr


def test_mount_options_over_a_page_are_refused_at_their_line(kernel):
    """They crossed to rootfs-init as one argument of 200 KB: "the cell is too long for
    `/bin/sh -c`", though the cell used the default shell."""
    res = kernel.run("%mount tmpfs /mnt size=1m," + "x" * 200_000 + "\necho ran", timeout=60)
    _header_error(res, 1, "OPTIONS are 200008 bytes", "one page", "4095 bytes")
    # ... and the longest that fits still mounts.
    ok = kernel.ok("%mount tmpfs /mnt size=1m,nr_inodes=" + "0" * 4000 + "1\n"
                   "grep ' /mnt ' /proc/self/mountinfo | grep -c ' - tmpfs '")
    assert ok.stdout == "1\n"


@pytest.mark.parametrize(("line", "what"), [
    ("%mount tmpfs /" + "a" * 5000, "TARGET is 5001 bytes long"),
    ("%mount tmpfs /" + "/".join(["b" * 200] * 25), "TARGET is 5025 bytes long"),
    ("%mount tmpfs /mnt/" + "c" * 300, "TARGET has a name of 300 bytes"),
    ("%bind /tmp /" + "d" * 5000, "TARGET is 5001 bytes long"),
    ("%shell /" + "e" * 300, "PATH has a name of 300 bytes"),
    ("%show ls /" + "f" * 5000, "PATH is 5001 bytes long"),
])
def test_a_path_linux_cannot_take_is_refused_at_its_line(kernel, line, what):
    """`%mount tmpfs /<5000 chars>` failed in rootfs-init with a raw Python dict
    ("container setup failed at {'op': 'mount', ...")."""
    res = kernel.run(f"{line}\necho ran", timeout=60)
    _header_error(res, 1, what, "name a shorter path")


def test_the_longest_path_linux_takes_still_mounts(kernel):
    target = "/mnt/" + "/".join(["g" * 250] * 16)     # 4020 bytes, names of 250
    res = kernel.ok(f"%mount tmpfs {target}\ngrep -cF ' {target} ' /proc/self/mountinfo")
    assert res.stdout == "1\n"


def test_c_flags_longer_than_a_compiler_command_line_are_refused(kernel):
    """They went into gcc's `sh -c` string: "gcc exited with status 127 (is gcc installed
    on the host?): the cell is too long for `/bin/sh -c`"."""
    res = kernel.run("%%c " + "-DX " * 30_000 + "\nint main(void) { return 0; }", timeout=60)
    _header_error(res, 1, "gcc flags", "64 KiB", "#define")


def test_many_mount_lines_fit_the_containers_plan_or_are_refused_at_their_line(kernel):
    """Twenty proc mounts (each with runc's masks) were more operations than rootfs-init
    took: "rootfs-init did not understand its plan (a bug: please report it)"."""
    lines = "\n".join(f"%mount proc /p{i}" for i in range(20))
    res = kernel.ok(f"{lines}\ngrep ' /p[0-9]* ' /proc/self/mountinfo | grep -c ' - proc '",
                    timeout=60)
    assert res.stdout == "20\n", res.stdout
    lines = "\n".join(f"%mount tmpfs /t{i}" for i in range(40))
    res = kernel.run(f"%env A=1\n{lines}\necho ran", timeout=60)
    _header_error(res, 34, "at most 32 %mount and %bind lines")


def test_a_large_setup_next_to_a_large_environment_runs(fresh_kernel):
    """Thirty-two proc mounts at long paths (each of runc's masks repeats the path) next
    to the %env values: more operations than rootfs-init took ("did not understand its
    plan"), and before the plan went through a memfd, more than Linux hands a starting
    program ("the cell is too long for `/bin/sh -c`")."""
    fresh_kernel.ok("\n".join(f"%env V{i}=" + "v" * 100_000 for i in range(9)), timeout=60)
    long = "/" + "/".join(["p" * 250] * 16)[:4000]
    lines = "\n".join(f"%mount proc {long}{i:02d}" for i in range(32))
    res = fresh_kernel.ok(f"{lines}\nn=0; for d in {long}*; do test -r \"$d/self/stat\" && "
                          "n=$((n+1)); done; echo $n ${#V8}", timeout=120)
    assert res.stdout.split() == ["32", "100000"], res.stdout   # 32 procs, all of V8
