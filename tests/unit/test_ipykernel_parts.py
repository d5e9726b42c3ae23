"""ipykernel's private parts that app.py and kernel.py build on are still where they were.

app.py takes the place of two of ipykernel's threads and kernel.py answers kernel_info
itself; both reach past ipykernel's public API. pyproject.toml bounds ipykernel to the
releases these parts were verified with; this test says, by name, which part a new
release moved, before a user meets it as a kernel that does not start.
"""

from __future__ import annotations

import inspect
import re
import tomllib
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import ipykernel._version
import pytest
from ipykernel.kernelapp import IPKernelApp
from ipykernel.kernelbase import Kernel
from traitlets import Float

from rootfs_kernel.app import MainThreadIOPub

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
# The releases the parts below were verified with (pyproject.toml's range must not pass
# them): 7.0.0 and 7.4.0, the tests of kernel/ and of this file run under each.
VERIFIED = (7, 8)


def _takes(func: object, *names: str) -> bool:
    try:
        params = list(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return False
    return params[:len(names)] == list(names)


def moved_parts(app: type = IPKernelApp, kernel: type = Kernel,
                versions: object = ipykernel._version) -> list[str]:
    """What app.py and kernel.py use of ipykernel that is not there as they use it."""
    missing = []

    def need(ok: bool, part: str, used: str) -> None:
        if not ok:
            missing.append(f"{part} ({used})")

    need(_takes(getattr(app, "_bind_socket", None), "self", "s", "port"),
         "IPKernelApp._bind_socket(s, port)", "app.py binds the IOPub socket with it")
    curve = getattr(app, "_apply_curve_server_options", None)   # ipykernel 7.1+
    need(curve is None or _takes(curve, "self", "socket"),
         "IPKernelApp._apply_curve_server_options(socket)",
         "app.py gives the IOPub socket the CurveZMQ keys")
    for name in ("init_sockets", "init_control", "init_iopub", "configure_tornado_logger",
                 "start"):
        need(callable(getattr(app, name, None)), f"IPKernelApp.{name}()",
             "app.py overrides or calls it")
    need(hasattr(app, "shell_channel_thread"), "IPKernelApp.shell_channel_thread",
         "app.py stops the shell channel thread: the main loop reads the shell socket")
    sleep = getattr(kernel, "_execute_sleep", None)
    need(isinstance(sleep, Float), "Kernel._execute_sleep (a Float trait)",
         "kernel.py sets it to 0: no sleep before every execute_reply")
    reply = getattr(kernel, "execute_request", None)
    need(reply is not None and "_execute_sleep" in inspect.getsource(reply),
         "Kernel.execute_request reading self._execute_sleep",
         "kernel.py's 0 only helps where the sleep is read")
    need(isinstance(getattr(versions, "kernel_protocol_version", None), str),
         "ipykernel._version.kernel_protocol_version", "kernel.py's kernel_info says it")
    need("self.shell_handlers" in inspect.getsource(kernel.__init__),
         "Kernel.shell_handlers", "kernel.py adds the comm handlers there")
    for name in ("pre_handler_hook", "post_handler_hook"):
        need(callable(getattr(kernel, name, None)), f"Kernel.{name}()",
             "kernel.py sets its SIGINT handler around each request there")
    # What ipykernel itself calls on the application's iopub_thread, which app.py's
    # MainThreadIOPub stands in for.
    ours = MainThreadIOPub(socket=None, session=None, backlog=None)
    for name in sorted(set(re.findall(r"iopub_thread\.(\w+)", inspect.getsource(app)))):
        need(hasattr(ours, name), f"iopub_thread.{name}",
             "IPKernelApp uses it; app.MainThreadIOPub lacks it")
    return missing


def test_the_private_parts_of_ipykernel_the_kernel_uses_are_there() -> None:
    missing = moved_parts()
    assert not missing, (
        f"ipykernel {version('ipykernel')} moved what app.py and kernel.py use: "
        + "; ".join(missing) + ". Adapt them to this release, verify, and widen "
        "pyproject.toml's ipykernel range (and VERIFIED here) to it")


def test_a_moved_part_is_named() -> None:
    """The check fails, naming the part, when a release renames one."""
    class Renamed(IPKernelApp):
        _bind_socket = None

    moved = moved_parts(app=Renamed)
    assert len(moved) == 1 and moved[0].startswith("IPKernelApp._bind_socket")
    assert moved_parts(versions=SimpleNamespace())[0].startswith(
        "ipykernel._version.kernel_protocol_version")


def test_pyproject_bounds_ipykernel_to_the_verified_releases() -> None:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    (spec,) = [d for d in deps if re.match(r"ipykernel\b", d)]
    low, high = VERIFIED
    assert spec.replace(" ", "") == f"ipykernel>={low},<{high}", spec
    installed = tuple(int(x) for x in version("ipykernel").split(".")[:1])
    if not low <= installed[0] < high:
        pytest.fail(f"ipykernel {version('ipykernel')} is outside {spec}")
