#!/usr/bin/env python3
"""A Debian 12 guest booted under qemu (TCG) to run a command on a distribution's default
host: cgroup v2 only, systemd, AppArmor on, Debian's own 6.1 kernel with overlayfs as a
module. Used by the VM target (tests/vm, scripts/test-vm.sh); reusable for anything that
needs such a host (run as root):

    python3 scripts/vm.py build                   # build (or find) the cached image
    python3 scripts/vm.py run SHARE [COMMAND...]  # boot it, run COMMAND as root, power off

The image is made from Debian's packages only (mmdebstrap: systemd, udev, the kernel and
its initramfs, python3) and written with `mkfs.ext4 -d`; a virtualenv at
/opt/rootfs-kernel/venv holds the project's dependencies, installed from a wheelhouse
downloaded on this host (the guest has no network). It is cached under
$ROOTFS_VM_CACHE (default /var/cache/rootfs-kernel/vm) by the hash of what went into it.
The account `rkuser` (uid 1000) lingers, so its systemd user manager (user@1000.service)
runs from boot, as a logged-in desktop or JupyterHub user's does.

`run` shares the host folder SHARE with the guest at /mnt/share (9p) and boots the image
read-only (qemu's snapshot: the cache is never changed); the guest runs COMMAND (default:
/mnt/share/run) as root from a systemd service, writes its exit status to
/mnt/share/status and powers off. The serial console goes to stdout and
SHARE/console.log; the exit status is the command's.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("ROOTFS_VM_CACHE", "/var/cache/rootfs-kernel/vm"))
SUITE = "bookworm"
PACKAGES = [
    "systemd", "systemd-sysv", "udev", "dbus", "dbus-user-session", "libpam-systemd",
    "systemd-container",
    "linux-image-amd64", "initramfs-tools", "zstd", "kmod", "apparmor",
    "python3", "python3-venv", "procps", "mount", "util-linux", "sudo",
    "gcc", "libc6-dev",   # %%c cells (notebook 08)
    # What the notebooks use when they are recorded here (run-notebooks.py --vm): the
    # `busybox` image (05, 10) and `%show tree`'s picture (03).
    "busybox-static", "graphviz",
    # pasta, for `%net user` cells, as scripts/setup.sh installs it (doctor checks it)
    "passt",
]
# What the smoke suite needs besides the project's own dependencies.
GUEST_EXTRAS = ["nbclient>=0.10", "nbformat>=5"]
VENV = "/opt/rootfs-kernel/venv"
USER = "rkuser"
HOST_DEBS = ["qemu-system-x86", "mmdebstrap", "e2fsprogs"]

# The guest's side of `run`: mount the share, run the command, say how it ended, power off.
RUNNER = """#!/bin/sh
# rkvm-run: run the host's command (scripts/vm.py run), then power off.
mountpoint -q /mnt/share || mount /mnt/share
echo "rkvm: booted in $(cut -d' ' -f1 /proc/uptime) s; running $(cat /mnt/share/.command)"
status=0
sh -c "$(cat /mnt/share/.command)" || status=$?
echo "$status" > /mnt/share/status
sync
echo "rkvm: exit status $status"
systemctl poweroff --no-block
"""
SERVICE = f"""[Unit]
Description=rootfs-kernel VM: the host's command
Wants=user@1000.service
After=multi-user.target user@1000.service systemd-logind.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/rkvm-run
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
Environment=PATH={VENV}/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8

