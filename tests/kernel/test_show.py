"""`%show` end to end: cells through jupyter_client, assertions on every display bundle.

Each view is checked three ways: the compare+json payload against what the host and the
cell really hold, the self-contained HTML table (marks, row status, highlighted fields),
and the widget, which must answer comm messages, also while another cell runs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
import uuid
from collections import Counter
from html.parser import HTMLParser

import pytest

from rootfs_kernel.inspect.mounts import parse_mountinfo
from rootfs_kernel.views import MIME_TYPE, WIDGET_MIME_TYPE, render_html
from rootfs_kernel.views.payload import side_values

ROOT = os.geteuid() == 0
MARKS = {"same": " ", "only-cell": "+", "only-host": "-", "differs": "~"}


# --- reading a bundle -----------------------------------------------------------------------


def bundles(res) -> list[dict]:
    return [d["data"] for d in res.displays]


def the_payload(res) -> dict:
    assert len(res.displays) == 1, (res.stderr, [list(d["data"]) for d in res.displays])
    data = res.displays[0]["data"]
    assert {"text/plain", "text/html", MIME_TYPE, WIDGET_MIME_TYPE} <= data.keys()
    return data[MIME_TYPE]


def by_key(rows: list[dict]) -> dict[str, dict]:
    return {r["key"]: r for r in rows}


class _Table(HTMLParser):
    """The body rows of a rendered table: [(data-status, [(td class, text, highlighted)])]."""

    def __init__(self) -> None:
        super().__init__()
        self.trs: list[tuple[str, list[tuple[str, str, bool]]]] = []
        self.note = ""
        self._tds: list | None = None
        self._td: list | None = None
        self._in_note = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-status" in a:
            self._tds = []
            self.trs.append((a["data-status"], self._tds))
        elif tag == "td" and self._tds is not None:
            self._td = [a.get("class") or "", [], False]
        elif tag == "span" and self._td is not None and a.get("class") == "rfk-hl":
            self._td[2] = True
        elif tag == "div" and a.get("class") == "rfk-note":
            self._in_note = True

    def handle_endtag(self, tag):
        if tag == "td" and self._td is not None and self._tds is not None:
            self._tds.append((self._td[0], "".join(self._td[1]), self._td[2]))
            self._td = None
        elif tag == "tr":
            self._tds = None
        elif tag == "div":
            self._in_note = False

    def handle_data(self, data):
        if self._td is not None:
            self._td[1].append(data)
        elif self._in_note:
            self.note += data


def html_lines(html: str, payload: dict) -> list[dict]:
    """Display lines of the HTML table: key, mark, status, side, values, highlighted
    (the columns with a highlighted part)."""
    parser = _Table()
    parser.feed(html)
    # As the table draws them: the columns a reader needs first, then the "more" ones.
    cols = payload["columns"]
    names = [c["name"] for c in cols if not c.get("more")] + \
        [c["name"] for c in cols if c.get("more")]
    two_sided = len(payload["sides"]) == 2
    out: list[dict] = []
    for status, tds in parser.trs:
        classes = [c for c, _, _ in tds]
        if "rfk-group" in classes:               # a folded run of alike rows
            out.append({"status": status, "mark": tds[0][1], "key": tds[1][1],
                        "group": tds[2][1]})
            continue
        if classes[:2] == ["rfk-mark", "rfk-key"]:   # first line of a row
            mark, key = tds[0][1], tds[1][1]
            rest = tds[2:]
        elif classes[:1] == ["rfk-key"]:             # (no mark column: nothing differs)
            mark, key = MARKS[status], tds[0][1]
            rest = tds[1:]
        else:                                        # second line of a "differs" row
            mark, key = out[-1]["mark"], out[-1]["key"]
            rest = tds
        side = rest[0][1] if two_sided else "cell"
        values = rest[int(two_sided):int(two_sided) + len(names)]
        if payload["kind"] == "listing":  # openable directories are shown as "name/"
            key = key.removesuffix("/")
        out.append({"status": status, "mark": mark, "key": key, "side": side,
                    "values": {n: t for n, (_, t, _) in zip(names, values, strict=True)},
                    "highlighted": {n for n, (_, _, hl) in zip(names, values, strict=True)
                                    if hl}})
    return out


def html_note(html: str) -> str:
    parser = _Table()
    parser.feed(html)
    return parser.note


def full_html(payload: dict) -> str:
    """Every row of a payload as the widget's "show all" draws it."""
    return render_html(payload, expanded=True, max_lines=None)


def lines_for(lines: list[dict], key: str) -> list[dict]:
    return [ln for ln in lines if ln["key"] == key]


# --- %show mounts -----------------------------------------------------------------------------


