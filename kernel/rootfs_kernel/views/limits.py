"""%show limits: what bounded the cell, limit by limit, and what it used at most.

The "cgroups" of "namespaces + cgroups + a changed root" made visible: each limit with
what held it (a cgroup file such as memory.max or pids.max, an rlimit, the size of the
tmpfs under the writable layer, or nothing) next to the cell's peak (the cgroup's
memory.peak / pids.peak and cpu.stat, read by the cell's init when the script ended, or
getrusage of the processes it reaped where there is no cgroup) and the limit that ended
it, if one did.

The payload (application/vnd.rootfs-kernel.limits+json, shape in limits.schema.json) holds
every figure as a number and in words, so the text, the HTML table, the widget and the
JupyterLab renderer (extension/src/limits.ts) draw the same lines (limits_lines); the
golden file tests/fixtures/limits/limits.json checks both sides.
"""

from __future__ import annotations

from html import escape

from ..cell import format_size

LIMITS_MIME_TYPE = "application/vnd.rootfs-kernel.limits+json"
LIMITS_VERSION = 1
KEYS = ("memory", "pids", "cpu", "disk")
HEADINGS = ("limit", "value", "held by", "used at most", "measured by")


def limits_payload(data: dict) -> dict:
    """The kernel's record of one cell (client.py: bounds, the init's usage and cgroup
    events, bytes written, the limit that ended it) -> the payload (pure)."""
    bounds = data.get("bounds") or {}
    usage = list(data.get("usage") or [-1, -1, -1, -1, 0])
    forks, ooms = (data.get("events") or (0, 0))[:2]
    cgroup = bounds.get("cgroup")
    version = cgroup["version"] if cgroup else None
    by_key = {row["key"]: row for row in bounds.get("rows", [])}
    rows = []
    for key in KEYS:
        held = by_key.get(key, {"limit": None, "by": None})
        used, how = _used(key, usage, data.get("disk"), version)
        limit = held["limit"]
        fraction = (min(1.0, used / limit) if key != "cpu" and used is not None
                    and limit else None)
        rows.append({"key": key, "limit": limit, "limit_text": _amount(key, limit, limit=True),
                     "by": held["by"] or "-", "used": used,
                     "used_text": _amount(key, used) + (
                         f" ({round(fraction * 100)}%)" if fraction is not None else ""),
                     "used_by": how, "fraction": fraction})
    mechanism = f"cgroup v{version}" if cgroup else (
        "setrlimit" if any(r["by"].startswith("RLIMIT") for r in rows) else "no cgroup")
    where = f": {', '.join(cgroup['dirs'])}" if cgroup else ""
    return {
        "version": LIMITS_VERSION, "kind": "limits",
        "title": f"What bounded this cell ({mechanism}{where})",
        "mechanism": mechanism, "cgroup": cgroup["dirs"] if cgroup else [],
        "rows": rows, "forks_refused": int(forks), "oom_kills": int(ooms),
        "ended_by": data.get("ended_by"), "note": bounds.get("note"),
    }


def _used(key: str, usage: list, disk: int | None, version: int | None
          ) -> tuple[float | None, str]:
    """(the peak, what measured it) for one limit; (None, why not) where nothing did."""
    memory, pids, cpu_usec, rusage_usec, maxrss_kib = usage
    if key == "memory":
        if memory >= 0:
            return memory, "memory.peak" if version == 2 else "memory.max_usage_in_bytes"
        return maxrss_kib * 1024, "largest process's RSS (getrusage)"
    if key == "pids":
        if pids >= 0:
            return pids, "pids.peak"
        return None, "not counted without a cgroup"
    if key == "cpu":
        if cpu_usec >= 0:
            return cpu_usec / 1e6, "cpu.stat usage_usec"
        return rusage_usec / 1e6, "getrusage of the cell's processes"
    if disk is None:
        return None, "no writable layer of its own"
    return disk, "blocks used in the writable layer's tmpfs"


def _amount(key: str, value: float | None, limit: bool = False) -> str:
    if value is None:
        return "none" if limit else "-"
    if key in ("memory", "disk"):
        return format_size(value)
    if key == "cpu":
        return f"{value:g} of a CPU" if limit else f"{value:.2f} s CPU"
    return str(int(value))


