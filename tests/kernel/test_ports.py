"""The kernel binds its shell, stdin and IOPub ports before importing ipykernel (ports.py),
and the application adopts those sockets; any other case binds as ipykernel does."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap

import pytest
from jupyter_client.connect import write_connection_file

# In a fresh interpreter: bind early, say whether the ports listen before ipykernel is
# imported, then initialize the application and say which sockets it took.
PROBE = textwrap.dedent("""
    import json, socket, sys
    from rootfs_kernel import ports
    ports.bind_early(sys.argv[1:])
    info = json.load(open(sys.argv[sys.argv.index("-f") + 1]))
    def listening(port):
        with socket.socket() as s:
            return s.connect_ex((info["ip"], port)) == 0
    early = ports._bound
    out = {"ipykernel_imported": "ipykernel" in sys.modules,
           "listening": [listening(info[k]) for k in ("shell_port", "stdin_port", "iopub_port")]}
    from rootfs_kernel.app import RootfsKernelApp
    from rootfs_kernel.kernel import RootfsKernel
    app = RootfsKernelApp.instance(kernel_class=RootfsKernel, outstream_class=None)
    app.initialize(sys.argv[1:])
    out["adopted"] = early is not None and app.shell_socket is early.shell
    out["ports"] = [app.shell_port, app.stdin_port, app.iopub_port]
    out["subshell_thread"] = app.shell_channel_thread is not None
    print(json.dumps(out), flush=True)
    app.close()
""")


@pytest.fixture
def connection(tmp_path):
    path, info = write_connection_file(str(tmp_path / "kernel.json"), ip="127.0.0.1")
    return path, info


def probe(*argv: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_the_ports_listen_before_ipykernel_is_imported_and_the_app_adopts_them(connection):
    path, info = connection
    out = probe("-f", path)
    assert out["ipykernel_imported"] is False
    assert out["listening"] == [True, True, True]
    assert out["adopted"] is True
    assert out["ports"] == [info["shell_port"], info["stdin_port"], info["iopub_port"]]
    assert out["subshell_thread"] is False


def test_the_kernel_class_options_of_a_locked_kernelspec_still_bind_early(connection):
    path, _ = connection
    out = probe("-f", path, "--RootfsKernel.host_access=False")
    assert out["listening"] == [True, True, True] and out["adopted"] is True


@pytest.mark.parametrize("extra", [["--ip=127.0.0.1"], ["--IPKernelApp.transport=tcp"]])
def test_an_application_option_binds_as_ipykernel_does(connection, extra):
    path, info = connection
    out = probe("-f", path, *extra)
    assert out["listening"] == [False, False, False] and out["adopted"] is False
    assert out["ports"] == [info["shell_port"], info["stdin_port"], info["iopub_port"]]


def test_a_connection_file_with_curve_keys_is_not_bound_early(connection):
    path, _ = connection
    with open(path) as f:
        info = json.load(f)
    info["curve_secretkey"] = "unused"
    with open(path, "w") as f:
        json.dump(info, f)
    from rootfs_kernel import ports

    assert ports.connection_file(["-f", path]) == path
    done = subprocess.run([sys.executable, "-c", "import sys\nfrom rootfs_kernel import ports\n"
                           "ports.bind_early(sys.argv[1:])\nprint(ports._bound is None)",
                           "-f", path], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "True", done.stderr


def test_a_port_in_use_is_reported_by_the_application_as_ipykernel_does(tmp_path):
    """bind_early gives up silently; the kernel then fails to bind as ipykernel would,
    with zmq's error, and the client's start-up says the kernel died."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        path, _ = write_connection_file(str(tmp_path / "kernel.json"), ip="127.0.0.1",
                                        shell_port=port)
        done = subprocess.run([sys.executable, "-m", "rootfs_kernel", "-f", path],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "Address already in use" in done.stderr, done.stderr[-2000:]



def test_sockets_the_application_does_not_take_free_their_ports(connection):
    """An address or key the application configures differently (a config file may): the
    early sockets are closed and the ports can be bound again at once."""
    path, info = connection
    done = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import json, sys, zmq
        from rootfs_kernel import ports
        ports.bind_early(sys.argv[1:])
        info = json.load(open(sys.argv[2]))
        wanted = (info["shell_port"], info["stdin_port"], info["iopub_port"])
        print(ports.take("127.0.0.2", "tcp", wanted, curve=False) is None)
        context = zmq.Context()
        for port in wanted:   # raises EADDRINUSE if an early socket still held it
            context.socket(zmq.ROUTER).bind(f"tcp://127.0.0.1:{port}")
        print("rebound")
        context.destroy(linger=0)
    """), "-f", path], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["True", "rebound"], done.stderr[-2000:]