def host_mounts() -> Counter:
    """How many mounts each mount point has on the host (stacked mounts count each)."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return Counter(m.mount_point for m in parse_mountinfo(f.read()))


def host_fstypes() -> dict[str, set[str]]:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        out: dict[str, set[str]] = {}
        for m in parse_mountinfo(f.read()):
            out.setdefault(m.mount_point, set()).add(m.fstype)
        return out


def test_mounts_tmpfs_at_tmp_is_marked_and_host_mounts_are_host_only(kernel):
    """Holds on any host: stacked host mounts (/dev/pts twice, as containers and systemd
    make), a host with its own /tmp mount, mounts another program adds meanwhile."""
    before = host_mounts()
    res = kernel.ok("%mount tmpfs /tmp\n%show mounts\necho done")
    after = host_mounts()
    assert res.stdout == "done\n"
    p = the_payload(res)
    assert p["kind"] == "mounts" and [s["name"] for s in p["sides"]] == ["cell", "host"]
    fstypes = host_fstypes()

    # /tmp: the cell's tmpfs is the visible (top) row of /tmp.
    tmp = [r for r in p["rows"] if r["key"] == "/tmp"][-1]
    assert tmp["cell"]["fstype"] == "tmpfs"
    if "/tmp" in before:  # a host with its own /tmp mount: paired with the host's top one
        assert tmp["status"] in ("differs", "same")
        assert side_values(tmp, "host")["fstype"] in fstypes["/tmp"]
    else:
        assert tmp["status"] == "only-cell" and "host" not in tmp

    # The root is the cell's overlay: fs type highlighted unless the host's is overlay too.
    (root,) = [r for r in p["rows"] if r["key"] == "/"]
    assert root["status"] == "differs" and root["cell"]["fstype"] == "overlay"
    assert root["host"]["fstype"] in fstypes["/"]
    assert ("fstype" in root["differs"]) is (root["host"]["fstype"] != "overlay")
    assert "source" in root["differs"] or "super_options" in root["differs"]

    # Every host mount is one row with the host's values, stacked ones included: a mount
    # point has as many host-side rows as the host has mounts there (read before and
    # after the cell, so a mount another program made meanwhile is allowed for).
    host_side = Counter(r["key"] for r in p["rows"] if side_values(r, "host") is not None)
    for point in before.keys() | after.keys():
        assert min(before[point], after[point]) <= host_side[point] <= \
            max(before[point], after[point]), point
    # A host mount point the cell lacks is only-host; where the host has stacked more
    # mounts than the cell, the extra ones sit below and say they are covered.
    cell_side = Counter(r["key"] for r in p["rows"] if "cell" in r)
    for r in p["rows"]:
        if r["status"] != "only-host":
            continue
        assert "cell" not in r
        assert r["host"]["fstype"] in fstypes.get(r["key"], {r["host"]["fstype"]})
        if cell_side[r["key"]]:
            assert "covered" in r["note"], r
    assert p["summary"]["total"] == len(p["rows"])
    stacked = [pt for pt, n in before.items() if n > 1 and after[pt] == n]
    for point in stacked:  # the covered rows come first (mount order), the visible last
        rows = [r for r in p["rows"] if r["key"] == point]
        assert all("covered" in (r.get("note") or "") for r in rows[:-1])
        assert "covered" not in (rows[-1].get("note") or "")

    # The HTML says the same, line by line (every row, as "show all" draws it).
    lines = html_lines(full_html(p), p)
    tmp_line = lines_for(lines, "/tmp")[-1 if tmp["status"] == "only-cell" else -2]
    assert tmp_line["status"] == tmp["status"] and tmp_line["mark"] == MARKS[tmp["status"]]
    assert tmp_line["side"] in ("cell", "both") and tmp_line["values"]["fstype"] == "tmpfs"
    cell_root, host_root = lines_for(lines, "/")
    assert (cell_root["side"], host_root["side"]) == ("cell", "host")
    assert cell_root["values"]["fstype"] == "overlay"
    assert host_root["values"]["fstype"] == root["host"]["fstype"]
    assert cell_root["highlighted"] | host_root["highlighted"] <= set(root["differs"])
    assert "fstype" not in root["differs"] or "fstype" in cell_root["highlighted"]
    for r in p["rows"]:
        if r["status"] == "only-host":
            assert any((ln["status"], ln["mark"], ln["side"]) == ("only-host", "-", "host")
                       for ln in lines_for(lines, r["key"]))
    assert len({ln["key"] for ln in lines}) == len({r["key"] for r in p["rows"]})

    # The bundle's own HTML and text show the collapsed view: headline and differences.
    data = res.displays[0]["data"]
    assert data["text/html"] == render_html(p)
    assert p["headline"].startswith("/ is an overlay of image minimal")
    assert p["headline"] in data["text/plain"] and "/tmp" in data["text/plain"]
    tmp_text = [ln for ln in data["text/plain"].splitlines() if ln[3:].startswith("/tmp ")]
    assert tmp_text and tmp_text[-1].startswith(MARKS[tmp["status"]]) and "tmpfs" in tmp_text[-1]


@pytest.mark.rootonly
def test_a_mount_made_on_the_host_is_host_only(kernel, tmp_path):
    point = tmp_path / "host mount"  # a space: mountinfo escapes it as \040
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "rk-host-only", str(point)],
                   check=True)
    try:
        res = kernel.ok("%show mounts\ntrue")
    finally:
        subprocess.run(["umount", str(point)], check=True)
    p = the_payload(res)
    row = by_key(p["rows"])[str(point)]
    assert row["status"] == "only-host" and "cell" not in row
    assert row["host"]["fstype"] == "tmpfs" and row["host"]["source"] == "rk-host-only"
    (ln,) = lines_for(html_lines(full_html(p), p), str(point))
    assert ln["mark"] == "-" and ln["values"]["source"] == "rk-host-only"


# --- %show ls ---------------------------------------------------------------------------------


def stat_lines(stdout: str) -> dict[str, dict]:
    """`find DIR -mindepth 1 -maxdepth 1 -exec stat -c '%n|%A|%s|%u:%g|%F'` in a cell."""
    out = {}
    for line in stdout.splitlines():
        path, perms, size, owner, kind = line.split("|")
        out[os.path.basename(path)] = {"mode": perms, "size": int(size), "owner": owner,
                                       "dir": kind == "directory"}
    return out


STAT_CMD = "find {0} -mindepth 1 -maxdepth 1 -exec stat -c '%n|%A|%s|%u:%g|%F' {{}} +"


def test_ls_etc_compares_the_cell_with_its_image_before_the_cell(kernel):
    image = stat_lines(kernel.ok(STAT_CMD.format("/etc")).stdout)  # a fresh cell: the image
    assert "hostname" in image  # the image has one to delete
    res = kernel.ok("%show ls /etc\ntouch /etc/rk-only-in-cell\nrm /etc/hostname\n"
                    "echo 10.0.0.2 db >> /etc/hosts\n" + STAT_CMD.format("/etc"))
    cell = stat_lines(res.stdout)
    p = the_payload(res)
    assert p["kind"] == "listing" and p["paths"] == {"cell": "/etc", "host": None}
    assert p["title"] == "Listing of /etc: the cell vs image minimal before the cell"
    assert [s["label"] for s in p["sides"]] == ["cell", "image"]
    rows = by_key(p["rows"])
    assert {k for k, r in rows.items() if "cell" in r} == set(cell)
    assert {k for k, r in rows.items() if side_values(r, "host")} == set(image)
    assert rows["rk-only-in-cell"]["status"] == "only-cell"
    assert rows["hostname"]["status"] == "only-host"
    assert rows["hosts"]["status"] == "differs" and rows["hosts"]["differs"] == ["size"]
    assert {k for k, r in rows.items() if r["status"] == "same"} == \
        set(cell) - {"rk-only-in-cell", "hosts"}

    for name, r in rows.items():
        for side, seen in (("cell", cell), ("host", image)):
            values = side_values(r, side)
            if values is None:
                continue
            assert values["mode"] == seen[name]["mode"]   # what stat saw in a cell
            assert values["owner"] == seen[name]["owner"]
            assert values["size"] == (None if seen[name]["dir"] else seen[name]["size"])

    lines = html_lines(full_html(p), p)
    (new,) = lines_for(lines, "rk-only-in-cell")
    assert (new["status"], new["mark"], new["side"]) == ("only-cell", "+", "cell")
    assert new["values"]["type"] == "file" and new["values"]["size"] == "0"
    (gone,) = lines_for(lines, "hostname")
    assert (gone["mark"], gone["side"]) == ("-", "image")
    cell_hosts, image_hosts = lines_for(lines, "hosts")
    assert cell_hosts["highlighted"] == image_hosts["highlighted"] == {"size"}
    assert "1 only in cell, 1 only in image, 1 differs" in res.displays[0]["data"]["text/plain"]


def test_ls_with_a_host_path_compares_with_the_host(kernel):
    res = kernel.ok("%show ls /etc /etc\ntouch /etc/rk-only-in-cell")
    p = the_payload(res)
    assert p["paths"] == {"cell": "/etc", "host": "/etc"}
    assert [s["label"] for s in p["sides"]] == ["cell", "host"]
    assert "on the host" in p["title"] or "the host" in p["title"]
    rows = by_key(p["rows"])
    assert {k for k, r in rows.items() if side_values(r, "host")} == set(os.listdir("/etc"))
    assert rows["rk-only-in-cell"]["status"] == "only-cell"


def walk(rows: list[dict], prefix: str):
    for r in rows:
        path = f"{prefix.rstrip('/')}/{r['key']}"
        yield path, r
        yield from walk(r.get("children", {}).get("rows", []), path)


def test_ls_root_against_the_hosts_root(kernel):
    res = kernel.ok("%show ls / /\n" + STAT_CMD.format("/"))
    p = the_payload(res)
    top = by_key(p["rows"])
    cell = stat_lines(res.stdout)
    assert {k for k, r in top.items() if "cell" in r} == set(cell)
    assert {k for k, r in top.items() if side_values(r, "host") is not None} == \
        set(os.listdir("/"))
    # The host's / is far bigger than the budget: the snapshot says it was cut.
    # (which budget cuts first depends on the host's tree: entries or depth)
    assert p["truncated"] is True and ("max_entries" in p["note"] or "max_depth" in p["note"])
    assert p["note"].split(";")[0] in html_note(res.displays[0]["data"]["text/html"])
    # Directories read on both sides can be opened in the widget.
    assert "children" in top["etc"] and top["etc"]["children"]["rows"]
    # Nothing is marked only-in-cell that the host has: cut or unread directories on the
    # host side must not make the cell's entries look new.
    wrong = [path for path, r in walk(p["rows"], "/")
             if r["status"] == "only-cell" and not path.startswith(("/proc/", "/sys/"))
             and os.path.lexists(path)]
    assert wrong == []


def test_ls_of_a_missing_path_is_a_note_not_a_crash(kernel):
    res = kernel.ok("%show ls /nonexistent\necho still here")
    assert res.stdout == "still here\n" and res.errors == []
    p = the_payload(res)
    assert p["rows"] == [] and p["summary"]["total"] == 0
    for side in ("cell", "host"):
        assert p["notes"][side] == "/nonexistent: No such file or directory"
    data = res.displays[0]["data"]
    assert "No such file or directory" in html_note(data["text/html"])
    assert "nothing was read (see the note)" in data["text/html"]
    assert "note: cell: /nonexistent: No such file or directory" in data["text/plain"]

    # Missing on the host only: every cell entry is one-sided and the note says why.
    res = kernel.ok("%show ls /etc /nonexistent-on-host\ntrue")
    p = the_payload(res)
    assert p["rows"] and {r["status"] for r in p["rows"]} == {"only-cell"}
    assert "No such file or directory" in p["notes"]["host"] and "cell" not in p["notes"]


def expected_owner_difference(p: dict) -> None:
    """Files of the same directory read on both sides: identical as root; rootless, the
    cell's user namespace maps the user to 0, so only the owner differs (0:0 vs uid:gid)."""
    me = f"{os.getuid()}:{os.getgid()}"
    for r in p["rows"]:
        flagged = set(r.get("differs", ()))
        if ROOT:
            assert r["status"] == "same" and not flagged, r
        else:
            assert r["status"] == "differs" and flagged == {"owner"}, r
            assert (r["cell"]["owner"], r["host"]["owner"]) == ("0:0", me)


