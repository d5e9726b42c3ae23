"""What runs in the processes forked for one cell (never in the kernel process).

    helper ──clone(CLONE_NEWNS|CLONE_NEWPID|...)──▶ B (PID 1 of the new PID namespace)
                                                     runs the plan's setup operations,
                                                     ──clone(CLONE_NEWUSER|CLONE_NEWNS)──▶
                                                       C: exec /bin/sh -c SCRIPT, its
                                                       mounts locked (_start_locked);
                                                     waits for C, takes the snapshots,
                                                     writes the result, exits.

B dies with the helper (PR_SET_PDEATHSIG), and when B (PID 1) exits the kernel kills
every process left in the namespace and tears down every mount in it: nothing outlives
the cell.

Everything B needs after the root switch is imported before the fork: the host's Python
library is out of reach once the old root is detached.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import signal
import stat
import time
from collections.abc import Iterator

from ..inspect import changes as inspect_changes
from ..inspect import listing as inspect_listing
from ..inspect import mounts as inspect_mounts
from ..inspect import ns as inspect_ns
from . import syscalls as sc
from .cgroups import join as join_cgroups

SETUP_FAILED = 125
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


class SetupError(Exception):
    pass


def start(plan: dict, stdout: int, stderr: int, result: int, helper_pid: int) -> int:
    """Called in the helper: create the cell's first process (B) already inside its new
    namespaces and return its pid. Raises SetupError when the host refuses them.

    A raw clone(2) with namespace flags gives a child that is PID 1 of its new PID
    namespace in one step, where fork + unshare + fork takes two copies of the helper
    (about 4 ms more per cell). The helper is single-threaded and the child only runs
    this module's code before it exits, so Python's fork bookkeeping is not needed.
    """
    flags = 0 if plan["host"] else plan["namespaces"]
    try:
        pid = sc.clone(flags)
    except OSError as err:
        raise SetupError(_unshare_advice(err)) from None
    if pid == 0:
        _child(plan, stdout, stderr, result, helper_pid)
    return pid


def _child(plan: dict, stdout: int, stderr: int, result: int, helper_pid: int) -> None:
    """Body of process B. Never returns."""
    code = SETUP_FAILED
    try:
        # In a new PID namespace the parent lies outside it: getppid() says 0.
        _die_with_parent(0 if plan["pidns"] else helper_pid)
        sc.set_process_name("rootfs-init")
        if plan.get("cgroup_procs"):
            join_cgroups(plan["cgroup_procs"])  # before any child: all inherit the limits
        if plan["host"]:
            _exec_script(plan, stdout, stderr)  # a %%host cell: no namespaces at all
        if plan["namespaces"] & sc.CLONE_NEWUSER:
            _map_ids(plan["uid"], plan["gid"])
        code = _init(plan, stdout, stderr, result)
    except BaseException as err:  # noqa: BLE001 - a child must report and _exit, never unwind
        report(result, {"error": _describe(err)})
    finally:
        os._exit(code)


def _init(plan: dict, stdout: int, stderr: int, result: int) -> int:
    """Set up the container, run the script, snapshot, report (in process B)."""
    started = time.monotonic()
    if os.stat("/proc/self/ns/mnt").st_ino == plan["host_mnt_ns"]:
        # Never run setup in the host's mount namespace: pivot_root there would move
        # the root of every process on the machine.
        raise SetupError("refusing to set up a container in the host's mount namespace")
    ctx = _Setup(plan)
    profile: list[tuple[str, str, float]] | None = [] if plan.get("profile") else None
    try:
        for op in plan["ops"]:
            t = time.monotonic()
            ctx.run(op)
            if profile is not None:  # where setup time goes (benchmarks/profile_sandbox.py)
                where = op.get("target") or op.get("path") or op.get("root") or ""
                profile.append((op["op"], where, time.monotonic() - t))
    except OSError as err:
        raise SetupError(ctx.explain(err)) from None
    setup_seconds = time.monotonic() - started
    _apply_rlimits(plan.get("rlimits") or {})
    script_ns = None
    if plan.get("script_namespaces"):
        ctx.prepare_snapshots()  # the script may do the root switch itself (chroot)
        script, script_ns, proc = _start_locked(plan, stdout, stderr)
        if any(show["kind"] == "ns" for show in plan["show"]):
            # The script's namespaces, not this init's: read them while it lives.
            ctx.script_ns_ids = inspect_ns.read_namespaces(f"{proc}/{script}")
    else:
        script = _spawn_script(plan, stdout, stderr)
    # Only the script holds the output pipes now: the kernel sees their end as soon as
    # the script's processes are gone, without waiting for this process to exit.
    os.close(stdout)
    os.close(stderr)
    if script is None:
        report(result, {"status": 127, "signal": None, "setup_seconds": setup_seconds,
                         "snapshots": ctx.snapshots()})
        return 127
    pidns = plan["pidns"]

    def forward(sig: int, _frame: object) -> None:
        try:
            os.kill(-1, sig) if pidns else os.killpg(script, sig)
        except ProcessLookupError:
            pass

    def kill_script(_sig: int, _frame: object) -> None:
        # The helper ends the cell (timeout, ignored interrupt, limit): the script's
        # processes go, this init stays to take the snapshots.
        forward(signal.SIGKILL, None)

    for sig in _FORWARDED:
        signal.signal(sig, forward)
    signal.signal(signal.SIGUSR1, kill_script)
    status = _wait_for(script)
    code = _exit_code(status)
    if script_ns is not None:
        # Look at the filesystem the script saw (its own mounts included).
        sc.setns(script_ns, sc.CLONE_NEWNS)
        os.close(script_ns)
        if any(op["op"] == "chroot" for op in plan["script_ops"]):
            sc.chroot(plan["root"])  # setns put us at the namespace's real root
        os.chdir("/")
    outcome = {"status": code,
               "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
               "setup_seconds": setup_seconds, "snapshots": ctx.snapshots(),
               "profile": profile}
    if pidns:
        # Snapshots are taken; stop what the script left running before PID 1 exits.
        _kill_all_but_me()
    report(result, outcome)
    os.close(result)  # the report is complete: the kernel may answer before teardown
    return code


_SCRIPT_SIGDEF = (*_FORWARDED, signal.SIGPIPE, signal.SIGCHLD)


def _start_locked(plan: dict, stdout: int, stderr: int) -> tuple[int, int, str]:
    """Start the script in a user + mount namespace below this one (plan.py, "lock").

    Copying the mount namespace into a less privileged user namespace locks every mount
    made so far: the script keeps CAP_SYS_ADMIN for mounts of its own, but cannot
    unmount a mask, remount a read-only bind read-write, or move what the setup made.
    Returns the script's pid, an fd of its mount namespace (for the snapshots) and the
    /proc that shows it.
    """
    ready_r, ready_w = os.pipe()
    pid = sc.clone(plan["script_namespaces"])
    if pid == 0:
        try:
            os.close(ready_w)
            if os.read(ready_r, 1) != b"1":  # the parent failed to map our ids
                os._exit(SETUP_FAILED)
            for op in plan["script_ops"]:
                _script_op(op)
        except OSError as err:
            os.write(stderr, f"rootfs-kernel: {_describe(err)}\n".encode())
            os._exit(SETUP_FAILED)
        _exec_script(plan, stdout, stderr)
    os.close(ready_r)
    # pid is a pid of the cell's PID namespace: look it up in the cell's own /proc (not
    # yet at /proc when the script is still to chroot).
    proc = "/proc" if plan["root"] == "/" or not any(
        op["op"] == "chroot" for op in plan["script_ops"]) else f"{plan['root']}/proc"
    try:
        ns_fd = os.open(f"{proc}/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        # As root every id maps to itself, so ownership means what it did; an ordinary
        # user's cell has only its root to map.
        span = 1 if plan["rootless"] else 4294967295
        for name in ("uid_map", "gid_map"):
            with open(f"{proc}/{pid}/{name}", "w") as f:
                f.write(f"0 0 {span}")
        os.write(ready_w, b"1")
    finally:
        os.close(ready_w)
    return pid, ns_fd, proc


def _script_op(op: dict) -> None:
    """The few setup steps the script's own namespaces must take (plan.script_ops)."""
    kind = op["op"]
    if kind == "hostname":
        sc.sethostname(op["name"])
    elif kind == "chroot":
        os.chdir(op["root"])
        sc.chroot(".")
        os.chdir("/")
    elif kind == "mask":
        if os.path.isdir(op["path"]):
            sc.mount("tmpfs", op["path"], "tmpfs", sc.MS_RDONLY, "size=0")
    else:
        sc.mount(op["source"], op["target"], op["fstype"], op["flags"], op["data"] or None)


