"""The rootfs kernel started under a launcher (a seccomp filter, a limited user namespace,
another root), driven through jupyter_client as a front-end drives it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

HERE = Path(__file__).resolve().parent
# Docker's published default seccomp profile (moby's profiles/seccomp/default.json, as
# Debian packages it in golang-github-docker-docker-dev); scripts/setup.sh puts it here.
DOCKER_PROFILE = Path(os.environ.get("ROOTFS_DOCKER_SECCOMP",
                                     "/var/cache/rootfs-kernel/docker-seccomp-default.json"))
SYSTEM_PYTHON = "/usr/bin/python3"   # the one with libseccomp's bindings (python3-seccomp)


def docker_seccomp() -> list[str]:
    return [SYSTEM_PYTHON, str(HERE / "docker_seccomp.py"), str(DOCKER_PROFILE)]


def limited_userns() -> list[str]:
    return [sys.executable, str(HERE / "limited_userns.py")]


def can_load_docker_profile() -> str | None:
    """Why the Docker profile cannot be used here, or None."""
    if not DOCKER_PROFILE.is_file():
        return f"{DOCKER_PROFILE} is missing: run scripts/setup.sh"
    done = subprocess.run([SYSTEM_PYTHON, "-c", "import seccomp"], capture_output=True)
    return "python3-seccomp is not installed: run scripts/setup.sh" if done.returncode else None


@dataclass
class Ran:
    reply: dict
    stdout: str = ""
    stderr: str = ""
    errors: list[dict] = field(default_factory=list)

    @property
    def evalue(self) -> str:
        return self.reply.get("evalue", "")


class LaunchedKernel:
    def __init__(self, prefix: list[str], tmp_path: Path) -> None:
        spec = tmp_path / "kernels" / "rootfs-launched"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [*prefix, sys.executable, "-m", "rootfs_kernel", "-f", "{connection_file}"],
            "display_name": "Rootfs (launched)", "language": "shell",
            "interrupt_mode": "signal"}))
        ksm = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
        self.km = KernelManager(kernel_name="rootfs-launched", kernel_spec_manager=ksm)
        self.km.start_kernel()
        self.kc = self.km.client()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=60)
        except RuntimeError:
            self.close()
            raise

    def run(self, code: str, timeout: float = 60) -> Ran:
        ran = Ran(reply={})

        def hook(msg: dict) -> None:
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                setattr(ran, content["name"], getattr(ran, content["name"]) + content["text"])
            elif kind == "error":
                ran.errors.append(content)

        ran.reply = self.kc.execute_interactive(code, timeout=timeout, output_hook=hook,
                                                store_history=False)["content"]
        return ran

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)

    def __enter__(self) -> LaunchedKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def doctor(prefix: list[str], env: dict | None = None) -> tuple[int, str]:
    done = subprocess.run([*prefix, sys.executable, "-m", "rootfs_kernel.cli", "doctor"],
                          capture_output=True, text=True, timeout=120, env=env)
    return done.returncode, done.stdout + done.stderr
