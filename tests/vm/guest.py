"""The smoke suite run inside the Debian 12 guest (scripts/vm.py), as root and as the
systemd-logged-in user: `python guest.py MODE OUT.json`.

It records what happened (doctor's lines and exit status, each cell's reply, streams and
displays, the markers' state, a notebook's run) as JSON; tests/vm/test_vm.py, on the
host, reads it and asserts. Only the guest's own Python and the wheels installed in its
venv are used (no pytest there): jupyter_client drives the kernel as a front-end does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import hostmarkers
from jupyter_client.manager import start_new_kernel

HERE = Path(__file__).resolve().parent
LIMITS_MIME = "application/vnd.rootfs-kernel.limits+json"
COMPARE_MIME = "application/vnd.rootfs-kernel.compare+json"
FORK_BOMB = "%limit pids=20\n%show limits\nbomb() { bomb | bomb & }; bomb; sleep 5; echo after"
MEMORY_HOG = ("%limit memory=32m\n%show limits\n"
              "head -c 300m /dev/zero | tail > /dev/null; echo after")


def run_cell(kc, code: str, timeout: float = 180) -> dict:
    """One execute request: its reply, streams, errors and display data."""
    started = time.monotonic()
    msg_id = kc.execute(code)
    out = {"code": code, "stdout": "", "stderr": "", "errors": [], "displays": []}
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out[content["name"]] += content["text"]
        elif kind == "error":
            out["errors"].append({"ename": content["ename"], "evalue": content["evalue"]})
        elif kind == "display_data":
            data = content["data"]
            out["displays"].append({k: v for k, v in data.items()
                                    if k in ("text/plain", LIMITS_MIME, COMPARE_MIME)})
        elif kind == "status" and content["execution_state"] == "idle":
            break
    reply = kc.get_shell_msg(timeout=timeout)
    out["status"] = reply["content"]["status"]
    out["seconds"] = round(time.monotonic() - started, 2)
    return out


def markers(kc) -> dict:
    """hostmarkers' 0600 file of root's on the guest (root mode: made under /root; the
    user's: the one the root pass placed in its home), which cells try to read, change
    and remove, through the cell's own root and through the chroot escape."""
    secrets_ = [s for s in (hostmarkers.root_secret(),) if s is not None]
    attacks = []
    for s in secrets_:
        attacks += [
            f"cat {s.path}; ls -la {s.path.parent}; echo tamper > {s.path}; rm -f {s.path}",
            f"%root chroot\nmkdir -p d; chroot d /bin/sh -c 'cd ../../../../..; "
            f"chroot . /bin/sh -c \"id -u; cat {s.path}; echo x >> {s.path}\"'",
        ]
    cells = [run_cell(kc, code) for code in attacks]
    texts = json.dumps(cells)
    found = []
    for s in secrets_:
        found.append({"path": str(s.path), "owner": s.owner_uid,
                      "read": s.public in texts, "changed": s.state() != s.before})
        s.remove()
    return {"markers": found, "cells": cells}


def notebook() -> dict:
    """Notebook 08 run top to bottom with nbclient, as papermill or a CI would."""
    import nbclient
    import nbformat

    path = HERE / "08-docker-three-steps.ipynb"
    nb = nbformat.read(path, as_version=4)
    started = time.monotonic()
    try:
        nbclient.NotebookClient(nb, kernel_name="rootfs", timeout=300,
                                resources={"metadata": {"path": str(Path.home())}}).execute()
        error = None
    except Exception as err:  # noqa: BLE001 - recorded; the host's test says what failed
        error = f"{type(err).__name__}: {err}"[:2000]
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    return {"error": error, "seconds": round(time.monotonic() - started, 1),
            "cells": sum(c.cell_type == "code" for c in nb.cells),
            "mimes": sorted({m for o in outputs for m in o.get("data", {})}),
            "errors": [o.get("evalue", "") for o in outputs if o.get("output_type") == "error"]}


def main() -> None:
    mode, out = sys.argv[1], Path(sys.argv[2])
    started = time.monotonic()
    result: dict = {"mode": mode, "uid": os.getuid(),
                    "cgroup": Path("/proc/self/cgroup").read_text()}
    doctor = subprocess.run(["rootfs-kernel", "doctor"], capture_output=True, text=True)
    result["doctor"] = {"status": doctor.returncode, "stdout": doctor.stdout,
                        "stderr": doctor.stderr}
    kernel_started = time.monotonic()
    km, kc = start_new_kernel(kernel_name="rootfs", startup_timeout=180)
    result["kernel_start_seconds"] = round(time.monotonic() - kernel_started, 1)
    try:
        result["cells"] = {
            "hello": run_cell(kc, "echo hello from $(hostname); id -u; cat /proc/self/cgroup"),
            "mounts": run_cell(kc, "%show mounts\nmount -t tmpfs none /mnt"),
            "memory": run_cell(kc, MEMORY_HOG),
            "pids": run_cell(kc, FORK_BOMB),
            "limits": run_cell(kc, "%show limits\necho plain"),
            "after": run_cell(kc, "echo still here"),
        }
        result["helper_cgroup"] = _helper_cgroup(km)
        result["security"] = markers(kc)
    finally:
        km.shutdown_kernel(now=True)
    result["notebook"] = notebook()
    result["seconds"] = round(time.monotonic() - started, 1)
    out.write_text(json.dumps(result, indent=1))
    print(f"guest {mode}: {result['seconds']} s", flush=True)


def _helper_cgroup(km) -> str | None:
    """The cgroup of the kernel's helper (the child named rootfs-helper)."""
    kernel = km.provisioner.pid
    for pid in os.listdir("/proc"):
        try:
            if (pid.isdigit() and Path(f"/proc/{pid}/comm").read_text().strip()
                    == "rootfs-helper" and _ppid(pid) == kernel):
                return Path(f"/proc/{pid}/cgroup").read_text().strip()
        except OSError:
            continue
    return None


def _ppid(pid: str) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


if __name__ == "__main__":
    main()
