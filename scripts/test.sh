#!/usr/bin/env bash
# Set up, then run the whole test suite as root and the kernel tests again as an
# ordinary user (rootless mode: cells get a user namespace). Run as root.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${ROOTFS_VENV:-/opt/rootfs-kernel/venv}
user=${ROOTFS_TEST_USER:-rkuser}
bash "$here/scripts/setup.sh"
id -u "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"

cd "$here"
echo "== lint"
"$venv/bin/ruff" check kernel tests benchmarks scripts

echo "== tests as root"
"$venv/bin/python" -m pytest -q -p no:cacheprovider -m "not deploy" "$@" tests

echo "== tests as the ordinary user $user"
# The user cannot read a checkout under /root: run a readable copy of the tests.
copy=$(mktemp -d /tmp/rootfs-kernel-tests.XXXXXX)
trap 'rm -rf "$copy"' EXIT
cp -r "$here/tests" "$here/notebooks" "$here/pyproject.toml" "$copy/"
chmod -R a+rX "$copy"
chown -R "$user" "$copy"
cd "$copy"
runuser -u "$user" -- env -i HOME="/home/$user" PATH="$venv/bin:/usr/bin:/bin" \
  LANG=C.UTF-8 "$venv/bin/python" -m pytest -q -p no:cacheprovider -m "not rootonly and not deploy" \
  "$@" tests/kernel tests/notebook tests/notebooks tests/api tests/reliability tests/doctor

cd "$here"
if [ "${ROOTFS_DEPLOY_TESTS:-1}" != 0 ]; then
  echo "== deploy tests (the slower target; ROOTFS_DEPLOY_TESTS=0 skips it)"
  bash "$here/scripts/test-deploy.sh" "$@"
fi