[Install]
WantedBy=multi-user.target
"""


def dependencies() -> list[str]:
    """The project's own dependencies (pyproject.toml) and the smoke suite's."""
    project = tomllib.loads((HERE / "pyproject.toml").read_text())["project"]
    return sorted(project["dependencies"]) + GUEST_EXTRAS


def image_key() -> str:
    """The hash of what goes into the image: this builder, its packages, the wheels'
    requirements. A change to any of them builds a new image."""
    h = hashlib.sha256()
    h.update("\n".join([SUITE, *PACKAGES, *dependencies(), RUNNER, SERVICE,
                        inspect.getsource(_hooks), inspect.getsource(_mmdebstrap)]).encode())
    return h.hexdigest()[:16]


def ensure_host_packages() -> None:
    missing = [p for p in HOST_DEBS if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True
    ).stdout.strip() != "install ok installed"]
    if missing:
        print(f"vm: installing Debian packages: {' '.join(missing)}", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                        *missing], check=True, env={**os.environ,
                                                    "DEBIAN_FRONTEND": "noninteractive"})


def _hooks(wheels: Path, setup: Path) -> list[str]:
    """mmdebstrap's customize hooks ($1: the new root): the guest's settings, the
    smoke suite's user, the venv from the wheelhouse, the service that runs `run`'s
    command. Part of the image's key (image_key)."""
    hooks = [
        'echo rkvm > "$1/etc/hostname"',
        'printf "/dev/vda / ext4 rw,relatime 0 0\\n'
        'share /mnt/share 9p trans=virtio,version=9p2000.L,msize=262144,nofail 0 0\\n"'
        ' > "$1/etc/fstab"',
        'mkdir -p "$1/mnt/share"',
        f'chroot "$1" useradd --create-home --uid 1000 --shell /bin/sh {USER}',
        # enable-linger, as loginctl does it: user@1000.service starts at boot
        f'mkdir -p "$1/var/lib/systemd/linger" && touch "$1/var/lib/systemd/linger/{USER}"',
        'chroot "$1" passwd -d root',
        # Not needed in a throwaway guest, and each costs boot time under TCG.
        'chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer '
        'e2scrub_all.timer fstrim.timer systemd-timesyncd.service '
        'serial-getty@ttyS0.service getty@tty1.service',
        f'chroot "$1" python3 -m venv {VENV}',
        f'cp -r "{wheels}" "$1/tmp/wheelhouse"',
        f'chroot "$1" {VENV}/bin/pip install -q --no-index --find-links /tmp/wheelhouse '
        + " ".join(shlex.quote(d) for d in ["pip", *dependencies()]),
        'rm -rf "$1/tmp/wheelhouse"',
        'chmod -R a+rX "$1/opt/rootfs-kernel"',
    ]
    setup.mkdir()
    (setup / "rkvm-run").write_text(RUNNER)
    (setup / "rkvm-run.service").write_text(SERVICE)
    hooks += [
        f'install -m 755 "{setup}/rkvm-run" "$1/usr/local/sbin/rkvm-run"',
        f'install -m 644 "{setup}/rkvm-run.service" "$1/etc/systemd/system/"',
        'chroot "$1" systemctl enable rkvm-run.service',
    ]
    return hooks


def _mmdebstrap(root: Path, hooks: list[str]) -> list[str]:
    """The root's command line (part of the image's key)."""
    return ["mmdebstrap", "--quiet", "--variant=minbase", "--mode=root",
            "--include=" + ",".join(PACKAGES),
            "--dpkgopt=path-exclude=/usr/share/{doc,man,info,locale}/*",
            "--dpkgopt=path-include=/usr/share/locale/locale.alias",
            *[f"--customize-hook={h}" for h in hooks], SUITE, str(root)]


