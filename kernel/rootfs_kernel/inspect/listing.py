"""Bounded, JSON-able directory snapshots and their diff.

snapshot() reads a container's directories through its init's /proc/PID/root
(sandbox/snapshots.py) or the host's directly. os.scandir and lstat never follow
symlinks.

Snapshot shape::

    {"path": "/etc", "type": "dir", "mode": "0755", "perms": "drwxr-xr-x",
     "uid": 0, "gid": 0, "size": 4096, "max_depth": 3, "max_entries": 2000,
     "count": 123, "truncated": false, "note": None,
     "children": [entry, ...]}

    entry = {"name": "hosts", "type": "file", "mode": "0644", "perms": "-rw-r--r--",
             "uid": 0, "gid": 0, "size": 174,
             "target": "..." (symlinks only),
             "children": [...] (directories that were read),
             "error": "Permission denied" (directories that could not be read),
             "truncated": true (directories whose children were cut),
             "cut_after": "name" (set with "truncated" when the entry budget ran out
                          inside this directory: the children kept are the ones
                          whose names sort up to and including "name")}

A directory cut by the entry budget keeps its alphabetically first entries, not the
first ones readdir happens to return: two sides of a comparison then agree on which
names they looked at, whatever order their filesystems list them in.
"""

from __future__ import annotations

import heapq
import os
import posixpath
import stat
from collections.abc import Callable
from typing import NamedTuple

from ..linux import is_opaque, is_whiteout

# (uid, gid) as this process sees them -> as the listed filesystem's user namespace does.
IdMap = Callable[[int, int], tuple[int, int]]

