"""The container images of deploy/container, built and run with the host's podman."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAB, TEST = "localhost/rootfs-kernel:lab", "localhost/rootfs-kernel:test"
BASE = "localhost/rootfs-kernel-base:bookworm"
# deploy/README.md: what cells need from a container runtime.
FLAGS = ["--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
         "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined"]
# This project's test machines cannot raise rlimits, and a container asks for its own;
# these are limits they can keep (harmless elsewhere).
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]


def missing() -> str | None:
    if os.geteuid() != 0:
        return "building and running the images needs root"
    for tool in ("podman", "mmdebstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is missing: run scripts/setup.sh"
    return None


@functools.cache
def podman() -> list[str]:
    """podman, with runc where crun refuses the host's hybrid cgroup layout."""
    probe = subprocess.run(["podman", "run", "--rm", *LIMITS, BASE, "true"],
                           capture_output=True, text=True)
    if probe.returncode and "hybrid mode" in probe.stderr and shutil.which("runc"):
        return ["podman", "--runtime", "runc"]
    return ["podman"]


def build() -> None:
    env = {**os.environ, "ROOTFS_VENV": os.environ.get("ROOTFS_VENV") or
           str(Path(os.sys.executable).parent.parent)}
    run = subprocess.run(["bash", str(REPO / "deploy/container/build.sh")], env=env,
                         capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]


def run(image: str, *command: str, options: list[str] = (), timeout: float = 600
        ) -> subprocess.CompletedProcess:
    """`podman run --rm` with this repository's tests mounted read-only at /src/tests."""
    mounts = ["-v", f"{REPO / 'tests'}:/src/tests:ro",
              "-v", f"{REPO / 'pyproject.toml'}:/src/pyproject.toml:ro",
              "-e", "PYTHONDONTWRITEBYTECODE=1", "-w", "/src"]
    return subprocess.run([*podman(), "run", "--rm", *LIMITS, *mounts, *options, image,
                           *command], capture_output=True, text=True, timeout=timeout)


def cells(*codes: str, options: list[str] = ()) -> list[dict]:
    """Run cells through jupyter_client in a container of the test image."""
    done = run(TEST, "python", "/src/tests/deploy/incontainer.py", *codes, options=options)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == len(codes), done.stdout + done.stderr
    return lines
