#!/usr/bin/env bash
# Set up everything rootfs-kernel needs on a fresh Debian/Ubuntu machine (run as root):
# Debian packages, a virtualenv with the package and its test tools, the kernelspec.
# Idempotent: a second run only checks. Override the venv path with ROOTFS_VENV.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${ROOTFS_VENV:-/opt/rootfs-kernel/venv}
extras=${ROOTFS_EXTRAS:-test}

# python3-venv: a venv from the system Python, readable by the unprivileged test user
# (root's pyenv under /root is not). busybox-static: the `busybox` image. debootstrap:
# the `debian` image. bubblewrap: the benchmark's baseline. gcc: the %%c cells.
# python3-seccomp: tests/doctor runs the kernel under Docker's default seccomp profile; its
# libseccomp2 regenerates the cells' own filter (sandbox/seccomp.py, tests/unit).
# graphviz: the `%show tree` picture (without it, the text tree alone). passt: pasta, the
# outbound network of `%net user` cells (as rootless podman has it). fonts-noto-cjk: the
# seed's Chinese quotes in the browser tests' pages and the screenshots.
debs=(python3 python3-venv python3-dev busybox-static debootstrap bubblewrap gcc libc6-dev
      mmdebstrap uidmap chromium python3-seccomp graphviz passt fonts-noto-cjk)
# Node.js >= 18 and npm build the JupyterLab renderer when the wheel is built.
command -v npm >/dev/null || debs+=(nodejs npm)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Docker's published default seccomp profile, as Debian packages it (moby's
# profiles/seccomp/default.json in golang-github-docker-docker-dev): only that file is
# taken from the package, which is not installed.
cache=${ROOTFS_CACHE:-/var/cache/rootfs-kernel}
profile="$cache/docker-seccomp-default.json"
if [ ! -s "$profile" ]; then
  echo "setup: fetching Docker's default seccomp profile (Debian's docker sources)"
  mkdir -p "$cache"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq golang-github-docker-docker-dev >/dev/null 2>&1 ||
     { apt-get update -qq && apt-get download -qq golang-github-docker-docker-dev; })
  dpkg-deb --fsys-tarfile "$tmp"/golang-github-docker-docker-dev_*.deb |
    tar -xO ./usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json \
    > "$profile.part"
  mv "$profile.part" "$profile"
  rm -rf "$tmp"
  chmod -R a+rX "$cache"
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv"
  mkdir -p "$(dirname "$venv")"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
fi
echo "setup: installing rootfs-kernel[$extras] into $venv"
# A regular (not editable) install: the unprivileged test user must be able to import it.
"$venv/bin/pip" install -q "$here[$extras]"
chmod -R a+rX "$(dirname "$venv")"
echo "setup: kernelspec: $("$venv/bin/jupyter" kernelspec list | grep -w rootfs)"
