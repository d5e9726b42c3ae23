"""Lay out a fake host's /proc and /sys (the files hostfacts.read_facts reads) in a directory.

For the conditions this machine cannot produce for real (AppArmor is not in its kernel,
Debian's unprivileged_userns_clone is not either, cgroup v2 has no controllers here).
Every file is written as the kernel writes it; `host(tmp_path, ...)` starts from a healthy
systemd host and changes what the keyword arguments say.
"""

from __future__ import annotations

import os
from pathlib import Path

HEALTHY_MOUNTS = [
    "22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw",
    "23 28 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw",
    "28 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw",
    "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 "
    "cgroup2 rw,nsdelegate,memory_recursiveprot",
]
FILESYSTEMS = ["nodev\tsysfs", "nodev\ttmpfs", "nodev\tproc", "nodev\tcgroup2",
               "nodev\toverlay", "\text4", "nodev\tdevpts", "nodev\tmqueue"]
CAPS_ALL = "000001ffffffffff"
CAPS_DOCKER = "00000000a80425fb"   # Docker's default set: no CAP_SYS_ADMIN
CAPS_NONE = "0000000000000000"
# The ordinary user the fake host's delegated cgroups belong to (root can chown to it; an
# ordinary user running the tests owns what it writes anyway).
USER = 1000 if os.geteuid() == 0 else os.geteuid()


def write(root: Path, path: str, text: str) -> Path:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target


def host(root: Path, *, release: str = "6.8.0-45-generic", max_userns: int | None = 63328,
         userns_clone: int | None = None, apparmor: bool = False,
         apparmor_restrict: int | None = None, apparmor_profiles: list[str] | None = None,
         seccomp: int = 0, caps: str = CAPS_ALL, uid_map: str = "0 0 4294967295",
         mounts: list[str] | None = None, filesystems: list[str] | None = None,
         cgroup: str = "0::/user.slice/user-1000.slice/session-2.scope",
         pid1_cgroup: str = "0::/init.scope", dockerenv: bool = False,
         containerenv: bool = False,
         cgroup_dirs: dict[str, tuple[str, str]] | None = None,
         pid1_mounts: list[str] | None = None, pasta: bool = True,
         seccomp_actions: str = "kill_process kill_thread trap errno user_notif trace log "
                                "allow") -> Path:
    """cgroup_dirs: {path below /sys/fs/cgroup: (controllers, subtree_control)}, each
    directory and its cgroup.procs owned by USER (as systemd's Delegate=yes leaves them);
    pid1_mounts: PID 1's mount table (default: this process's, as in one namespace);
    pasta: /usr/bin/pasta is there; seccomp_actions: what the kernel's filters may do."""
    write(root, "/proc/sys/kernel/osrelease", release + "\n")
    if max_userns is not None:
        write(root, "/proc/sys/user/max_user_namespaces", f"{max_userns}\n")
    if userns_clone is not None:
        write(root, "/proc/sys/kernel/unprivileged_userns_clone", f"{userns_clone}\n")
    write(root, "/sys/module/apparmor/parameters/enabled", "Y\n" if apparmor else "N\n")
    if apparmor_restrict is not None:
        write(root, "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
              f"{apparmor_restrict}\n")
    if apparmor_profiles is not None:
        write(root, "/sys/kernel/security/apparmor/profiles",
              "".join(f"{p}\n" for p in apparmor_profiles))
    write(root, "/proc/self/status",
          f"Name:\tpython3\nUid:\t1000\t1000\t1000\t1000\nCapInh:\t{CAPS_NONE}\n"
          f"CapPrm:\t{caps}\nCapEff:\t{caps}\nNoNewPrivs:\t{int(seccomp == 2)}\n"
          f"Seccomp:\t{seccomp}\nSeccomp_filters:\t{int(seccomp == 2)}\n")
    write(root, "/proc/self/uid_map", f"{uid_map}\n")
    own = HEALTHY_MOUNTS if mounts is None else mounts
    write(root, "/proc/self/mountinfo", "\n".join(own) + "\n")
    write(root, "/proc/1/mountinfo", "\n".join(own if pid1_mounts is None
                                                 else pid1_mounts) + "\n")
    write(root, "/proc/filesystems", "\n".join(filesystems or FILESYSTEMS) + "\n")
    write(root, "/proc/self/cgroup", cgroup + "\n")
    write(root, "/proc/1/cgroup", pid1_cgroup + "\n")
    write(root, "/proc/sys/kernel/seccomp/actions_avail", seccomp_actions + "\n")
    if pasta:
        write(root, "/usr/bin/pasta", "#!/bin/sh\n").chmod(0o755)
    if dockerenv:
        write(root, "/.dockerenv", "")
    if containerenv:
        write(root, "/run/.containerenv", 'engine="podman-4.3.1"\n')
    for path, (controllers, subtree) in (cgroup_dirs or {}).items():
        d = root / "sys/fs/cgroup" / path.strip("/")
        d.mkdir(parents=True, exist_ok=True)
        write(d, "cgroup.controllers", controllers + "\n")
        write(d, "cgroup.subtree_control", subtree + "\n")
        write(d, "cgroup.procs", "")
        if os.geteuid() == 0:
            for p in (d, d / "cgroup.procs"):
                os.chown(p, USER, USER)
    return root


def mountinfo_with(*lines: str, root_line: str | None = HEALTHY_MOUNTS[2],
                   cgroup2: bool = True) -> list[str]:
    """The healthy table with its root line replaced (None: no mount at /), without the
    cgroup2 at /sys/fs/cgroup if told, plus lines."""
    rows = [ln for ln in HEALTHY_MOUNTS if ln != HEALTHY_MOUNTS[2]
            and (cgroup2 or " cgroup2 " not in ln)]
    if root_line is not None:
        rows.insert(0, root_line)
    return rows + list(lines)