_TYPES = (
    (stat.S_ISDIR, "dir"),
    (stat.S_ISREG, "file"),
    (stat.S_ISLNK, "symlink"),
    (stat.S_ISCHR, "char"),
    (stat.S_ISBLK, "block"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
)


def file_type(mode: int) -> str:
    for test, name in _TYPES:
        if test(mode):
            return name
    return "unknown"


def _describe(name: str, st: os.stat_result, ids: IdMap | None) -> dict:
    uid, gid = (st.st_uid, st.st_gid) if ids is None else ids(st.st_uid, st.st_gid)
    return {
        "name": name,
        "type": file_type(st.st_mode),
        "mode": f"{stat.S_IMODE(st.st_mode):04o}",
        "perms": stat.filemode(st.st_mode),
        "uid": uid,
        "gid": gid,
        "size": st.st_size,
    }


def _error_text(err: OSError) -> str:
    return err.strerror or str(err)


class _Found(NamedTuple):
    """One directory entry as a reader found it."""

    name: str
    st: os.stat_result | None   # None: could not be read (`where` says why)
    where: str                  # its path, to read a link target
    inside: object        # what to read its children from (None: not a directory)


class _Plain:
    """A directory tree read where it lies. Directories of another filesystem (a mount
    point below the listed path) are not opened, as `find -xdev` does: /proc or a tmpfs
    under `/` is another view, and would spend the budget on what no image holds."""

    def __init__(self, at: str):
        self.at = at
        self.dev: int | None = None

    def top(self) -> _Found:
        st = os.lstat(self.at)
        self.dev = st.st_dev
        return _Found("", st, self.at, self.at)

    def scan(self, where: object, keep: int) -> list[_Found]:
        with os.scandir(where) as it:
            # The alphabetically first names, in one pass and O(keep) memory.
            kept = heapq.nsmallest(keep, it, key=_name)
        out = []
        for de in kept:
            try:
                st = de.stat(follow_symlinks=False)
            except OSError as err:  # gone, or unreadable: said on its row
                out.append(_Found(de.name, None, _error_text(err), None))
                continue
            out.append(_Found(de.name, st, de.path, de.path if stat.S_ISDIR(st.st_mode)
                              else None))
        return out

    def other_fs(self, found: _Found) -> bool:
        return found.st.st_dev != self.dev

    def has_entries(self, where: object) -> bool:
        try:
            with os.scandir(where) as it:
                return next(it, None) is not None
        except OSError:
            return False


class _Layers:
    """Overlay lower layers (top first) read as the one tree overlayfs would show: the
    top layer's entry wins, a 0/0 character device hides a name below it, a directory
    merges with the directories of the same name below until an opaque one."""

    def __init__(self, layers: list[str], path: str):
        self.layers, self.path = layers, path

    def _lookup(self, dirs: list[str], name: str) -> _Found | None:
        for i, d in enumerate(dirs):
            p = os.path.join(d, name)
            try:
                st = os.lstat(p)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if is_whiteout(st):
                return None
            if not stat.S_ISDIR(st.st_mode):
                return _Found(name, st, p, None)
            merged = [p]
            if not is_opaque(p):
                for below in dirs[i + 1:]:
                    q = os.path.join(below, name)
                    try:
                        sq = os.lstat(q)
                    except (FileNotFoundError, NotADirectoryError):
                        continue
                    if not stat.S_ISDIR(sq.st_mode):
                        break  # a file or whiteout below ends the merge
                    merged.append(q)
                    if is_opaque(q):
                        break
            return _Found(name, st, p, merged)
        return None

    def top(self) -> _Found:
        """Resolve the path inside the merged tree: symlinks of its directories are
        followed within it (never out of it), the last name is not (`ls -ld`)."""
        # stat, not lstat: a layer may be named by a /proc/PID/fd/N link.
        root = _Found("", os.stat(self.layers[0]), self.layers[0], list(self.layers))
        todo = _parts(self.path)
        done: list[str] = []
        found, hops = root, 0
        while todo:
            name = todo.pop(0)
            if not isinstance(found.inside, list):
                raise NotADirectoryError(20, "Not a directory", "/" + "/".join(done))
            nxt = self._lookup(found.inside, name)
            if nxt is None:
                raise FileNotFoundError(2, "No such file or directory",
                                        "/" + "/".join([*done, name]))
            if stat.S_ISLNK(nxt.st.st_mode) and todo:
                hops += 1
                if hops > 40:
                    raise OSError(40, "Too many levels of symbolic links", self.path)
                target = os.readlink(nxt.where)
                # `done` holds resolved directory names only, so ".." is lexical here.
                base = "" if target.startswith("/") else "/".join(done)
                todo = _parts(f"/{base}/{target}/" + "/".join(todo))
                done, found = [], root
                continue
            done.append(name)
            found = nxt
        return found

    def scan(self, where: object, keep: int) -> list[_Found]:
        dirs: list[str] = where  # type: ignore[assignment]
        names: set[str] = set()
        for d in dirs:
            with os.scandir(d) as it:
                names.update(de.name for de in it)
        out = []
        for name in sorted(names):
            if len(out) == keep:
                break
            found = self._lookup(dirs, name)
            if found is not None:
                out.append(found)
        return out

    def other_fs(self, found: _Found) -> bool:
        return False  # layers hold no mounts; they may lie on different filesystems

    def has_entries(self, where: object) -> bool:
        try:
            return bool(self.scan(where, 1))
        except OSError:
            return False


def snapshot(path: str, *, max_depth: int = 3, max_entries: int = 2000,
             at: str | None = None, ids: IdMap | None = None,
             layers: list[str] | None = None) -> dict:
    """Snapshot `path` breadth-first, so the top level is complete before deeper levels
    spend the entry budget. Depth 1 is the entries of `path` itself.

    `at` is where to read `path` from when that differs from its name, e.g. a container's
    directory seen through /proc/PID/root (sandbox/snapshots.py); names stay `path`'s.
    `layers` (overlay lower layer directories, top first) reads `path` in the tree they
    make together instead: the image as it was before a cell changed it.
    `ids` turns the owners this process sees into the ones the container sees."""
    reader: _Plain | _Layers = _Layers(layers, path) if layers else _Plain(at or path)
    try:
        top_found = reader.top()
    except OSError as err:
        return {"path": path, "error": _error_text(err)}
    top = _describe(path, top_found.st, ids)
    del top["name"]
    top["path"] = path
    top.update(max_depth=max_depth, max_entries=max_entries, truncated=False, note=None)
    if top["type"] == "symlink":
        top["target"] = _readlink(top_found.where)
    count = 0
    notes: list[str] = []
    if top["type"] != "dir":
        top["count"] = 0
        return top

    # Queue of (directory's name, where to read it, dict that receives "children", depth
    # of its children).
    queue: list[tuple[str, object, dict, int]] = [(path, top_found.inside, top, 1)]
    depth_cut: list[str] = []
    other_fs: list[str] = []
    budget_cut_at: str | None = None
    qi = 0
    while qi < len(queue):
        dir_path, where, holder, depth = queue[qi]
        qi += 1
        if count >= max_entries:
            # Budget already spent: this directory is left unread.
            holder["truncated"] = True
            holder["cut"] = "budget"
            budget_cut_at = budget_cut_at or dir_path
            continue
        children: list[dict] = []
        remaining = max_entries - count
        try:
            kept = reader.scan(where, remaining + 1)
        except OSError as err:
            holder["error"] = _error_text(err)
            continue
        if len(kept) > remaining:
            kept = kept[:remaining]
            holder["truncated"] = True
            holder["cut"] = "budget"
            holder["cut_after"] = kept[-1].name
            budget_cut_at = budget_cut_at or dir_path
        for found in kept:
            count += 1
            if found.st is None:
                children.append({"name": found.name, "type": "unknown", "error": found.where})
                continue
            entry = _describe(found.name, found.st, ids)
            name = f"{dir_path.rstrip('/')}/{found.name}"
            if entry["type"] == "symlink":
                entry["target"] = _readlink(found.where)
            elif entry["type"] == "dir":
                if reader.other_fs(found):
                    entry["truncated"] = True
                    entry["cut"] = "mount"
                    other_fs.append(name)
                elif depth < max_depth:
                    queue.append((name, found.inside, entry, depth + 1))
                elif reader.has_entries(found.inside):
                    entry["truncated"] = True
                    entry["cut"] = "depth"
                    depth_cut.append(name)
            children.append(entry)
        holder["children"] = children

    if budget_cut_at is not None:
        notes.append(
            f"stopped at the entry budget of {max_entries} (max_entries), first cut at "
            f"{budget_cut_at}; directories read after it are missing or partial"
        )
    if depth_cut:
        notes.append(
            f"{len(depth_cut)} non-empty director{'y' if len(depth_cut) == 1 else 'ies'} "
            f"below depth {max_depth} (max_depth) not opened: {_some(depth_cut)}"
        )
    top["count"] = count
    if other_fs:
        top["mounts"] = other_fs  # said in the rows; not a cut of what was asked
    if notes:
        top["truncated"] = True
        top["note"] = "; ".join(notes)
    return top


def _parts(path: str) -> list[str]:
    return [n for n in posixpath.normpath("/" + path).split("/") if n]


def _some(names: list[str]) -> str:
    return ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")


def _name(de: os.DirEntry) -> str:
    return de.name


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


# --- diff -------------------------------------------------------------------------------

LISTING_FIELDS: tuple[str, ...] = ("type", "mode", "owner", "size", "target")


def _values(entry: dict) -> dict:
    """The compared, displayable values of one entry."""
    return {
        "type": entry.get("type"),
        "mode": entry.get("perms"),
        "owner": f"{entry['uid']}:{entry['gid']}" if "uid" in entry else None,
        # A directory's size is an artefact of its filesystem (4096 on ext4, 40 on
        # tmpfs); its contents are compared instead.
        "size": None if entry.get("type") == "dir" else entry.get("size"),
        "target": entry.get("target"),
    }


def _diff_children(cell: list[dict] | None, host: list[dict] | None,
                   cell_cut: str | None = None, host_cut: str | None = None) -> list[dict]:
    """Align children by name. A side cut by the entry budget (cut_after = its last
    kept name) says nothing about names sorting after the cut: a name the other side
    has there is left out rather than marked as present on one side only."""
    c_by = {e["name"]: e for e in cell or ()}
    h_by = {e["name"]: e for e in host or ()}
    rows = []
    for name in sorted(c_by.keys() | h_by.keys()):
        c, h = c_by.get(name), h_by.get(name)
        if (c is None and cell_cut is not None and name > cell_cut) or \
                (h is None and host_cut is not None and name > host_cut):
            continue
        rows.append(_diff_entry(name, c, h))
    return rows


def _bound(top: dict) -> str | None:
    """The cut of a top-level snapshot: "" when the directory could not be read at all."""
    return "" if _unread_dir(top) else top.get("cut_after")


def _unread_dir(entry: dict | None) -> bool:
    """A directory whose children were not read (depth or budget cut, or an error)."""
    return entry is not None and entry.get("type") == "dir" and "children" not in entry


_CUT_WHY = {
    "mount": "another filesystem is mounted here, not opened",
    "depth": "below the depth read, not opened",
    "budget": "cut by the entry budget",
}


def _diff_entry(name: str, c: dict | None, h: dict | None) -> dict:
    row: dict = {"name": name}
    row["cell"] = None if c is None else _values(c)
    row["host"] = None if h is None else _values(h)
    differs: list[str] = []
    if c is not None and h is not None:
        cv, hv = row["cell"], row["host"]
        differs = [f for f in LISTING_FIELDS if cv[f] != hv[f]]
    c_kids = None if c is None else c.get("children")
    h_kids = None if h is None else h.get("children")
    # When one side's directory went unread, the other side's children cannot be
    # marked one-sided: the row then has no children (its notes say why).
    if (c_kids is not None or h_kids is not None) and not (_unread_dir(c) or _unread_dir(h)):
        kids = _diff_children(c_kids, h_kids, c.get("cut_after") if c else None,
                              h.get("cut_after") if h else None)
        row["children"] = kids
        # Contents only count as a difference when both sides were actually read.
        if (
            c_kids is not None
            and h_kids is not None
            and any(k["status"] != "same" for k in kids)
        ):
            differs.append("contents")
    for side, e in (("cell", c), ("host", h)):
        if e is not None and (e.get("truncated") or e.get("error")):
            row.setdefault("notes", {})[side] = e.get("error") or _CUT_WHY.get(
                e.get("cut", ""), "not fully read")
    row["differs"] = differs
    if c is None:
        row["status"] = "only-host"
    elif h is None:
        row["status"] = "only-cell"
    else:
        row["status"] = "differs" if differs else "same"
    return row


def diff_listings(cell: dict, host: dict) -> dict:
    """Align two snapshots by entry name, recursively.

    Returns {"cell_path", "host_path", "rows", "truncated", "notes"} where each row is
    {"name", "status", "differs", "cell", "host", ["children"], ["notes"]};
    status is "same" | "only-cell" | "only-host" | "differs" and differs lists fields
    among type, mode, owner, size, target, plus "contents" for a directory whose
    children (read on both sides) differ.
    """
    notes = {}
    for side, snap in (("cell", cell), ("host", host)):
        if snap.get("error"):
            notes[side] = f"{snap.get('path')}: {snap['error']}"
        elif snap.get("note"):
            notes[side] = snap["note"]
    return {
        "cell_path": cell.get("path"),
        "host_path": host.get("path"),
        "rows": _diff_children(cell.get("children"), host.get("children"),
                               _bound(cell), _bound(host)),
        "truncated": bool(cell.get("truncated") or host.get("truncated")),
        "notes": notes,
    }
