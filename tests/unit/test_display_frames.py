"""`display` in a cell: the program (display.c), its frames in a stream (frames.py), the
bundles a notebook gets, the kernel's stream turning frames into outputs in order, and
the plan putting the program in every cell."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import subprocess

import pytest

from rootfs_kernel import cell
from rootfs_kernel.frames import (
    END,
    START,
    Frame,
    FrameReader,
    bundle,
    frame_height,
    parse,
    svg_image,
)
from rootfs_kernel.sandbox import initbin, ops
from rootfs_kernel.sandbox.plan import DISPLAY_DIR, Context, Places, plan_for

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
                       "DwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4"/></svg>'


def frame(mime: str, name: str, data: bytes) -> bytes:
    return (START + mime.encode() + b";" + base64.b64encode(name.encode()) + b";"
            + base64.b64encode(data) + END)


def read_all(stream: bytes, sizes) -> list:  # noqa: ANN001
    reader, out, i = FrameReader(), [], 0
    for n in sizes:
        out += reader.feed(stream[i:i + n])
        i += n
    out += reader.feed(stream[i:])
    return _merge(out + reader.close())


def _merge(pieces: list) -> list:
    """Adjacent text pieces joined: what a reader of the stream sees."""
    out: list = []
    for p in pieces:
        if isinstance(p, bytes) and out and isinstance(out[-1], bytes):
            out[-1] += p
        elif p != b"":
            out.append(p)
    return out


# -- frames in a stream ---------------------------------------------------------------------


def test_frames_come_out_between_the_text_around_them_however_the_reads_cut_them():
    stream = (b"before\n" + frame("image/png", "a.png", PNG) + b"\x1b[1mbold\x1b[0m\n"
              + frame("image/svg+xml", "b.svg", SVG) + b"after\x1b")
    want = [b"before\n", Frame("image/png", "a.png", PNG), b"\x1b[1mbold\x1b[0m\n",
            Frame("image/svg+xml", "b.svg", svg_image(SVG)), b"after\x1b"]
    rng = random.Random(16)
    for _ in range(200):
        sizes = [rng.randint(1, 12) for _ in range(len(stream))]
        assert read_all(stream, sizes) == want
    assert read_all(stream, []) == want


def test_plain_output_passes_through_untouched():
    reader = FrameReader()
    chunk = b"x" * 65536
    assert reader.feed(chunk)[0] is chunk      # no copy for the common case
    assert reader.feed(b"") == [] and reader.close() == []


def test_a_frame_cut_off_or_too_long_says_so_and_the_text_after_it_goes_on():
    assert read_all(b"a" + START + b"image/png;", []) == [
        b"a", Frame(error="a display frame was cut off (was its program killed?)")]
    reader = FrameReader()
    out = reader.feed(START + b"image/png;eA==;")
    for _ in range(400):   # 25 MiB of body, read 64 KiB at a time
        out += reader.feed(b"A" * 65536)
    out += reader.feed(END + b"next\n") + reader.close()
    assert [p for p in out if isinstance(p, Frame)] == [
        Frame(error="a display frame longer than 16 MiB was dropped")]
    assert _merge([p for p in out if isinstance(p, bytes)]) == [b"next\n"]
    assert len(reader.parts or []) == 0


@pytest.mark.parametrize("fields, error", [
    (b"image/png;eA==", "not one"),
    (b"IMAGE;eA==;eA==", "not one"),
    (b"image/png;eA==;not base64!", "not base64"),
    (b"application/javascript;eA==;eA==", "cannot be shown"),
])
def test_a_frame_that_is_not_right_is_refused_with_a_reason(fields, error):
    assert error in parse(fields).error


# -- what the notebook gets ---------------------------------------------------------------------


def test_images_go_as_base64_with_a_text_line():
    data = bundle(Frame("image/png", "plot.png", PNG))
    assert base64.b64decode(data["image/png"]) == PNG
    assert data["text/plain"] == f"[display: plot.png, image/png, {len(PNG)} B]"
    assert bundle(Frame("image/svg+xml", "c.svg", SVG))["image/svg+xml"] == SVG.decode()


def test_html_is_shown_in_a_sandboxed_frame_where_no_script_runs():
    page = b'<p onclick="x()">hi</p><script>parent.x = 1</script>"\'&'
    html = bundle(Frame("text/html", 'r"e<p>.html', page))["text/html"]
    assert html.startswith('<iframe sandbox="" title="r&quot;e&lt;p&gt;.html"')
    # As tall as its text looks: one heading is a small frame, a long page the most.
    assert frame_height("<h2>Report</h2>") <= 5 and frame_height("ok") == 4
    long = "".join(f"<p>line {i}</p>" for i in range(40))
    assert frame_height(long) == 24 and 5 < frame_height(long[:200]) < 24
    assert f"height:{frame_height(page.decode()):g}em" in html
    assert html.endswith('"></iframe>')
    srcdoc = html.split('srcdoc="', 1)[1][:-len('"></iframe>')]
    assert "<" not in srcdoc and '"' not in srcdoc   # one attribute, whatever the page
    assert "&lt;script&gt;" in srcdoc


def test_markdown_is_rendered_with_its_raw_html_escaped():
    text = ("# Report\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n<img src=x onerror=alert(1)>\n\n"
            "[click](javascript:alert(1)) `<code>`\n")
    data = bundle(Frame("text/markdown", "r.md", text.encode()))
    html = data["text/html"]
    assert "<h1>Report</h1>" in html and "<table>" in html
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert 'href="javascript' not in html
    assert "<code>&lt;code&gt;</code>" in html and data["text/plain"] == text


# -- the kernel's stdout: frames become outputs in their place --------------------------------


class FakeKernel:
    def __init__(self) -> None:
        self.sent: list[tuple] = []

    def _stream(self, name: str, text: str, silent: bool) -> None:
        if text:
            self.sent.append(("stream", name, text))

    def _display(self, frame: Frame, silent: bool) -> None:
        self.sent.append(("display", frame.mime, frame.error))


def test_the_kernels_stream_sends_text_and_displays_in_the_order_they_were_written():
    from rootfs_kernel.kernel import _Stream

    async def run() -> list:
        k = FakeKernel()
        out = _Stream(k, "stdout", False, frames=True)
        err = _Stream(k, "stderr", False)
        out.other, err.other = err, out
        out.write(b"one\n")
        err.write(b"warn\n")
        data = frame("image/png", "p.png", PNG)
        out.write(data[:20])
        out.write(data[20:] + b"two\n" + START[:5])
        out.flush()
        err.flush()
        return k.sent

    assert asyncio.run(run()) == [("stream", "stdout", "one\n"), ("stream", "stderr", "warn\n"),
                                  ("display", "image/png", None),
                                  ("stream", "stdout", "two\n" + START[:5].decode())]


# -- the program --------------------------------------------------------------------------------


def display(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([str(initbin.display_path()), *args], input=stdin,
                          capture_output=True, timeout=30)


def frames_of(out: bytes) -> list:
    return [p for p in read_all(out, []) if isinstance(p, Frame)]


def test_the_program_says_what_a_file_is_by_option_name_or_content(tmp_path):
    (tmp_path / "plot.png").write_bytes(PNG)
    (tmp_path / "noname").write_bytes(PNG)
    (tmp_path / "pic").write_bytes(b"\n  " + SVG)
    (tmp_path / "page.HTM").write_bytes(b"<p>x</p>")
    (tmp_path / "notes.txt").write_bytes(b"# not markdown")
    for args, mime in ((["plot.png"], "image/png"), (["noname"], "image/png"),
                       (["pic"], "image/svg+xml"), (["page.HTM"], "text/html"),
                       (["--markdown", "notes.txt"], "text/markdown"),
                       (["notes.txt"], "text/plain")):
        run = display(*(a if a.startswith("--") else str(tmp_path / a) for a in args))
        assert run.returncode == 0, run.stderr
        (got,) = frames_of(run.stdout)
        assert got.mime == mime and got.name == args[-1]
    (got,) = frames_of(display("--markdown", stdin=b"*hi*").stdout)
    assert got == Frame("text/markdown", "stdin", b"*hi*")


def test_the_program_refuses_with_a_message_that_says_what_to_do(tmp_path):
    (tmp_path / "data").write_bytes(b"\x00\x01binary")
    run = display(str(tmp_path / "data"))
    assert run.returncode == 1 and run.stdout == b""
    assert b"say it: display --png" in run.stderr
    run = display(str(tmp_path / "missing.png"))
    assert run.returncode == 1 and b"No such file or directory" in run.stderr
    assert display("--pdf", "x").returncode == 2
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.truncate(17 << 20)
    run = display(str(big))
    assert run.returncode == 1 and b"larger than 16 MiB" in run.stderr and run.stdout == b""
    assert display("--help").returncode == 0


def test_the_program_holds_no_fd_beyond_its_three():
    """While it reads its input it has 0, 1 and 2 open, nothing else: no channel of its
    own to the kernel (its output is the cell's stdout)."""
    proc = subprocess.Popen([str(initbin.display_path()), "--text"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True)
    try:
        proc.stdin.write(b"partial ")
        proc.stdin.flush()
        assert sorted(os.listdir(f"/proc/{proc.pid}/fd"), key=int) == ["0", "1", "2"]
        out, _ = proc.communicate(b"text", timeout=30)
    finally:
        proc.kill()
    assert frames_of(out) == [Frame("text/plain", "stdin", b"partial text")]


# -- every cell has it ---------------------------------------------------------------------------


CTX = Context(places=Places.under("/run/rk"), rootless=False, uid=0, gid=0, cwd="/home",
              host_env={"PATH": "/usr/bin:/bin"}, display="/opt/rk/bin/display")


class Image:
    layers, env, workdir = ["/img/a"], ["PATH=/image/bin"], None


def test_every_container_binds_the_program_read_only_first_on_its_path():
    plan = plan_for(cell.parse("display x.png"), Image, CTX)
    (bind,) = [op for op in plan.ops if isinstance(op, ops.Bind)
               and op.source == "/opt/rk/bin/display"]
    assert bind.target == f"{DISPLAY_DIR}/display" and bind.readonly and not bind.rec
    assert plan.ops.index(bind) < next(i for i, op in enumerate(plan.ops)
                                       if isinstance(op, ops.PivotRoot))
    assert plan.env["PATH"] == f"{DISPLAY_DIR}:/image/bin"
    assert plan_for(cell.parse("%env PATH=/mine\ntrue"), Image, CTX).env["PATH"] == "/mine"


def test_cells_on_the_hosts_tree_find_it_where_it_was_built():
    plan = plan_for(cell.parse("%root none\ntrue"), Image, CTX)
    assert not any(isinstance(op, ops.Bind) and op.source == CTX.display for op in plan.ops)
    assert plan.env["PATH"].startswith("/opt/rk/bin:")
    host = plan_for(cell.parse("%%host\ntrue"), None, CTX)
    assert host.env["PATH"] == "/opt/rk/bin:/usr/bin:/bin"
    assert os.path.basename(str(initbin.display_path())) == "display"
