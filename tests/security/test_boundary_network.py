"""Issue 21, class 3: a cell reaches no service of the host through the network.

Every container cell has a network namespace of its own with only `lo` (up); `%net host`
is the host's network (a host-access line, refused by a locked kernel); `%net user` is
outbound access through pasta that reaches no address of the host. The markers are
servers on the real host: one on its loopback, one on every address (IPv4 and IPv6), each
handing out a secret to whoever connects; and the test kernel's own ZeroMQ ports, where
another kernel's IOPub would be. Probes are busybox's `nc` in the busybox image.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import hostmarkers as hm
import pytest
from kerneldriver import KernelDriver

from rootfs_kernel.cell import HOST_ACCESS_LINES

PASTA = shutil.which("pasta") or shutil.which("pasta", path="/usr/bin:/bin")
needs_pasta = pytest.mark.skipif(PASTA is None, reason="pasta (package passt) not installed")


@dataclass
class Servers:
    """Two servers on the host that give `secret` to whoever connects: `loopback_port`
    on 127.0.0.1 only, `any_port` on every address of the host (dual-stack ::)."""

    secret: str
    loopback_port: int
    any_port: int


def _serve(sock: socket.socket, secret: bytes) -> None:
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:   # closed: the test is over
            return
        with conn:
            conn.sendall(secret + b"\n")


@pytest.fixture
def servers() -> Iterator[Servers]:
    secret = hm.token("net")
    lo = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lo.bind(("127.0.0.1", 0))
    every = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    every.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    every.bind(("::", 0))
    for s in (lo, every):
        s.listen(16)
        threading.Thread(target=_serve, args=(s, secret.encode()), daemon=True).start()
    try:
        yield Servers(secret, lo.getsockname()[1], every.getsockname()[1])
    finally:
        lo.close()
        every.close()


def host_addresses() -> list[tuple[str, str]]:
    """(address as nc takes it, what it is) for every address of the host: its loopback,
    and each interface's (a link-local one with its interface, addr%IFACE)."""
    out = [("127.0.0.1", "the host's loopback"), ("::1", "the host's IPv6 loopback")]
    ip = shutil.which("ip")
    if ip is None:
        return out
    listing = json.loads(subprocess.run([ip, "-j", "addr"], capture_output=True, text=True,
                                        check=True).stdout)
    for link in listing:
        for a in link.get("addr_info", []):
            addr = a["local"]
            if addr in ("127.0.0.1", "::1") or a["family"] not in ("inet", "inet6"):
                continue
            scoped = f"{addr}%{link['ifname']}" if addr.startswith("fe80:") else addr
            out.append((scoped, f"{link['ifname']}'s {a['family']} address"))
    return out


def probe(addresses: list[tuple[str, str]], port: int) -> str:
    """A script that connects to each address's `port` and prints what it got."""
    return "".join(f"echo '== {addr}'; nc -w 3 {addr} {port} </dev/null 2>&1; echo\n"
                   for addr, _ in addresses)


def from_the_host(addresses: list[tuple[str, str]], port: int) -> list[str]:
    """The addresses at which the host itself reaches `port` (what %net host must)."""
    out = []
    for addr, _ in addresses:
        try:
            socket.create_connection((addr, port), timeout=3).close()
            out.append(addr)
        except OSError:
            continue
    return out


def reached(output: str, secret: str) -> list[str]:
    """The addresses whose probe got the secret."""
    got = []
    for part in output.split("== ")[1:]:
        addr, _, rest = part.partition("\n")
        if secret in rest:
            got.append(addr)
    return got


# -- a default cell: its own network, lo only -------------------------------------------------
def test_a_default_cell_reaches_no_service_of_the_host(kernel, servers):
    addresses = host_addresses()
    res = kernel.run("%image busybox\n" + probe(addresses[:1], servers.loopback_port)
                     + probe(addresses, servers.any_port), timeout=120)
    assert reached(res.stdout, servers.secret) == [], res.stdout
    # ... and the probe would have got it on the host's network (unlocked: %net host).
    res = kernel.ok("%net host\n%image busybox\n" + probe(addresses[:1], servers.loopback_port)
                    + probe(addresses, servers.any_port), timeout=120)
    assert reached(res.stdout, servers.secret) == [
        *from_the_host(addresses[:1], servers.loopback_port),
        *from_the_host(addresses, servers.any_port)], res.stdout
    assert "127.0.0.1" in reached(res.stdout, servers.secret)


