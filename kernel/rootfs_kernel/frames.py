"""The `display` command's frames in a cell's stdout -> display_data bundles (pure).

Every cell has `display` (sandbox/display.c, bound into each container): it writes a
file as one frame on its stdout,

    ESC _ rootfs-kernel;display;MIME;NAME;DATA ESC \\

(an APC sequence; NAME and DATA in base64), the way bash_kernel's display protocol rides
on its shell's output. FrameReader splits a stream into its text and its frames, chunk by
chunk (a frame may be cut anywhere between two reads); bundle() makes the output a
notebook shows. A cell's stdout is anything its programs print, so a frame is data to
check, never markup to trust: HTML is shown in a sandboxed frame where no script runs,
Markdown is rendered with its raw HTML escaped, SVG is sanitized (svg_image) and goes as
image/svg+xml, and any other type is refused.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from dataclasses import dataclass

from .cell import format_size

START = b"\x1b_rootfs-kernel;display;"
END = b"\x1b\\"
# What a frame may carry (display.c's kinds); 16 MiB of data, in base64.
MAX_FRAME = (16 << 20) * 4 // 3 + 4096
IMAGES = ("image/png", "image/jpeg", "image/gif")
KINDS = (*IMAGES, "image/svg+xml", "text/html", "text/markdown", "text/plain")
_MIME = re.compile(rb"[a-z0-9.+-]+/[a-z0-9.+-]+")


@dataclass(frozen=True)
class Frame:
    """One `display` output, or why a frame could not be read (error)."""

    mime: str = ""
    name: str = ""
    data: bytes = b""
    error: str | None = None


class FrameReader:
    """Text and frames of one stream, in order. feed() returns what is complete; bytes
    that may begin a frame are held until the next chunk shows whether they do, and a
    frame's parts are kept (not joined) until its end comes."""

    def __init__(self) -> None:
        self.held = b""          # the stream's tail that may be the start of a frame
        self.parts: list[bytes] | None = None   # inside a frame: its body so far
        self.size = 0
        self.skipping = False    # inside a frame too long to keep: dropped up to its end

    def feed(self, data: bytes) -> list[bytes | Frame]:
        if self.parts is None and not self.held and b"\x1b" not in data:
            return [data] if data else []   # the common case: plain output
        data, self.held = self.held + data, b""
        out: list[bytes | Frame] = []
        while data:
            if self.parts is not None:
                data = self._body(data, out)
                continue
            at = data.find(START)
            if at < 0:
                # Hold a tail that may be the start of a frame cut by the read.
                esc = data.rfind(b"\x1b", max(0, len(data) - len(START)))
                if esc >= 0 and START.startswith(data[esc:]):
                    data, self.held = data[:esc], data[esc:]
                if data:
                    out.append(data)
                break
            if at:
                out.append(data[:at])
            data = data[at + len(START):]
            self.parts, self.size, self.skipping = [], 0, False
        return out

    def _body(self, data: bytes, out: list) -> bytes:
        """Take a frame's body from `data`; return what follows the frame's end."""
        parts = self.parts
        if parts and parts[-1].endswith(b"\x1b") and data.startswith(b"\\"):
            parts[-1] = parts[-1][:-1]          # the end, cut between two reads
            end, rest = 0, data[1:]
        else:
            end = data.find(END)
            rest = b"" if end < 0 else data[end + len(END):]
        body = data if end < 0 else data[:end]
        if not self.skipping:
            parts.append(body)
            self.size += len(body)
            if self.size > MAX_FRAME:
                out.append(Frame(error="a display frame longer than 16 MiB was dropped"))
                self.skipping = True
        if self.skipping:   # keep only what may begin the end
            self.parts = parts = [body[-1:]]
        if end >= 0:
            if not self.skipping:
                out.append(parse(b"".join(parts)))
            self.parts, self.skipping = None, False
        return rest

    def close(self) -> list[bytes | Frame]:
        """At the end of the stream: what was held is text after all; a frame that never
        ended is said to be cut."""
        held, self.held = self.held, b""
        if self.parts is not None:
            cut = not self.skipping
            self.parts, self.skipping = None, False
            return [Frame(error="a display frame was cut off (was its program killed?)")
                    ] if cut else []
        return [held] if held else []


