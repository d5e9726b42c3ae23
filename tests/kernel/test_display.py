"""`display` in a cell, through jupyter_client: a PNG and an SVG made in the cell become
image outputs between the cell's text, HTML and Markdown are shown without running what
they carry, every cell has the command, and what is not a display stays text."""

from __future__ import annotations

import base64

from rootfs_kernel.frames import svg_image

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
                       "DwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
# The PNG as the cell writes it: printf with octal escapes, no base64 in the image.
MAKE_PNG = "printf '" + "".join(f"\\{b:03o}" for b in PNG) + "' > /tmp/dot.png"
SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">'
       '<rect width="40" height="20" fill="#0969da"/><text x="4" y="15">cell</text></svg>')


def ordered(kernel, code: str) -> list[tuple[str, object]]:
    """The cell's outputs in the order the kernel sent them: ("stdout", text) or
    ("display", data); the reply last."""
    kc = kernel.kc
    msg_id = kc.execute(code)
    out: list[tuple[str, object]] = []
    while True:
        msg = kc.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "status" and content["execution_state"] == "idle":
            break
        if kind == "stream":
            if out and out[-1][0] == content["name"]:
                out[-1] = (content["name"], out[-1][1] + content["text"])
            else:
                out.append((content["name"], content["text"]))
        elif kind == "display_data":
            out.append(("display", content["data"]))
        elif kind == "error":
            out.append(("error", content["evalue"]))
    while True:
        reply = kc.get_shell_msg(timeout=60)
        if reply["parent_header"].get("msg_id") == msg_id:
            return [*out, ("reply", reply["content"]["status"])]


def test_a_png_made_in_the_cell_is_shown_between_the_text_around_it(kernel):
    out = ordered(kernel, f"{MAKE_PNG}\necho before\ndisplay /tmp/dot.png\necho after")
    assert [k for k, _ in out] == ["stdout", "display", "stdout", "reply"], out
    assert out[0][1] == "before\n" and out[2][1] == "after\n"
    data = out[1][1]
    assert base64.b64decode(data["image/png"]) == PNG
    assert data["text/plain"] == f"[display: dot.png, image/png, {len(PNG)} B]"


def test_an_svg_made_in_the_cell_is_an_svg_output(kernel):
    res = kernel.ok(f"cat > /tmp/bar.svg <<'EOF'\n{SVG}\nEOF\ndisplay /tmp/bar.svg")
    (data,) = [d["data"] for d in res.displays]
    # The drawing as the sanitizer writes it back (display.svg_image): the same elements,
    # attributes and text.
    assert data["image/svg+xml"] == svg_image(SVG.encode()).decode() and res.stdout == ""
    assert '<rect fill="#0969da" height="20" width="40"/>' in data["image/svg+xml"]
    assert '<text x="4" y="15">cell</text>' in data["image/svg+xml"]


def test_html_is_sandboxed_and_markdown_shows_its_html_as_text(kernel):
    res = kernel.ok("echo '<h2 id=r>Report</h2><script>parent.pwned = 1</script>' > /tmp/r.html\n"
                    "display --html /tmp/r.html\n"
                    "printf '# Title\\n\\n<img src=x onerror=alert(1)> *done*\\n' | display "
                    "--markdown -")
    html, md = (d["data"] for d in res.displays)
    assert html["text/html"].startswith('<iframe sandbox=""') and "srcdoc=" in html["text/html"]
    assert "&lt;script&gt;" in html["text/html"]
    assert "<h1>Title</h1>" in md["text/html"] and "<img" not in md["text/html"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in md["text/html"]


def test_every_cell_has_display_whatever_its_root(kernel):
    for header in ("%root chroot\n", "%root none\n", "%%host\n", "%image busybox --build\n"):
        res = kernel.ok(f"{header}printf '<svg xmlns=\"http://www.w3.org/2000/svg\"/>' | "
                        "display --svg", timeout=120)
        assert [d["data"].get("image/svg+xml") for d in res.displays if
                "image/svg+xml" in d["data"]] == ['<svg xmlns="http://www.w3.org/2000/svg"/>'], \
            (header, res.stderr)


def test_display_leaves_no_trace_in_the_image_or_the_cells_fds(kernel):
    res = kernel.ok("%show changes\nls -a /proc/self/fd/ | tr '\\n' ' '; echo; "
                    "command -v display; "
                    "grep ' /dev/.rootfs-kernel/display ' /proc/self/mountinfo | cut -d' ' -f6")
    fds, where, options = res.stdout.splitlines()
    assert fds.split() == [".", "..", "0", "1", "2", "3"]   # 3: ls reading the directory
    assert where == "/dev/.rootfs-kernel/display"
    assert options.split(",")[0] == "ro"   # a read-only bind, in the cell's own /dev
    changes = [d["data"]["text/plain"] for d in res.displays]
    assert changes and "/dev" not in changes[0]


def test_a_failed_display_says_why_and_fails_the_script(kernel):
    res = kernel.run("display /no/such.png")
    assert not res.ok and "display: /no/such.png: No such file or directory" in res.stderr
    res = kernel.run("head -c 100 /dev/urandom > /tmp/blob; display /tmp/blob")
    assert not res.ok and "say it: display --png" in res.stderr


def test_a_forged_frame_of_another_type_stays_out_of_the_notebook(kernel):
    js = base64.b64encode(b"alert(1)").decode()
    res = kernel.ok("printf '\\033_rootfs-kernel;display;application/javascript;eA==;"
                    f"{js}\\033\\\\'; echo next")
    assert res.displays == [] and res.stdout == "next\n"
    assert "application/javascript cannot be shown" in res.stderr


def test_a_host_cell_finds_display_where_it_was_built(kernel):
    from rootfs_kernel.sandbox import initbin

    res = kernel.ok("%%host\ncommand -v display")
    assert res.stdout.strip() == str(initbin.display_path())
