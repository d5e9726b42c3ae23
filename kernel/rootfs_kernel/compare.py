"""Cell snapshots + the host's side, read now -> comparison payloads.

The cell's side is what its init kept when the script ended (sandbox/snapshots.py); the
host's side is read here, in the kernel process, when the cell ends. Diffing and rendering
stay pure (inspect/, views/).
"""

from __future__ import annotations

from .inspect import listing, mounts, ns
from .views import changes_payload, listing_payload, mounts_payload, ns_payload


def payloads(snapshots: list[dict]) -> list[dict]:
    """One payload per `%show` line, in header order; a failed snapshot becomes a note."""
    out = []
    for snap in snapshots:
        if "error" in snap:
            out.append({"error": f"%show {snap['kind']}: {snap['error']}"})
            continue
        out.append(_payload(snap))
    return out


def _payload(snap: dict) -> dict:
    kind, data = snap["kind"], snap["data"]
    if kind == "mounts":
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            host = mounts.parse_mountinfo(f.read())
        return mounts_payload(mounts.diff_mounts(mounts.parse_mountinfo(data), host))
    if kind == "ls":
        host_path = snap.get("host_path") or snap["path"]
        diff = listing.diff_listings(data, listing.snapshot(host_path))
        return listing_payload(diff, f"{snap['path']} in the cell vs {host_path} on the host")
    if kind == "ns":
        return ns_payload(ns.diff_ns(data, ns.read_namespaces()))
    if kind == "changes":
        return changes_payload(data)
    raise ValueError(f"unknown view {kind!r}")