def _apply_rlimits(rlimits: dict[str, int]) -> None:
    """The cgroup-less fallback of %limit (set in the init, inherited by the script)."""
    if "nproc" in rlimits:
        resource.setrlimit(resource.RLIMIT_NPROC, (rlimits["nproc"], rlimits["nproc"]))
    if "as" in rlimits:
        resource.setrlimit(resource.RLIMIT_AS, (rlimits["as"], rlimits["as"]))


def _spawn_script(plan: dict, stdout: int, stderr: int) -> int | None:
    """Start process C with posix_spawn: a vfork-style start, not a copy of this Python.

    C gets a new session (so the kernel's SIGINT to its process group misses it), default
    signal dispositions, /dev/null as stdin and the cell's pipes as stdout and stderr.
    """
    try:
        os.chdir(plan["cwd"])
    except OSError:
        os.chdir("/")
    actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
               (os.POSIX_SPAWN_DUP2, stdout, 1), (os.POSIX_SPAWN_DUP2, stderr, 2)]
    try:
        return os.posix_spawn(plan["argv"][0], plan["argv"], plan["env"], file_actions=actions,
                              setsid=True, setsigdef=_SCRIPT_SIGDEF, setsigmask=())
    except OSError as err:
        os.write(stderr, f"rootfs-kernel: {_exec_problem(plan, err)}\n".encode())
        return None


