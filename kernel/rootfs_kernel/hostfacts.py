"""What this host lets a cell do, read from /proc and /sys, and what to change (pure words).

`read_facts()` only reads files (under a root that tests point at a fake tree);
`diagnose()` turns the facts into findings, each with what was seen and the fix the host's
own tools document (bubblewrap, podman, rootlesskit and Chrome meet the same conditions);
`explain()` picks the one that explains a failed cell setup, and cause() words it for
the cell's one-line message (sandbox/report.py's, given it by the session).
`rootfs-kernel doctor` shows them all (doctor.py).
"""

from __future__ import annotations

import errno as E
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .images.store import default_root
from .inspect.mounts import Mount, parse_mountinfo
from .sandbox import rundir

CAP_SYS_ADMIN = 21
FULL_ID_MAP = "0 0 4294967295"
APPARMOR_PROFILE = "rootfs-kernel-init"
# The flags that give a container what the cells need (Docker and Podman spell them alike).
CONTAINER_FLAGS = ("--cap-add SYS_ADMIN --security-opt seccomp=unconfined "
                   "--security-opt apparmor=unconfined --security-opt systempaths=unconfined")
# How to make a directory the root without chroot(2), which the kernel answers with EPERM
# to every new user namespace (each cell's script runs in one): pivot_root(8) from a mount
# namespace of its own, the directory made a mount point first (tests/doctor runs this).
PIVOT_INTO = ("unshare --mount sh -c 'mount --make-rprivate / && mount --rbind DIR DIR && "
              "cd DIR && pivot_root . . && umount -l . && exec jupyter lab'")
# The paths runc, crun and Docker mount over in a container's /proc.
PROC_MASKS = ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/acpi", "/proc/scsi",
              "/proc/sched_debug", "/proc/latency_stats", "/proc/asound", "/proc/timer_stats")


@dataclass(frozen=True)
class Cgroups:
    v1: frozenset[str] = frozenset()          # v1 controllers mounted (of pids, memory, cpu)
    v1_writable: bool = False                 # this user may make cgroups there
    v2: str | None = None                     # where a cgroup2 is mounted
    v2_own: str | None = None                 # this process's cgroup v2 directory
    v2_controllers: frozenset[str] = frozenset()   # available in it (cgroup.controllers)
    v2_subtree: frozenset[str] = frozenset()       # enabled for its children
    v2_delegated: bool = False                # it belongs to this user (root: always)
    v2_top: frozenset[str] = frozenset()      # the hierarchy's root's controllers (root's)
    user_manager: bool = False                # systemd's user manager can delegate a scope


@dataclass(frozen=True)
class Facts:
    euid: int
    release: str = ""
    userns_root: bool = False         # euid 0, but of a user namespace (a rootless container)
    max_user_namespaces: int | None = None
    unprivileged_userns_clone: int | None = None   # Debian's knob (absent upstream)
    apparmor: bool = False                          # AppArmor is enabled
    apparmor_restrict: int | None = None            # Ubuntu 23.10+'s userns restriction
    apparmor_profiles: frozenset[str] | None = None  # loaded profiles (None: unreadable)
    seccomp: int = 0                                 # 2: a filter is active
    seccomp_errno: bool = True        # the kernel takes filters that answer errno (a cell's)
    pasta: str | None = None          # pasta (package passt): %net user's network
    cap_sys_admin: bool = False
    container: str | None = None                     # which runtime, when it says so
    filesystems: frozenset[str] = frozenset()
    overlay_module: str | None = None  # overlayfs as a loadable module (Debian's): its file
    root_mount: str | None = "ext4"   # fstype of the mount at /; None: / is not a mount point
    chroot_dir: str | None = None     # where PID 1 sees this process's root: in a chroot
    root_absolute: bool = False       # / is the namespace's own root mount (initramfs)
    root_shared: bool = True
    proc_masked: tuple[str, ...] = ()  # paths mounted over in /proc
    runtime_dir: str = ""             # where the helper keeps the layer %keep keeps
    runtime_fs: str = "tmpfs"         # ... and the filesystem it is on
    store_dir: str = ""               # the image store
    store_fs: str = "ext4"
    wsl: bool = False
    cgroups: Cgroups = field(default_factory=Cgroups)

    @property
    def rootless(self) -> bool:
        return self.euid != 0

    @property
    def kernel(self) -> tuple[int, int]:
        m = re.match(r"(\d+)\.(\d+)", self.release)
        return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


