"""The cell's side of each %show, read through /proc/PID of the cell's init.

Runs in: the kernel, while the cell's init (B) waits for it on the release pipe.

When the script has ended, the init (init.c) kills what the script left, enters the
script's mount namespace (and root), reports, and waits until the kernel has read:
  mounts   /proc/PID/mountinfo: the script's mount table, as seen from its root
  ls       /proc/PID/root/...: the directory, its path resolved inside that root; and
           without a host path, the same path in the image's layers (the overlay's lower
           layers): the image as it was before the cell
  changes  the overlay's upper and lower layers
  ns       the script's namespace ids, which the init read while the script ran
  layers   the same fds as changes, every layer scanned against the ones below it
  tree     /proc/PID/mountinfo, as for mounts (drawn as a tree next to the host's)
  steps    the record the init kept of the setup (a memfd it handed over with the layers):
           every step's time and the mount table after it (recording.py reads it)
  limits   what bounded the cell and the peaks its init read (client.py's record)
The layers were opened by the init before the root switch and handed to the kernel over
the result socket before the script started (client.py holds them): the init keeps no
host fd a script could reach through /proc/1/fd. Same-user access to /proc/PID is all
the rest needs, also when the cell runs in a user namespace of an ordinary user.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable

from ..cell import Show
from ..ids import IdRange
from ..inspect import changes, layers, listing
from ..linux import OVERFLOW_ID
from . import recording
from . import syscalls as sc

# The image side of `%show ls PATH` is the same for every cell of an image: the store's
# layers never change once written (a layer directory is named by its digest). The last
# few are kept, keyed by the layers, the path and the id map (the owners shown).
_IMAGE_LISTINGS: dict[tuple, dict | None] = {}
IMAGE_LISTINGS_KEPT = 8


def take(shows: Iterable[Show], init_pid: int, report: dict, layer_fds: list[int] | None,
         idmap: str = "", image_key: tuple | None = None, *,
         steps_fd: int | None = None) -> list[dict]:
    """`layer_fds`: the overlay's upper then lower layers, as the init handed them over
    (None: no layers, or they could not be opened); `idmap`: the plan's (owners as the
    cell sees them); `image_key`: the store's layers below the overlay, when none of them
    can change (no %keep layer), so the image's listings may be kept; `steps_fd`: the
    init's record of the setup (%show steps)."""
    proc = f"/proc/{init_pid}"
    ids = IdRange(*map(int, idmap.split()[1:])).inside if idmap else None
    out = []
    for view in shows:
        show = {"kind": view.kind, "path": view.path, "host_path": view.host_path,
                "against": view.against}
        try:
            if view.kind == "steps":   # the setup's record: nothing of the cell to read
                out.append({**show, "data": _steps(report, steps_fd)})
                continue
            if view.kind == "limits":   # the kernel's record and the init's counters
                out.append({**show, "data": report["limits"]})
                continue
            owners = ids or cell_ids(proc)
            snap = {**show, "data": _read(show, proc, report, layer_fds, owners)}
            if show["kind"] == "ls" and not show.get("host_path"):
                snap["image"] = _kept_image_listing(image_key, idmap, show["path"], report,
                                                    layer_fds, owners)
            out.append(snap)
        except Exception as err:  # noqa: BLE001 - a snapshot never changes the cell's result
            out.append({**show, "error": _describe(err)})
    return out


