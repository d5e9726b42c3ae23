"""%show steps as a compare payload (kind "steps", compare.schema.json): one row per step
of the container's setup, in the order the init took them, each opening onto what the
step did to the mount table: the mounts it added, removed and changed against the step
before (the whole table is %show mounts' business; a step's row says how many it holds).

One-sided, as %show layers: a step's row is "same" (a step, not a difference); a changed
mount also carries its values before the step (`host`), so its changed parts are
highlighted, and its note says what they were.

Read as a story: the container's directory is named once ("$CELL = /tmp/...", rows say
`$CELL/root`), the steps come in sections by the process that took them, and each
step's time is a bar on the setup's timeline (a waterfall: the slow clone stands out).
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from ..inspect.mounts import Mount
from ..inspect.stepdiff import Change, counts
from .calls import PROCESSES
from .payload import _columns, _envelope, _row, find_groups, summarize

STEPS_LEGEND = [{"status": "same", "mark": " ", "text": "steps"}]
# What an opened step shows: the mounts it added, changed and removed.
CHANGES_LEGEND = [{"status": "only-cell", "mark": "+", "text": "added"},
                  {"status": "differs", "mark": "~", "text": "changed"},
                  {"status": "only-host", "mark": "-", "text": "removed"}]
_STATUS = {"added": "only-cell", "changed": "differs", "removed": "only-host"}
STEP_COLUMNS = [("calls", "system calls"), ("took", "took"), ("mounts", "mount table")]
# The sections: who took the steps (init.c's A, B and C).
SECTIONS = {"A": "the init, still on the host", "B": "the cell's PID 1, in its new namespaces",
            "C": "the script's process"}
CELL = "$CELL"   # the container's directory, named once in the heading
TABLE_COLUMNS = [("fstype", "fs type"), ("source", "source"), ("options", "options"),
                 ("propagation", "propagation")]
_SPLIT = {"calls": "; ", "options": ",", "propagation": " "}
_KEY = {"name": "mount_point", "label": "mount point"}
_LABELS = {"mount_point": "mount point", "fstype": "fs type", "source": "source",
           "options": "options", "super_options": "super options",
           "propagation": "propagation", "root": "root"}


def _values(m: Mount) -> dict:
    return {"fstype": m.fstype, "source": m.source, "options": m.options,
            "propagation": m.propagation}


def ms(seconds: float | None) -> str | None:
    return None if seconds is None else f"{seconds * 1e3:.3f} ms"


def _before(c: Change, chroot: bool) -> str:
    """What a changed mount was, in words (the text rendering shows no highlights)."""
    parts = []
    for name in c.differs:
        old = getattr(c.before, name)
        if name == "mount_point":
            # chroot moves nothing: mountinfo names mounts from the reader's root.
            parts.append(f"seen from the new root; at {old} from the old one" if chroot
                         else f"moved from {old}")
        else:
            parts.append(f"{_LABELS[name]} was {old or '(none)'}")
    return "; ".join(parts)


def short(text: str | None, cell_dir: str | None) -> str | None:
    """`text` with the container's directory written $CELL."""
    if not text or not cell_dir:
        return text
    return text.replace(cell_dir, CELL)


def _table_rows(changes: Sequence[Change], chroot: bool = False,
                cell_dir: str | None = None) -> list[dict]:
    rows = []

    def values(m: Mount) -> dict:
        return {k: short(v, cell_dir) for k, v in _values(m).items()}

    for c in changes:
        shown = c.after if c.after is not None else c.before
        before = values(c.before) if c.status == "changed" else None
        row = _row(short(c.point, cell_dir), _STATUS[c.status], values(shown), before,
                   [d for d in c.differs if d in dict(TABLE_COLUMNS)])
        if c.status == "changed":
            # A one-sided row keeps the other side only where it changed (the highlight).
            row["host"] = before
            row["note"] = short(_before(c, chroot), cell_dir)
        elif c.status == "removed" and chroot:
            row["note"] = "still mounted: outside the new root, so out of this process's sight"
        rows.append(row)
    return rows


def _mounts_text(step) -> str:  # noqa: ANN001 - calls.Step
    """What the step did to the table, and how many mounts it holds after it."""
    if step.mounts is None:
        return "not recorded"
    n = counts(step.changes)
    parts = [f"{mark}{n[s]}" for mark, s in (("+", "added"), ("~", "changed"),
                                             ("-", "removed")) if n[s]]
    if step.copied:
        parts.insert(0, "copied")
    return " ".join([*parts, f"({len(step.mounts)})"])


