#!/usr/bin/env python3
"""Execute the notebooks of notebooks/ on the `rootfs` kernel: record them on a neutral
host for saving, or run them here.

    python scripts/run-notebooks.py --vm              # record all, in a Debian 12 guest
    python scripts/run-notebooks.py --vm notebooks/02-tmpfs-over-tmp.ipynb
    python scripts/run-notebooks.py --out DIR         # run them on this host, into DIR

The saved notebooks are what most readers see (GitHub, the book, Binder), so the host
side of every comparison must be a host a reader recognises, not the machine they were
made on: `--vm` boots the Debian 12 guest of the VM target (scripts/vm.py: Debian's own
kernel, systemd, cgroup v2, nothing else), runs the notebooks there as root with this
checkout's wheel, and writes them back in place. Each recording opens with a line
saying what it was recorded on and how to run it again, and carries the recording host's
names (its mounts, the entries of its /, its users) in the notebook's metadata, against
which tests/notebooks/test_saved.py checks that no other machine's names are in it.
Without `--vm` the notebooks run on this host, and are written only to `--out DIR`.

Cells tagged `raises-exception` may fail (they say "Expected error:"); any other error
stops that notebook, leaves its file untouched and makes the command exit with status 1.
The Debian image notebook 05 uses is built here (or taken from the image store) and
imported in the guest, which has no network.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
NOTEBOOKS = HERE / "notebooks"
KERNEL = "rootfs"
RECORDED_ID = "recorded-on"    # the id of the notebook's "recorded on" cell
GUEST_SHARE = "/mnt/share"     # scripts/vm.py's shared folder in the guest
GUEST_VENV = "/opt/rootfs-kernel/venv"


def execute(path: Path, timeout: int = 300, kernel: str = KERNEL):
    """Run one notebook top to bottom in a new kernel; return the executed notebook."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    # No widget state: each comparison's rows are saved once, in its compare+json payload
    # (drawn by the JupyterLab renderer), beside its bounded HTML (GitHub, nbconvert); a
    # saved widget would be a third copy of that HTML.
    client = NotebookClient(nb, kernel_name=kernel, timeout=timeout, startup_timeout=120,
                            store_widget_state=False, record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb


def strip_volatile(nb) -> None:
    """Drop what changes on every run without meaning anything (keeps diffs small)."""
    nb.metadata.pop("widgets", None)   # an earlier run's widget state (see execute)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)


def this_host() -> dict:
    """What the notebooks are being recorded on: its system, kernel and user, and the
    names a reader may see of it in the outputs (mount points, entries of /, users)."""
    pretty = "Linux"
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            pretty = line.split("=", 1)[1].strip('"')
    mounts = sorted({line.split()[4] for line in Path("/proc/self/mountinfo").read_text()
                     .splitlines()})
    cgroup = "cgroup v2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "cgroup v1"
    return {"system": pretty, "kernel": os.uname().release, "cgroup": cgroup,
            "user": "root" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name,
            "mounts": mounts, "root": sorted(os.listdir("/")),
            "users": sorted(p.pw_name for p in pwd.getpwall())}


def mark_recorded(nb, host: dict) -> None:
    """The notebook's "recorded on" line (a cell of its own, after the title) and the
    recording host's names in its metadata."""
    from nbformat.v4 import new_markdown_cell

    who = "as root" if host["user"] == "root" else f"as the ordinary user {host['user']}"
    text = (f"*Recorded on {host['system']}, Linux {host['kernel']}, {host['cgroup']}, {who}, "
            "in a virtual machine made for it (`python scripts/run-notebooks.py --vm`). Run it "
            "yourself with the **Rootfs (sh)** kernel (Run All): the container side is the "
            "same on any host; the host side shows yours.*")
    cells = [c for c in nb.cells if c.get("id") != RECORDED_ID]
    cells.insert(1 if cells and cells[0].cell_type == "markdown" else 0,
                 new_markdown_cell(text, id=RECORDED_ID))
    nb.cells = cells
    nb.metadata["rootfs_kernel"] = {"recorded_on": host}


def run_here(paths: list[Path], out: Path, timeout: int, kernel: str, record: bool) -> int:
    """Run PATHS on this host into OUT (record: mark them as recorded here)."""
    import nbformat
    from nbclient.exceptions import CellExecutionError

    host = this_host() if record else None
    failed = []
    for path in paths:
        start = time.monotonic()
        print(f"{path.name}: running ...", end="", flush=True)
        try:
            nb = execute(path, timeout, kernel)
        except CellExecutionError as err:
            print(f" FAILED\n{err}", file=sys.stderr)
            failed.append(path.name)
            continue
        strip_volatile(nb)
        if host is not None:
            mark_recorded(nb, host)
        dest = out / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dest)
        print(f" ok ({time.monotonic() - start:.1f} s) -> {dest}", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


# The guest's side of --vm: install the wheel, import the Debian image, then record as
# root in a directory of the guest's own, with the shared folder unmounted meanwhile: the
# host side of every comparison is the guest's own mount table, no 9p share in it.
GUEST_RUN = f"""#!/bin/sh
set -eu
# From a copy of this script: the shell holds the file it reads, which would keep the share
# busy.
if [ "$0" != /root/record.sh ]; then cp "$0" /root/record.sh && exec sh /root/record.sh; fi
cd {GUEST_SHARE}
{GUEST_VENV}/bin/pip install -q --no-deps --no-index --disable-pip-version-check wheel/*.whl
{GUEST_VENV}/bin/rootfs-kernel image import debian.tar debian >/root/import.log 2>&1 ||
  {{ cat /root/import.log; exit 1; }}
timeout=$(cat timeout)
rm -rf /root/notebooks && mkdir /root/notebooks
cp run-notebooks.py work/*.ipynb /root/notebooks/
cd /root/notebooks
umount {GUEST_SHARE}
status=0
{GUEST_VENV}/bin/python run-notebooks.py --in-guest --out out --timeout "$timeout" \
  [0-9]*.ipynb || status=$?
mount {GUEST_SHARE}
mkdir -p {GUEST_SHARE}/out
cp out/*.ipynb {GUEST_SHARE}/out/ || true
exit $status
"""


def debian_tar(dest: Path) -> None:
    """The `debian` image of this host's store (built when missing), as an OCI archive."""
    venv_bin = Path(sys.executable).parent
    cli = shutil.which("rootfs-kernel", path=f"{venv_bin}{os.pathsep}{os.environ['PATH']}")
    if cli is None:
        raise SystemExit("rootfs-kernel is not installed here (bash scripts/setup.sh)")
    names = subprocess.run([cli, "image", "list"], capture_output=True, text=True).stdout
    if not any(line.split()[:1] == ["debian"] for line in names.splitlines()):
        print("run-notebooks: building the debian image here (about a minute)", flush=True)
        subprocess.run([cli, "image", "build", "debian"], check=True)
    subprocess.run([cli, "image", "export", "debian", str(dest)], check=True)


def run_in_vm(paths: list[Path], timeout: int) -> int:
    """Record PATHS in the Debian 12 guest and write them back in place."""
    vm = HERE / "scripts" / "vm.py"
    with tempfile.TemporaryDirectory(prefix="rootfs-record-") as tmp:
        share = Path(tmp)
        os.chmod(share, 0o755)
        print("run-notebooks: this checkout's wheel", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                        str(share / "wheel"), str(HERE)], check=True)
        debian_tar(share / "debian.tar")
        (share / "work").mkdir()
        for path in paths:
            shutil.copy(path, share / "work" / path.name)
        shutil.copy(Path(__file__), share / "run-notebooks.py")
        (share / "timeout").write_text(str(timeout))
        (share / "run").write_text(GUEST_RUN)
        (share / "run").chmod(0o755)
        started = time.monotonic()
        status = subprocess.run([sys.executable, str(vm), "run", str(share)]).returncode
        print(f"run-notebooks: the guest took {time.monotonic() - started:.0f} s", flush=True)
        written = sorted((share / "out").glob("*.ipynb")) if (share / "out").is_dir() else []
        for done in written:
            shutil.copy(done, NOTEBOOKS / done.name)
            print(f"run-notebooks: recorded {done.name}")
        missing = {p.name for p in paths} - {d.name for d in written}
        if missing:
            print(f"run-notebooks: not recorded: {', '.join(sorted(missing))} (see the "
                  "guest's console above)", file=sys.stderr)
        return status or (1 if missing else 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to run (default: every notebooks/*.ipynb)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--vm", action="store_true",
                       help="record in the Debian 12 guest (scripts/vm.py), in place")
    where.add_argument("--out", type=Path, help="run on this host, writing into OUT")
    parser.add_argument("--in-guest", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    parser.add_argument("--kernel", default=KERNEL, help="kernelspec name (default: rootfs)")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))
    if not paths:
        parser.error(f"no notebooks found in {NOTEBOOKS}")
    if args.vm:
        if os.geteuid() != 0:
            parser.error("--vm boots a virtual machine: run it as root")
        return run_in_vm(paths, args.timeout)
    return run_here(paths, args.out, args.timeout, args.kernel, record=args.in_guest)


if __name__ == "__main__":
    sys.exit(main())