def _read(show: dict, proc: str, report: dict, layer_fds: list[int] | None,
          owners: listing.IdMap) -> object:
    kind = show["kind"]
    if kind in ("mounts", "tree"):
        with open(f"{proc}/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    if kind == "ns":
        return {name: value or None for name, value in (report.get("ns") or {}).items()}
    if kind == "ls":
        return _listing(show["path"], proc, owners)
    if kind in ("changes", "layers"):
        if report.get("snaps", 0) < 0:
            raise ValueError("the cell's init could not open its overlay layers")
        if not layer_fds:
            raise ValueError(f"%show {kind} needs a root filesystem (not %root none)")
        if kind == "layers":  # bottom first: the image's layers, then the upper
            return {"scan": layers.scan_layers([*reversed(layer_fds[1:]), layer_fds[0]])}
        return changes.scan_upper(layer_fds[0], layer_fds[1:])
    raise ValueError(f"unknown view {kind}")


def _steps(report: dict, fd: int | None) -> dict:
    if fd is None:
        raise ValueError("the cell's init kept no record of its setup")
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0)
    while len(data) < size:   # pread may return less than asked for
        more = os.pread(fd, size - len(data), len(data))
        if not more:
            break
        data += more
    records = recording.read(data)
    if report.get("handed_over") and records:
        # A prepared container's shell was running before its cell came, waiting on the
        # script pipe: its wait ends when the kernel wrote the cell there (client.py).
        last = records[-1]
        records.append(recording.Record("wait", -1, last.ended, report["handed_over"],
                                    last.table, ""))
    return {"records": records, "ended": report.get("steps_ended"),
            "notes": report.get("notes") or []}


def _listing(path: str, proc: str, owners: listing.IdMap) -> dict:
    """Resolve the directory holding `path` inside the cell's root, so a symlink in the
    image (absolute ones included) leads where it would in the cell, never to the host;
    the last name is not followed, as `ls -ld` would not."""
    head, name = posixpath.split(posixpath.normpath("/" + path))
    root = os.open(f"{proc}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            parent = sc.openat2(root, head.lstrip("/") or ".", os.O_PATH | os.O_DIRECTORY,
                                sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS)
        except OSError as err:
            return {"path": path, "error": err.strerror or str(err)}
    finally:
        os.close(root)
    try:
        at = f"/proc/self/fd/{parent}/{name or '.'}"
        return listing.snapshot(path, at=at, ids=owners)
    finally:
        os.close(parent)


def _kept_image_listing(image_key: tuple | None, idmap: str, path: str, report: dict,
                        layer_fds: list[int] | None, owners: listing.IdMap) -> dict | None:
    """_image_listing, kept for the next cell of the same image (treat it as read-only)."""
    if image_key is None or report.get("snaps", 0) < 0:
        return _image_listing(path, report, layer_fds, owners)
    key = (image_key, idmap, path)
    if key not in _IMAGE_LISTINGS:
        if len(_IMAGE_LISTINGS) >= IMAGE_LISTINGS_KEPT:
            _IMAGE_LISTINGS.pop(next(iter(_IMAGE_LISTINGS)))
        _IMAGE_LISTINGS[key] = _image_listing(path, report, layer_fds, owners)
    return _IMAGE_LISTINGS[key]


def _image_listing(path: str, report: dict, layer_fds: list[int] | None,
                   owners: listing.IdMap) -> dict | None:
    """`path` in the cell's overlay lower layers merged, without its upper layer: what
    the cell started from. None without layers (%root none): compare with the host."""
    if report.get("snaps", 0) < 0:
        return {"path": path, "error": "the cell's init could not open its image layers"}
    if not layer_fds or len(layer_fds) < 2:
        return None
    return listing.snapshot(path, layers=[f"/proc/self/fd/{n}" for n in layer_fds[1:]],
                            ids=owners)


def cell_ids(proc: str) -> listing.IdMap:
    """Owners as the cell sees them: through its user namespace's maps (an ordinary
    user's files are root's in the cell, and what is not mapped shows as 65534)."""
    maps = []
    for name in ("uid_map", "gid_map"):
        with open(f"{proc}/{name}") as f:
            maps.append(parse_id_map(f.read()))
    return lambda uid, gid: (inside(uid, maps[0]), inside(gid, maps[1]))


def parse_id_map(text: str) -> list[tuple[int, int, int]]:
    """/proc/PID/uid_map read from outside: (first id inside, first id outside, count)."""
    return [tuple(int(x) for x in line.split()) for line in text.splitlines() if line.strip()]


def inside(outside: int, ranges: list[tuple[int, int, int]]) -> int:
    for first_in, first_out, count in ranges:
        if first_out <= outside < first_out + count:
            return first_in + outside - first_out
    return OVERFLOW_ID



def _describe(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror}" + (f": {err.filename}" if err.filename else "")
    return str(err) or type(err).__name__
