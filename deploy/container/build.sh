#!/usr/bin/env bash
# Build the container images with podman, without a container registry (run as root):
#   localhost/rootfs-kernel-base:SUITE   Debian SUITE (default: bookworm) by mmdebstrap,
#                                        brought in with `podman import`
#   localhost/rootfs-kernel:lab          JupyterLab + rootfs-kernel (Containerfile)
#   localhost/rootfs-kernel:test         the same + the test tools (tests/deploy)
# Everything it downloads is kept: the root filesystem tarball and the wheel under
# $ROOTFS_DEPLOY_CACHE (default /var/cache/rootfs-kernel/deploy), the images in podman's
# store, labelled with a hash of the sources so that an unchanged tree is not rebuilt.
# PODMAN="podman --runtime runc" where crun refuses the host's cgroups (hybrid v1/v2).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cache=${ROOTFS_DEPLOY_CACHE:-/var/cache/rootfs-kernel/deploy}
suite=${SUITE:-bookworm}
mirror=${MIRROR:-http://deb.debian.org/debian}
podman=${PODMAN:-podman}
# This project's test machines cannot raise rlimits: give RUN steps limits they can keep.
limits=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
# Downloads trust what the host trusts (a proxy with its own CA), during the build only.
certs=/etc/ssl/certs/ca-certificates.crt
[ -f "$certs" ] && limits+=(--volume "$certs:$certs:ro")
mkdir -p "$cache"

base="localhost/rootfs-kernel-base:$suite"
if ! $podman image exists "$base"; then
  tarball="$cache/base-$suite.tar"
  if [ ! -s "$tarball" ]; then
    echo "build: mmdebstrap $suite (about 90 s)"
    mmdebstrap --format=tar --variant=minbase --include=python3,python3-venv,gcc,libc6-dev,busybox-static,util-linux,mount,procps,ca-certificates \
      "$suite" "$tarball.part" "$mirror" >/dev/null
    mv "$tarball.part" "$tarball"
  fi
  $podman import --change "ENV LANG=C.UTF-8" --change 'CMD ["/bin/bash"]' "$tarball" "$base" >/dev/null
fi

# crun refuses a host whose cgroup v2 hierarchy holds a controller while v1 is in use
# ("cgroups in hybrid mode not supported"); runc runs there.
if [ -z "${PODMAN:-}" ] && ! $podman run --rm "${limits[@]}" "$base" true 2>"$cache/run-probe.log"; then
  if grep -q "hybrid mode" "$cache/run-probe.log" && command -v runc >/dev/null; then
    podman="podman --runtime runc"
  else
    cat "$cache/run-probe.log" >&2
    exit 1
  fi
fi

# The sources that make the image (what a clone has), hashed.
cd "$here"
if [ -d .git ] && command -v git >/dev/null; then
  files=$(git ls-files --cached --others --exclude-standard -- kernel extension pyproject.toml hatch_build.py README.md deploy/container)
else
  files=$(find kernel extension/src extension/style extension/*.json pyproject.toml hatch_build.py README.md deploy/container -type f -not -path '*/node_modules/*' -not -path '*/__pycache__/*')
fi
source_hash=$( (echo "$suite"; for f in $files; do [ -f "$f" ] && sha256sum "$f"; done) | sha256sum | cut -c1-16)
if [ "$($podman image inspect --format '{{ index .Labels "rootfs-kernel.source" }}' localhost/rootfs-kernel:test 2>/dev/null)" = "$source_hash" ]; then
  echo "build: localhost/rootfs-kernel:lab and :test are up to date ($source_hash)"
  exit 0
fi

dist="$cache/dist-$source_hash"
if ! ls "$dist"/rootfs_kernel-*manylinux*.whl >/dev/null 2>&1; then
  rm -rf "$cache"/dist-*
  echo "build: the wheel (scripts/build-dist.sh)"
  bash "$here/scripts/build-dist.sh" "$dist" >/dev/null 2>"$cache/build-dist.log" ||
    { tail -20 "$cache/build-dist.log"; exit 1; }
fi
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp -r "$dist" "$context/dist"
for target in lab test; do
  $podman build "${limits[@]}" --target "$target" --build-arg "BASE=$base" \
    --label "rootfs-kernel.source=$source_hash" -t "localhost/rootfs-kernel:$target" \
    -f "$here/deploy/container/Containerfile" "$context" | grep -E '^(STEP|COMMIT|Error)' || true
  $podman image exists "localhost/rootfs-kernel:$target"
done
echo "build: localhost/rootfs-kernel:lab and :test ($source_hash)"
