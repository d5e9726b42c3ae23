"""The setup operations of a container: their one definition, for Python and for C.

Runs in: the kernel (plan.py builds them, wire.py encodes them into rootfs-init's plan,
report.py and views/calls.py word them). At build time initbin.py generates
rootfs-init's header from these classes: an enum of the kinds, one struct per kind with
these fields in this order, and a field table, so init.c parses each operation into a
struct with named fields and runs it with one function per kind (op_mount, ...).

A new operation is one dataclass here (registered with @_op) and one function in init.c.
Fields are `str`, `int` or `bool`; they cross in their order here as tokens of the plan
(`op KIND NFIELDS VALUE...`: str as is, int in decimal, bool as 0/1). A field marked
LOCAL stays in Python (the header line a failure message names).

Paths "in the root" are resolved inside the new root with openat2(RESOLVE_IN_ROOT), so a
symlink in an image cannot lead out of it; other paths are the host's, as the cell's
mount namespace sees them before the root switch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import ClassVar

# What init.c shares with Linux and the shell, handed to it in its header (schema): the
# exit statuses (RK_EXIT_*) and the namespaces with their clone(2) flags.
from ..linux import EXIT_CANNOT_RUN, EXIT_SETUP_FAILED, NAMESPACES

# How many setup operations (and as many script operations) rootfs-init takes: a cell's
# standard ones, one per image layer and the most cell.MAX_MOUNT_LINES lines make.
MAX_OPS = 1024

LOCAL = {"local": True}   # field metadata: not sent to rootfs-init
WIRE_VERSION = "rootfs-init-2"

OPS: dict[str, type[Op]] = {}   # kind -> class, in the order of init.c's enum


class Op:
    """Base of every operation: KIND is its name on the wire and in messages."""

    __slots__ = ()
    KIND: ClassVar[str]
    FIELDS: ClassVar[tuple[str, ...]]  # every field's name, in order
    WIRE: ClassVar[tuple[str, ...]]    # the names of the fields that cross, in order
    KINDS: ClassVar[tuple[str, ...]]   # their kinds: "str" | "int" | "bool"


def _op(kind: str):
    def register(cls: type) -> type[Op]:
        cls = dataclass(frozen=True, slots=True)(cls)
        wire = [f for f in fields(cls) if not f.metadata.get("local")]
        kinds = tuple({str: "str", int: "int", bool: "bool"}[_type(f.type)] for f in wire)
        cls.KIND, cls.WIRE, cls.KINDS = kind, tuple(f.name for f in wire), kinds
        cls.FIELDS = tuple(f.name for f in fields(cls))
        OPS[kind] = cls
        return cls
    return register


def _type(annotation: object) -> type:
    # `from __future__ import annotations` leaves the annotations as strings.
    return {"str": str, "int": int, "bool": bool}.get(annotation, annotation)


@_op("propagation")
class Propagation(Op):
    """Set the propagation of the mount tree, before anything is mounted (pivot_root
    also refuses a shared parent). "shared" keeps the host's peer groups; with a root
    switch, / itself is made private (not recursively) so our own mounts stay ours."""

    mode: str                 # private | slave | shared
    root_switch: bool


@_op("private_parent")
class PrivateParent(Op):
    """%propagation shared: make the mount that holds `path` (a host path) private, so
    the mounts the setup makes below it do not propagate to the host."""

    path: str


@_op("private_tree")
class PrivateTree(Op):
    """%propagation shared with a root switch: make the new root's mounts (`path` in the
    root; "" is the root itself) private, recursively, once the standard binds are made
    (they join the host's peer groups) and before the masks, so no mask lands on a host
    path. The cell's own %bind lines come after and keep their propagation."""

    path: str


@_op("unbindable")
class Unbindable(Op):
    """Make the mount at `path` (a host path: the cell's scratch tmpfs) unbindable, so a
    recursive %bind of a host directory above it (/tmp) does not copy the cell's own
    root, layers and upper into the cell."""

    path: str


@_op("mkdir")
class Mkdir(Op):
    """mkdir -p of a host path (the helper's scratch, upper and work directories): the
    parents it makes are 0700, the last one gets `mode` and, unless -1, `uid`:`gid` (an
    overlay's root takes its owner from the upper directory: the cell's root must own it)."""

    path: str
    mode: int
    uid: int = -1
    gid: int = -1


@_op("layer")
class Layer(Op):
    """An image layer (a host directory) attached read-only at `target` (a host path,
    made) through an idmapped mount: its files owned by 0 show as the cell's root, which
    is an unprivileged id range on the host (the plan's idmap)."""

    source: str
    target: str


@_op("mount")
class Mount(Op):
    """mount(2). in_root: target is a path in the new root (created as `create` says:
    "dir" or "" for not at all), and the mount is made from inside that root, so paths
    among the options (overlay's lowerdir=...) name the cell's files, never the host's;
    otherwise target is a host path."""

    source: str
    target: str
    fstype: str
    flags: int                # MS_* bits
    data: str                 # the filesystem's own options ("" for none)
    in_root: bool
    create: str
    lineno: int = field(default=0, metadata=LOCAL)


@_op("bind")
class Bind(Op):
    """A bind mount of a host path onto a path in the new root (created: "dir", "file",
    or "like-source"), recursive or not, then made read-only if asked. optional: a
    source that does not exist is skipped (the host's optional devices). idmap: shown
    through the plan's id map, so the cell's (unprivileged) root acts as the host's
    owners there, and only there (%bind's grant); where the filesystem cannot be
    idmapped, a plain bind and a note. program: a %%c cell's program, which runs even
    where the host's mount of it is noexec (Debian's /run, the runtime directory's): the
    new mount's noexec is cleared where it is not locked (an ordinary user's cell).
    in_root=False: `target` is a host path."""

    source: str
    target: str
    rec: bool
    readonly: bool
    create: str
    optional: bool
    idmap: bool = False
    program: bool = False
    in_root: bool = True
    lineno: int = field(default=0, metadata=LOCAL)


@_op("mask")
class Mask(Op):
    """Hide a path in the root (runc's masked paths): an empty read-only tmpfs over a
    directory, /dev/null over a file; a path the image lacks is skipped."""

    path: str


@_op("readonly")
class ReadOnly(Op):
    """Make a path in the root read-only (runc's read-only paths): bind it onto itself
    and set the new mount read-only, recursively; a path the image lacks is skipped."""

    path: str


@_op("symlink")
class Symlink(Op):
    """A symlink in the root (the /dev links); an existing name is left alone."""

    target: str
    path: str


@_op("pivot_root")
class PivotRoot(Op):
    """Switch to the new root and detach the old one (which the cell cannot reach)."""

    root: str


@_op("chroot")
class Chroot(Op):
    """Switch to the new root with chroot(2) (the old root stays reachable, on purpose)."""

    root: str


@_op("hostname")
class Hostname(Op):
    """sethostname(2) and setdomainname(2) in the cell's own UTS namespace, which starts
    as a copy of the host's names: neither may show through."""

    name: str
    domain: str = "(none)"


@_op("loopback")
class Loopback(Op):
    """Bring the network namespace's loopback interface up (a new namespace has only
    `lo`, and down): ioctl(SIOCSIFFLAGS) by the namespace's owner, so a server and its
    client on 127.0.0.1 inside the cell work."""

    name: str = "lo"


@_op("unreachable")
class Unreachable(Op):
    """%net user: routes that make every address of the host unreachable from the cell's
    network namespace (init.c lists them on the host before the namespace is entered),
    and the `extra` addresses (space-separated) too. pasta relays connections through
    the host's sockets, so without them an address of the host that the namespace does
    not have itself (a link-local one, another interface's) would reach its services.
    Made by the cell's init; the script, which does not own the namespace, cannot remove
    them."""

    extra: str = ""


def schema() -> str:
    """What both sides must agree on, as one text: its hash names the wire version."""
    return json.dumps({"version": WIRE_VERSION,
                       "exit": {"setup_failed": EXIT_SETUP_FAILED,
                                "cannot_run": EXIT_CANNOT_RUN},
                       "namespaces": NAMESPACES, "max_ops": MAX_OPS,
                       "ops": [[k, list(zip(c.WIRE, c.KINDS, strict=True))]
                               for k, c in OPS.items()]}, sort_keys=True)


# The first token of rootfs-init's plan: a binary built from another schema refuses it.
VERSION = f"{WIRE_VERSION}/{hashlib.sha256(schema().encode()).hexdigest()[:16]}"
