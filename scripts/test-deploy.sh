#!/usr/bin/env bash
# The slower target (scripts/test.sh runs it last): what goes to PyPI (tests/packaging),
# the container image under podman and JupyterHub for a class (tests/deploy). Run as root
# after scripts/setup.sh. What it downloads is kept under $ROOTFS_DEPLOY_CACHE (default
# /var/cache/rootfs-kernel/deploy) and in podman's image store, so a second run only
# rebuilds what changed. Prints how long it took.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${ROOTFS_VENV:-/opt/rootfs-kernel/venv}
export ROOTFS_VENV=$venv
export ROOTFS_DEPLOY_CACHE=${ROOTFS_DEPLOY_CACHE:-/var/cache/rootfs-kernel/deploy}
start=$(date +%s)

# podman runs the image; runc where crun refuses the host's hybrid cgroup layout.
missing=()
for p in podman runc mmdebstrap; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test-deploy: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# JupyterHub runs from the test venv (the students' servers do too); its proxy from npm.
"$venv/bin/python" -c "import jupyterhub" 2>/dev/null ||
  "$venv/bin/pip" install -q "jupyterhub>=5"
chp="$ROOTFS_DEPLOY_CACHE/chp/node_modules/.bin/configurable-http-proxy"
if [ ! -x "$chp" ]; then
  mkdir -p "$ROOTFS_DEPLOY_CACHE/chp"
  npm install --prefix "$ROOTFS_DEPLOY_CACHE/chp" --no-fund --no-audit -s configurable-http-proxy
fi
export ROOTFS_HUB_PROXY=$chp

cd "$here"
status=0
"$venv/bin/python" -m pytest -q -p no:cacheprovider -m deploy "$@" tests/packaging tests/deploy ||
  status=$?
echo "test-deploy: $(( $(date +%s) - start )) s"
exit $status
