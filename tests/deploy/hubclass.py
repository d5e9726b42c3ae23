"""A class on deploy/jupyterhub's JupyterHub, driven as its students' browsers would be, but
by one script: the hub's REST API starts each student's server, the server's REST API a
kernel, and its WebSocket carries the Jupyter messages (made by jupyter_client's Session).

Used by tests/deploy/test_jupyterhub.py (a class of 20 runs a notebook at once; bounds) and
by benchmarks/hub_class.py (latency and memory per student against an IPython class).
Needs root (the hub starts servers as the students) and configurable-http-proxy.

    hub = Hub(work_dir, env={"ROOTFS_HUB_MEMORY": "1G"}).start()
    students = make_students(["rkstudent1", ...], "rkstudents")
    results = asyncio.run(run_class(hub, students, "rootfs", notebook, rounds=1))
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy" / "jupyterhub" / "jupyterhub_config.py"
CACHE = Path(os.environ.get("ROOTFS_DEPLOY_CACHE", "/var/cache/rootfs-kernel/deploy"))
SERVICE = "class-driver"
# The README's configuration, plus a service token for the driver (nothing else changes).
WRAPPER = """
import os
c = get_config()  # noqa: F821
load_subconfig({config!r})  # noqa: F821
c.JupyterHub.services = [{{"name": "{service}", "api_token": os.environ["ROOTFS_CLASS_TOKEN"]}}]
c.JupyterHub.load_roles = [{{"name": "{service}", "services": ["{service}"],
                            "scopes": ["admin:users", "admin:servers", "access:servers"]}}]
"""


def proxy() -> str | None:
    found = os.environ.get("ROOTFS_HUB_PROXY") or shutil.which("configurable-http-proxy")
    cached = CACHE / "chp/node_modules/.bin/configurable-http-proxy"
    return found or (str(cached) if cached.exists() else None)


def missing() -> str | None:
    if os.geteuid() != 0:
        return "a hub that starts servers as other users runs as root"
    if shutil.which("jupyterhub", path=str(Path(sys.executable).parent)) is None:
        return "jupyterhub is not installed here: run scripts/test-deploy.sh"
    if proxy() is None:
        return "configurable-http-proxy is missing: run scripts/test-deploy.sh"
    return None


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the students -------------------------------------------------------------------------
@dataclass
class Student:
    name: str
    uid: int
    home: Path
    secret: str          # in ~/homework.txt, readable by the student only
    password: str = ""


def _run(*cmd: str, input: str | None = None) -> None:
    subprocess.run(cmd, check=True, input=input, text=True, capture_output=True)


def make_students(names: list[str], group: str, passwords: bool = False) -> list[Student]:
    """System accounts in `group`, each with ~/homework.txt (0600) holding a secret of its
    own; homes may be entered by others, the file read by its owner only."""
    if subprocess.run(["getent", "group", group], capture_output=True).returncode:
        _run("groupadd", group)
    out = []
    for name in names:
        if subprocess.run(["id", "-u", name], capture_output=True).returncode:
            _run("useradd", "--create-home", "--shell", "/bin/bash", "-G", group, name)
        user = pwd.getpwnam(name)
        password = ""
        if passwords:
            password = secrets.token_urlsafe(12)
            _run("chpasswd", input=f"{name}:{password}\n")
        home = Path(user.pw_dir)
        student = Student(name, user.pw_uid, home, f"homework of {name}: "
                          f"{secrets.token_hex(4)}", password)
        homework = home / "homework.txt"
        homework.write_text(student.secret + "\n")
        os.chown(homework, user.pw_uid, user.pw_gid)
        os.chmod(homework, 0o600)
        os.chmod(home, 0o755)
        out.append(student)
    return out


def processes_of(uids: set[int]) -> list[tuple[int, int, str]]:
    """(pid, uid, comm) of every process of these users."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            uid = os.stat(f"/proc/{pid}").st_uid
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if uid in uids:
            out.append((int(pid), uid, comm))
    return out


