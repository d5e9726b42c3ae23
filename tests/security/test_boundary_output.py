"""Issue 21, class 5: a cell cannot grow the kernel's memory through IOPub.

A raw ZeroMQ SUB socket subscribed to the kernel's IOPub port that never reads stands for
a stalled front-end (or one a cell opened over loopback): what the kernel publishes waits
for it in the kernel's memory. Each cell's output budget (`%limit output=SIZE`, 64 MiB by
default) bounds what one cell publishes; the size of the largest message and how far
behind a subscriber may be before it is disconnected (output.py, backlog.py) bound what
waits for a stalled subscriber, whatever the cells. The front-end that reads (the test's
own client) still gets every message, whole.
"""

from __future__ import annotations

import contextlib
import time

import pytest
import zmq
from kerneldriver import KernelDriver

MB = 1_000_000
FRAME = 16 * MB    # the display frames: 16 MB each, 50 of them
# What a subscriber that never reads may cost the kernel (README, output.py): 64 MiB queued
# for it and one message of at most 24 MiB (92 MB), and the kernel's working memory for a
# frame or two (the issue saw 795 MB).
BOUND = 160 * MB
PEAK = 256 * MB    # at any moment: the same, and a 16 MB frame read, decoded and encoded
FRAMES = (f"head -c {FRAME} /dev/zero | tr '\\0' a > /tmp/frame\n"
          "i=0; while [ $i -lt 50 ]; do display --text /tmp/frame; i=$((i + 1)); done\n")
STREAMS = "head -c 200000000 /dev/zero | tr '\\0' b; echo; head -c 50000000 /dev/zero >&2\n"


def rss(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))


@contextlib.contextmanager
def stalled_subscriber(kernel: KernelDriver):
    """A SUB socket on the kernel's IOPub that reads nothing once it is connected: its
    queue holds one message and its socket buffer a few KB, so what the kernel publishes
    waits in the kernel."""
    info = kernel.km.get_connection_info()
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.rcvhwm = 1
    sub.setsockopt(zmq.RCVBUF, 4096)
    sub.connect(f"tcp://{info['ip']}:{info['iopub_port']}")
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    try:
        # Connected once it has a message of a cell (the status of the one below).
        deadline = time.monotonic() + 10
        while not sub.poll(100):
            assert time.monotonic() < deadline, "the subscriber never got a message"
            kernel.ok("true")
        yield sub
    finally:
        sub.close(linger=0)
        context.term()


@pytest.fixture
def kernel():
    """A kernel of its own: its peak memory is this test's."""
    k = KernelDriver()
    k.ok("true")
    yield k
    k.shutdown()


def test_a_cells_output_past_its_budget_is_cut_and_said(kernel):
    with stalled_subscriber(kernel):
        before = rss(kernel.pid)
        res = kernel.run(FRAMES + STREAMS, timeout=300)
        grown = rss(kernel.pid) - before
        peak = rss(kernel.pid, "VmHWM") - before
        assert grown < BOUND and peak < PEAK, f"+{grown / MB:.0f} MB (peak +{peak / MB:.0f})"
        assert res.ok, res.errors
        # 4 frames fit in 64 MiB; the 5th and everything after it are cut, and said so.
        assert [len(d["data"]["text/plain"]) for d in res.displays] == [FRAME] * 4
        assert res.stdout == "" and "reached its budget (%limit output=64 MiB)" in res.stderr
        assert ("not shown: 238 MiB of output and 46 displays (702 MiB) past this cell's "
                "budget (%limit output=64 MiB); raise it for a cell with `%limit "
                "output=SIZE`") in res.stderr
        # The kernel answers, and the front-end that reads gets normal cells whole.
        after = kernel.ok("printf '<svg xmlns=\"http://www.w3.org/2000/svg\"/>' | "
                          "display --svg\nhead -c 3000000 /dev/zero | tr '\\0' c")
        assert after.stdout == "c" * 3_000_000 and after.stderr == ""
        assert "<svg" in after.displays[0]["data"]["image/svg+xml"]


def test_a_stalled_subscriber_holds_a_bounded_amount_whatever_the_cells(kernel):
    """The budget lifted: 800 MB of displays go out; the one that reads gets all of them,
    the one that does not costs the kernel at most the queue's bound."""
    with stalled_subscriber(kernel):
        before = rss(kernel.pid)
        for _ in range(2):   # two such cells: the queue does not grow with the cells
            res = kernel.run("%limit output=none\n" + FRAMES, timeout=300)
            assert res.ok, res.errors
            assert [len(d["data"]["text/plain"]) for d in res.displays] == [FRAME] * 50
            assert "rootfs-kernel" not in res.stderr
        grown = rss(kernel.pid) - before
        peak = rss(kernel.pid, "VmHWM") - before
        assert grown < BOUND and peak < PEAK, f"+{grown / MB:.0f} MB (peak +{peak / MB:.0f})"
        assert kernel.ok("echo next").stdout == "next\n"


def test_no_message_is_larger_than_the_bound(kernel):
    """16 MiB of quotes is a file display takes, and six times that as an HTML message."""
    res = kernel.run("head -c 16000000 /dev/zero | tr '\\0' '\"' > /tmp/q.html\n"
                     "display --html /tmp/q.html; echo done", timeout=120)
    assert res.ok and res.displays == [] and res.stdout == "done\n"
    assert "an output (display_data, " in res.stderr
    assert "was not sent: the kernel sends no message over 24 MiB" in res.stderr
    assert kernel.ok("echo next").stdout == "next\n"