def test_a_default_cell_cannot_connect_to_a_kernels_zeromq_ports(kernel):
    """Another kernel's IOPub port (and its shell port, with its execute requests) on the
    host's loopback: this very test kernel's, from its connection info."""
    info = kernel.km.get_connection_info()
    assert info["transport"] == "tcp"
    ports = [info[f"{name}_port"] for name in ("iopub", "shell", "control", "stdin", "hb")]
    script = "".join(f"if nc -w 3 {info['ip']} {port} -e true 2>/dev/null; then "
                     f"echo connected {port}; else echo refused {port}; fi\n" for port in ports)
    res = kernel.ok("%image busybox\n" + script, timeout=120)
    assert res.stdout.split("\n")[:-1] == [f"refused {port}" for port in ports], res.stdout
    host = kernel.ok("%net host\n%image busybox\n" + script, timeout=120)
    assert host.stdout.split("\n")[:-1] == [f"connected {port}" for port in ports], host.stdout


def test_a_cells_own_loopback_is_up_and_its_own(kernel):
    """lo is up in the cell's namespace: a server on 127.0.0.1 inside the cell answers a
    client inside the same cell, and ping works; the namespace is not the host's."""
    host_net = os.readlink("/proc/self/ns/net")
    res = kernel.ok("%image busybox\n"
                    "nc -l -p 7777 -e echo inside-the-cell & sleep 0.2\n"
                    "nc -w 3 127.0.0.1 7777 </dev/null\n"
                    "ping -c 1 -W 2 127.0.0.1 >/dev/null && echo ping ok\n"
                    "ip link | grep -c '^[0-9]'; readlink /proc/self/ns/net", timeout=60)
    served, ping, links, netns = res.stdout.split("\n")[:4]
    assert (served, ping, links) == ("inside-the-cell", "ping ok", "1"), res.stdout
    assert netns != host_net


# -- %net host: a host-access line ------------------------------------------------------------
def test_a_locked_kernel_refuses_net_host_and_runs_its_other_cells(servers):
    k = KernelDriver(env={**os.environ, "ROOTFS_KERNEL_HOST_ACCESS": "0"})
    try:
        res = k.run(f"%image busybox\n%net host\nnc -w 3 127.0.0.1 {servers.loopback_port}",
                    timeout=60)
        assert res.reply["ename"] == "HeaderError", res.reply
        assert "line 2: `%net host`: this kernel is locked (host access is off): %net host " \
               + HOST_ACCESS_LINES["%net host"] in res.reply["evalue"]
        default = k.run("%image busybox\n" + probe(host_addresses()[:1],
                                                   servers.loopback_port), timeout=60)
        assert servers.secret not in hm.texts_of(res, default)
    finally:
        k.shutdown()


# -- %net user: pasta, the outside but not the host ---------------------------------------------
OUTSIDE = ("deb.debian.org", 80)


def _host_reaches_the_outside() -> bool:
    try:
        socket.create_connection(OUTSIDE, timeout=5).close()
        return True
    except OSError:
        return False


@needs_pasta
def test_net_user_reaches_no_address_of_the_host(kernel, servers):
    addresses = host_addresses()
    code = ("%net user\n%image busybox\n" + probe(addresses[:1], servers.loopback_port)
            + probe(addresses, servers.any_port) + "ip route\n")
    res = kernel.ok(code, timeout=120)
    assert reached(res.stdout, servers.secret) == [], res.stdout
    # The cell's network is pasta's: a device besides lo, a default route.
    assert "default via" in res.stdout
    # It cannot change that network: it does not own the namespace.
    change = kernel.run("%net user\n%image busybox\nip route del default", timeout=60)
    assert not change.ok and "Operation not permitted" in change.stderr, change.stderr


