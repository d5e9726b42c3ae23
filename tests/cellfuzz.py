"""Hypothesis strategies for header lines, shared by the parser's fuzzing (tests/unit) and
the live kernel's (tests/reliability)."""

from __future__ import annotations

from hypothesis import strategies as st

from rootfs_kernel import cell

MAGIC_NAMES = sorted(cell.MAGICS)
WORDS = st.sampled_from([
    "..", "/..", "/a/../b", "/", "//", "/tmp", "/etc", "/proc", "/dev/null", "a/b", "-1", "0",
    "1e309", "nan", "inf", "-0", "9" * 40, "0x10", "1.5G", "64m", "pids=1", "pids=99999999999",
    "memory=0", "memory=1t", "cpu=1e-9", "cpu=nan", "ro", "rw", "tmpfs", "proc", "overlay",
    "private", "slave", "pivot", "chroot", "none", "mnt,pid,net", "user", "x=y", "=", "'", '"',
    "\\", "\x00", "/tmp/\x00x", "é", "容器镜像", "\u202e", "\t", "%", "%%", "%%host", "ls",
    "mounts", "changes", "ns", "A=1", "1A=2", "/a b", "size=10m", "size=999999999999g",
    # what the wire cannot carry, and controls that could forge output
    "A=x\x00lock\x000", "\x1b[31m", "\r", "\x7f", "\x01", "/tmp\x1b]0;x\x07", "--replace",
    "A=" + "x" * 140_000,
    # numbers and lengths the system takes only up to a point (issue 21)
    "cpu=1e308", "cpu=inf", "pids=" + "9" * 23, "memory=" + "9" * 400, "disk=99999999999t",
    "/" + "a" * 5000, "/mnt/" + "b" * 300, "size=1m," + "x" * 5000, "9" * 400 + "g",
])
ARG = st.one_of(WORDS, st.text(max_size=12), st.integers(-10**30, 10**30).map(str),
                st.floats(allow_nan=True).map(repr))
NAME = st.one_of(st.sampled_from(MAGIC_NAMES), st.text(max_size=8))
LINE = st.builds(lambda lead, name, args: lead + "%" + name + " " + " ".join(args),
                 st.sampled_from(["", " ", "\t"]), NAME, st.lists(ARG, max_size=4))