def make_big_dir(path, n: int = 10_000) -> list[str]:
    path.mkdir()
    names = [f"f{i}" for i in range(n)]
    for name in names:
        (path / name).touch()
    return names


def test_ten_thousand_entries_are_cut_with_a_note_and_return_quickly(kernel, tmp_path):
    names = make_big_dir(tmp_path / "big")
    start = time.monotonic()
    res = kernel.ok(f"%bind {tmp_path}/big /mnt/big ro\n%show ls /mnt/big {tmp_path}/big\n"
                    "ls /mnt/big | wc -l")
    elapsed = time.monotonic() - start
    print(f"\n%show ls of a 10,000-entry directory: {elapsed * 1000:.0f} ms")
    assert res.stdout.strip() == "10000"
    p = the_payload(res)
    assert p["truncated"] is True
    for side in ("cell", "host"):
        assert "entry budget of 2000" in p["notes"][side]
    # Both sides keep the same (alphabetically first) names: nothing looks one-sided.
    assert [r["key"] for r in p["rows"]] == sorted(names)[:2000]
    assert p["summary"]["only-cell"] == p["summary"]["only-host"] == 0
    expected_owner_difference(p)
    assert "entry budget of 2000" in html_note(res.displays[0]["data"]["text/html"])
    assert elapsed < 10


