"""`rootfs-kernel doctor`: can this host give cells their namespaces? Says what to change.

The host's conditions (user namespace limits, AppArmor, seccomp, capabilities, /proc
masks, the root filesystem, cgroups) are read by hostfacts.py; then a real cell runs, the
only probe that cannot be fooled (Ubuntu's AppArmor restriction lets a bare unshare
succeed and refuses the uid map or the first mount after it).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass

from . import hostfacts
from .sandbox.report import DOCTOR_HINT


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    advice: str = ""
    optional: bool = False
    key: str = ""


# What works without namespaces: said when the container check fails.
STILL_WORKS = ("%%host cells (on the host, outside any namespace: findmnt, ls, mount show the "
               "host's side) and the comparisons saved in notebooks (shown without a kernel)")


def apparmor_profile(init_path: str) -> str:
    """An AppArmor profile that lets rootfs-init create user namespaces (Ubuntu 23.10+'s
    kernel.apparmor_restrict_unprivileged_userns=1), in the form Ubuntu ships for Chrome
    and other sandboxes: unconfined, plus the userns permission (AppArmor ABI 4.0)."""
    name = hostfacts.APPARMOR_PROFILE
    return f"""# AppArmor profile for rootfs-kernel's container init: allows it to create the user
# namespaces every cell runs in. Install with
#   rootfs-kernel doctor --apparmor-profile | sudo tee /etc/apparmor.d/{name}
#   sudo apparmor_parser -r /etc/apparmor.d/{name}
# The path is the rootfs-init this installation runs; write the profile again after
# reinstalling into another place (a source checkout's init is rebuilt, under a new
# name, whenever init.c changes).
abi <abi/4.0>,
include <tunables/global>

profile {name} {init_path} flags=(unconfined) {{
  userns,

  include if exists <local/{name}>
}}
"""


def _check(f: hostfacts.Finding) -> Check:
    return Check(f.name, f.ok, f.detail, f.fix, f.optional, f.key)


def run_checks(cell: bool = True) -> list[Check]:
    """Every check; with cell=False the real cell (and the image it needs) is skipped."""
    facts = hostfacts.read_facts()
    checks = [_check(f) for f in hostfacts.diagnose(facts)]
    checks.append(_namespaces_check(facts))
    if not facts.rootless and not facts.userns_root:
        checks.append(_idmap_check(facts))
    if cell:
        unavailable = None
        try:
            tried, unavailable = _try_cell()
        except OSError as err:   # an image store this user cannot read or write
            tried = Check("container", False, f"the image store: {err}",
                          "set XDG_DATA_HOME to a directory of this user's")
        if tried.ok:   # the cell asked for a limit: what the host's facts said, proved
            limits = next(c for c in checks if c.key == "limits")
            if unavailable is None and limits.ok:
                limits.detail += " (a cell ran in its own cgroup)"
            elif unavailable is not None:
                limits.ok, limits.detail = False, unavailable
        tried.key = "cell"
        tried.detail = tried.detail.replace(DOCTOR_HINT.strip(), "").strip()
        if not tried.ok:
            tried.advice = (f"{tried.advice}. Still working: {STILL_WORKS}" if tried.advice
                            else f"Still working: {STILL_WORKS}")
        checks.append(tried)
    return checks


def _refused(facts: hostfacts.Facts, answer: dict, otherwise: str) -> str:
    """The fix for a probe's refused clone(2): the host condition that explains it, as a
    cell's message names it (hostfacts.explain), else `otherwise`."""
    if "errno" not in answer:
        return otherwise
    found = hostfacts.explain(facts, "clone", answer["errno"])
    return f"{found.name} (above): {found.fix}" if found else otherwise


def _namespaces_check(facts: hostfacts.Facts) -> Check:
    """New IPC and UTS namespaces (a cell's own SysV IPC, message queues and host name),
    made with clone(2) as a cell's are."""
    from .sandbox.probes import probe

    answer = probe("namespaces", "ipc,uts")
    return Check("ipc and uts namespaces", bool(answer.get("ok")), answer.get("detail", ""),
                 _refused(facts, answer, "the same causes as above (seccomp, capabilities, "
                                         "user namespaces)"),
                 optional=True, key="ipc-uts")


def _idmap_check(facts: hostfacts.Facts) -> Check:
    """Whether root's cells could own their image files by an unprivileged id range
    (idmapped mounts of the image store, with overlayfs on top)."""
    from .images.store import default_root
    from .sandbox.probes import probe

    store = default_root()
    where = store if store.is_dir() else store.parent
    while not where.is_dir():
        where = where.parent
    answer = probe("idmap", str(where))
    if answer.get("userns") is False:   # then neither the kernel nor the filesystem is to blame
        advice = _refused(facts, answer, "whatever refuses this user namespace refuses the "
                                         "cells' too: see the container check")
    else:
        advice = ("Linux 5.19+ and a filesystem that supports idmapped mounts (ext4, xfs, "
                  "btrfs, tmpfs from 6.3) for the image store")
    return Check("idmapped mounts", bool(answer.get("ok")), answer.get("detail", ""), advice,
                 optional=True, key="idmap")


def as_json(checks: list[Check]) -> list[dict]:
    return [asdict(c) for c in checks]


def _try_cell() -> tuple[Check, str | None]:
    """Run `true` in a real container, exactly as a cell would, with a pids limit: and
    say why no cgroup could be made for it, if none could (None: it ran in one)."""
    from . import cell
    from .images import ImageError, ImageStore
    from .sandbox.client import SandboxClient, SandboxError
    from .sandbox.plan import plan_for

    try:
        image = ImageStore().get("minimal")
    except ImageError as err:
        return Check("container", False, f"the default image: {err}"), None
    client = SandboxClient(prepare=False,   # one cell: nothing to prepare for
                           explain=hostfacts.cause)
    try:
        client.start()
        plan = plan_for(cell.parse("%limit pids=64\ntrue"), image, client.context(cwd="/"))
        err: list[bytes] = []
        run = asyncio.run(client.run(plan, lambda b: None, err.append, timeout=30))
    except SandboxError as exc:
        return Check("container", False, str(exc)), None
    finally:
        client.close()
    said = b"".join(err).decode().strip()
    if run.error or run.status:
        detail = run.error or said or f"status {run.status}"
        return Check("container", False, detail.replace(
            " Run `rootfs-kernel doctor` for the details;", ""),
            "fix what the failing checks above name; if all passed, the message says "
            "which part of the setup the host refused"), None
    unavailable = said.removeprefix("rootfs-kernel: ").split("; using setrlimit")[0] \
        if "cgroup limits are unavailable" in said else None
    return Check("container", True, f"a cell ran `true` (setup "
                 f"{run.setup_seconds * 1000:.1f} ms)"), unavailable
