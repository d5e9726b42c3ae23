"""Run a command where namespaces are refused, as on hosted binder or under Docker's profile.

    python noshare.py COMMAND [ARGS...]

Installs a seccomp filter (PR_SET_NO_NEW_PRIVS, then a classic BPF program) that makes
unshare(2) and clone(2) with any CLONE_NEW* flag fail with EPERM and clone3(2) fail with
ENOSYS (so that libc falls back to clone, whose flags the filter can read, as Docker's
default profile does), then execs COMMAND. The filter is inherited by every child.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
import sys

# x86_64 and aarch64: (AUDIT_ARCH, __NR_unshare, __NR_clone, __NR_clone3)
ARCHES = {"x86_64": (0xC000003E, 272, 56, 435), "aarch64": (0xC00000B7, 97, 220, 435)}
CLONE_NEW_ANY = 0x7E020000   # NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
LD_W_ABS, JEQ_K, JSET_K, RET_K = 0x20, 0x15, 0x45, 0x06
RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000
EPERM, ENOSYS = 1, 38
PR_SET_SECCOMP, PR_SET_NO_NEW_PRIVS, SECCOMP_MODE_FILTER = 22, 38, 2


def program(machine: str) -> list[tuple[int, int, int, int]]:
    arch, nr_unshare, nr_clone, nr_clone3 = ARCHES[machine]
    return [                                   # seccomp_data: nr @0, arch @4, args[0] @16
        (LD_W_ABS, 0, 0, 4),                   # 0: A = arch
        (JEQ_K, 0, 6, arch),                   # 1: other arch -> 8 allow
        (LD_W_ABS, 0, 0, 0),                   # 2: A = syscall number
        (JEQ_K, 5, 0, nr_unshare),             # 3: unshare -> 9 EPERM
        (JEQ_K, 5, 0, nr_clone3),              # 4: clone3 -> 10 ENOSYS
        (JEQ_K, 0, 2, nr_clone),               # 5: not clone -> 8 allow
        (LD_W_ABS, 0, 0, 16),                  # 6: A = clone flags (low 32 bits)
        (JSET_K, 1, 0, CLONE_NEW_ANY),         # 7: any CLONE_NEW* -> 9 EPERM
        (RET_K, 0, 0, RET_ALLOW),              # 8
        (RET_K, 0, 0, RET_ERRNO | EPERM),      # 9
        (RET_K, 0, 0, RET_ERRNO | ENOSYS),     # 10
    ]


def install() -> None:
    machine = platform.machine()
    if machine not in ARCHES:
        raise SystemExit(f"noshare: no seccomp program for {machine}")
    code = b"".join(struct.pack("HBBI", *ins) for ins in program(machine))
    buf = ctypes.create_string_buffer(code, len(code))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = SockFprog(len(code) // 8, ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong,
                           ctypes.c_ulong]
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    install()
    os.execvp(sys.argv[1], sys.argv[1:])