def test_a_cut_directory_listed_in_another_order_is_not_misreported(kernel, tmp_path):
    # Same 10,000 names on both sides, but the cell's tmpfs lists them in creation order
    # reversed while the host's filesystem has its own order. A cut taken in readdir
    # order would mark most kept names as one-sided on both sides.
    names = make_big_dir(tmp_path / "big")
    res = kernel.ok(f"%mount tmpfs /tmp\n%show ls /tmp/big {tmp_path}/big\n"
                    "mkdir /tmp/big && cd /tmp/big && i=9999\n"
                    "while [ $i -ge 0 ]; do : > f$i; i=$((i-1)); done")
    p = the_payload(res)
    assert p["truncated"] is True
    assert [r["key"] for r in p["rows"]] == sorted(names)[:2000]
    expected_owner_difference(p)


# --- %show changes ----------------------------------------------------------------------------


def test_changes_added_deleted_changed_with_sizes(kernel):
    before = kernel.ok("wc -c < /etc/passwd; test -e /etc/hostname && echo hostname\n"
                       "test -d /opt && echo opt; true").stdout.split()
    passwd_size = int(before[0])
    res = kernel.ok("%show changes\n"
                    "touch /etc/new; rm /etc/hostname; echo x >> /etc/passwd; mkdir -p /opt/d")
    p = the_payload(res)
    assert p["kind"] == "changes" and [s["name"] for s in p["sides"]] == ["cell"]
    rows = by_key(p["rows"])
    opt = "C" if "opt" in before else "A"
    expected = {
        "/etc": ("C", "dir"),
        "/etc/hostname": ("D", None),
        "/etc/new": ("A", "file"),
        "/etc/passwd": ("C", "file"),
        "/opt": (opt, "dir"),
        "/opt/d": ("A", "dir"),
    }
    assert "hostname" in before  # the image has one to delete
    assert {k: (r["cell"]["change"], r["cell"]["type"]) for k, r in rows.items()} == expected
    assert rows["/etc/new"]["cell"]["size"] == 0
    assert rows["/etc/passwd"]["cell"]["size"] == passwd_size + 2
    assert rows["/etc/hostname"]["cell"]["size"] is None
    status = {"A": "only-cell", "D": "only-host", "C": "differs"}
    for r in rows.values():
        assert r["status"] == status[r["cell"]["change"]] and "host" not in r
    added = sum(1 for c, _ in expected.values() if c == "A")
    changed = sum(1 for c, _ in expected.values() if c == "C")
    assert p["summary"]["only-cell"] == added and p["summary"]["differs"] == changed

    data = res.displays[0]["data"]
    lines = {ln["key"]: ln for ln in html_lines(data["text/html"], p)}
    assert (lines["/etc/hostname"]["mark"], lines["/etc/hostname"]["status"]) == \
        ("-", "only-host")
    assert (lines["/etc/new"]["mark"], lines["/etc/new"]["values"]["change"]) == ("+", "A")
    assert lines["/etc/passwd"]["mark"] == "~"
    assert lines["/etc/passwd"]["values"]["size"] == str(passwd_size + 2)
    assert f"{added} added, {changed} changed, 1 deleted" in data["text/plain"]