def memory_of(uid: int) -> dict[str, float]:
    """What one user's processes take: PSS (shared pages divided among their sharers: what
    they cost together) and RSS, in MB; `kernel_pss_mb` leaves the Jupyter server out
    (what the kernels and, for rootfs, their helpers and prepared containers take)."""
    pss = rss = kernel = 0
    count = 0
    for pid, _, _ in processes_of({uid}):
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
            server = b"jupyterhub-singleuser" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines()[1:] if ":" in line)
        own = int(fields.get("Pss", "0 kB").split()[0])
        pss += own
        kernel += 0 if server else own
        rss += int(fields.get("Rss", "0 kB").split()[0])
        count += 1
    return {"pss_mb": pss / 1024, "rss_mb": rss / 1024, "kernel_pss_mb": kernel / 1024,
            "processes": count}


# -- the hub ------------------------------------------------------------------------------
class Hub:
    """`jupyterhub -f deploy/jupyterhub/jupyterhub_config.py` (through a wrapper that adds the
    driver's service token), on free ports, its state in `work`."""

    def __init__(self, work: Path, group: str, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ()) -> None:
        self.work, self.token, self.args = work, secrets.token_hex(16), args
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = work / "jupyterhub.log"
        self.env = {**os.environ, "ROOTFS_HUB_URL": self.url, "ROOTFS_HUB_GROUP": group,
                    "ROOTFS_HUB_STATE": str(work / "state"), "ROOTFS_HUB_PROXY": proxy(),
                    "ROOTFS_CLASS_TOKEN": self.token,
                    "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                    **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> Hub:
        wrapper = self.work / "class_config.py"
        wrapper.write_text(WRAPPER.format(config=str(CONFIG), service=SERVICE))
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(wrapper),
                 f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{free_port()}",
                 f"--JupyterHub.hub_bind_url=http://127.0.0.1:{free_port()}", *self.args],
                cwd=self.work, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/hub/api", timeout=2).read()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError("the hub did not start:\n" + self.tail()) from None
                time.sleep(0.3)

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:]

    def stop(self, timeout: float = 90) -> None:
        """SIGTERM, as a service manager stops it: the hub stops every server first."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


# -- one student's browser, as a script ---------------------------------------------------
@dataclass
class Ran:
    status: str
    stdout: str
    seconds: float           # execute_request sent -> execute_reply received
    evalue: str = ""
    stderr: str = ""


@dataclass
class Seat:
    """A student's server and kernel, spoken to through the hub's proxy."""

    hub: Hub
    student: Student
    kernel_id: str = ""
    ws: object = None
    session: object = None
    started: float = 0.0     # seconds the server took to start
    reconnects: int = 0      # WebSockets the server closed while its kernel started

    @property
    def base(self) -> str:
        return f"{self.hub.url}/user/{self.student.name}"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.hub.token}"}

    async def _request(self, method: str, url: str, body: object = None,
                       ok: tuple[int, ...] = ()) -> dict:
        from tornado.httpclient import AsyncHTTPClient

        client = AsyncHTTPClient(force_instance=True)   # of this event loop only
        try:
            response = await client.fetch(
                url, method=method, headers=self._headers(), raise_error=False,
                body=None if body is None and method == "GET" else json.dumps(body or {}),
                request_timeout=180, allow_nonstandard_methods=True)
        finally:
            client.close()
        if response.code >= 400 and response.code not in ok:
            raise AssertionError(f"{method} {url}: {response.code} "
                                 f"{(response.body or b'').decode(errors='replace')[:300]}")
        return json.loads(response.body) if response.body else {}

    async def ready(self) -> bool:
        user = await self._request("GET", f"{self.hub.url}/hub/api/users/{self.student.name}")
        return bool(user.get("servers", {}).get("", {}).get("ready"))

    async def start_server(self, timeout: float = 660) -> None:
        """The student as the hub's user (as a first login makes it), then the server; a
        server that runs already is kept."""
        start = time.monotonic()
        api = f"{self.hub.url}/hub/api/users/{self.student.name}"
        await self._request("POST", api, ok=(409,))   # 409: known to the hub already
        if await self.ready():
            return
        await self._request("POST", f"{api}/server")
        while not await self.ready():
            if time.monotonic() - start > timeout:
                raise AssertionError(f"{self.student.name}'s server did not start")
            await asyncio.sleep(0.5)
        self.started = time.monotonic() - start

    async def start_kernel(self, kernel: str) -> None:
        from jupyter_client.session import Session

        self.kernel_id = (await self._request("POST", f"{self.base}/api/kernels",
                                              {"name": kernel}))["id"]
        self.session = Session(username=self.student.name)
        for attempt in range(3):   # as JupyterLab does, connect again if the server hangs up
            await self.connect()
            try:
                await self.run("", timeout=120)   # the kernel answers: it is up
                return
            except ConnectionError:
                if attempt == 2:
                    raise
                self.reconnects += 1

    async def connect(self) -> None:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        url = (f"{self.base.replace('http', 'ws', 1)}/api/kernels/{self.kernel_id}/channels"
               f"?session_id={self.session.session}")
        self.ws = await websocket_connect(HTTPRequest(url, headers=self._headers(),
                                                      request_timeout=120))

    async def run(self, code: str, timeout: float = 180) -> Ran:
        """Execute one cell; its reply and its stdout (and an error's text)."""
        from jupyter_client.jsonutil import json_default

        msg = self.session.msg("execute_request", content={
            "code": code, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": False})
        msg["channel"] = "shell"
        start = time.monotonic()
        await self.ws.write_message(json.dumps(msg, default=json_default))
        reply, out, err, idle, evalue = None, [], [], False, ""
        deadline = start + timeout
        seconds = 0.0
        while reply is None or not idle:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.student.name}: no reply in {timeout:g} s: {code!r}")
            raw = await asyncio.wait_for(self.ws.read_message(), left)
            if raw is None:
                raise ConnectionError(f"{self.student.name}: the kernel's WebSocket closed")
            if isinstance(raw, bytes):
                continue   # binary frames carry buffers (widgets), not replies
            got = json.loads(raw)
            if got.get("parent_header", {}).get("msg_id") != msg["header"]["msg_id"]:
                continue
            kind, content = got["msg_type"], got["content"]
            if kind == "execute_reply":
                reply, seconds = content, time.monotonic() - start
            elif kind == "stream":
                (out if content["name"] == "stdout" else err).append(content["text"])
            elif kind == "error":
                evalue = content.get("evalue", "")
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
        return Ran(reply["status"], "".join(out), seconds, reply.get("evalue", evalue),
                   "".join(err))

    async def stop_kernel(self) -> None:
        if self.ws is not None:
            self.ws.close()
        await self._request("DELETE", f"{self.base}/api/kernels/{self.kernel_id}")
        self.kernel_id, self.ws = "", None


# -- the notebook -------------------------------------------------------------------------
def notebook(kernel: str, me: Student, other: Student) -> list[tuple[str, str]]:
    """One student's notebook: (name, code) per cell; `other` is a classmate. The IPython
    class runs the same steps in Python (what its kernel offers for each)."""
    if kernel == "rootfs":
        return [
            ("hello", f"echo {me.name}: uid $(id -u) in the cell"),
            ("work", "%mount tmpfs /scratch\ni=0; while [ $i -lt 5000 ]; do i=$((i + 1)); "
                     "echo $i; done > /scratch/n && sort -rn /scratch/n | head -n 1"),
            # the processes a cell sees: its own PID namespace only
            ("processes", "sleep 1 & ls /proc | grep -c '^[0-9][0-9]*$'"),
            ("own file", f"%%host\ncat {me.home}/homework.txt"),
            ("other's file", f"%%host\ncat {other.home}/homework.txt"),
            ("other's file, bound", f"%bind {other.home} /data\ncat /data/homework.txt"),
            ("view", "%show mounts\ntrue"),
        ]
    table = "'<table>' + ''.join('<tr><td>%d</td></tr>' % i for i in range(200)) + '</table>'"
    return [
        ("hello", f"import os; print('{me.name}: uid', os.getuid(), 'in the kernel')"),
        ("work", "print(sorted(map(str, range(1, 5001)), key=int, reverse=True)[0])"),
        ("processes", "import os; print(sum(p.isdigit() for p in os.listdir('/proc')))"),
        ("own file", f"print(open('{me.home}/homework.txt').read(), end='')"),
        ("other's file", f"print(open('{other.home}/homework.txt').read())"),
        ("other's file, bound", f"print(open('{other.home}/homework.txt').read())"),
        ("view", f"from IPython.display import HTML; HTML({table})"),
    ]


# -- a class ------------------------------------------------------------------------------
@dataclass
class ClassRun:
    """What a class did: per cell name, each student's Ran; memory per student."""

    ran: dict[str, dict[str, Ran]] = field(default_factory=dict)
    memory: dict[str, dict[str, float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    reconnects: int = 0

    def latencies(self) -> list[float]:
        return [r.seconds for by_student in self.ran.values() for r in by_student.values()]

    def summary(self) -> dict:
        times = sorted(self.latencies())

        def mean(key: str) -> float:
            values = [m[key] for m in self.memory.values()]
            return statistics.mean(values) if values else 0.0

        by_cell: dict[str, list[float]] = {}
        for key, by_student in self.ran.items():
            by_cell.setdefault(key.split("#")[0], []).extend(
                r.seconds for r in by_student.values())
        return {"cells": len(times), "failures": len(self.failures),
                "reconnects": self.reconnects,
                "p50_ms": 1000 * statistics.median(times),
                "p95_ms": 1000 * times[min(len(times) - 1, int(0.95 * len(times)))],
                "max_ms": 1000 * times[-1],
                "pss_mb_per_student": mean("pss_mb"), "rss_mb_per_student": mean("rss_mb"),
                "kernel_pss_mb_per_student": mean("kernel_pss_mb"),
                "p50_ms_by_cell": {k: round(1000 * statistics.median(v), 1)
                                   for k, v in by_cell.items()}}


async def start_servers(seats: list[Seat]) -> None:
    await asyncio.gather(*(s.start_server() for s in seats))


async def run_class(seats: list[Seat], kernel: str,
                    notebook: Callable[[Student], list[tuple[str, str]]],
                    rounds: int = 1, stop: bool = True) -> ClassRun:
    """Every seat starts a `kernel`, then the class runs the notebook's cells together, the
    whole class on one cell at a time (as when the teacher says "run the next cell"),
    `rounds` times; the memory of each student is read with the kernels still up, which
    are stopped at the end unless `stop` is false."""
    out = ClassRun()
    await asyncio.gather(*(s.start_kernel(kernel) for s in seats))
    cells = {s.student.name: notebook(s.student) for s in seats}
    names = [name for name, _ in next(iter(cells.values()))]
    for r in range(rounds):
        for i, name in enumerate(names):
            key = name if rounds == 1 else f"{name}#{r}"
            results = await asyncio.gather(*(s.run(cells[s.student.name][i][1])
                                             for s in seats), return_exceptions=True)
            out.ran[key] = {}
            for seat, result in zip(seats, results, strict=True):
                if isinstance(result, BaseException):
                    out.failures.append(f"{seat.student.name} {key}: {result!r}")
                else:
                    out.ran[key][seat.student.name] = result
    out.memory = {s.student.name: memory_of(s.student.uid) for s in seats}
    out.reconnects = sum(s.reconnects for s in seats)
    if stop:
        await stop_kernels(seats)
    return out


async def stop_kernels(seats: list[Seat]) -> None:
    await asyncio.gather(*(s.stop_kernel() for s in seats if s.kernel_id),
                         return_exceptions=True)