def build() -> Path:
    """The cached image's directory (root.img, vmlinuz, initrd.img), built when missing."""
    ensure_host_packages()
    out = CACHE / image_key()
    if (out / "root.img").exists():
        return out
    started = time.monotonic()
    work = CACHE / f".build-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        wheels = work / "wheelhouse"
        print("vm: downloading the Python dependencies as wheels (PyPI)", flush=True)
        # The guest's Python is Debian 12's 3.11: wheels for it, whatever runs this script.
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--dest", str(wheels),
                        "--only-binary=:all:", "--python-version", "3.11",
                        "--platform", "manylinux2014_x86_64", "--platform",
                        "manylinux_2_28_x86_64", "--platform", "linux_x86_64",
                        "--implementation", "cp", "pip", *dependencies()], check=True)
        root = work / "root"
        print(f"vm: mmdebstrap {SUITE} with {len(PACKAGES)} packages", flush=True)
        setup = work / "files"
        hooks = _hooks(wheels, setup)
        subprocess.run(_mmdebstrap(root, hooks), check=True)
        boot = root / "boot"
        kernel = sorted(boot.glob("vmlinuz-*"))[-1]
        initrd = sorted(boot.glob("initrd.img-*"))[-1]
        shutil.copy(kernel, work / "vmlinuz")
        shutil.copy(initrd, work / "initrd.img")
        used = int(subprocess.run(["du", "-sb", str(root)], capture_output=True, text=True,
                                  check=True).stdout.split()[0])
        size_mb = used * 5 // 4 // 2**20 + 1024   # room for the cells' images and a venv
        print(f"vm: mkfs.ext4 -d ({used // 2**20} MB used, image {size_mb} MB)", flush=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "rkvm", "-d", str(root),
                        str(work / "root.img"), f"{size_mb}M"], check=True)
        for scratch in (root, wheels, setup):
            shutil.rmtree(scratch)
        (work / "kernel-version").write_text(kernel.name.removeprefix("vmlinuz-") + "\n")
        os.replace(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for old in CACHE.iterdir():   # earlier images (one is kept), builds that were killed
        building = old.name.removeprefix(".build-")
        if old != out and old.is_dir() and not (
                building.isdigit() and Path(f"/proc/{building}").exists()):
            shutil.rmtree(old, ignore_errors=True)
    print(f"vm: image built in {time.monotonic() - started:.0f} s: {out}", flush=True)
    return out


def run(share: Path, command: str, timeout: float = 900) -> int:
    """Boot the image with `share` at /mnt/share, run `command` in the guest as root,
    return its exit status (or 124 when the guest did not finish in time)."""
    image = build()
    share = share.resolve()
    share.mkdir(parents=True, exist_ok=True)
    (share / ".command").write_text(command + "\n")
    (share / "status").unlink(missing_ok=True)
    argv = ["nice", "qemu-system-x86_64", "-accel", "tcg", "-m", "2048", "-smp", "2",
            "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
            "-nic", "none",
            "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img"),
            "-append", "root=/dev/vda rw console=ttyS0 quiet systemd.show_status=error",
            "-drive", f"file={image / 'root.img'},format=raw,if=virtio,snapshot=on",
            "-virtfs", f"local,path={share},mount_tag=share,security_model=none,id=share"]
    started = time.monotonic()
    print(f"vm: booting {image.name} (qemu TCG, 2 CPUs, 2 GiB)", flush=True)
    with open(share / "console.log", "wb") as log, subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT) as qemu:
        timer = threading.Timer(timeout, qemu.kill)   # a guest that hangs
        timer.start()
        try:
            for line in qemu.stdout:
                log.write(line)
                log.flush()
                sys.stdout.buffer.write(line)
                sys.stdout.flush()
            qemu.wait()
        finally:
            timer.cancel()
        if qemu.returncode < 0:
            print(f"\nvm: the guest did not finish within {timeout:.0f} s", flush=True)
            return 124
    status_file = share / "status"
    status = int(status_file.read_text()) if status_file.exists() else 125
    print(f"vm: {time.monotonic() - started:.0f} s from boot to power-off, "
          f"exit status {status}", flush=True)
    return status


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    sub.add_parser("build", help="build (or find) the cached image; print its directory")
    r = sub.add_parser("run", help="boot the image and run a command in it as root")
    r.add_argument("share", type=Path, help="a host folder, /mnt/share in the guest")
    r.add_argument("command", nargs="*", help="a shell command (default: /mnt/share/run)")
    r.add_argument("--timeout", type=float, default=900)
    args = p.parse_args()
    if os.geteuid() != 0:
        print("vm: run as root (mmdebstrap and the image cache need it)", file=sys.stderr)
        return 2
    if args.what == "build":
        print(build())
        return 0
    return run(args.share, " ".join(args.command) or "/mnt/share/run", args.timeout)


if __name__ == "__main__":
    sys.exit(main())