def _exec_problem(plan: dict, err: OSError) -> str:
    if err.errno == errno.E2BIG:
        return "the cell is too long for `sh -c` (128 KiB at most)"
    return f"cannot run {plan['argv'][0]}: {err.strerror}"


def _exec_script(plan: dict, stdout: int, stderr: int) -> None:
    """A %%host cell: process A itself becomes the script, in a session of its own."""
    try:
        os.setsid()
        for sig in _SCRIPT_SIGDEF:
            signal.signal(sig, signal.SIG_DFL)
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        try:
            os.chdir(plan["cwd"])
        except OSError:
            os.chdir("/")
        os.execve(plan["argv"][0], plan["argv"], plan["env"])
    except OSError as err:
        os.write(2, f"rootfs-kernel: {_exec_problem(plan, err)}\n".encode())
    os._exit(127)


class _Setup:
    """Runs the plan's operations in B, keeping the fds the snapshots need."""

    def __init__(self, plan: dict):
        self.plan = plan
        self.root_fd: int | None = None
        self.layer_fds: tuple[int, list[int]] | None = None
        self.current: dict | None = None
        self.script_ns_ids: dict | None = None

    def run(self, op: dict) -> None:
        self.current = op
        getattr(self, "op_" + op["op"])(op)

    def explain(self, err: OSError) -> str:
        op = self.current or {}
        where = f" (header line {op['lineno']})" if op.get("lineno") else ""
        what = {k: v for k, v in op.items() if k in ("op", "source", "target", "fstype", "path")}
        hint = ""
        if err.errno == errno.EPERM and self.plan["rootless"]:
            hint = ("; an ordinary user may only mount filesystems that allow it in a user "
                    "namespace (tmpfs, proc, sysfs with %unshare net, devpts, mqueue, overlay)")
        return f"container setup failed at {what}{where}: {err.strerror or err}{hint}"

    # -- resolution inside the new root --------------------------------------------------
    def _root(self) -> int:
        if self.root_fd is None:
            self.root_fd = os.open(self.plan["root"], os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        return self.root_fd

    def _open(self, path: str, directory: bool = False) -> int:
        flags = os.O_PATH | (os.O_DIRECTORY if directory else 0)
        return sc.openat2(self._root(), path.lstrip("/") or ".", flags,
                          sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS)

    def _resolve(self, path: str, create: str | None) -> int:
        """An O_PATH fd for path inside the new root; symlinks cannot lead out of it."""
        try:
            return self._open(path)
        except FileNotFoundError:
            if not create:
                raise
        parts = [p for p in path.split("/") if p]
        parent = self._root()
        for i, name in enumerate(parts):
            last = i == len(parts) - 1
            try:
                fd = self._open("/".join(parts[: i + 1]), directory=not last)
            except FileNotFoundError:
                try:
                    if last and create == "file":
                        os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY
                                         | os.O_CLOEXEC, 0o644, dir_fd=parent))
                    else:
                        os.mkdir(name, 0o755, dir_fd=parent)
                except FileExistsError:
                    # A dangling symlink: it points at something the image lacks (perhaps
                    # a host path). Following it inside the root finds nothing; refuse.
                    where = "/" + "/".join(parts[: i + 1])
                    raise SetupError(f"{path}: {where} is a symlink to a path that does not "
                                     "exist inside the root; name a real directory") from None
                fd = self._open("/".join(parts[: i + 1]), directory=not last)
            if parent != self.root_fd:
                os.close(parent)
            parent = fd
        return parent

    def _target(self, op: dict, create: str | None) -> tuple[int, str]:
        fd = self._resolve(op["target"], create)
        return fd, f"/proc/self/fd/{fd}"

    # -- operations ------------------------------------------------------------------------
    def op_propagation(self, op: dict) -> None:
        mode = op["mode"]
        if mode == "private":
            sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
        elif mode == "slave":
            sc.mount(None, "/", None, sc.MS_REC | sc.MS_SLAVE)
        elif op["root_switch"]:
            # pivot_root refuses a shared root; the rest of the tree stays shared.
            sc.mount(None, "/", None, sc.MS_PRIVATE)

    def op_mkdir(self, op: dict) -> None:
        os.makedirs(op["path"], op["mode"], exist_ok=True)

    def op_mount(self, op: dict) -> None:
        if not op["in_root"]:
            if op["private_parent"]:
                sc.mount(None, _mount_point_of(op["target"]), None, sc.MS_PRIVATE)
            sc.mount(op["source"], op["target"], op["fstype"], op["flags"], op["data"] or None)
            return
        fd, target = self._target(op, op["create"])
        try:
            sc.mount(op["source"], target, op["fstype"], op["flags"], op["data"] or None)
        finally:
            os.close(fd)

    def op_bind(self, op: dict) -> None:
        source = op["source"]
        try:
            st = os.stat(source)
        except FileNotFoundError:
            if op.get("optional"):
                return
            raise SetupError(f"bind source {source} does not exist on the host") from None
        create = op["create"]
        if create == "like-source":
            create = "dir" if stat.S_ISDIR(st.st_mode) else "file"
        fd, target = self._target(op, create)
        try:
            sc.mount(source, target, None, sc.MS_BIND | (sc.MS_REC if op["rec"] else 0))
        finally:
            os.close(fd)
        if op["readonly"]:
            self._readonly(op["target"], op["rec"])

    def _readonly(self, path: str, recursive: bool) -> None:
        fd = self._open(path)  # reopened: now the root of the new mount
        try:
            sc.make_readonly(fd, recursive)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _existing(self, path: str) -> Iterator[str | None]:
        """A /proc/self/fd path for path inside the root, or None when it is missing."""
        try:
            fd = self._open(path)
        except (FileNotFoundError, NotADirectoryError):
            yield None
            return
        try:
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)

    def op_mask(self, op: dict) -> None:
        with self._existing(op["path"]) as target:
            if target is None:
                return
            if stat.S_ISDIR(os.stat(target).st_mode):
                sc.mount("tmpfs", target, "tmpfs", sc.MS_RDONLY, "size=0")
            else:
                sc.mount("/dev/null", target, None, sc.MS_BIND)

    def op_readonly(self, op: dict) -> None:
        with self._existing(op["path"]) as target:
            if target is None:
                return
            sc.mount(target, target, None, sc.MS_BIND | sc.MS_REC)
        self._readonly(op["path"], True)

    def op_symlink(self, op: dict) -> None:
        head, _, name = op["path"].rstrip("/").rpartition("/")
        parent = self._open(head or "/", directory=True)
        try:
            os.symlink(op["target"], name, dir_fd=parent)
        except FileExistsError:
            pass
        finally:
            os.close(parent)

    def prepare_snapshots(self) -> None:
        if self.layer_fds is None:
            self._before_switch()

    def _before_switch(self) -> None:
        changes = self.plan.get("changes")
        if changes and any(s["kind"] == "changes" for s in self.plan["show"]):
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
            self.layer_fds = (os.open(changes["upper"], flags),
                              [os.open(p, flags) for p in changes["lowers"]])
        if self.root_fd is not None:
            os.close(self.root_fd)
            self.root_fd = None

    def op_pivot_root(self, op: dict) -> None:
        self._before_switch()
        os.chdir(op["root"])
        sc.pivot_root(".", ".")
        # The old root now sits on top of ".". With %propagation shared its mounts are
        # still peers of the host's: detaching them would unmount the host's own mounts.
        # Make them slaves first (as runc does), then detach.
        sc.mount(None, ".", None, sc.MS_REC | sc.MS_SLAVE)
        sc.umount2(".", sc.MNT_DETACH)  # the old root: gone from this namespace
        os.chdir("/")

    def op_chroot(self, op: dict) -> None:
        self._before_switch()
        os.chdir(op["root"])
        sc.chroot(".")
        os.chdir("/")

    def op_hostname(self, op: dict) -> None:
        sc.sethostname(op["name"])

    # -- after the script ------------------------------------------------------------------
    def snapshots(self) -> list[dict]:
        out = []
        for show in self.plan["show"]:
            try:
                out.append({**show, "data": self._snapshot(show)})
            except Exception as err:  # noqa: BLE001 - a snapshot never changes the cell's result
                out.append({**show, "error": _describe(err)})
        return out

    def _snapshot(self, show: dict) -> object:
        kind = show["kind"]
        if kind == "mounts":
            with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
                return f.read()
        if kind == "ns":
            return self.script_ns_ids or inspect_ns.read_namespaces()
        if kind == "ls":
            return inspect_listing.snapshot(show["path"])
        if kind == "changes":
            if self.layer_fds is None:
                raise SetupError("%show changes needs a root filesystem (not %root none)")
            upper, lowers = self.layer_fds
            return inspect_changes.scan_upper(upper, lowers)
        raise SetupError(f"unknown view {kind}")