def steps_payload(host: list[Mount] | None, steps: Sequence, title: str | None = None, *,
                  cell_dir: str | None = None) -> dict:
    """Payload from calls.describe(): the host's table and the steps.
    `cell_dir`: the container's directory (the plan's root's parent), named $CELL."""
    rows = []
    table = _columns(TABLE_COLUMNS, _SPLIT)   # each step's mount changes
    missing = []
    timeline = _timeline(steps)
    for n, step in enumerate(steps, 1):
        kids = _table_rows(step.changes, chroot=step.op == "chroot", cell_dir=cell_dir)
        level = {"rows": kids, "summary": summarize(kids)}   # its key, columns, legend: once
        groups = find_groups(kids, table, [{"name": "cell", "label": "cell"}],
                             parent=posixpath.dirname, alike=("fstype",), noun="mounts")
        if groups:
            level["groups"] = groups
        row = _row(f"step {n}", "same", {
            "process": PROCESSES[step.process],
            "calls": short("; ".join(step.calls), cell_dir) or None,
            "took": ms(step.took), "mounts": _mounts_text(step)}, None)
        if timeline.get(n - 1):
            row["bar"] = timeline[n - 1]
        note = short(step.note, cell_dir)
        if step.missing:
            note = f"{note}; {step.missing}" if note else step.missing
            missing.append(f"step {n}")
        if note:
            row["note"] = note
        row["children"] = level
        rows.append(row)
    columns = _columns(STEP_COLUMNS, _SPLIT)
    columns[1]["bar"] = True   # took: the step's bar on the setup's timeline
    p = _envelope("steps", title or "Steps: how this cell's container was built",
                  ("step", "step"), columns, rows,
                  sides=[{"name": "cell", "label": "cell"}], legend=STEPS_LEGEND,
                  truncated=bool(missing),
                  note=f"{', '.join(missing)}: no mount table was kept" if missing else None)
    p["level"] = {"key": dict(_KEY), "columns": table, "legend": CHANGES_LEGEND}
    p["headline"] = headline(host, steps)
    if cell_dir:
        p["names"] = {CELL: cell_dir}
    p["sections"] = _sections(steps)
    return p


def _sections(steps: Sequence) -> list[dict]:
    """Runs of steps taken by one process, each with how many and how long."""
    out: list[dict] = []
    for i, step in enumerate(steps):
        if out and steps[out[-1]["start"]].process == step.process:
            out[-1]["count"] += 1
        else:
            out.append({"start": i, "count": 1})
    for sec in out:
        run = steps[sec["start"]:sec["start"] + sec["count"]]
        took = sum(s.took for s in run if s.took is not None and s.kind not in ("exec", "wait"))
        n = sec["count"]
        sec["label"] = SECTIONS.get(run[0].process, run[0].process)
        sec["text"] = f"{sec['label']}: {n} step{'' if n == 1 else 's'}, {took * 1e3:.2f} ms" \
            + (", then the script" if any(s.kind == "exec" for s in run) else "")
    return out


def _timeline(steps: Sequence) -> dict[int, list[int]]:
    """Each step of the setup as [start, length] in thousandths of the setup's time, from
    the first step to the exec (the script's own time and a prepared container's wait
    for its cell are not the setup's, and would flatten every other bar)."""
    setup = [(i, s) for i, s in enumerate(steps)
             if s.kind not in ("exec", "wait") and s.took is not None]
    if not setup:
        return {}
    t0 = steps[0].started
    end = max(s.started + s.took for _, s in setup)
    span = end - t0
    if span <= 0:
        return {}
    out = {}
    for i, s in setup:
        left = min(999, int((s.started - t0) / span * 1000))
        out[i] = [left, max(1, min(1000 - left, round(s.took / span * 1000)))]
    return out


def headline(host: list[Mount] | None, steps: Sequence) -> str:
    """How many steps, how long, and what became of the host's mounts, in one line."""
    own = sum(s.took for s in steps if s.took is not None and s.kind not in ("wait", "exec"))
    start = next((s for s in steps if s.kind == "exec"), None)
    waited = next((s for s in steps if s.kind == "wait"), None)
    text = f"{len(steps)} steps in {own * 1e3:.2f} ms"
    if start is not None:
        wall = start.started - steps[0].started - (waited.took if waited else 0.0)
        text += f" ({wall * 1e3:.2f} ms with this recording)"
    facts = []
    if host is not None:
        facts.append(f"a copy of the host's {len(host)} mounts")
    made = [s for s in steps if not s.copied and s.op != "chroot"]
    n = {s: sum(counts(step.changes)[s] for step in made) for s in ("added", "removed")}
    if n["added"]:
        facts.append(f"{n['added']} mounted")
    if n["removed"]:
        facts.append(f"{n['removed']} unmounted or detached")
    hidden = sum(counts(s.changes)["removed"] for s in steps if s.op == "chroot")
    if hidden:
        facts.append(f"{hidden} out of the script's sight after chroot, still mounted")
    final = next((s.mounts for s in reversed(steps) if s.mounts is not None), None)
    if final is not None:
        facts.append(f"the script starts with {len(final)}")
    if waited is not None:
        facts.append(f"prepared ahead, it waited {waited.took:.2f} s for its cell")
    return text + (": " + "; ".join(facts) if facts else "")


