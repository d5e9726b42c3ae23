"""Every cell's seccomp filter: its policy, and the BPF libseccomp makes of it.

Runs in: nothing at run time. `python -m rootfs_kernel.sandbox.seccomp --write` asks
libseccomp (its shared library, through ctypes) for the filter of each host
architecture and writes seccomp-filter.h next to init.c, which installs it in the
script's process just before its execve (and in %%c's compiler container); the header is
committed, so building rootfs-init needs no libseccomp. tests/unit/test_seccomp.py
regenerates it and compares, runs the BPF over every system call of every ABI, and
compares the policy with Docker's default profile.

The policy is Docker's default profile (moby's profiles/seccomp/default.json) turned
around: where Docker allows a list and refuses the rest, a cell may call everything but
DENIED, the calls that profile refuses to a container without the capability that would
allow them, answered with EPERM (not a kill, so a tool says what failed). The
differences are deliberate and listed: the experiments need mount, pivot_root, unshare,
setns and clone with namespace flags (ALLOWED), which the cell's own user namespace makes
harmless to the host; io_uring is refused (DENIED_UNLIKE_DOCKER); calls newer than the
profile are allowed, as runc answers them ENOSYS rather than EPERM so that the C library
falls back (a denylist lets them through).

Each host architecture's filter covers every ABI its processes can call (x86_64 with its
i386 and x32 ABIs, arm64 with arm, s390x with s390): a call through the other ABI meets
the same policy, and an ABI the filter does not know is refused whole.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import sys
from pathlib import Path

HEADER = Path(__file__).with_name("seccomp-filter.h")
EPERM = 1

# What a cell may not call, by why (the names as libseccomp knows them; a name an ABI
# lacks is skipped there).
DENIED: dict[str, tuple[str, ...]] = {
    "the kernel's rarely needed machinery, where its bugs are": (
        "bpf", "perf_event_open", "userfaultfd", "lookup_dcookie", "fanotify_init"),
    "the kernel's keyrings": ("keyctl", "add_key", "request_key"),
    "loading code into the kernel, or another kernel": (
        "init_module", "finit_module", "delete_module", "create_module", "query_module",
        "get_kernel_syms", "kexec_load", "kexec_file_load"),
    "the machine itself: I/O ports, swap, accounting, reboot, clocks, log, quotas": (
        "iopl", "ioperm", "swapon", "swapoff", "acct", "reboot", "settimeofday", "stime",
        "clock_settime", "clock_settime64", "syslog", "vhangup", "quotactl", "quotactl_fd"),
    "files by handle, whatever the root (Docker's 'shocker' escape)": (
        "open_by_handle_at", "name_to_handle_at"),
    "other processes' memory and files": (
        "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd", "kcmp"),
    "where the host's memory lives (NUMA)": (
        "get_mempolicy", "set_mempolicy", "set_mempolicy_home_node", "mbind",
        "migrate_pages", "move_pages"),
    "obsolete or never implemented": (
        "_sysctl", "sysfs", "ustat", "uselib", "nfsservctl", "afs_syscall", "getpmsg",
        "putpmsg", "security", "tuxcall", "vserver", "vm86", "vm86old", "bdflush", "idle",
        "break", "ftime", "gtty", "lock", "mpx", "prof", "profil", "stty", "ulimit"),
    # i386's calls from before their modern forms (rt_sig*, getdents, stat, uname,
    # setpriority, sigprocmask...), which today's C libraries no longer make
    "i386's calls older than their modern forms": (
        "oldstat", "oldfstat", "oldlstat", "olduname", "oldolduname", "readdir", "nice",
        "signal", "sigaction", "sigsuspend", "sigpending", "sgetmask", "ssetmask"),
}
# Refused here, allowed by the Docker profile Debian packages (moby refuses it since 2023).
DENIED_UNLIKE_DOCKER = {
    "io_uring_setup": "io_uring: a second system call interface, the source of many of the "
                      "kernel's CVEs (moby's default profile refuses it since 2023)",
    "io_uring_enter": "io_uring", "io_uring_register": "io_uring",
}
DENIED["a second way into the kernel"] = tuple(DENIED_UNLIKE_DOCKER)

# Allowed here, refused by Docker's default profile to a container without CAP_SYS_ADMIN:
# the experiments. A cell's script is root of a user namespace of its own, which owns its
# mount, UTS and IPC namespaces: what these change is the cell's view, never the host's.
_MOUNTS = "the seed's experiments: mounts in the cell's own mount namespace"
ALLOWED: dict[str, str] = {
    **dict.fromkeys(("mount", "umount", "umount2", "pivot_root", "fsopen", "fsconfig",
                     "fsmount", "fspick", "open_tree", "move_mount", "mount_setattr"),
                    _MOUNTS),
    **dict.fromkeys(("unshare", "setns", "clone", "clone3"),
                    "new namespaces (Docker: clone without CLONE_NEW* flags only), made "
                    "in the cell's own user namespace, holding nothing of the host's"),
    **dict.fromkeys(("sethostname", "setdomainname"), "the cell's own UTS namespace"),
    "personality": "setarch and linux32 (Docker: five personas only): the caller's own "
                   "execution domain",
    "arch_prctl": "through the i386 ABI too (Docker: x86_64 and x32 only): the caller's own "
                  "thread state",
    **dict.fromkeys(("pkey_alloc", "pkey_free", "pkey_mprotect"),
                    "protection keys of the process's own memory (newer Docker profiles "
                    "allow them)"),
}


def denied() -> tuple[str, ...]:
    return tuple(name for names in DENIED.values() for name in names)


# -- libseccomp ------------------------------------------------------------------------------
ARCHES = {"x86_64": 0xC000003E, "x86": 0x40000003, "x32": 0x4000003E,
          "aarch64": 0xC00000B7, "arm": 0x40000028, "ppc64le": 0xC0000015,
          "s390x": 0x80000016, "s390": 0x00000016, "riscv64": 0xC00000F3}
# The filter for each host, by the C preprocessor's name of it: the ABIs it covers.
TARGETS = (("defined(__x86_64__)", ("x86_64", "x86", "x32")),
           ("defined(__i386__)", ("x86",)),
           ("defined(__aarch64__)", ("aarch64", "arm")),
           ("defined(__arm__)", ("arm",)),
           ("defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)", ("ppc64le",)),
           ("defined(__s390x__)", ("s390x", "s390")),
           ("defined(__riscv) && __riscv_xlen == 64", ("riscv64",)))
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_FLTATR_ACT_BADARCH = 2
SCMP_FLTATR_CTL_OPTIMIZE = 8
NR_SCMP_ERROR = -1


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


def libseccomp() -> ctypes.CDLL:
    """The shared library (Debian: libseccomp2, which apt and systemd depend on)."""
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    for name in ("seccomp_arch_add", "seccomp_arch_remove"):
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                     ctypes.c_uint]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    lib.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
    lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p   # malloc'd char *
    lib.seccomp_arch_native.restype = ctypes.c_uint32
    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    return lib


def version(lib: ctypes.CDLL) -> str:
    v = lib.seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def _check(rc: int, what: str) -> None:
    if rc < 0:
        raise OSError(-rc, f"libseccomp: {what}: {os.strerror(-rc)}")


def bpf(lib: ctypes.CDLL, arches: tuple[str, ...]) -> bytes:
    """The filter (struct sock_filter[], host byte order) for these ABIs."""
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        raise OSError(ctypes.get_errno(), "seccomp_init")
    read, write = os.pipe()
    try:
        native = lib.seccomp_arch_native()   # there from the start
        if native not in (ARCHES[a] for a in arches):   # (another byte order may not mix)
            _check(lib.seccomp_arch_remove(ctx, native), "native arch")
        for arch in arches:
            if ARCHES[arch] != native:
                _check(lib.seccomp_arch_add(ctx, ARCHES[arch]), f"arch {arch}")
        _check(lib.seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, errno_action()), "badarch")
        _check(lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2), "optimize")
        for name in denied():
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr == NR_SCMP_ERROR:
                continue   # not a call this libseccomp knows (a test checks each is known)
            _check(lib.seccomp_rule_add(ctx, errno_action(), nr, 0), f"rule {name}")
        _check(lib.seccomp_export_bpf(ctx, write), "export")
        os.close(write)
        write = -1
        chunks = []
        while chunk := os.read(read, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        lib.seccomp_release(ctx)
        os.close(read)
        if write >= 0:
            os.close(write)


def errno_action(err: int = EPERM) -> int:
    return 0x00050000 | (err & 0xFFFF)


def resolve(lib: ctypes.CDLL, arch: str, name: str) -> int | None:
    nr = lib.seccomp_syscall_resolve_name_arch(ARCHES[arch], name.encode())
    return None if nr < 0 else nr


def names(lib: ctypes.CDLL, arch: str, top: int = 1200) -> dict[str, int]:
    """Every call libseccomp knows for an ABI: name -> number."""
    out = {}
    libc = ctypes.CDLL(None)
    libc.free.argtypes = [ctypes.c_void_p]
    base = 0x40000000 if arch == "x32" else 0
    for nr in range(base, base + top):
        ptr = lib.seccomp_syscall_resolve_num_arch(ARCHES[arch], nr)
        if ptr:
            out[ctypes.string_at(ptr).decode()] = nr
            libc.free(ptr)
    return out


# -- the header --------------------------------------------------------------------------------
def header(lib: ctypes.CDLL | None = None) -> str:
    """seccomp-filter.h: one filter per host architecture, chosen by the preprocessor."""
    lib = lib or libseccomp()
    policy = hashlib.sha256(" ".join(denied()).encode()).hexdigest()[:16]
    out = ["/* Every cell's seccomp filter: generated by seccomp.py (its policy) with "
           f"libseccomp {version(lib)};",
           " * do not edit: python -m rootfs_kernel.sandbox.seccomp --write makes it again "
           "(tests check it). */",
           "#ifndef ROOTFS_SECCOMP_H", "#define ROOTFS_SECCOMP_H",
           "#include <linux/filter.h>", "",
           f'#define RK_SECCOMP_POLICY "{policy}"', ""]
    for n, (condition, arches) in enumerate(TARGETS):
        code = bpf(lib, arches)
        count = len(code) // 8
        out += [f"#{'if' if n == 0 else 'elif'} {condition}",
                f"/* {', '.join(arches)}: {count} instructions */",
                "static const struct sock_filter rk_seccomp_filter[] = {"]
        insns = [_insn(code[i:i + 8]) for i in range(0, len(code), 8)]
        out += ["    " + " ".join(insns[i:i + 4]) for i in range(0, len(insns), 4)]
        out.append("};")
    out += ["#else", "/* No filter for this architecture (seccomp.py's TARGETS): cells run "
            "without one. */", "#define RK_SECCOMP_NONE 1", "#endif", "", "#endif", ""]
    return "\n".join(out)


def _insn(raw: bytes) -> str:
    code, jt, jf, k = int.from_bytes(raw[0:2], sys.byteorder), raw[2], raw[3], \
        int.from_bytes(raw[4:8], sys.byteorder)
    return f"{{0x{code:02x}, {jt}, {jf}, 0x{k:08x}}},"


if __name__ == "__main__":
    text = header()
    if sys.argv[1:] == ["--write"]:
        HEADER.write_text(text)
    else:
        sys.stdout.write(text)