def _mount_point_of(path: str) -> str:
    """The mount point of the mount that holds path (longest mountinfo prefix)."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        points = [m.mount_point for m in inspect_mounts.parse_mountinfo(f.read())]
    return max((p for p in points if path == p or path.startswith(p.rstrip("/") + "/")),
               key=len, default="/")


def _wait_for(pid: int) -> int:
    """Reap every child (B is init of its namespace) until pid itself has ended."""
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        if done == pid:
            return status


def _kill_all_but_me() -> None:
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _die_with_parent(parent: int) -> None:
    sc.set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(SETUP_FAILED)


def _map_ids(uid: int, gid: int) -> None:
    """Map root in the new user namespace to the kernel's own user (like `unshare -r`)."""
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"0 {gid} 1")


def _unshare_advice(err: OSError) -> str:
    return (f"cannot create the cell's namespaces: unshare failed ({err.strerror}). "
            "The host forbids it: user namespaces may be disabled "
            "(sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone, or "
            "AppArmor's kernel.apparmor_restrict_unprivileged_userns=1), or a container's "
            "seccomp profile refuses unshare. Run `rootfs-kernel doctor` for the details; "
            "%%host cells still run.")


def _describe(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror}" + (f": {err.filename}" if err.filename else "")
    return str(err) or type(err).__name__


def report(fd: int, payload: dict) -> None:
    data = json.dumps(payload).encode()
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        pass  # the kernel went away; nothing to tell