@dataclass(frozen=True)
class Finding:
    key: str
    name: str
    ok: bool
    detail: str
    fix: str = ""
    optional: bool = False    # a feature is missing, the cells still run


# -- reading -----------------------------------------------------------------------------
def _text(root: Path, path: str) -> str | None:
    try:
        return (root / path.lstrip("/")).read_text(errors="replace").strip()
    except OSError:
        return None


def _int(root: Path, path: str) -> int | None:
    text = _text(root, path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _status(root: Path) -> dict[str, str]:
    out = {}
    for line in (_text(root, "/proc/self/status") or "").splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def _container(root: Path, root_fstype: str | None) -> str | None:
    """The container runtime, when two signs agree (a VM made from a container image may
    keep its /.dockerenv)."""
    cgroup = _text(root, "/proc/1/cgroup") or ""
    named = next((name for word, name in (("kubepods", "kubernetes"), ("libpod", "podman"),
                                          ("docker", "docker"), ("lxc", "lxc"))
                  if word in cgroup), None)
    if (root / "run/.containerenv").exists():
        return "podman"
    if (root / ".dockerenv").exists() and (named or root_fstype == "overlay"):
        return named or "docker"
    return named


def _cgroups(root: Path, euid: int, mounts: list[Mount]) -> Cgroups:
    v1 = frozenset(c for c in ("pids", "memory", "cpu")
                   if any(m.fstype == "cgroup" and c in m.super_options.split(",")
                          for m in mounts))
    # A container's runtime mounts them read-only unless it is privileged.
    v1_writable = euid == 0 and any(
        m.fstype == "cgroup" and "rw" in m.options.split(",") and c in m.super_options.split(",")
        for m in mounts for c in v1)
    v2 = next((m.mount_point for m in mounts if m.fstype == "cgroup2"), None)
    own = controllers = subtree = None
    delegated = False
    if v2 is not None:
        line = next((ln for ln in (_text(root, "/proc/self/cgroup") or "").splitlines()
                     if ln.startswith("0::")), None)
        if line is not None:
            own = v2.rstrip("/") + "/" + line[3:].strip("/")
            controllers = _text(root, f"{own}/cgroup.controllers")
            subtree = _text(root, f"{own}/cgroup.subtree_control")
            try:
                st = (root / own.lstrip("/")).stat()
                procs = (root / own.lstrip("/") / "cgroup.procs").stat()
                delegated = euid == 0 or (st.st_uid == euid and procs.st_uid == euid)
            except OSError:
                delegated = False
    top = _text(root, f"{v2}/cgroup.controllers") if v2 else None
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    manager = bool(v2 and euid != 0 and runtime and shutil.which("systemd-run") and
                   (root / runtime.lstrip("/") / "systemd" / "private").exists())
    return Cgroups(v1, v1_writable, v2, own, frozenset((controllers or "").split()),
                   frozenset((subtree or "").split()), delegated,
                   frozenset((top or "").split()), manager)


def _module(root: Path, release: str, path: str) -> str | None:
    """The file of a loadable kernel module (e.g. kernel/fs/overlayfs/overlay), compressed
    or not, for this kernel; None when there is none."""
    found = sorted((root / "lib/modules" / release).glob(path + ".ko*")) if release else []
    return "/" + str(found[0].relative_to(root)) if found else None


def fs_of(path: str, mounts: list[Mount]) -> str:
    """The filesystem type of the mount that holds path (longest mount point prefix)."""
    best = max((m for m in mounts if path == m.mount_point
                or path.startswith(m.mount_point.rstrip("/") + "/")),
               key=lambda m: len(m.mount_point), default=None)
    return best.fstype if best else "unknown"


def _chroot_dir(root: Path, top: Mount | None) -> str | None:
    """The directory PID 1 sees as this process's root, when that is not its own /: this
    process is in a chroot (the mount at its / is one PID 1 of the same mount namespace has
    elsewhere; mount ids are unique among live mounts). None when not, or unknown (PID 1
    in another mount namespace)."""
    if top is None:
        return None
    try:
        init = parse_mountinfo(_text(root, "/proc/1/mountinfo") or "")
    except ValueError:
        return None
    seen = next((m.mount_point for m in init if m.mount_id == top.mount_id), "/")
    return None if seen == "/" else seen


def _pasta(root: Path) -> str | None:
    """Where pasta is, as the sandbox looks for it (PATH, then /usr/bin and /bin)."""
    if root == Path("/"):
        return shutil.which("pasta") or shutil.which("pasta", path="/usr/bin:/bin")
    found = (root / d / "pasta" for d in ("usr/bin", "bin"))
    return next((str(p) for p in found if os.access(p, os.X_OK)), None)


def _default_dirs() -> tuple[str, str]:
    return rundir.base(), str(default_root())


def read_facts(root: str | Path = "/", euid: int | None = None,
               dirs: tuple[str, str] | None = None) -> Facts:
    """The facts of this host (or of a tree laid out like /proc and /sys under root);
    dirs: the kernel's runtime directory and image store (default: this user's)."""
    root = Path(root)
    runtime_dir, store_dir = dirs or _default_dirs()
    euid = os.geteuid() if euid is None else euid
    status = _status(root)
    try:
        mounts = parse_mountinfo(_text(root, "/proc/self/mountinfo") or "")
    except ValueError:
        mounts = []
    top = next((m for m in mounts if m.mount_point == "/"), None)
    caps = int(status.get("CapEff", "0") or "0", 16)
    uid_map = " ".join((_text(root, "/proc/self/uid_map") or FULL_ID_MAP).split())
    release = _text(root, "/proc/sys/kernel/osrelease") or ""
    profiles = _text(root, "/sys/kernel/security/apparmor/profiles")
    return Facts(
        euid=euid,
        release=release,
        userns_root=euid == 0 and uid_map != FULL_ID_MAP,
        max_user_namespaces=_int(root, "/proc/sys/user/max_user_namespaces"),
        unprivileged_userns_clone=_int(root, "/proc/sys/kernel/unprivileged_userns_clone"),
        apparmor=(_text(root, "/sys/module/apparmor/parameters/enabled") or "N")[:1] == "Y",
        apparmor_restrict=_int(root, "/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
        apparmor_profiles=None if profiles is None else frozenset(
            line.rsplit(" (", 1)[0] for line in profiles.splitlines() if line),
        seccomp=int(status.get("Seccomp", "0") or "0"),
        # Linux lists the actions its filters may take here (CONFIG_SECCOMP_FILTER)
        seccomp_errno="errno" in (_text(root, "/proc/sys/kernel/seccomp/actions_avail")
                                  or "").split(),
        pasta=_pasta(root),
        cap_sys_admin=bool(caps >> CAP_SYS_ADMIN & 1),
        container=_container(root, top.fstype if top else None),
        filesystems=frozenset(line.split()[-1] for line in
                              (_text(root, "/proc/filesystems") or "").splitlines() if line),
        overlay_module=_module(root, release, "kernel/fs/overlayfs/overlay"),
        root_mount=top.fstype if top else None if mounts else "unknown",
        chroot_dir=_chroot_dir(root, top),
        root_absolute=bool(top and top.fstype == "rootfs"
                           or top and top.parent_id == top.mount_id),
        root_shared=bool(top and top.shared is not None),
        proc_masked=tuple(m.mount_point for m in mounts if m.mount_point in PROC_MASKS),
        runtime_dir=runtime_dir, runtime_fs=fs_of(runtime_dir, mounts),
        store_dir=store_dir, store_fs=fs_of(store_dir, mounts),
        wsl="microsoft" in release.lower() or "wsl" in release.lower(),
        cgroups=_cgroups(root, euid, mounts),
    )


# -- words -------------------------------------------------------------------------------
def _apparmor_blocks(f: Facts) -> bool:
    return bool(f.rootless and f.apparmor and f.apparmor_restrict == 1
                and not (f.apparmor_profiles and APPARMOR_PROFILE in f.apparmor_profiles))


def _in_container(f: Facts) -> str:
    return f"the {f.container} container" if f.container else "the container (if this is one)"


def _fixes(f: Facts) -> dict[str, Finding]:
    """Every condition found, by key (see diagnose for the order they are shown in)."""
    out: dict[str, Finding] = {}
    if f.max_user_namespaces == 0:
        out["userns-limit"] = Finding(
            "userns-limit", "user namespaces", False,
            "user.max_user_namespaces = 0: no user namespace can be created (RHEL and some "
            "hardened hosts); every cell's script runs in one",
            "sysctl -w user.max_user_namespaces=15000 (to keep it: a file in /etc/sysctl.d/)")
    if f.rootless and f.unprivileged_userns_clone == 0:
        out["userns-clone"] = Finding(
            "userns-clone", "unprivileged user namespaces", False,
            "kernel.unprivileged_userns_clone = 0: ordinary users may not create user "
            "namespaces (Debian's switch)",
            "sysctl -w kernel.unprivileged_userns_clone=1 (to keep it: /etc/sysctl.d/), or "
            "run Jupyter as root")
    if _apparmor_blocks(f):
        out["apparmor"] = Finding(
            "apparmor", "AppArmor user namespace restriction", False,
            "kernel.apparmor_restrict_unprivileged_userns = 1 (Ubuntu 23.10+): a user "
            "namespace is created, but without the capabilities to map ids or mount",
            f"allow it for rootfs-init: `rootfs-kernel doctor --apparmor-profile | sudo tee "
            f"/etc/apparmor.d/{APPARMOR_PROFILE} && sudo apparmor_parser -r "
            f"/etc/apparmor.d/{APPARMOR_PROFILE}`; or, for every program, "
            "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0")
    if f.seccomp == 2:
        out["seccomp"] = Finding(
            "seccomp", "seccomp", False,
            "a seccomp filter is active (Docker's and containerd's default profiles refuse "
            "clone(2) with namespace flags, unshare(2) and mount(2) to a process without "
            "CAP_SYS_ADMIN)",
            f"start {_in_container(f)} with `--security-opt seccomp=unconfined` (or "
            f"`{CONTAINER_FLAGS}`, or --privileged); Kubernetes: seccompProfile: Unconfined",
            optional=True)
    if not f.seccomp_errno:
        out["seccomp-filter"] = Finding(
            "seccomp-filter", "the cells' seccomp filter", False,
            "this Linux takes no seccomp filter that answers with an errno "
            "(/proc/sys/kernel/seccomp/actions_avail lacks errno: no CONFIG_SECCOMP_FILTER): "
            "every cell fails where its filter is installed",
            "run a Linux built with CONFIG_SECCOMP_FILTER (every distribution's is), or start "
            "each cell with `%seccomp off` (a host-access line: a locked kernel refuses it)")
    if not f.pasta:
        out["pasta"] = Finding(
            "pasta", "outbound network", False,
            "pasta is not installed: `%net user` cells are refused (the default, a network "
            "of the cell's own with lo alone, and `%net host` need nothing)",
            "install pasta: apt-get install passt (Debian, Ubuntu), dnf install passt "
            "(Fedora)", optional=True)
    if not f.rootless and not f.cap_sys_admin:
        out["caps"] = Finding(
            "caps", "capabilities", False,
            "root without CAP_SYS_ADMIN (a container's default): no mount namespace, no mount",
            f"start {_in_container(f)} with `{CONTAINER_FLAGS}` (or --privileged); "
            "Kubernetes: capabilities.add: [SYS_ADMIN]")
    if f.proc_masked:
        out["proc-masks"] = Finding(
            "proc-masks", "masked /proc", False,
            f"{len(f.proc_masked)} path(s) of /proc are mounted over ({f.proc_masked[0]}, "
            "...), as container runtimes do: the kernel lets a user namespace mount a new "
            "proc only where the whole of /proc is visible",
            f"start {_in_container(f)} with `--security-opt systempaths=unconfined` "
            "(Kubernetes: procMount: Unmasked); root cells outside a user namespace are not "
            "affected", optional=True)
    if "overlay" not in f.filesystems and not f.overlay_module:
        out["overlay"] = Finding(
            "overlay", "overlayfs", False, "not in /proc/filesystems",
            "modprobe overlay (on the host, for a container)")
    elif f.rootless and f.kernel < (5, 11):
        out["overlay-userns"] = Finding(
            "overlay-userns", "overlayfs in a user namespace", False,
            f"Linux {f.release}: overlayfs may be mounted in a user namespace from 5.11 on "
            "(some distributions patched it in earlier)",
            "run Jupyter as root, or upgrade to Linux 5.11 or newer")
    # The kernel's own directories on a container's root: overlayfs loses whiteouts.
    for key, name, path, fs, effect, fix in (
            ("runtime-overlay", "runtime directory", f.runtime_dir, f.runtime_fs,
             "it takes no whiteouts, so a `%keep` cell that deletes or replaces a kept file "
             "fails, keeping nothing (other cells are not affected)",
             "give it a filesystem of its own: podman/docker run --tmpfs /tmp (or a volume "
             "at /tmp; Kubernetes: an emptyDir at /tmp), or set TMPDIR (for root) or "
             "XDG_RUNTIME_DIR (for other users) to a tmpfs"),
            ("store-overlay", "image store", f.store_dir, f.store_fs,
             "the whiteouts that record deletions vanish there, so an `%export`ed or "
             "imported image brings deleted files back",
             f"a volume at {f.store_dir} (Kubernetes: a volume or an emptyDir there)")):
        if fs == "overlay":
            out[key] = Finding(key, name, False, f"{path} is on overlayfs (a container's "
                               f"root): {effect}", fix, optional=True)
    if f.root_mount is None or f.chroot_dir:
        where = (f"PID 1 sees this root at {f.chroot_dir}" if f.chroot_dir
                 else "/ is not even a mount point, so pivot_root and a change of its "
                      "propagation are refused too (EINVAL)")
        d = f.chroot_dir or "DIR"
        out["root-chroot"] = Finding(
            "root-chroot", "root directory", False,
            f"this process is in a chroot ({where}): the kernel refuses a chrooted process "
            "new user namespaces (EPERM), and every cell's script runs in one; making the "
            "directory a mount point does not change that",
            "enter the directory with pivot_root instead of chroot: "
            f"{PIVOT_INTO.replace('DIR', d)} (as root, from outside the chroot); or run "
            f"Jupyter under systemd-nspawn -D {d}, bwrap --bind {d} / or a container")
    elif f.root_absolute:
        out["root-ramfs"] = Finding(
            "root-ramfs", "root directory", True,
            f"/ is the initial ramfs ({f.root_mount}): pivot_root refuses it (EINVAL); cells "
            "move their root over it and chroot instead, as runc --no-pivot does",
            "to use pivot_root, switch to a real root filesystem (switch_root) before "
            "starting Jupyter", optional=True)
    if not f.root_shared:
        out["propagation"] = Finding(
            "propagation", "/ propagation", True,
            "/ is a private mount here (containers, WSL2): a `%propagation shared` cell "
            "reaches only host mounts that were made shared (notebook 03 makes its own)",
            "to share with the whole tree: sudo mount --make-rshared /", optional=True)
    return out


def _limits(f: Facts) -> Finding:
    """Mirrors sandbox/cgroups.py: cgroup v2 when it is the only hierarchy
    (/sys/fs/cgroup) and the kernel's own cgroup lets it make children with controllers,
    else the v1 controllers, else setrlimit."""
    c = f.cgroups
    wanted = {"pids", "memory", "cpu"}
    if c.v2 == "/sys/fs/cgroup":
        if f.euid == 0 and wanted & c.v2_top:
            have = ", ".join(sorted(wanted & c.v2_top))
            return Finding("limits", "limits", True,
                           f"cgroup v2: cells in /sys/fs/cgroup/rootfs-kernel ({have})")
        if c.v2_delegated and wanted & c.v2_subtree:
            have = ", ".join(sorted(wanted & c.v2_subtree))
            return Finding("limits", "limits", True, f"cgroup v2 below {c.v2_own} ({have})")
        if c.user_manager:
            return Finding("limits", "limits", True,
                           "cgroup v2: a scope systemd's user manager delegates to the "
                           "kernel's helper (systemd-run --user --scope -p Delegate=yes)")
        if f.euid == 0:
            why = "cgroup v2: the hierarchy's root offers no pids, memory or cpu controller"
        elif not c.v2_delegated:
            why = f"cgroup v2: {c.v2_own} belongs to root, not to this user"
        elif not wanted & c.v2_controllers:
            why = f"cgroup v2: no pids, memory or cpu controller is delegated to {c.v2_own}"
        else:
            why = (f"cgroup v2: {c.v2_own} holds processes, so no controller can be enabled "
                   "for cgroups below it (cgroup.subtree_control)")
    elif c.v1 and c.v1_writable:
        return Finding("limits", "limits", True, f"cgroup v1 ({', '.join(sorted(c.v1))})")
    elif c.v1 and f.euid == 0:
        why = ("the cgroup v1 controllers are mounted read-only (a container: --privileged "
               "mounts them writable)")
    elif c.v1:
        why = "the cgroup v1 controllers belong to root"
    else:
        why = "no cgroup controller (pids, memory, cpu) is mounted"
    return Finding(
        "limits", "limits", False,
        f"{why}: %limit falls back to setrlimit (RLIMIT_NPROC and RLIMIT_AS per process; "
        "cpu is not limited)",
        "for cgroup limits run Jupyter where the kernel may create cgroups with the pids and "
        "memory controllers: as root; as an ordinary user on cgroup v2, with systemd's user "
        "manager running (log in, or `loginctl enable-linger USER`: the kernel asks it for a "
        "delegated scope), or in a cgroup v2 subtree delegated to it whose own processes "
        "live in a child cgroup", optional=True)


def diagnose(f: Facts) -> list[Finding]:
    """Every check, failed or not, in the order doctor prints them."""
    found = _fixes(f)
    who = ("root of a user namespace (a rootless container): cells get the ids mapped here"
           if f.userns_root else "root: cells get mount and PID namespaces" if not f.rootless
           else f"ordinary user (uid {f.euid}): cells also get a user namespace of their own")
    out = [Finding("user", "user", True, who)]
    if f.release:
        out.append(Finding("kernel", "kernel", True, f"Linux {f.release}" +
                           (" (WSL2: / is not shared, cgroups are mixed v1/v2)"
                            if f.wsl else "")))
    if f.container:
        out.append(Finding("runtime", "runtime", True, f"running in a {f.container} container"))
    ok = {
        "userns-limit": f"user.max_user_namespaces = {f.max_user_namespaces}",
        "userns-clone": "kernel.unprivileged_userns_clone = 1",
        "apparmor": ("AppArmor allows rootfs-init's user namespaces"
                     if f.apparmor_restrict == 1 else "no AppArmor user namespace restriction"),
        "seccomp": "no seccomp filter",
        "seccomp-filter": "Linux takes the cells' seccomp filter",
        "pasta": f"pasta ({f.pasta}): `%net user` cells reach the network",
        "caps": "CAP_SYS_ADMIN",
        "overlay": "overlayfs is available" if "overlay" in f.filesystems else
                   f"a module ({f.overlay_module}), loaded by the first overlay mount",
        "root-chroot": f"/ is a mount point ({f.root_mount})",
    }
    for key in ("userns-limit", "userns-clone", "apparmor", "seccomp", "seccomp-filter",
                "caps", "proc-masks", "overlay", "overlay-userns", "runtime-overlay",
                "store-overlay", "root-chroot", "root-ramfs", "propagation", "pasta"):
        if key in found:
            out.append(found[key])
        elif key in ok and _relevant(key, f):
            name = {"userns-limit": "user namespaces", "userns-clone":
                    "unprivileged user namespaces", "apparmor":
                    "AppArmor user namespace restriction", "root-chroot": "root directory",
                    "caps": "capabilities", "overlay": "overlayfs",
                    "seccomp-filter": "the cells' seccomp filter", "pasta": "outbound network"}
            out.append(Finding(key, name.get(key, key), True, ok[key]))
    out.append(_limits(f))
    return out


def _relevant(key: str, f: Facts) -> bool:
    if key == "userns-clone":
        return f.rootless and f.unprivileged_userns_clone is not None
    if key == "apparmor":
        return f.apparmor_restrict is not None
    if key == "caps":
        return not f.rootless
    if key == "userns-limit":
        return f.max_user_namespaces is not None
    return True


def _field(op: object, name: str) -> object:
    """A field of a plan operation, whether a dict ({"op": KIND, ...}) or a typed one
    (KIND and attributes)."""
    if op is None:
        return None
    if isinstance(op, dict):
        return op.get(name)
    return getattr(op, "KIND" if name == "op" else name, None)


def explain(f: Facts, kind: str, err: int, op: object = None) -> Finding | None:
    """The finding that explains a failed cell setup: `kind` and `err` as rootfs-init
    reports them (report.py), `op` the plan operation that failed (None: before any)."""
    found = _fixes(f)
    name, fstype = _field(op, "op"), _field(op, "fstype")

    def first(*keys: str) -> Finding | None:
        return next((found[k] for k in keys if k in found), None)

    if err == E.ENOSPC:   # a namespace count limit: user.max_*_namespaces
        return first("userns-limit")
    if kind == "clone" or (kind == "errno" and name is None):
        # Creating the namespaces, mapping ids, or the script's own user namespace.
        if err == E.EPERM:   # a chroot, or root without CAP_SYS_ADMIN, whatever else holds
            return first("root-chroot", "caps", "seccomp", "userns-clone", "apparmor")
        if err == E.EACCES:
            return first("apparmor")
        return first("userns-clone", "seccomp")
    if name == "propagation" and err == E.EINVAL:
        return first("root-chroot")
    if name == "pivot_root" and err == E.EINVAL:
        return first("root-ramfs", "root-chroot")
    if name == "mount" and fstype == "overlay":   # every upper is on the cell's tmpfs
        return first("overlay", "overlay-userns", "apparmor")
    if name == "mount" and fstype in ("proc", "sysfs") and err == E.EPERM:
        return first("proc-masks", "seccomp", "caps")
    if err in (E.EPERM, E.EACCES):
        return first("apparmor", "seccomp", "caps")
    return None


def cause(kind: str, err: int, op: object = None, facts: Facts | None = None) -> str:
    """' — CAUSE. Fix: FIX.' for the host condition that explains a refused cell setup,
    or '': what a cell's one-line message adds (sandbox/report.py's `explain`; the
    session gives it its sandbox). Reads the host's /proc and /sys unless `facts` are
    given: only ever called for a failed cell."""
    try:
        found = explain(facts or read_facts(), kind, err, op)
    except (OSError, ValueError):
        return ""
    return f" — {found.detail}. Fix: {found.fix}." if found else ""
