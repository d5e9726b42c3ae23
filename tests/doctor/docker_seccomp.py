"""Run a command under a seccomp filter built from a Docker/OCI seccomp profile (JSON).

    /usr/bin/python3 docker_seccomp.py PROFILE.json COMMAND [ARGS...]

Builds the filter the way Docker does for a container started without extra flags: the
profile's rules for this architecture and kernel, with the `includes`/`excludes` of each
rule decided by Docker's default capability set (no CAP_SYS_ADMIN), then execs COMMAND
under it (libseccomp sets no_new_privs; the filter is inherited by every child). Needs
libseccomp's Python bindings (Debian: python3-seccomp), so run it with the system Python.
"""

from __future__ import annotations

import json
import os
import platform
import sys

import seccomp

# Docker's default capabilities (moby oci/caps/defaults.go): the profile's caps-conditional
# rules are decided against these.
DOCKER_DEFAULT_CAPS = frozenset({
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"})
# The profile names architectures as Go does (`includes.arches`).
ARCHES = {"x86_64": "amd64", "aarch64": "arm64"}
OPS = {"SCMP_CMP_NE": seccomp.NE, "SCMP_CMP_LT": seccomp.LT, "SCMP_CMP_LE": seccomp.LE,
       "SCMP_CMP_EQ": seccomp.EQ, "SCMP_CMP_GE": seccomp.GE, "SCMP_CMP_GT": seccomp.GT,
       "SCMP_CMP_MASKED_EQ": seccomp.MASKED_EQ}
EPERM = 1


def _kernel_at_least(version: str) -> bool:
    def nums(text: str) -> tuple[int, ...]:
        return tuple(int(p) for p in text.split("-")[0].split(".")[:2] if p.isdigit())
    return nums(platform.release()) >= nums(version)


def _applies(rule: dict, arch: str, caps: frozenset[str]) -> bool:
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if inc.get("caps") and not set(inc["caps"]) <= caps:
        return False
    if inc.get("minKernel") and not _kernel_at_least(inc["minKernel"]):
        return False
    if exc.get("arches") and arch in exc["arches"]:
        return False
    if exc.get("caps") and set(exc["caps"]) & caps:
        return False
    return not (exc.get("minKernel") and _kernel_at_least(exc["minKernel"]))


def _action(name: str, errno_ret: int | None):
    if name == "SCMP_ACT_ALLOW":
        return seccomp.ALLOW
    if name == "SCMP_ACT_ERRNO":
        return seccomp.ERRNO(EPERM if errno_ret is None else errno_ret)
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return seccomp.KILL
    if name == "SCMP_ACT_KILL_PROCESS":
        return seccomp.KILL_PROCESS
    if name == "SCMP_ACT_LOG":
        return seccomp.LOG
    if name == "SCMP_ACT_TRAP":
        return seccomp.TRAP
    raise ValueError(f"unsupported seccomp action {name}")


def build(profile: dict, caps: frozenset[str] = DOCKER_DEFAULT_CAPS) -> seccomp.SyscallFilter:
    machine = platform.machine()
    if machine not in ARCHES:
        raise SystemExit(f"docker_seccomp: no architecture name for {machine}")
    arch = ARCHES[machine]
    default = _action(profile["defaultAction"], profile.get("defaultErrnoRet"))
    filt = seccomp.SyscallFilter(default)
    # Like runc: rules whose action is the default add nothing.
    for rule in profile.get("syscalls", []):
        if not _applies(rule, arch, caps):
            continue
        action = _action(rule["action"], rule.get("errnoRet"))
        if rule["action"] == profile["defaultAction"] and \
                rule.get("errnoRet") == profile.get("defaultErrnoRet"):
            continue
        args = [seccomp.Arg(a["index"], OPS[a["op"]], a["value"], a.get("valueTwo", 0))
                for a in rule.get("args") or []]
        for name in rule["names"]:
            try:
                seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
            except (ValueError, RuntimeError):
                continue   # not a system call of this architecture
            filt.add_rule(action, name, *args)
    return filt


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    with open(argv[0]) as f:
        profile = json.load(f)
    build(profile).load()
    os.execvp(argv[1], argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