def test_changes_of_an_untouched_cell_are_empty(kernel):
    p = the_payload(kernel.ok("%show changes\ncat /etc/passwd > /dev/null"))
    assert p["rows"] == [] and p["truncated"] is False


# --- %show ns ---------------------------------------------------------------------------------


def host_ns(name: str) -> str:
    return os.readlink(f"/proc/self/ns/{name}")


@pytest.mark.parametrize("unshare, own", [
    ("", {"mnt", "pid", "uts", "ipc", "net"}),                 # what every cell has
    ("%unshare mnt\n", {"mnt", "pid", "uts", "ipc", "net"}),    # cannot be dropped
    ("%unshare net\n", {"mnt", "pid", "uts", "ipc", "net"}),
    ("%net host\n", {"mnt", "pid", "uts", "ipc"}),             # the host's network
])
def test_ns_marks_the_cells_own_namespaces(kernel, unshare, own):
    res = kernel.ok(f"{unshare}%show ns\nreadlink /proc/self/ns/mnt /proc/self/ns/net")
    p = the_payload(res)
    rows = by_key(p["rows"])
    # The script always runs in a user namespace of its own (rootless: the cell's; as
    # root: one that maps its root to an unprivileged range and locks the setup's mounts).
    own = own | {"user"}
    for name in ("mnt", "pid", "net", "user", "uts", "ipc"):
        r = rows[name]
        assert side_values(r, "host") == {"id": host_ns(name)}
        assert r["status"] == ("differs" if name in own else "same"), name
        assert ("id" in r.get("differs", ())) is (name in own)
    cell_mnt, cell_net = res.stdout.split()
    assert rows["mnt"]["cell"]["id"] == cell_mnt and rows["net"]["cell"]["id"] == cell_net

    lines = html_lines(res.displays[0]["data"]["text/html"], p)
    mnt = lines_for(lines, "mnt")
    assert [ln["side"] for ln in mnt] == ["cell", "host"]
    assert all(ln["highlighted"] == {"id"} and ln["mark"] == "~" for ln in mnt)
    assert mnt[0]["values"]["id"] == cell_mnt
    if "net" not in own:
        (net,) = lines_for(lines, "net")
        assert (net["side"], net["mark"], net["highlighted"]) == ("both", " ", set())


