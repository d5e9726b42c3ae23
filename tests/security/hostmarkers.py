"""Markers on the real host that no cell may read or change, and how to check them.

Each marker is placed by the test, holds a value unique to this run, and can tell
afterwards whether it was read (its token turns up in a cell's output or in an image) or
changed (its state differs). The cells that try to reach them are the red team's attacks
(issue 13), driven through jupyter_client like any front-end.

Root-owned marker for the ordinary-user pass: that user cannot make one, so
scripts/test.sh places `~/.rootfs-root-marker` (0600, root's) and its public id in
`~/.rootfs-root-marker.id` before running the tests as that user; the id starts the
file's content, so a cell that read the file would print the id.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = os.geteuid() == 0
ROOT_MARKER = ".rootfs-root-marker"


def token(kind: str) -> str:
    """A value no cell output contains by chance."""
    return f"rkmarker_{kind}_{secrets.token_hex(8)}"


def texts_of(*results) -> str:
    """Everything a cell showed: streams, errors, reply, display data."""
    out = []
    for r in results:
        out += [r.stdout, r.stderr, repr(r.reply), repr(r.errors), repr(r.displays)]
    return "\n".join(out)


# -- files ------------------------------------------------------------------------------------
@dataclass
class SecretFile:
    """A 0600 file: `public` starts its content, so output holding it means it was read."""

    path: Path
    public: str
    owner_uid: int
    created: bool = True
    before: tuple = field(default=())

    def state(self) -> tuple:
        st = os.lstat(self.path)
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode, st.st_uid)

    def __post_init__(self) -> None:
        self.before = self.state()

    def assert_unread(self, *texts: str) -> None:
        for text in texts:
            assert self.public not in text, f"the content of {self.path} reached a cell"

    def assert_unchanged(self) -> None:
        assert self.state() == self.before, f"{self.path} was changed"

    def remove(self) -> None:
        if self.created:
            self.path.unlink(missing_ok=True)


def make_secret(directory: Path, kind: str) -> SecretFile:
    """A unique 0600 file of the current user in `directory`."""
    public = token(kind)
    # Its name is in the attacks' error messages: it must not give the content away.
    path = directory / f".rootfs-secret-{secrets.token_hex(6)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{public}_{secrets.token_hex(16)}\n")
    return SecretFile(path, public, os.getuid())


def make_public_file(parent: Path) -> SecretFile:
    """A file anyone may read (0644, in a new 0755 directory of `parent`): what keeps a cell
    from it is the boundary under test alone, not its permissions (root's cells are an
    unprivileged id on the host, which would stop a 0600 file even where the boundary
    failed)."""
    d = parent / token("pubdir")
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    public = token("public")
    path = d / f"rootfs-public-{secrets.token_hex(6)}"
    path.write_text(f"{public}\n")
    os.chmod(path, 0o644)
    return SecretFile(path, public, os.getuid())


def root_secret() -> SecretFile | None:
    """A 0600 file owned by root: made under /root as root; as an ordinary user, the one
    scripts/test.sh placed in this user's home (None when there is none)."""
    if ROOT:
        return make_secret(Path("/root"), "root")
    path = Path.home() / ROOT_MARKER
    try:
        public = (Path.home() / (ROOT_MARKER + ".id")).read_text().strip()
        st = os.lstat(path)
    except OSError:
        return None
    if st.st_uid != 0 or stat.S_IMODE(st.st_mode) != 0o600 or not public:
        return None
    return SecretFile(path, public, 0, created=False)