# --- %show steps vs NAME --------------------------------------------------------------------

VS_COLUMNS = [("calls", "system calls"), ("took", "took"), ("mounts", "mount table")]


def _signature(step, cell_dir: str | None) -> tuple[str, str]:  # noqa: ANN001 - a Step
    """What a step is, wherever its container was built: who took it, and its calls."""
    return step.process, short("; ".join(step.calls), cell_dir) or ""


_ROUTINE = ("chdir", "write", "open", "mkdir", "lchown", "setresgid", "setgroups")


def _first_call(step) -> str:  # noqa: ANN001 - a Step
    return (step.calls[0].split("(", 1)[0] if step.calls else step.kind) or step.kind


def gist(calls: str | None) -> str:
    """The call that says what a step is (pivot_root, not the chdir before it)."""
    names = [c.strip().split("(", 1)[0] for c in (calls or "").split("; ") if c.strip()]
    return next((n for n in names if n not in _ROUTINE), names[0] if names else "")


def steps_vs_payload(mine: Sequence, my_dir: str | None, theirs: Sequence,
                     their_dir: str | None, other: str) -> dict:
    """This cell's setup next to the cell labelled `other`'s, step by step: aligned by
    what each step calls (the container's directory written $CELL on both sides), so
    the steps that differ are where the two setups part (pivot_root against chroot)."""
    import difflib

    from .payload import THIS, compare_legend

    a = [_signature(s, my_dir) for s in mine]
    b = [_signature(s, their_dir) for s in theirs]

    def values(step, where: str | None) -> dict:  # noqa: ANN001 - a Step
        return {"process": PROCESSES[step.process],
                "calls": short("; ".join(step.calls), where) or None,
                "took": ms(step.took), "mounts": _mounts_text(step)}

    rows: list[dict] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            rows += [_row(f"step {i + 1}", "same", values(mine[i], my_dir), None)
                     for i in range(i1, i2)]
            continue
        pairs = list(zip(range(i1, i2), range(j1, j2), strict=False)) if op == "replace" \
            else []
        paired = [(i, j) for i, j in pairs if a[i][0] == b[j][0]
                  and _first_call(mine[i]) == _first_call(theirs[j])]
        done_i = {i for i, _ in paired}
        done_j = {j for _, j in paired}
        for i, j in paired:
            mine_v, theirs_v = values(mine[i], my_dir), values(theirs[j], their_dir)
            differs = [n for n in ("calls", "mounts") if mine_v[n] != theirs_v[n]]
            rows.append(_row(f"step {i + 1}", "differs", mine_v, theirs_v, differs))
        rows += [_row(f"step {i + 1}", "only-cell", values(mine[i], my_dir), None)
                 for i in range(i1, i2) if i not in done_i]
        rows += [_row(f"{other}: step {j + 1}", "only-host", None,
                      values(theirs[j], their_dir)) for j in range(j1, j2) if j not in done_j]
    from .payload import _envelope

    p = _envelope("steps-vs", f"Steps: this cell's container vs cell {other}'s",
                  ("step", "step"), _columns(VS_COLUMNS, _SPLIT), rows,
                  sides=[{"name": "cell", "label": THIS}, {"name": "host", "label": other}],
                  legend=compare_legend(other, "in", THIS))
    if my_dir or their_dir:
        where = my_dir if my_dir == their_dir or not their_dir else \
            f"{my_dir or '/'} here, {their_dir} in cell {other}"
        p["names"] = {CELL: where}
    odd = {s: [r for r in rows if r["status"] == s] for s in ("only-cell", "only-host", "differs")}
    if not any(odd.values()):
        p["headline"] = f"the same {len(mine)} steps as cell {other}'s"
    else:
        def calls(rs: list[dict], side: str) -> str:
            return ", ".join(f"{gist(r[side]['calls'])} ({r['key']})"
                             for r in rs[:4]) + (" …" if len(rs) > 4 else "")
        parts = [f"only here: {calls(odd['only-cell'], 'cell')}" if odd["only-cell"] else "",
                 f"only in {other}: {calls(odd['only-host'], 'host')}" if odd["only-host"]
                 else "",
                 f"different: {calls(odd['differs'], 'cell')}" if odd["differs"] else ""]
        n = sum(len(v) for v in odd.values())
        p["headline"] = (f"{n} step{'' if n == 1 else 's'} differ from cell {other}'s: "
                         + "; ".join(x for x in parts if x))
    return p