# --- several views, and the cell's result ---------------------------------------------------


def test_several_show_lines_give_bundles_in_header_order(kernel):
    res = kernel.ok("%show ns\n%show ls /etc\n%show changes\n%show mounts\n%show ls /\n"
                    "echo out")
    kinds = [d[MIME_TYPE]["kind"] for d in bundles(res)]
    assert kinds == ["ns", "listing", "changes", "mounts", "listing"]
    assert [d[MIME_TYPE]["paths"]["cell"] for d in bundles(res) if "paths" in d[MIME_TYPE]] \
        == ["/etc", "/"]
    assert res.stdout == "out\n"
    models = [d[WIDGET_MIME_TYPE]["model_id"] for d in bundles(res)]
    assert len(set(models)) == 5


SCRIPT = "echo out; echo err >&2; {end}"


@pytest.mark.parametrize("end, ename, evalue", [
    ("true", None, None),
    ("exit 3", "ExitStatus", "the script exited with status 3"),
    ("kill -9 $$", "ExitStatus", "status 137 (killed by SIGKILL)"),
])
def test_snapshots_do_not_change_output_or_status(kernel, end, ename, evalue):
    plain = kernel.run(SCRIPT.format(end=end))
    shown = kernel.run("%show mounts\n%show changes\n%show ns\n%show ls /etc\n"
                       + SCRIPT.format(end=end))
    assert plain.displays == []
    for res in (plain, shown):
        assert (res.stdout, res.stderr) == ("out\n", "err\n")
        assert res.reply["status"] == ("ok" if ename is None else "error")
        if ename:
            assert res.reply["ename"] == ename and evalue in res.reply["evalue"]
            assert [e["ename"] for e in res.errors] == [ename]
    if ename:
        assert shown.reply["evalue"] == plain.reply["evalue"]
    assert [d[MIME_TYPE]["kind"] for d in bundles(shown)] == ["mounts", "changes", "ns",
                                                              "listing"]
    assert by_key(bundles(shown)[0][MIME_TYPE]["rows"])["/"]["cell"]["fstype"] == "overlay"


# --- widgets ----------------------------------------------------------------------------------


def run_collecting(kernel, code: str, timeout: float = 60) -> tuple[dict, list[dict]]:
    """Execute and return (reply content, every IOPub message of the request)."""
    kc = kernel.kc
    msg_id = kc.execute(code)
    msgs = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        msgs.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    return kc.get_shell_msg(timeout=timeout)["content"], msgs


def widget_parts(msgs: list[dict], *, opened_only: bool = False
                 ) -> tuple[dict, dict[str, dict]]:
    """(the display's data, {comm_id: model state}) from a cell's IOPub messages, with
    the kernel's later updates applied as a front-end would (unless opened_only)."""
    models = {m["content"]["comm_id"]: dict(m["content"]["data"]["state"])
              for m in msgs if m["msg_type"] == "comm_open"}
    assert all(m["content"]["target_name"] == "jupyter.widget"
               for m in msgs if m["msg_type"] == "comm_open")
    for m in msgs:
        data = m["content"].get("data") or {}
        if m["msg_type"] == "comm_msg" and data.get("method") == "update" and not opened_only:
            models[m["content"]["comm_id"]].update(data["state"])
    (display,) = [m["content"]["data"] for m in msgs if m["msg_type"] == "display_data"]
    return display, models


def ref(model_ref: str) -> str:
    assert model_ref.startswith("IPY_MODEL_")
    return model_ref[len("IPY_MODEL_"):]


def filter_and_table(display: dict, models: dict[str, dict]) -> tuple[str, str]:
    """Comm ids of the filter Text and the table HTML, found from the displayed model."""
    top = models[display[WIDGET_MIME_TYPE]["model_id"]]
    assert top["_model_name"] == "VBoxModel"
    # The heading, then the controls, then the table.
    assert models[ref(top["children"][0])]["_model_name"] == "HTMLModel"
    controls = models[ref(top["children"][1])]
    text_id = ref(controls["children"][0])
    table_id = ref(top["children"][-1])
    assert models[text_id]["_model_name"] == "TextModel"
    assert models[table_id]["_model_name"] == "HTMLModel"
    return text_id, table_id