@needs_pasta
@pytest.mark.skipif(not _host_reaches_the_outside(), reason="this host reaches no network")
def test_net_user_reaches_the_outside_with_dns(kernel):
    name, port = OUTSIDE
    # (nsswitch: an image built before `hosts: files dns` was the skeleton's)
    res = kernel.ok("%net user\n%image busybox\n"
                    "echo 'hosts: files dns' > /etc/nsswitch.conf\n"
                    f"nslookup {name} | tail -n +3 | grep -c Address\n"
                    f"wget -q -O- http://{name}/debian/dists/bookworm/Release | head -1\n",
                    timeout=120)
    found, first = res.stdout.split("\n")[:2]
    assert int(found) >= 1 and first.startswith("Origin: Debian"), res.stdout


def _has_image(name: str) -> bool:
    from rootfs_kernel.images.store import default_root

    return (default_root() / "images" / name / "image.json").exists()


@pytest.mark.slow
@needs_pasta
@pytest.mark.skipif(not _host_reaches_the_outside(), reason="this host reaches no network")
@pytest.mark.skipif(not _has_image("debian"), reason="no debian image (rootfs-kernel image "
                    "build debian makes it, about 40 s)")
def test_net_user_lets_apt_get_update_the_debian_image(kernel):
    # An ordinary user's cell maps one id: apt cannot drop to its _apt user there, and is
    # told to stay root (as in any single-id rootless container; the README says so).
    apt = "apt-get update" if os.geteuid() == 0 else "apt-get -o APT::Sandbox::User=root update"
    res = kernel.ok(f"%net user\n%image debian\n{apt}", timeout=300)
    assert "Reading package lists" in res.stdout and "Err:" not in res.stdout, res.stdout
    offline = kernel.run(f"%image debian\n{apt}", timeout=300)
    assert "Temporary failure resolving" in offline.stdout + offline.stderr


@pytest.mark.rootonly
@needs_pasta
def test_net_user_reaches_no_host_address_that_pasta_did_not_copy(kernel, servers):
    """pasta gives the cell the host's main address (so that one is the cell's own), and
    relays every other destination through the host's sockets: an address the host has
    elsewhere (here one added to its lo) is made unreachable by the init's reject routes,
    also when it is added after the next container was prepared (which is then dropped)."""
    extra = "198.51.100.7"
    kernel.ok("%net user\n%image busybox\ntrue")   # the next one is prepared like this
    subprocess.run(["ip", "addr", "add", f"{extra}/32", "dev", "lo"], check=True)
    try:
        with socket.create_connection((extra, servers.any_port), timeout=5) as s:
            assert servers.secret in s.recv(200).decode()   # the host serves it there
        res = kernel.ok(f"%net user\n%image busybox\n{probe([(extra, '')], servers.any_port)}"
                        "ip route", timeout=120)
        assert reached(res.stdout, servers.secret) == [], res.stdout
        assert f"unreachable {extra}" in res.stdout
    finally:
        subprocess.run(["ip", "addr", "del", f"{extra}/32", "dev", "lo"], check=True)


@needs_pasta
def test_a_locked_kernel_runs_net_user_and_it_reaches_no_host_service(servers):
    k = KernelDriver(env={**os.environ, "ROOTFS_KERNEL_HOST_ACCESS": "0"})
    try:
        addresses = host_addresses()
        res = k.ok("%net user\n%image busybox\n" + probe(addresses[:1], servers.loopback_port)
                   + probe(addresses, servers.any_port), timeout=120)
        assert reached(res.stdout, servers.secret) == [], res.stdout
    finally:
        k.shutdown()


# -- teardown: nothing piles up -----------------------------------------------------------------
def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _held_netns(pid: int) -> set[str]:
    """The network namespaces the kernel's processes are in (other than the host's)."""
    host = os.readlink("/proc/self/ns/net")
    held = set()
    for p in _descendants(pid):
        try:
            held.add(os.readlink(f"/proc/{p}/ns/net"))
        except OSError:   # gone, or pasta (not dumpable)
            continue
    return held - {host}


