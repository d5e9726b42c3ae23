"""What a cell added, changed and deleted, read from its overlayfs upper directory.

Same reading as `docker diff`: every entry of the upper directory is a change; a
character device 0/0 is a whiteout (the lower entry was deleted); a directory with the
overlay "opaque" xattr replaced the lower directory of the same name wholesale; any
other entry is C if the path exists in a lower layer, else A.

The layers are handed over as directory file descriptors: the cell's init opened them
before its root switch, and sandbox/snapshots.py reopens them through /proc/PID/fd.
"""

from __future__ import annotations

import os
import stat

from ..linux import is_opaque, is_whiteout
from .listing import file_type


def _in_lower(rel: str, lower_fds: list[int]) -> bool:
    """Whether `rel` is in the lower layers (top first), looked up as overlayfs does: in
    each layer name by name, following no symlink, so that a symlink in a layer (one a
    %keep cell made, say) never leads the lookup out to the host; a whiteout ends it."""
    parts = rel.split("/")
    for fd in lower_fds:
        st = _lstat_beneath(fd, parts)
        if st is not None:
            return not is_whiteout(st)
    return False


def _lstat_beneath(layer_fd: int, parts: list[str]) -> os.stat_result | None:
    opened: list[int] = []
    try:
        at = layer_fd
        for part in parts[:-1]:   # O_DIRECTORY|O_NOFOLLOW: a symlink here is ENOTDIR
            at = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=at)
            opened.append(at)
        return os.stat(parts[-1], dir_fd=at, follow_symlinks=False)
    except OSError:
        return None
    finally:
        for fd in opened:
            os.close(fd)


def scan_upper(upper_fd: int, lower_fds: list[int], *, max_entries: int = 5000) -> dict:
    """Walk the upper layer open at `upper_fd` and classify every entry.

    Returns {"changes": [{"path", "kind" (A|C|D), "type", "size", "opaque"}, ...] sorted
    by path, "counts": {"A": n, "C": n, "D": n}, "truncated": bool, "note": str | None}.
    Sizes are bytes of the upper entry (None for deletions).
    """
    changes: list[dict] = []
    truncated = False
    walker = os.fwalk(".", dir_fd=upper_fd, follow_symlinks=False)
    for dirpath, dirnames, filenames, dfd in walker:
        rel_dir = "" if dirpath == "." else dirpath[2:] + "/"
        for name in dirnames + filenames:
            if len(changes) >= max_entries:
                truncated = True
                break
            rel = rel_dir + name
            try:
                st = os.lstat(name, dir_fd=dfd)
            except FileNotFoundError:
                continue  # removed while we walked
            kind_type = file_type(st.st_mode)
            entry = {"path": "/" + rel, "type": kind_type, "size": st.st_size, "opaque": False}
            if is_whiteout(st):
                entry.update(kind="D", type=None, size=None)
            else:
                if stat.S_ISDIR(st.st_mode):
                    entry["opaque"] = is_opaque(name, dir_fd=dfd)
                entry["kind"] = "C" if _in_lower(rel, lower_fds) else "A"
            changes.append(entry)
        if truncated:
            break
    walker.close()  # releases the directory fds fwalk still holds

    changes.sort(key=lambda e: e["path"])
    counts = {"A": 0, "C": 0, "D": 0}
    for e in changes:
        counts[e["kind"]] += 1
    note = (
        f"stopped after {max_entries} changes (max_entries); later paths are not shown"
        if truncated
        else None
    )
    return {"changes": changes, "counts": counts, "truncated": truncated, "note": note}