def limits_lines(payload: dict) -> list[str]:
    """The view as lines of text: the title, a row per limit, then what ended the cell
    and the note. The renderer draws these same lines (golden file)."""
    cells = [HEADINGS] + [(r["key"], r["limit_text"], r["by"], r["used_text"], r["used_by"])
                          for r in payload["rows"]]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADINGS) - 1)]
    lines = [payload["title"]]
    lines += ["  ".join([*(c[i].ljust(widths[i]) for i in range(len(widths))), c[-1]])
              for c in cells]
    lines += _endings(payload)
    return lines


def _endings(payload: dict) -> list[str]:
    out = []
    if payload["ended_by"]:
        out.append(f"ended: {payload['ended_by']}")
    if payload["forks_refused"] and "pids" not in (payload["ended_by"] or ""):
        out.append(f"refused: {payload['forks_refused']} fork(s) at the pids limit")
    if payload["oom_kills"] and "memory" not in (payload["ended_by"] or ""):
        out.append(f"OOM kills: {payload['oom_kills']}")
    if payload["note"]:
        out.append(f"note: {payload['note']}")
    return out


def render_limits_text(payload: dict) -> str:
    return "\n".join(limits_lines(payload))


def render_limits_html(payload: dict) -> str:
    """A table in JupyterLab's theme colours, each peak with a bar against its limit."""
    head = "".join(f'<th style="text-align:left;padding:2px 8px">{h}</th>' for h in HEADINGS)
    body = ""
    for r in payload["rows"]:
        bar = ""
        if r["fraction"] is not None:
            colour = ("var(--jp-error-color1,#d1242f)" if r["fraction"] >= 0.95
                      else "var(--jp-brand-color1,#0969da)")
            bar = (f'<div title="{round(r["fraction"] * 100)}%" style="height:4px;width:8em;'
                   f'background:var(--jp-layout-color3,#d0d7de)"><div style="height:4px;'
                   f'width:{r["fraction"] * 100:.1f}%;background:{colour}"></div></div>')
        cells = [r["key"], r["limit_text"], r["by"], r["used_text"], r["used_by"]]
        tds = "".join(f'<td style="padding:2px 8px">{escape(c)}{bar if i == 3 else ""}</td>'
                      for i, c in enumerate(cells))
        body += f'<tr data-key="{r["key"]}">{tds}</tr>'
    endings = "".join(f'<div style="padding:2px 0">{escape(line)}</div>'
                      for line in _endings(payload))
    return (f'<div class="rfk-limits" style="font-family:var(--jp-code-font-family,monospace);'
            f'font-size:12px;color:var(--jp-content-font-color1,#1f2328)">'
            f'<div style="padding:2px 0"><b>{escape(payload["title"])}</b></div>'
            f'<table style="border-collapse:collapse"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>{endings}</div>")


def limits_bundle(payload: dict) -> dict:
    return {"text/plain": render_limits_text(payload),
            "text/html": render_limits_html(payload), LIMITS_MIME_TYPE: payload}


def limits_widget(payload: dict):
    """The widget: the title, then a row per limit with a progress bar of the peak against
    the limit (red when the limit was reached), and what ended the cell."""
    import ipywidgets as w

    rows: list = [w.HTML(f"<b>{escape(payload['title'])}</b>")]
    parts: list = []
    for r in payload["rows"]:
        bar = w.FloatProgress(value=r["fraction"] or 0.0, min=0.0, max=1.0,
                              bar_style="danger" if (r["fraction"] or 0) >= 0.95 else "",
                              layout=w.Layout(width="8em", min_width="8em",
                                              visibility="visible" if r["fraction"] is not None
                                              else "hidden"))
        text = (f"<code>{escape(r['key'])}: {escape(r['limit_text'])} ({escape(r['by'])}); "
                f"used at most {escape(r['used_text'])} ({escape(r['used_by'])})</code>")
        label = w.HTML(text)
        parts += [bar, label]
        rows.append(w.HBox([bar, label]))
    rows += [w.HTML(f"<code>{escape(line)}</code>") for line in _endings(payload)]
    box = w.VBox(rows)
    box.add_class("rfk-limits")
    everything = [*parts, *rows, box]

    def close_all() -> None:   # the kernel closes the views it no longer keeps alive
        for widget in everything:
            widget.close()

    box.close_all = close_all
    return box