def parse(fields: bytes) -> Frame:
    """MIME;NAME;DATA (the part of a frame after its start) -> Frame."""
    parts = fields.split(b";")
    if len(parts) != 3 or not _MIME.fullmatch(parts[0]):
        return Frame(error="a display frame that is not one (MIME;NAME;DATA expected)")
    mime = parts[0].decode()
    try:
        name = base64.b64decode(parts[1], validate=True).decode("utf-8", "replace")
        data = base64.b64decode(parts[2], validate=True)
    except (binascii.Error, ValueError):
        return Frame(mime, error="a display frame whose data is not base64")
    if mime not in KINDS:
        return Frame(mime, name, error=f"display: {mime} cannot be shown (only "
                                       f"{', '.join(KINDS)})")
    if mime == "image/svg+xml":
        try:
            data = svg_image(data)
        except ValueError as err:
            return Frame(mime, name, error=f"display: {name} is not an SVG image ({err}): it "
                         "must be well-formed XML whose root is <svg xmlns=\"http://www.w3."
                         "org/2000/svg\">")
    return Frame(mime, name, data)


# Pictures an SVG may embed as data: URLs; every other data: URL is dropped.
SVG_DATA_IMAGES = {"image": ["png", "jpeg", "gif", "webp"]}


def svg_image(svg: bytes) -> bytes:
    """The SVG with only what draws a picture: Cloudflare's svg-hush keeps an allowlist of
    SVG elements and attributes (no script, event handler, foreignObject or element of
    another namespace), drops javascript: and data: URLs but SVG_DATA_IMAGES, and takes the
    host off every other reference, in attributes and CSS alike, so that nothing is loaded
    from another site. JupyterLab draws image/svg+xml as an image, where none of that runs
    anyway; nbconvert, the book and other front-ends put it in the page. ValueError: not
    an SVG document."""
    from py_svg_hush import filter_svg

    # Without the XML declaration it writes first: the SVG may be put into an HTML page.
    return filter_svg(svg, SVG_DATA_IMAGES).removeprefix(_XML_DECLARATION)


_XML_DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>\n'


def bundle(frame: Frame) -> dict:
    """The display_data `data` of one frame (every bundle has text/plain)."""
    label = f"[display: {frame.name}, {frame.mime}, {format_size(len(frame.data), decimals=1)}]"
    if frame.mime in IMAGES:
        return {frame.mime: base64.b64encode(frame.data).decode(), "text/plain": label}
    text = frame.data.decode("utf-8", "replace")
    if frame.mime == "image/svg+xml":
        return {"image/svg+xml": text, "text/plain": label}
    if frame.mime == "text/html":
        # srcdoc in a sandbox without allow-scripts: its own origin, no script, no form,
        # no navigation of the notebook; as tall as its text looks (no script in it may
        # say), and a reader can make it taller.
        return {"text/html": '<iframe sandbox="" title="' + html.escape(frame.name) +
                f'" style="width:100%;height:{frame_height(text):g}em;resize:vertical;'
                'border:1px solid var(--jp-border-color2,#d0d7de);background:#fff" srcdoc="'
                + html.escape(text, quote=True) + '"></iframe>', "text/plain": label}
    if frame.mime == "text/markdown":
        return {"text/html": markdown_html(text), "text/plain": text}
    return {"text/plain": text}


FRAME_EM = (4.0, 24.0)   # the frame's height: at least, at most (a reader may resize it)


def frame_height(page: str) -> float:
    """About how tall `page` is, in em of the frame: its block elements and lines (a
    heading counts more, an image a screenful), between FRAME_EM's bounds."""
    from html.parser import HTMLParser

    class Lines(HTMLParser):
        blocks = {"p", "div", "li", "tr", "pre", "br", "hr", "dt", "dd", "blockquote",
                  "section", "article", "header", "footer", "table", "ul", "ol", "form"}
        em = 0.0
        chars = 0

        def handle_starttag(self, tag, attrs):  # noqa: ANN001
            if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
                self.em += 2.2
            elif tag in ("img", "svg", "video", "canvas"):
                self.em += 12
            elif tag in self.blocks:
                self.em += 1.4

        def handle_data(self, data):  # noqa: ANN001
            self.chars += len(data.strip())
            self.em += 1.4 * data.strip().count("\n")

    lines = Lines()
    lines.feed(page)
    em = 2 + max(lines.em, 1.4 * (lines.chars > 0)) + 1.4 * (lines.chars // 100)
    return round(min(FRAME_EM[1], max(FRAME_EM[0], em)), 1)


def markdown_html(text: str) -> str:
    """CommonMark with tables, its raw HTML shown as text and only safe links followed
    (markdown-it's defaults with html off)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
