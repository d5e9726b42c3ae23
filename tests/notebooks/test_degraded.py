"""Where namespaces are refused (hosted binder, Docker's default seccomp profile).

The kernel runs under noshare.py, a seccomp filter that refuses unshare(2) and clone(2)
with CLONE_NEW* flags. It must still start; a container cell must fail with a message
that names unshare and says what to do; a %%host cell must still run; and
`rootfs-kernel doctor` must exit non-zero and explain.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

NOSHARE = Path(__file__).with_name("noshare.py")
pytestmark = pytest.mark.skipif(platform.machine() not in ("x86_64", "aarch64"),
                                reason="noshare.py knows x86_64 and aarch64 only")


def test_the_filter_refuses_unshare():
    """The test's premise: under noshare.py unshare fails, plain commands still run."""
    res = subprocess.run([sys.executable, str(NOSHARE), sys.executable, "-c",
                          "import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); "
                          "libc.unshare(0x20000) == 0 or "
                          "exit(os.strerror(ctypes.get_errno()))"],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "Operation not permitted" in res.stderr, res.stderr
    ok = subprocess.run([sys.executable, str(NOSHARE), "true"])
    assert ok.returncode == 0


@pytest.fixture
def refused_kernel(tmp_path):
    """A kernelspec that starts the rootfs kernel under the seccomp filter."""
    spec = tmp_path / "kernels" / "rootfs-noshare"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, str(NOSHARE), sys.executable, "-m", "rootfs_kernel",
                 "-f", "{connection_file}"],
        "display_name": "Rootfs (namespaces refused)", "language": "shell",
        "interrupt_mode": "signal"}))
    ksm = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    return KernelManager(kernel_name="rootfs-noshare", kernel_spec_manager=ksm)


def test_kernel_explains_and_host_cells_still_run(refused_kernel):
    nb = new_notebook(cells=[
        new_code_cell("echo inside a container"),
        new_code_cell("%root none\nls /tmp"),
        new_code_cell("%%host\necho host cell ran; test -d /proc/self && echo proc-ok"),
    ], metadata={"kernelspec": {"name": "rootfs-noshare", "display_name": "x",
                                "language": "shell"}})
    NotebookClient(nb, km=refused_kernel, timeout=120, startup_timeout=60,
                   allow_errors=True).execute()
    for cell in nb.cells[:2]:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert len(errors) == 1, cell.outputs
        message = errors[0].evalue
        assert "unshare" in message, message                 # names the refused call
        assert "Operation not permitted" in message, message
        assert "rootfs-kernel doctor" in message, message     # says where to look
        assert "%%host" in message, message                   # and what still works
        assert not any(o.output_type == "stream" and "inside a container" in o.text
                       for o in cell.outputs)
    host = nb.cells[2]
    assert not [o for o in host.outputs if o.output_type == "error"], host.outputs
    text = "".join(o.text for o in host.outputs if o.output_type == "stream")
    assert "host cell ran" in text and "proc-ok" in text
    nbformat.validate(nb)


def test_doctor_fails_with_advice():
    res = subprocess.run([sys.executable, str(NOSHARE), sys.executable, "-m",
                          "rootfs_kernel.cli", "doctor"],
                         capture_output=True, text=True, timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    failed = [line for line in out.splitlines() if line.startswith("[FAIL]")]
    assert failed and any("unshare" in line for line in failed), out
    assert "seccomp" in out, out     # names the likely cause here