def send_filter(kernel, comm_id: str, value: str) -> str:
    kc = kernel.kc
    msg = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {
        "method": "update", "state": {"value": value}, "buffer_paths": []}})
    kc.session.send(kc.shell_channel.socket, msg)
    return msg["header"]["msg_id"]


def wait_for_update(kernel, comm_id: str, parent: str, timeout: float = 20,
                    until_idle_of: str | None = None
                    ) -> tuple[dict | None, list[tuple[str, float]]]:
    """The first IOPub update of comm_id caused by message `parent`; with until_idle_of,
    keep reading up to that request's idle and return the order of events."""
    events: list[tuple[str, float]] = []
    update = None
    deadline = time.monotonic() + timeout
    while True:
        msg = kernel.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        parent_id = msg["parent_header"].get("msg_id")
        c = msg["content"]
        if (msg["msg_type"] == "comm_msg" and parent_id == parent and c["comm_id"] == comm_id
                and c["data"].get("method") == "update" and update is None):
            update = c["data"]["state"]
            events.append(("update", time.monotonic()))
            if until_idle_of is None:
                return update, events
        elif (until_idle_of and parent_id == until_idle_of and msg["msg_type"] == "status"
              and c["execution_state"] == "idle"):
            events.append(("idle", time.monotonic()))
            return update, events


def matching_keys(payload: dict, query: str) -> set[str]:
    def text(r):
        values = [str(v) for side in ("cell", "host") for v in (r.get(side) or {}).values()
                  if v is not None]
        return " ".join([r["key"], *values]).lower()
    return {r["key"] for r in payload["rows"] if query in text(r)}


def test_widget_filter_over_comms_updates_the_table(kernel):
    reply, msgs = run_collecting(kernel, "%mount tmpfs /tmp\n%show mounts\ntrue")
    assert reply["status"] == "ok"
    display, models = widget_parts(msgs)
    payload = display[MIME_TYPE]
    text_id, table_id = filter_and_table(display, models)
    # The table model is born with the static copy's table (its comm_open carries it).
    born = widget_parts(msgs, opened_only=True)[1][table_id]["value"]
    assert born.removeprefix('<div class="rfk-static">') in display["text/html"]

    parent = send_filter(kernel, text_id, "tmp")
    state, _ = wait_for_update(kernel, table_id, parent)
    lines = html_lines(state["value"], payload)
    keys = {ln["key"] for ln in lines}
    assert "/tmp" in keys and keys == matching_keys(payload, "tmp")
    assert len(keys) < len(payload["rows"])

    parent = send_filter(kernel, text_id, "")
    state, _ = wait_for_update(kernel, table_id, parent)
    assert state["value"] == born


def test_widget_messages_are_answered_while_a_cell_runs(kernel):
    _, msgs = run_collecting(kernel, "%show ns\ntrue")
    display, models = widget_parts(msgs)
    text_id, table_id = filter_and_table(display, models)

    kc = kernel.kc
    sleeper = kc.execute("sleep 3")
    while True:  # the cell is running once its input is published
        msg = kc.get_iopub_msg(timeout=10)
        if msg["parent_header"].get("msg_id") == sleeper and msg["msg_type"] == "execute_input":
            break
    sent = time.monotonic()
    parent = send_filter(kernel, text_id, "mnt")
    state, events = wait_for_update(kernel, table_id, parent, timeout=30,
                                    until_idle_of=sleeper)
    kc.get_shell_msg(timeout=10)
    assert [what for what, _ in events] == ["update", "idle"], events
    answered, ended = (t - sent for _, t in events)
    print(f"\nwidget update while a cell runs: answered {answered * 1000:.0f} ms after "
          f"sending; the cell went idle {ended * 1000:.0f} ms after sending")
    assert answered < 1.5 < ended
    assert {ln["key"] for ln in html_lines(state["value"], display[MIME_TYPE])} == {"mnt"}


# --- cost of the views ------------------------------------------------------------------------


def test_show_adds_little_to_a_cell(kernel):
    def median(code: str, n: int = 5) -> float:
        times = []
        for _ in range(n):
            res = kernel.ok(code)
            times.append(res.elapsed)
        return statistics.median(times)

    base = median("true")
    figures = {
        "plain cell": base,
        "%show mounts": median("%show mounts\ntrue"),
        "%show ns": median("%show ns\ntrue"),
        "%show changes": median("%show changes\ntouch /etc/x"),
        "%show ls /etc": median("%show ls /etc\ntrue"),
    }
    print()
    for what, t in figures.items():
        print(f"{what:>15}: {t * 1000:7.1f} ms  ({t / base:4.1f}x a plain cell)")
    assert all(t < 10 for t in figures.values())