def place_root_marker(home: Path, uid: int) -> None:
    """For scripts/test.sh (as root): the ordinary user's root-owned marker. The home is
    that user's to change meanwhile, so both files are made through an fd of it, fresh
    (O_EXCL | O_NOFOLLOW, after removing whatever had the name), and their owner and mode
    set through their own fds: a link the user planted is replaced, never followed."""
    from rootfs_kernel import dirfd

    public = token("root")
    where = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name, content, owner, mode in (
                (ROOT_MARKER, f"{public}_{secrets.token_hex(16)}\n", 0, 0o600),
                (ROOT_MARKER + ".id", public + "\n", uid, 0o644)):
            fd = dirfd.replace_file(where, name, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(content)
                os.fchown(fd, owner, owner)
                os.fchmod(fd, mode)
    finally:
        os.close(where)


@dataclass
class EmptyDir:
    path: Path
    before: tuple = field(default=())

    def state(self) -> tuple:
        st = os.stat(self.path)
        return (sorted(os.listdir(self.path)), st.st_mtime_ns, st.st_mode, st.st_uid)

    def __post_init__(self) -> None:
        self.before = self.state()

    def assert_unchanged(self) -> None:
        assert self.state() == self.before, f"{self.path} was changed: {os.listdir(self.path)}"


def make_empty_dir(parent: Path) -> EmptyDir:
    d = parent / token("dir")
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    return EmptyDir(d)


# -- sysctls of the host's namespaces ---------------------------------------------------------
DOMAINNAME = Path("/proc/sys/kernel/domainname")


@dataclass
class Domainname:
    """kernel.domainname of the host's UTS namespace: a unique value as root (restored
    afterwards); as an ordinary user, the value it has, which must stay."""

    value: str
    saved: str | None = None

    def read(self) -> str:
        return DOMAINNAME.read_text().strip()

    def assert_unchanged(self) -> None:
        assert self.read() == self.value, f"the host's domainname became {self.read()!r}"

    def assert_unread(self, *texts: str) -> None:
        if self.saved is not None:   # only a value of our own is worth looking for
            for text in texts:
                assert self.value not in text, "a cell saw the host's domainname"

    def restore(self) -> None:
        if self.saved is not None:
            DOMAINNAME.write_text(self.saved)


def set_domainname() -> Domainname:
    current = DOMAINNAME.read_text().strip()
    if not ROOT:
        return Domainname(current)
    value = token("uts")
    DOMAINNAME.write_text(value)
    return Domainname(value, saved=current)


# -- SysV shared memory of the host's IPC namespace -------------------------------------------
IPC_CREAT, IPC_EXCL, IPC_RMID, IPC_STAT = 0o1000, 0o2000, 0, 2
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.shmat.restype = ctypes.c_void_p
_libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
_libc.shmdt.argtypes = [ctypes.c_void_p]
SHM_SIZE = 4096


@dataclass
class ShmSegment:
    key: int
    shmid: int
    public: str

    def exists(self) -> bool:
        buf = ctypes.create_string_buffer(256)   # struct shmid_ds, large enough
        return _libc.shmctl(self.shmid, IPC_STAT, buf) == 0

    def content(self) -> str:
        addr = _libc.shmat(self.shmid, None, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "shmat")
        try:
            return ctypes.string_at(addr, len(self.public)).decode()
        finally:
            _libc.shmdt(addr)

    def assert_unchanged(self) -> None:
        assert self.exists(), f"the host's shared memory segment {self.key:#x} was removed"
        assert self.content() == self.public, "the host's shared memory segment was changed"

    def assert_unread(self, *texts: str) -> None:
        listed = re.compile(rf"\b({self.key}|{self.key:#x}|{self.key:#010x})\b")
        for text in texts:
            assert self.public not in text, "a cell read the host's shared memory segment"
            assert not listed.search(text.lower()), "a cell listed the host's segment"

    def remove(self) -> None:
        _libc.shmctl(self.shmid, IPC_RMID, None)


def make_shm() -> ShmSegment:
    public = token("shm")
    for _ in range(20):
        key = secrets.randbelow(0x7FFFFFFF - 0x1000) + 0x1000
        shmid = _libc.shmget(key, SHM_SIZE, IPC_CREAT | IPC_EXCL | 0o600)
        if shmid >= 0:
            break
        if ctypes.get_errno() != errno.EEXIST:
            raise OSError(ctypes.get_errno(), "shmget")
    else:
        raise RuntimeError("no free SysV key")
    addr = _libc.shmat(shmid, None, 0)
    ctypes.memmove(addr, public.encode(), len(public))
    _libc.shmdt(addr)
    return ShmSegment(key, shmid, public)


# -- POSIX message queues of the host's IPC namespace -----------------------------------------
_mq_open = _libc.mq_open
_mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.mq_close.argtypes = [ctypes.c_int]
_libc.mq_unlink.argtypes = [ctypes.c_char_p]


def host_mqueue_exists(name: str) -> bool:
    """Whether the host's IPC namespace has the queue /NAME (removed if it has)."""
    fd = _mq_open(f"/{name}".encode(), os.O_RDONLY)
    if fd < 0:
        assert ctypes.get_errno() == errno.ENOENT, os.strerror(ctypes.get_errno())
        return False
    _libc.mq_close(fd)
    _libc.mq_unlink(f"/{name}".encode())
    return True


# -- the host's cgroup tree --------------------------------------------------------------------
CGROUP_ROOT = Path("/sys/fs/cgroup")


def host_cgroups_named(name: str, depth: int = 6) -> list[str]:
    """Every directory called `name` in the host's cgroup hierarchies (v1 and v2)."""
    found = []
    for top, dirs, _files in os.walk(CGROUP_ROOT):
        if top.count("/") - str(CGROUP_ROOT).count("/") >= depth:
            dirs.clear()
        if name in dirs:
            found.append(os.path.join(top, name))
    return found


def remove_cgroups(paths: Iterable[str]) -> None:
    for path in sorted(paths, key=len, reverse=True):
        try:
            os.rmdir(path)
        except OSError:
            pass


# -- processes ---------------------------------------------------------------------------------
def processes_with(arg: str) -> list[int]:
    """Host pids whose command line holds `arg` (a unique sleep time, say)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if arg.encode() in cmdline:
            out.append(int(pid))
    return out


def mount_points_of(pid: int) -> list[str]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return sorted(" ".join(line.split()[3:5]) for line in f)


if __name__ == "__main__":   # scripts/test.sh: python hostmarkers.py place-root-marker HOME UID
    import sys

    if sys.argv[1:2] == ["place-root-marker"]:
        place_root_marker(Path(sys.argv[2]), int(sys.argv[3]))
