"""`rootfs-kernel doctor`: can this host give cells their namespaces? Says what to change."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    advice: str = ""
    optional: bool = False


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def run_checks() -> list[Check]:
    checks = []
    root = os.geteuid() == 0
    checks.append(Check("user", True, "root: cells get mount and PID namespaces" if root else
                        "ordinary user: cells also get a user namespace"))
    if not root:
        n = _read("/proc/sys/user/max_user_namespaces")
        checks.append(Check("user namespaces", n not in (None, "0"), f"max_user_namespaces={n}",
                            "sysctl -w user.max_user_namespaces=15000"))
        clone = _read("/proc/sys/kernel/unprivileged_userns_clone")
        if clone is not None:
            checks.append(Check("unprivileged_userns_clone", clone == "1", f"= {clone}",
                                "sysctl -w kernel.unprivileged_userns_clone=1"))
        aa = _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
        if aa is not None:
            checks.append(Check("AppArmor userns restriction", aa == "0", f"= {aa}",
                                "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or "
                                "an AppArmor profile that allows userns for this Python"))
    status = dict(line.split(":\t", 1) for line in (_read("/proc/self/status") or "")
                  .splitlines() if ":\t" in line)
    mode = status.get("Seccomp", "0").strip()
    checks.append(Check("seccomp", mode != "2",
                        "no filter" if mode != "2" else
                        f"a seccomp filter is active ({status.get('Seccomp_filters', '?').strip()} "
                        "filter(s)): a container runtime's profile may refuse unshare/clone",
                        "run Jupyter outside that container, or start the container with "
                        "`--security-opt seccomp=unconfined` (Docker/Podman) or a profile that "
                        "allows unshare, clone and mount; %%host cells work regardless",
                        optional=True))
    filesystems = _read("/proc/filesystems") or ""
    checks.append(Check("overlayfs", "overlay" in filesystems,
                        "available" if "overlay" in filesystems else "not in /proc/filesystems",
                        "modprobe overlay"))
    checks.append(_try_cell())
    cg = Path("/sys/fs/cgroup")
    v1 = [c for c in ("pids", "memory") if (cg / c).is_dir()]
    v2 = (cg / "cgroup.controllers").exists()
    checks.append(Check("cgroups", bool(v1 or v2), f"v2={'yes' if v2 else 'no'}, "
                        f"v1 controllers: {', '.join(v1) or 'none'}", "limits are unavailable",
                        optional=True))
    return checks


def _try_cell() -> Check:
    """Run `true` in a real container, exactly as a cell would."""
    from . import cell
    from .images import ImageError, ImageStore
    from .sandbox.client import SandboxClient, SandboxError
    from .sandbox.plan import plan_for

    try:
        image = ImageStore().get("minimal")
    except ImageError as err:
        return Check("container", False, f"the default image: {err}")
    client = SandboxClient(prepare=False)  # one cell: nothing to prepare for
    try:
        client.start()
        plan = plan_for(cell.parse("true"), image, client.context(cwd="/"))
        err: list[bytes] = []
        run = asyncio.run(client.run(plan, lambda b: None, err.append, timeout=30))
    except SandboxError as exc:
        return Check("container", False, str(exc))
    finally:
        client.close()
    if run.error or run.status:
        detail = run.error or b"".join(err).decode().strip() or f"status {run.status}"
        return Check("container", False, detail.replace(
            " Run `rootfs-kernel doctor` for the details;", ""),
            "fix what the failing checks above name; if all passed, the message says "
            "which part of the setup the host refused")
    return Check("container", True, f"a cell ran `true` (setup {run.setup_seconds * 1000:.1f} ms)")