def test_show_mounts_of_two_thousand_cell_mounts(kernel):
    tag = uuid.uuid4().hex[:6]
    script = ("i=0\nwhile [ $i -lt 2000 ]; do "
              f"mkdir /tmp/{tag}$i && mount -t tmpfs m{tag} /tmp/{tag}$i || exit 1; "
              "i=$((i+1)); done")
    plain = kernel.ok(f"%mount tmpfs /tmp\n{script}")
    res = kernel.ok(f"%mount tmpfs /tmp\n%show mounts\n{script}")
    p = the_payload(res)
    mine = [r for r in p["rows"] if r["key"].startswith(f"/tmp/{tag}")]
    assert len(mine) == 2000 and {r["status"] for r in mine} == {"only-cell"}
    print(f"\n2000 cell mounts: {plain.elapsed * 1000:.0f} ms; with %show mounts: "
          f"{res.elapsed * 1000:.0f} ms")
    assert res.elapsed < 30


def test_widget_opens_a_subdirectory_over_comms(kernel):
    reply, msgs = run_collecting(kernel, "%show ls /\ntrue")
    assert reply["status"] == "ok"
    display, models = widget_parts(msgs)
    payload = display[MIME_TYPE]
    top = models[display[WIDGET_MIME_TYPE]["model_id"]]
    heading_id, table_id = ref(top["children"][0]), ref(top["children"][-1])
    nav = models[ref(top["children"][2])]
    (picker_id,) = [ref(c) for c in nav["children"]
                    if models[ref(c)]["_model_name"] == "DropdownModel"]
    picker = models[picker_id]
    # ipywidgets 8 selection widgets sync the index into _options_labels.
    index = picker["_options_labels"].index("etc/")

    kc = kernel.kc
    msg = kc.session.msg("comm_msg", {"comm_id": picker_id, "data": {
        "method": "update", "state": {"index": index}, "buffer_paths": []}})
    kc.session.send(kc.shell_channel.socket, msg)
    updates = {}
    while heading_id not in updates or table_id not in updates:
        m = kc.get_iopub_msg(timeout=20)
        c = m["content"]
        if m["msg_type"] == "comm_msg" and "value" in c["data"].get("state", {}) and \
                m["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            updates[c["comm_id"]] = c["data"]["state"]["value"]
    assert "in etc/" in updates[heading_id]
    etc = by_key(payload["rows"])["etc"]["children"]["rows"]
    keys = [ln["key"] for ln in html_lines(updates[table_id], payload)]
    assert keys and sorted(set(keys)) == sorted(r["key"] for r in etc)


def test_only_the_last_50_views_keep_a_live_widget(fresh_kernel):
    """Widget models live in the kernel; the oldest views' are closed past 50, so memory
    stays bounded (their HTML and compare+json remain in the notebook)."""
    first = fresh_kernel.ok("%show ns\ntrue").displays[0]["data"][WIDGET_MIME_TYPE]["model_id"]
    closed: list[str] = []
    for _ in range(50):
        closed += fresh_kernel.ok("%show ns\ntrue").closed_comms
    assert first in closed


def test_ls_follows_the_cells_symlinks_inside_its_root_not_the_hosts(kernel, tmp_path):
    """The cell's side is read through its init's /proc/PID/root: a symlink in the path
    leads where it leads in the cell, also an absolute one to a path the host has."""
    (tmp_path / "hostdir").mkdir()
    (tmp_path / "hostdir" / "host-only-secret").write_text("x")
    res = kernel.ok(
        f"%show ls /srv/in-cell/inner\n%show ls /srv/to-host/hostdir {tmp_path}/hostdir\n"
        f"mkdir -p /opt/cell-dir/inner && touch /opt/cell-dir/inner/marker\n"
        f"mkdir -p /srv && ln -s /opt/cell-dir /srv/in-cell && ln -s {tmp_path} /srv/to-host\n")
    inner, to_host = (d["data"][MIME_TYPE] for d in res.displays)
    assert {r["key"] for r in inner["rows"] if "cell" in r} == {"marker"}
    # In the cell, /srv/to-host points at a directory its own /tmp does not have.
    assert [r for r in to_host["rows"] if "cell" in r] == []
    assert "No such file or directory" in to_host["notes"]["cell"]
    assert {r["key"] for r in to_host["rows"] if "host" in r} == {"host-only-secret"}
