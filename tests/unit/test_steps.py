"""%show steps: init.c's record of a setup -> steps in words, each step's effect on the
mount table, the payload and its renderings (the golden file: tests/fixtures/payloads)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fixtures.payloads import make

from rootfs_kernel import cell
from rootfs_kernel.inspect.mounts import parse_mountinfo
from rootfs_kernel.inspect.stepdiff import compare_tables, counts
from rootfs_kernel.sandbox import ops, recording, wire
from rootfs_kernel.sandbox.plan import Context, Places, plan_for
from rootfs_kernel.sandbox.prepared import setup_key
from rootfs_kernel.views import calls, render_html, render_text, steps_payload, view_bundle
from rootfs_kernel.views import text as text_view
from rootfs_kernel.views.model import neighbours

HOST = "\n".join(make._HOST) + "\n"


def described(plan=None, record=None, **kw):  # noqa: ANN001, ANN201
    return calls.describe(plan or make._steps_plan(),
                          recording.read(record or make._steps_record()), ended=10.0042, **kw)


def _record(*entries: tuple) -> bytes:
    out = b""
    for kind, index, table, detail in entries:
        text = None if table is None else table.encode()
        out += (f"step {kind} {index} 1.0 1.5 {-1 if text is None else len(text)} "
                f"{detail or '-'}\n").encode() + (text or b"")
    return out


# -- the record ------------------------------------------------------------------------------


def test_a_record_is_read_step_by_step_and_an_equal_table_is_the_one_before():
    data = _record(("host", -1, HOST, ""), ("op", 0, None, ""), ("exec", -1, None, "/bin/sh"))
    recs = recording.read(data)
    assert [r.kind for r in recs] == ["host", "op", "exec"]
    assert recs[1].table is recs[0].table == HOST and recs[2].detail == "/bin/sh"
    assert recs[0].started == 1.0 and recs[0].ended == 1.5


def test_a_torn_last_step_is_dropped_and_a_table_not_kept_says_why():
    data = _record(("host", -1, HOST, ""), ("op", 0, HOST, ""))
    assert len(recording.read(data[:-10])) == 1   # killed while writing the second table
    data = data + b"step op 1 2.0 2.1 -3 -\n"
    last = recording.read(data)[-1]
    assert last.table is None and "budget" in last.missing
    with pytest.raises(ValueError, match="not a step record"):
        recording.read(b"garbage\n")


# -- a step's effect on the mount table ---------------------------------------------------------


def test_within_one_namespace_mounts_are_followed_by_their_id():
    before = parse_mountinfo("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
                             "2 1 0:40 / /new/root rw - overlay overlay rw\n"
                             "3 2 0:41 / /new/root/proc rw - proc proc rw\n")
    after = parse_mountinfo("2 1 0:40 / / rw - overlay overlay rw\n"
                            "3 2 0:41 / /proc rw - proc proc rw\n"
                            "4 3 0:42 / /proc/acpi ro - tmpfs tmpfs ro\n")
    rows = {(r.point, r.status): r for r in compare_tables(before, after)}
    assert rows[("/", "removed")].before.fstype == "ext4"     # the old root, detached
    moved = rows[("/", "changed")]
    assert moved.after.fstype == "overlay" and moved.differs == ("mount_point",)
    assert moved.before.mount_point == "/new/root"
    assert rows[("/proc/acpi", "added")].after.fstype == "tmpfs"
    assert counts(list(rows.values())) == {"added": 1, "changed": 2, "removed": 1}
    assert compare_tables(after, after) == []   # unchanged mounts are not changes


def test_a_new_namespace_is_a_copy_aligned_by_mount_point():
    before = parse_mountinfo("1 0 8:1 / / rw shared:1 - ext4 /dev/sda1 rw\n")
    after = parse_mountinfo("7 6 8:1 / / rw master:1 - ext4 /dev/sda1 rw\n")
    (row,) = compare_tables(before, after, copied=True)
    assert row.status == "changed" and row.differs == ("propagation",)
    assert compare_tables(before, before, copied=True) == []
    assert {c.status for c in compare_tables(before, after)} == {"added", "removed"}  # by id


# -- in words ------------------------------------------------------------------------------------


def test_each_step_is_named_by_the_system_calls_its_operation_makes():
    host, found = described()
    assert len(host) == 5
    calls = ["; ".join(s.calls) for s in found]
    assert calls[0].startswith("clone(CLONE_NEWUSER|SIGCHLD)") and "0 100000 65536" in calls[0]
    assert calls[1] == "clone(CLONE_NEWNS|CLONE_NEWPID|SIGCHLD)"
    assert calls[2] == 'mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL)'
    assert calls[5].startswith("open_tree(AT_FDCWD, ") and "MOUNT_ATTR_IDMAP" in calls[5]
    assert "move_mount(" in calls[5]
    assert calls[6].startswith('mount("overlay", "/run/rootfs-kernel/1-abc/cell/root", '
                               '"overlay", 0, "lowerdir=')
    assert calls[7] == ('mount("proc", "/run/rootfs-kernel/1-abc/cell/root/proc", "proc", '
                        "MS_NOSUID|MS_NODEV|MS_NOEXEC|MS_RELATIME, NULL)")
    assert "= -1 ENOENT" in calls[8] and "not in this image" in found[8].note
    assert calls[9] == ('mount("tmpfs", "/run/rootfs-kernel/1-abc/cell/root/proc/acpi", '
                        '"tmpfs", MS_RDONLY, "size=0")')
    assert 'pivot_root(".", ".")' in calls[10] and 'umount2(".", MNT_DETACH)' in calls[10]
    assert calls[11].startswith("clone(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWUTS|SIGCHLD)")
    assert "setresuid(0, 0, 0)" in calls[11] and "locked" in found[11].note
    assert calls[13] == 'execve("/bin/sh", ["/bin/sh", "-c", "ls /"], [1 variable])'
    assert [s.process for s in found] == ["A", *"B" * 10, "C", "C", "C"]
    assert found[-1].took == pytest.approx(10.0042 - 10.00163)


def test_the_overlay_step_adds_the_new_root_and_the_pivot_takes_the_hosts_mounts_away():
    _, found = described()
    overlay, pivot = found[6], found[10]
    (added,) = [c for c in overlay.changes if c.status == "added"]
    assert added.after.fstype == "overlay" and added.point.endswith("/cell/root")
    gone = {c.point for c in pivot.changes if c.status == "removed"}
    assert {m.mount_point for m in parse_mountinfo(HOST)} <= gone
    moved = {c.point: c for c in pivot.changes if c.status == "changed"}
    assert moved["/"].after.fstype == "overlay" and "mount_point" in moved["/"].differs
    assert {m.mount_point for m in pivot.mounts} == {"/", "/proc", "/proc/acpi"}


def test_notes_of_the_init_change_the_words_of_their_step():
    plan = make._steps_plan()
    _, found = described(plan, notes=[[8, "no-pivot"]])
    assert "MS_MOVE" in "; ".join(found[10].calls) and "= -1 EINVAL" in found[10].calls[1]
    assert "--no-pivot" in found[10].note


def test_a_chroot_hides_the_hosts_mounts_without_unmounting_them():
    plan = replace(make._steps_plan(), ops=make._steps_plan().ops[:-1],
                   script_ops=(ops.Chroot(make.STEPS_ROOT + "/root"), ops.Hostname("rootfs")))
    rec = recording.read(make._steps_record())
    # the same tables, the last setup table now the chroot's (the script's view)
    rec = [r if r.kind != "op" or r.index != 8 else replace(r, kind="sop", index=0)
           for r in rec]
    rec = [r for r in rec if not (r.kind == "sop" and r.index == 0 and r.detail == ""
                                  and r.table is None)]
    _, found = calls.describe(plan, rec)
    chroot = next(s for s in found if s.op == "chroot")
    assert chroot.calls == [f'chdir("{make.STEPS_ROOT}/root")', 'chroot(".")', 'chdir("/")']
    payload = steps_payload(None, found)
    row = next(r for r in payload["rows"] if r["cell"]["calls"] == "; ".join(chroot.calls))
    notes = {k.get("note", "") for k in row["children"]["rows"] if k["status"] == "only-host"}
    assert notes == {"still mounted: outside the new root, so out of this process's sight"}
    assert "out of the script's sight after chroot, still mounted" in payload["headline"]


# -- the plan asks: a setup key ----------------------------------------------------------------


def test_show_steps_is_part_of_the_setup_a_prepared_container_is_matched_on():
    ctx = Context(places=Places.under("/run/rk"), rootless=False, uid=0, gid=0, cwd="/")

    class Image:
        layers, env, workdir = ["/img/a"], [], None

    plain = plan_for(cell.parse("true"), Image, ctx)
    shown = plan_for(cell.parse("%show steps\ntrue"), Image, ctx)
    assert "steps" not in wire.setup_tokens(plain, wire.Launch(1))
    tokens = wire.setup_tokens(shown, wire.Launch(1))
    assert tokens[tokens.index("steps") + 1] == "1"
    assert setup_key(plain) != setup_key(shown)
    assert "steps" not in wire.script_tokens(shown)
    host = plan_for(cell.parse("%%host\ntrue"), None, ctx)
    assert "steps" not in wire.setup_tokens(host, wire.Launch(1))


# -- the payload and its renderings ---------------------------------------------------------------


def test_the_payload_opens_each_step_onto_its_mount_table():
    p = make._steps()
    assert [r["key"] for r in p["rows"]][:2] == ["step 1", "step 2"]
    pivot = next(r for r in p["rows"] if "pivot_root" in (r["cell"]["calls"] or ""))
    kids = pivot["children"]["rows"]
    assert {k["key"] for k in kids if k["status"] == "only-host"} >= {"/home", "/sys"}
    root = next(k for k in kids if k["key"] == "/" and k["status"] == "differs")
    assert root["cell"]["fstype"] == "overlay" and root["note"].startswith("moved from ")
    assert pivot["cell"]["mounts"] == "~3 -7 (3)"
    # The legend counts steps (the mounts each changed are counted when it is opened).
    assert p["summary"]["same"] == p["summary"]["total"] == len(p["rows"]) == 14
    assert p["headline"].startswith("14 steps in 1.38 ms")


def test_step_through_the_opened_steps_neighbours():
    p = make._steps()
    assert neighbours(p, ()) == (None, None)
    assert neighbours(p, ("step 1",)) == (None, "step 2")
    assert neighbours(p, ("step 5",)) == ("step 4", "step 6")
    assert neighbours(p, ("step 14",)) == ("step 13", None)
    assert neighbours(make.build()["layers"]["payload"], ("layer 1",)) == (None, None)


def test_text_and_html_show_each_steps_calls_and_what_it_did_to_the_table():
    p = make._steps()
    text, html = render_text(p), render_html(p)
    assert 'pivot_root(".", ".")' in text and "~3 -7 (3)" in text
    assert "pivot_root(&quot;.&quot;,<wbr> &quot;.&quot;)" in html
    assert "<script" not in html
    # Without a kernel or the renderer (GitHub, the book): each step's call, note and
    # changes, folded.
    pivot = html[html.index("<summary") :]
    pivot = pivot[pivot.index("step 11: ~3 -7 (3)"):]
    pivot = pivot[:pivot.index("</details>")].replace("<wbr>", "")
    assert 'data-status="only-host"' in pivot and ">/home<" in pivot
    assert "moved from $CELL/root" in pivot and "the old root, stacked on top" in pivot
    assert "step 11  - /home  ext4 /dev/sda2" in text
    data, _ = view_bundle(p, widget=False)
    assert set(data) == {"text/plain", "text/html", "application/vnd.rootfs-kernel.compare+json"}


def test_the_text_pads_no_column_past_its_cap_a_long_call_runs_on_its_row_alone():
    p = make._steps()
    long_call = "mount(" + "x" * 300 + ")"
    p["rows"][0]["cell"]["calls"] = long_call
    lines = render_text(p).splitlines()
    [long_row] = [ln for ln in lines if long_call in ln]
    [header] = [ln for ln in lines if ln.lstrip().startswith("step ") and "took" in ln]
    assert len(long_row) > 300
    # the header (and every short row) is as wide as the capped columns, not 300+
    assert len(header) < 3 * text_view.PAD_CAP, header


def test_the_widget_opens_a_step_and_steps_to_its_neighbours():
    from rootfs_kernel.views.widget import build_widget

    w = build_widget(make._steps())
    assert w.step_buttons is None                          # nothing to step from yet
    assert "What each step did" not in w.table.value       # the widget opens steps instead
    w.subdir.value = "step 3"
    assert "built: step 3<" in w.heading.value and w.step_buttons is not None
    # The opened step repeats its call and its note above its table.
    assert "MS_REC|<wbr>MS_PRIVATE" in w.heading.value and "before anything is mounted" in \
        w.heading.value
    back, ahead = w.step_buttons
    assert (back.tooltip, ahead.tooltip) == ("step 2", "step 4")
    assert [b.description for b in w.nav.children] == ["steps", "step 3", "", "◀ previous step",
                                                       "next step ▶"]
    ahead.click()
    assert list(w.path) == ["step 4"] and "built: step 4<" in w.heading.value
    back.click()
    back.click()
    assert list(w.path) == ["step 2"]
    w.path = []
    assert back.layout.display == "none" and ahead.layout.display == "none"
    w.close_all()
