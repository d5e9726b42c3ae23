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

# The renderer's TypeScript (extension/): its payload types are generated from the one
# schema file, then tsc, eslint and `node --test` on the golden payloads the Python tests
# read too (npm test; node_modules comes from the wheel build's npm install, else npm ci).
echo "== renderer: schema types, tsc, eslint, golden payloads"
(cd "$here/extension" && { [ -d node_modules ] || npm ci --no-audit --no-fund --silent; } \
  && npm test --silent)

echo "== tests as root"
"$venv/bin/python" -m pytest -q -p no:cacheprovider -m "not deploy and not vm" "$@" tests

echo "== tests as the ordinary user $user"
# The user cannot read a checkout under /root: run a readable copy of the tests.
copy=$(mktemp -d /tmp/rootfs-kernel-tests.XXXXXX)
trap 'rm -rf "$copy"' EXIT
cp -r "$here/tests" "$here/notebooks" "$here/pyproject.toml" "$here/README.md" "$copy/"
chmod -R a+rX "$copy"
chown -R "$user" "$copy"
# A 0600 file of root's in the user's home: the security suite checks that no cell of
# the user's kernel reads it (the user cannot make one itself).
home=$(getent passwd "$user" | cut -d: -f6)
"$venv/bin/python" "$here/tests/security/hostmarkers.py" place-root-marker "$home" "$(id -u "$user")"
trap 'rm -rf "$copy"; rm -f "$home/.rootfs-root-marker" "$home/.rootfs-root-marker.id"' EXIT
cd "$copy"
runuser -u "$user" -- env -i HOME="$home" PATH="$venv/bin:/usr/bin:/bin" \
  LANG=C.UTF-8 "$venv/bin/python" -m pytest -q -p no:cacheprovider -m "not rootonly and not deploy and not vm" \
  "$@" tests/kernel tests/notebooks tests/api tests/reliability tests/security \
  tests/doctor

cd "$here"
if [ "${ROOTFS_DEPLOY_TESTS:-1}" != 0 ]; then
  echo "== deploy tests (the slower target; ROOTFS_DEPLOY_TESTS=0 skips it)"
  bash "$here/scripts/test-deploy.sh" "$@"
fi

if [ "${ROOTFS_VM_TESTS:-1}" != 0 ]; then
  echo "== VM tests (Debian 12 under qemu, as root and as a systemd user; ROOTFS_VM_TESTS=0 skips it)"
  bash "$here/scripts/test-vm.sh" "$@"
fi
