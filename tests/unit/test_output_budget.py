"""A cell's output budget (output.py) and how the kernel's streams keep it (kernel._Stream):
text is cut at the byte where the budget ends, a display is shown whole or not at all,
nothing after the first cut is shown, and the cut is said in its place and summed up."""

from __future__ import annotations

import asyncio

from test_display_frames import PNG, FakeKernel, frame

from rootfs_kernel.output import Budget


def test_text_is_cut_where_the_budget_ends_and_nothing_after_it_shows():
    b = Budget(10)
    assert (b.text(4), b.text(8), b.text(1)) == (4, 6, 0)
    assert b.cut and b.cut_bytes == 3 and not b.display(1)
    assert b.summary().startswith("not shown: 3 B of output and 1 display (1 B) past this "
                                  "cell's budget (%limit output=10 B); raise it")


def test_a_display_is_shown_whole_or_not_at_all():
    b = Budget(100)
    assert b.display(60) and not b.display(60)
    # Once cut, text that would still fit stays out too: the output stops at one place.
    assert b.text(5) == 0 and (b.cut_displays, b.cut_display_bytes, b.cut_bytes) == (1, 60, 5)


def test_no_limit_shows_everything():
    b = Budget(None)
    assert b.text(1 << 40) == 1 << 40 and b.display(1 << 30) and not b.cut


def test_the_stream_says_where_the_output_was_cut_once_and_keeps_order():
    async def run() -> list:
        k = FakeKernel()
        budget = Budget(len(PNG) + 6)
        out = _stream(k, "stdout", budget, frames=True)
        err = _stream(k, "stderr", budget)
        out.other, err.other = err, out
        out.write(b"one\n")
        out.write(frame("image/png", "p.png", PNG))
        err.write(b"warn\n")           # 5 bytes: 2 fit
        out.write(frame("image/png", "q.png", PNG) + b"gone\n")
        out.flush()
        err.flush()
        return k.sent

    sent = asyncio.run(run())
    reached = ("stream", "stderr", "rootfs-kernel: this cell's output reached its budget "
               f"(%limit output={len(PNG) + 6} B): what it writes from here on is not shown; "
               "the cell goes on\n")
    assert sent == [("stream", "stdout", "one\n"), ("display", "image/png", None),
                    ("stream", "stderr", "wa"), reached]


def _stream(kernel, name, budget, frames=False):
    from rootfs_kernel.kernel import _Stream

    return _Stream(kernel, name, False, budget, frames=frames)
