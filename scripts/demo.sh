#!/usr/bin/env bash
# Set up (see setup.sh), then execute a demo notebook on the default image and print it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${ROOTFS_VENV:-/opt/rootfs-kernel/venv}
bash "$here/scripts/setup.sh"
exec "$venv/bin/python" "$here/scripts/demo.py" "$@"
