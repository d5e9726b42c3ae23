#!/usr/bin/env bash
# The VM target (scripts/test.sh runs it after the deploy target; ROOTFS_VM_TESTS=0 skips
# it): a Debian 12 guest -- Debian's own 6.1 kernel, systemd, cgroup v2 only, AppArmor on
# -- built from Debian's packages by scripts/vm.py and cached under $ROOTFS_VM_CACHE
# (default /var/cache/rootfs-kernel/vm) by the hash of what went into it, booted under
# qemu (TCG), with this checkout's wheel in a shared folder; tests/vm runs the smoke suite
# in it as root and as a user logged in through systemd and asserts on what it recorded.
# Run as root after scripts/setup.sh. Prints how long it took.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${ROOTFS_VENV:-/opt/rootfs-kernel/venv}
start=$(date +%s)
cd "$here"
status=0
"$venv/bin/python" -m pytest -q -p no:cacheprovider -s -m vm "$@" tests/vm || status=$?
echo "test-vm: $(( $(date +%s) - start )) s"
exit $status