def _pastas(pid: int) -> set[int]:
    found = set()
    for p in _descendants(pid):
        try:
            with open(f"/proc/{p}/comm") as f:
                if f.read().strip().startswith(("pasta", "passt")):
                    found.add(p)
        except OSError:
            continue
    return found


def _netns_allocated() -> int | None:
    """Network namespaces allocated on the whole host (root only: /proc/slabinfo)."""
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                if line.startswith("net_namespace "):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


@contextmanager
def _settles(before: int | None, tolerance: int, seconds: float = 60) -> Iterator[None]:
    yield
    if before is None:
        return
    deadline = time.monotonic() + seconds
    while (_netns_allocated() or 0) - before > tolerance and time.monotonic() < deadline:
        time.sleep(0.5)
    assert (_netns_allocated() or 0) - before <= tolerance, (before, _netns_allocated())


@pytest.mark.timeout(600)
def test_a_thousand_cells_leave_no_network_namespace_behind():
    """1,000 cells, each in a network namespace of its own (its id printed), then a few
    `%net user` ones: the kernel's processes hold at most the prepared container's
    namespace, no pasta outlives its cell or the kernel, and (as root) the host's count of
    allocated network namespaces comes back to where it was (other users of the machine
    may add a few meanwhile: the tolerance)."""
    host = os.readlink("/proc/self/ns/net")
    before = _netns_allocated()
    pastas: set[int] = set()
    with _settles(before, tolerance=50):
        k = KernelDriver()
        try:
            seen = set()
            for i in range(1000):
                res = k.run("readlink /proc/self/ns/net", timeout=60)
                assert res.ok and res.stdout.startswith("net:["), res.stdout
                seen.add(res.stdout.strip())
                if i % 100 == 0:
                    assert len(_held_netns(k.pid)) <= 2, _held_netns(k.pid)
            assert host not in seen and len(seen) > 1
            if PASTA is not None:
                for _ in range(20):
                    k.ok("%net user\ntrue")
                    pastas |= _pastas(k.pid)
                time.sleep(0.5)
                # A cell's pasta ends with it; only the prepared container's may wait.
                assert len(_pastas(k.pid)) <= 1 and len(pastas) >= 2, pastas
            assert len(_held_netns(k.pid)) <= 2, _held_netns(k.pid)
        finally:
            k.shutdown()
        deadline = time.monotonic() + 10   # the helper ends its containers as it exits
        while _still_pasta(pastas) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _still_pasta(pastas)


def _still_pasta(pids: set[int]) -> set[int]:
    left = set()
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:   # (a pid reused since is no pasta)
                name, state = f.read().split(" ", 3)[1:3]
        except OSError:
            continue
        if name.startswith(("(pasta", "(passt")) and state != "Z":
            left.add(p)
    return left


def test_a_pasta_that_fails_is_said_and_the_cell_does_not_run():
    """Where pasta cannot start (here a `pasta` first on the kernel's PATH that exits with
    a complaint), the cell fails before its script runs, with pasta's words and what to
    check; the kernel's next cells run."""
    fake = Path(tempfile.mkdtemp(prefix="rk-fake-pasta-"))   # (root's pasta id must run it)
    fake.chmod(0o755)
    (fake / "pasta").write_text("#!/bin/sh\necho 'No routable interface for IPv4' >&2\nexit 1\n")
    (fake / "pasta").chmod(0o755)
    k = KernelDriver(env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"})
    try:
        res = k.run("%net user\necho the script ran", timeout=60)
        assert res.reply["ename"] == "ContainerError", res.reply
        assert "the cell's network (%net user) could not be set up: pasta" in \
            res.reply["evalue"] and "exited before it was ready" in res.reply["evalue"]
        assert "pasta: No routable interface for IPv4" in res.stderr
        assert "the script ran" not in res.stdout
        assert k.ok("echo fine").stdout == "fine\n"
    finally:
        k.shutdown()
        shutil.rmtree(fake)
