"""rootfs-kernel benchmarks: one run, one table, every figure against a baseline of the same run.

    python benchmarks/run.py                 # the full run (a few minutes)
    python benchmarks/run.py --quick         # tiny sizes, few repetitions (< 60 s)
    python benchmarks/run.py --only roundtrip,setup --json out.json
    python benchmarks/run.py --before OLD_VENV/bin/python   # also an earlier version, same run

Measures (names for --only): startup, roundtrip, runall, mounts, script, showls, memory,
scale, stream, keep, setup, steps, views, image, net. `mounts` needs root (it mounts on the
host; hostmounts.py), `showls` the `debian` image (rootfs-kernel image build debian;
skipped, noted, without it).
Figures are medians (p95 where asked) over repetitions after warm-ups: the machine is
shared and noisy, so nothing here is asserted; the table says whether a target is met.

Containers are only ever made through the kernel or through SandboxClient, whose helper
process starts each container's init (sandbox/init.c).

With --before PYTHON, the rootfs_kernel that PYTHON imports (an earlier version, in a venv
of its own; --before-data its XDG_DATA_HOME) is one more kernel of the run: it takes its
turns in the round trips, the host-mounts, long-script, %show ls, memory, start-up and
stream measures, and the table says this version's figure against it ("x vs before").
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import io
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))   # hostmounts.py
MEASURES = ("startup", "roundtrip", "runall", "mounts", "script", "showls", "memory", "scale",
            "stream", "keep", "setup", "steps", "views", "image", "net")
KERNELS = {  # label -> (kernelspec, no-op cell)
    "rootfs": ("rootfs", "true"),
    "ipython": ("python3", "pass"),
    "bash_kernel": ("bash", "true"),
}
# ipykernel doing nothing (nullkernel.py): the floor of any kernel built on it, a baseline
# of the round trips and Run All (its kernelspec is this run's own: main).
FLOOR = "rootfs-bench-null"


# -- results ---------------------------------------------------------------------------------
@dataclass
class Row:
    """One line of the table. value/baselines are numbers in `unit` (None: not measured)."""

    measure: str
    key: str                        # stable name for the JSON (smoke test)
    unit: str
    value: float | None
    baselines: dict[str, float | None] = field(default_factory=dict)
    ratio: float | None = None      # value / ratio_base
    ratio_base: str | None = None   # which baseline the ratio is against
    target: str = ""
    met: bool | None = None
    note: str = ""


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def p95(xs: list[float]) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(0.95 * (len(s) - 1))))]


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# -- kernels through jupyter_client -----------------------------------------------------------
def kernelspec_exists(name: str) -> bool:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        return False
    return True


class KernelSession:
    """A kernel started with start_new_kernel; run() times execute_request -> idle."""

    def __init__(self, spec: str, env: dict[str, str] | None = None):
        from jupyter_client.manager import start_new_kernel

        t0 = time.perf_counter()
        # start_new_kernel returns once the kernel has answered kernel_info.
        # The kernels' own stderr (ipykernel's TCP warning) would drown the progress log.
        extra = {"env": env} if env is not None else {}
        self.km, self.kc = start_new_kernel(kernel_name=spec, startup_timeout=120,
                                            stderr=subprocess.DEVNULL, **extra)
        self.startup = time.perf_counter() - t0

    @property
    def pid(self) -> int:
        return self.km.provisioner.pid

    def run(self, code: str, timeout: float = 600) -> tuple[float, int, str]:
        """(seconds to idle, bytes of stream text, reply status)."""
        kc = self.kc
        t0 = time.perf_counter()
        msg_id = kc.execute(code, store_history=False)
        nbytes = 0
        while True:
            msg = kc.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "stream":
                nbytes += len(msg["content"]["text"].encode())
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                break
        elapsed = time.perf_counter() - t0
        while True:
            reply = kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        return elapsed, nbytes, reply["content"]["status"]

    def run_all(self, codes: list[str], timeout: float = 600) -> float:
        """Send every cell at once, as Run All does; seconds until the last reply (every
        cell must succeed). Its IOPub messages are read and dropped after."""
        kc = self.kc
        t0 = time.perf_counter()
        left = {kc.execute(code, store_history=False) for code in codes}
        while left:
            reply = kc.get_shell_msg(timeout=timeout)
            msg_id = reply["parent_header"].get("msg_id")
            if msg_id in left:
                if reply["content"]["status"] != "ok":
                    raise RuntimeError(f"Run All: a cell failed: {reply['content']}")
                left.discard(msg_id)
        elapsed = time.perf_counter() - t0
        with contextlib.suppress(Exception):
            while True:
                kc.get_iopub_msg(timeout=0.1)
        return elapsed

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.kc.stop_channels()
        with contextlib.suppress(Exception):
            self.km.shutdown_kernel(now=False)


# --before: the earlier version's Python, and the environment it runs with.
BEFORE: dict[str, object] = {}


def add_before(python: str, data: str | None) -> dict[str, list[str]]:
    """The earlier version's kernel as label "before": its kernelspec (name -> argv)."""
    env = ["env", f"XDG_DATA_HOME={data}"] if data else []
    KERNELS["before"] = ("rootfs-before", "true")
    BEFORE.update(python=python, env={**os.environ, **({"XDG_DATA_HOME": data} if data else {})})
    return {"rootfs-before": [*env, python, "-m", "rootfs_kernel", "-f", "{connection_file}"]}


def before_argv(spec: str) -> list[str]:
    """The argv of a rootfs kernel: this version, or (spec "rootfs-before") the earlier."""
    from jupyter_client.kernelspec import KernelSpecManager

    return KernelSpecManager().get_kernel_spec(spec).argv


class Kernels:
    """Starts each kernel once and shares it between measures."""

    def __init__(self) -> None:
        self.sessions: dict[str, KernelSession] = {}
        self.missing: dict[str, str] = {}
        for label, (spec, _) in KERNELS.items():
            if not kernelspec_exists(spec):
                self.missing[label] = f"kernelspec {spec!r} not installed"
        if "bash_kernel" in self.missing:
            self.missing["bash_kernel"] += (" (pip install bash_kernel && "
                                            "python -m bash_kernel.install)")

    def get(self, label: str) -> KernelSession | None:
        if label in self.missing:
            return None
        if label not in self.sessions:
            log(f"starting kernel {label}")
            try:
                s = KernelSession(KERNELS[label][0])
            except Exception as err:  # noqa: BLE001 - a baseline that fails is skipped, noted
                self.missing[label] = f"failed to start: {err}"
                return None
            self.sessions[label] = s
        return self.sessions[label]

    def close(self) -> None:
        for s in self.sessions.values():
            s.close()
        self.sessions.clear()


# -- 1. cell round trip ------------------------------------------------------------------------
def bench_roundtrip(cfg: Config, kernels: Kernels) -> list[Row]:
    """rootfs (with and without prepared containers) and IPython take turns, one cell
    each, so drift on a shared machine falls on all; each cell is followed by a pause of
    cfg.gap_ms (a person does not send cells closer than that), so what one kernel does
    between cells does not land on the next one's time. Every cell's text differs from the
    last (`true  # N`, IPython `pass  # N`): no cell is the one the kernel parsed and
    planned before. The same kernel sending one text again and again shows what the
    Session's caches save (the parse and the plan of a cell run again). bash_kernel (100
    times slower) runs on its own."""
    sessions = {label: kernels.get(label) for label in KERNELS}
    on_demand = floor = None
    if sessions["rootfs"] is not None:
        on_demand = KernelSession("rootfs", env={**os.environ, "ROOTFS_KERNEL_PREPARE": "0"})
        floor = KernelSession(FLOOR)
    try:
        turns = {label: sessions[label] for label in ("rootfs", "ipython", "before")
                 if sessions.get(label) is not None}
        if on_demand is not None:
            turns["on demand"] = on_demand
            turns["floor"] = floor
        if sessions["rootfs"] is not None:
            turns["same text"] = sessions["rootfs"]
        codes = {label: _varied(KERNELS.get(label, ("", "true"))[1]) for label in turns}
        codes["same text"] = "true"
        times = _turns(turns, codes, cfg.warmup, cfg.reps, gap=cfg.gap_ms / 1e3)
    finally:
        for s in (on_demand, floor):
            if s is not None:
                s.close()
    times["bash_kernel"] = []
    if sessions["bash_kernel"] is not None:
        for i in range(cfg.warmup + max(5, cfg.reps // 3)):
            t, _, _ = sessions["bash_kernel"].run(KERNELS["bash_kernel"][1])
            if i >= cfg.warmup:
                times["bash_kernel"].append(t * 1e3)
    p50s = {label: median(v) if v else None for label, v in times.items()}
    p95s = {label: p95(v) if v else None for label, v in times.items()}
    for label, v in times.items():
        if v:
            log(f"roundtrip {label}: p50 {p50s[label]:.2f} ms p95 {p95s[label]:.2f} ms "
                f"(n={len(v)})")
    note = "; ".join(x for x in (
        f"{cfg.gap_ms:g} ms between cells; on the clock: execute_request sent to the idle "
        "status (rootfs: parse, plan, hand-over to the prepared container or one made then, "
        "the script, its report; every cell its own network namespace and seccomp filter; "
        "IPython: the code run in its process; ipykernel doing nothing: its message loop "
        "alone, the floor of both, benchmarks/nullkernel.py)",
        _missing_note(kernels, ("ipython", "bash_kernel"))) if x)
    rows = []
    for key, stat, vals, goal in (("roundtrip_p50", "p50", p50s, 0.6),
                                  ("roundtrip_p95", "p95", p95s, 0.8)):
        r = ratio(vals.get("rootfs"), vals.get("ipython"))
        rows.append(Row(
            measure=f"cell round trip {stat}, text varied (`true  # N`; IPython `pass  # N`; "
                    "bash_kernel `true`)", key=key, unit="ms", value=vals.get("rootfs"),
            baselines={"ipython": vals.get("ipython"), "bash_kernel": vals["bash_kernel"],
                       "ipykernel doing nothing": vals.get("floor"), **_before(vals)},
            ratio=r, ratio_base="ipython", target=f"<= {goal}x IPython's {stat}",
            met=None if r is None else r <= goal, note=note))
    if p50s.get("same text"):
        rows.append(Row("the Session's caches alone: the same `true` every time against a "
                        "new text every time (round trip p50)", "roundtrip_caches", "ms",
                        p50s["same text"], {"text varied": p50s["rootfs"]},
                        ratio(p50s["same text"], p50s["rootfs"]), "text varied",
                        note="the same kernel, taking turns with the others: a cell run again "
                             "reuses its parse and plan"))
    alone = _caches_alone(max(20, cfg.reps))
    log(f"caches alone: {alone}")
    rows.append(Row("the Session's caches alone: parse and plan of a cell with three header "
                    "lines, from the caches against made (in-process, no kernel)",
                    "caches_alone", "µs", alone["cached"], {"made": alone["made"]},
                    ratio(alone["cached"], alone["made"]), "made",
                    note="the same text again against a new text each time: "
                         "Session._parse and Session._plan, timed alone"))
    if "on demand" in times:
        v = p50s["on demand"]
        rows.append(Row("cell round trip p50, no prepared containers (ROOTFS_KERNEL_PREPARE=0)",
                        "roundtrip_on_demand", "ms", v, {"ipython": p50s.get("ipython")},
                        ratio(v, p50s.get("ipython")), "ipython",
                        note="every container made when its cell comes: the cost the prepared "
                             "one hides"))
    return rows


CACHE_CELL = "%env GREETING=hello\n%limit pids=256\n%show mounts\necho $GREETING  # {i}"


def _caches_alone(reps: int) -> dict[str, float]:
    """The Session's caches alone, in this process (no kernel, no container): µs to parse
    and plan a cell of a few header lines (CACHE_CELL), a new text each time (both made)
    against the same text again (both from the caches)."""
    import asyncio

    from rootfs_kernel.session import Session

    session = Session()
    try:
        async def once(code: str) -> float:
            t0 = time.perf_counter()
            await session._plan(session._parse(code), lambda _: None, None)
            return (time.perf_counter() - t0) * 1e6

        async def measure() -> dict[str, float]:
            await once(CACHE_CELL.format(i="same"))
            new = [await once(CACHE_CELL.format(i=i)) for i in range(reps)]
            same = [await once(CACHE_CELL.format(i="same")) for _ in range(reps)]
            return {"made": median(new), "cached": median(same)}

        return asyncio.run(measure())
    finally:
        session.close()


def _varied(code: str) -> str:
    """`code  # {i}`: _turns puts in the cell's number."""
    return code + "  # {i}"


# Run All: 40 cells of a notebook, each a small task of its own, in shell for rootfs and
# the same tasks in Python for IPython (half of the shell ones start a program).
RUN_ALL = (
    ("echo hello", "print('hello')"),
    ("x=6; echo $((x * 7))", "x = 6; print(x * 7)"),
    ("for i in 1 2 3; do echo $i; done", "for i in (1, 2, 3): print(i)"),
    ("ls /", "import os; print(os.listdir('/'))"),
    ("cat /etc/hostname", "print(open('/etc/hostname').read())"),
    ("pwd", "import os; print(os.getcwd())"),
    ("printf '%s\\n' c a b | sort", "print(sorted('cab'))"),
    ("wc -l < /etc/passwd", "print(sum(1 for _ in open('/etc/passwd')))"),
    ("date +%Y", "import datetime; print(datetime.date.today().year)"),
    ("uname -s", "import os; print(os.uname().sysname)"),
    ("echo ${HOME:-none}", "import os; print(os.environ.get('HOME', 'none'))"),
    ("a=abc; echo ${#a}", "a = 'abc'; print(len(a))"),
    ("test -d /etc && echo yes", "import os; print('yes' if os.path.isdir('/etc') else '')"),
    ("case foo in f*) echo f;; esac", "print('f' if 'foo'.startswith('f') else '')"),
    ("f() { echo $1$1; }; f ab", "def f(x): return x + x\nprint(f('ab'))"),
    ("printf '1 2 3\\n' | tr ' ' ','", "print(','.join('1 2 3'.split()))"),
    ("echo $((1 << 10))", "print(1 << 10)"),
    ("set -- a b c; echo $#", "args = ['a', 'b', 'c']; print(len(args))"),
    ("cat <<EOF\nhere\nEOF", "print('here')"),
    ("head -n 1 /etc/passwd", "print(open('/etc/passwd').readline())"),
)


def bench_runall(cfg: Config, kernels: Kernels) -> list[Row]:
    """Run All of a notebook of 40 cells, each different: all 40 execute_requests sent at
    once (as JupyterLab's Run All sends them), timed to the last reply; the kernels take
    turns, a notebook each, the order rotating."""
    sessions = {label: kernels.get(label) for label in ("rootfs", "ipython", *_before({}))}
    sessions = {label: s for label, s in sessions.items() if s is not None}
    n = cfg.runall_cells
    if "rootfs" not in sessions or "ipython" not in sessions:
        return [Row(f"Run All of {n} cells", "runall", "ms", None,
                    note=_missing_note(kernels, ("rootfs", "ipython")))]
    floor = KernelSession(FLOOR)
    sessions["floor"] = floor
    notebooks = {label: [f"{RUN_ALL[i % len(RUN_ALL)][label == 'ipython']}\n# {i}"
                         for i in range(n)] for label in sessions}
    times: dict[str, list[float]] = {label: [] for label in sessions}
    try:
        for turn in range(1 + cfg.runall_reps):
            order = list(sessions)
            shift = turn % len(order)
            for label in order[shift:] + order[:shift]:
                took = sessions[label].run_all(notebooks[label])
                if turn:   # the first notebook of each warms up
                    times[label].append(took * 1e3)
                time.sleep(0.2)
    finally:
        floor.close()
    med = {label: median(v) for label, v in times.items()}
    log(f"runall: {med}")
    r = ratio(med["rootfs"], med["ipython"])
    return [Row(f"Run All of {n} cells, each different (sent at once, to the last reply)",
                "runall", "ms", med["rootfs"], {"ipython": med["ipython"], **_before(med),
                                                "ipykernel doing nothing": med["floor"]}, r,
                "ipython", "<= 1.0x IPython", None if r is None else r <= 1.0,
                note=f"median of {cfg.runall_reps} notebooks each, the kernels taking turns; "
                     "on the clock: the requests sent to the last execute_reply (rootfs: each "
                     "cell a shell script in a container of its own, half of them starting a "
                     "program of the image; IPython: the same tasks in Python, in its "
                     "process; ipykernel doing nothing: its message loop alone, "
                     "benchmarks/nullkernel.py)")]


def _before(values: dict) -> dict[str, float | None]:
    """The earlier version's figure as a baseline, when the run has one (--before)."""
    return {"before": values.get("before")} if "before" in KERNELS else {}


def _turns(sessions: dict[str, KernelSession], codes: dict[str, str], warmup: int,
           reps: int, gap: float = 0.0, block: int = 1) -> dict[str, list[float]]:
    """Round trips (ms) of each session's cell, the sessions taking turns, `block` cells
    at a time, each cell followed by `gap` seconds of quiet."""
    times: dict[str, list[float]] = {label: [] for label in sessions}
    for i in range(warmup + reps):
        for label, s in sessions.items():
            for j in range(block):
                t, _, status = s.run(codes[label].replace("{i}", str(i * block + j)))
                if status != "ok":
                    raise RuntimeError(f"{label}: {codes[label][:40]!r} failed ({status})")
                if i >= warmup:
                    times[label].append(t * 1e3)
                if gap:
                    time.sleep(gap)
    return times


# -- the host's size: 2,000 more mounts ---------------------------------------------------------
@contextlib.contextmanager
def kernelspecs(specs: dict[str, list[str]]):
    """Kernelspecs of our own for this run (name -> argv), first on JUPYTER_PATH."""
    with tempfile.TemporaryDirectory(prefix="rootfs-bench-specs-") as tmp:
        for name, argv in specs.items():
            d = Path(tmp, "kernels", name)
            d.mkdir(parents=True)
            (d / "kernel.json").write_text(json.dumps(
                {"argv": argv, "display_name": name, "language": "shell",
                 "interrupt_mode": "signal"}))
        old = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = tmp + (os.pathsep + old if old else "")
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = old


def bench_mounts(cfg: Config, kernels: Kernels) -> list[Row]:
    """A host with cfg.extra_mounts more mounts (tmpfs, shared as on a systemd host), three
    ways, each against IPython's round trip in the same turns (the ratio rootfs/IPython
    with the mounts against the same ratio without them):
    1. on the host itself, mounted while the kernels run (in the kernel's own namespace:
       no namespace made for the benchmark), then unmounted: A-B-A;
    2. on the host before the kernels start (fresh kernels, then fresh ones without);
    3. the old row's way: each rootfs kernel in a private mount namespace made before it
       starts (hostmounts.py), one with the mounts, one without (no IPython)."""
    n = cfg.extra_mounts
    if os.geteuid() != 0:
        return [Row(f"round trip with {n:,} more host mounts", "roundtrip_host_mounts", "ms",
                    None, note="n/a (mounting on the host needs root)")]
    labels = ("rootfs", "ipython", *_before({}))
    codes = {label: _varied(KERNELS[label][1]) for label in labels}
    reps = max(5, cfg.reps // 3)
    gap = cfg.gap_ms / 1e3
    rows = []

    # 1. added while the kernels run
    sessions = {label: kernels.get(label) for label in labels}
    sessions = {label: s for label, s in sessions.items() if s is not None}
    without = _turns(sessions, codes, cfg.warmup, reps, gap=gap)
    with _host_mounts(n):
        added = _turns(sessions, codes, cfg.warmup, reps, gap=gap)
    again = _turns(sessions, codes, cfg.warmup, reps, gap=gap)
    for label in without:
        without[label] += again[label]
    rows.append(_growth_row(f"round trip p50 with {n:,} more mounts on the host, mounted "
                            "while the kernel runs (A-B-A)", "roundtrip_host_mounts",
                            without, added, "mounted in the host's own namespace (the "
                            "kernel's), shared; without them before and after"))

    # 2. there before the kernels start
    fresh: dict[str, dict[str, list[float]]] = {}
    for phase in ("added", "without"):
        with contextlib.ExitStack() as stack:
            if phase == "added":
                stack.enter_context(_host_mounts(n))
            started = {label: KernelSession(KERNELS[label][0]) for label in sessions}
            try:
                fresh[phase] = _turns(started, codes, cfg.warmup, reps, gap=gap)
            finally:
                for s in started.values():
                    s.close()
    rows.append(_growth_row(f"the same, the {n:,} mounts there before the kernel starts",
                            "roundtrip_host_mounts_before_start", fresh["without"],
                            fresh["added"], "fresh kernels with the mounts, then fresh ones "
                            "without"))

    # 3. the old way: a private namespace per kernel, made before it starts
    kernel = [sys.executable, "-m", "rootfs_kernel", "-f", "{connection_file}"]
    wrap = [sys.executable, str(HERE / "hostmounts.py")]
    specs = {"none": [*wrap, "0", *kernel], "more": [*wrap, str(n), *kernel]}
    if "before" in KERNELS:
        old = before_argv(KERNELS["before"][0])
        specs.update({"before none": [*wrap, "0", *old], "before more": [*wrap, str(n), *old]})
    wrapped: dict[str, KernelSession] = {}
    try:
        with kernelspecs({f"rootfs-mounts-{i}": argv for i, argv in enumerate(specs.values())}):
            for i, label in enumerate(specs):
                wrapped[label] = KernelSession(f"rootfs-mounts-{i}")
        times = _turns(wrapped, dict.fromkeys(wrapped, "true  # {i}"), cfg.warmup, reps,
                       gap=gap)
    finally:
        for s in wrapped.values():
            s.close()
    more, none = median(times["more"]), median(times["none"])
    bases: dict[str, float | None] = {"as the host is": none}
    note = ""
    if "before more" in times:
        b_more, b_none = median(times["before more"]), median(times["before none"])
        bases.update({"before": b_more, "before, as the host is": b_none})
        note = f"; before: {ratio(b_more, b_none):.2f}x"
    log(f"mounts, old way: {n} more {more:.2f} ms, none {none:.2f} ms{note}")
    r = ratio(more, none)
    rows.append(Row(f"the same, the old row's way: each kernel in a private mount namespace "
                    f"made before it starts, with or without the {n:,} mounts",
                    "roundtrip_host_mounts_private", "ms", more, bases, r, "as the host is",
                    "<= 1.1x", None if r is None else r <= 1.1,
                    note=f"rootfs kernels only (benchmarks/hostmounts.py){note}"))
    return rows


@contextlib.contextmanager
def _host_mounts(n: int):
    """n tmpfs mounts on the host, shared as a systemd host's are, removed after."""
    from hostmounts import mount_many, unmount_all

    base = tempfile.mkdtemp(prefix="rootfs-bench-mounts-")
    try:
        mount_many(base, n, shared=True)
        log(f"{n} mounts on the host below {base}")
        yield
    finally:
        with contextlib.suppress(OSError):
            unmount_all(base)
        os.rmdir(base)


def _growth_row(measure: str, key: str, without: dict[str, list[float]],
                added: dict[str, list[float]], how: str) -> Row:
    """rootfs/IPython with the mounts against the same ratio without them."""
    p50 = {(label, "with"): median(v) for label, v in added.items()}
    p50.update({(label, "without"): median(v) for label, v in without.items()})
    base = {label: ratio(p50[label, "without"], p50["ipython", "without"]) for label in without}
    grown = {label: ratio(p50[label, "with"], p50["ipython", "with"]) for label in added}
    growth = ratio(grown["rootfs"], base["rootfs"])
    log(f"{key}: {p50}")
    bases = {"without the mounts": p50["rootfs", "without"],
             "ipython, with": p50["ipython", "with"],
             "ipython, without": p50["ipython", "without"]}
    note = (f"{how}; rootfs/IPython {base['rootfs']:.2f}x without the mounts, "
            f"{grown['rootfs']:.2f}x with them")
    if "before" in grown:
        bases["before"] = p50["before", "with"]
        note += (f"; before: {base['before']:.2f}x -> {grown['before']:.2f}x, "
                 f"{ratio(grown['before'], base['before']):.2f}x growth")
    return Row(measure, key, "ms", p50["rootfs", "with"], bases, growth,
               "its ratio to IPython without them", "<= 1.1x growth",
               None if growth is None else growth <= 1.1, note=note)


# -- a long script --------------------------------------------------------------------------------
def bench_script(cfg: Config, kernels: Kernels) -> list[Row]:
    """A cell of cfg.script_bytes: lines of the shell's no-op `:`; IPython gets as many
    bytes of Python (`pass` lines with a comment). MB of cell per second, to idle."""
    size = cfg.script_bytes
    line = ": " + "x" * 97 + "\n"
    code = {"rootfs": line * (size // len(line)),
            "ipython": ("pass  # " + "x" * 91 + "\n") * (size // len(line))}
    code["before"] = code["rootfs"]
    mbs: dict[str, float | None] = {}
    refused = ""
    for label in ("rootfs", "ipython", *_before({})):
        s = kernels.get(label)
        if s is None:
            mbs[label] = None
            continue
        rates = []
        for _ in range(cfg.stream_reps):
            t, _, status = s.run(code[label])
            if status != "ok" and label == "before":   # an earlier version may refuse it
                refused = "; before: the cell failed (refused)"
                break
            if status != "ok":
                raise RuntimeError(f"{label}: the {size / 1e6:g} MB cell failed ({status})")
            rates.append(len(code[label]) / t / 1e6)
        mbs[label] = median(rates) if rates else None
        if rates:
            log(f"script {label}: {size / 1e6:g} MB cell at {mbs[label]:.1f} MB/s")
    r = ratio(mbs["rootfs"], mbs["ipython"])
    return [Row(f"a {size / 1e6:g} MB cell (`:` lines; IPython: `pass` lines), MB/s to idle",
                "script_mb_s", "MB/s", mbs["rootfs"], {"ipython": mbs["ipython"], **_before(mbs)},
                r, "ipython", "runs; throughput like stream", mbs["rootfs"] is not None,
                note="compare with the stdout throughput row" + refused)]


# -- %show ls of a big directory ------------------------------------------------------------------
def bench_showls(cfg: Config, kernels: Kernels) -> list[Row]:
    """`%show ls /usr` on the debian image against the same cell without the line."""
    key, measure = "showls_usr", "`%show ls /usr` on the debian image: time added to the cell"
    from rootfs_kernel.images import ImageStore

    if not ImageStore().exists("debian"):
        return [Row(measure, key, "ms", None, note="n/a (no debian image here: "
                                                   "rootfs-kernel image build debian)")]
    s = kernels.get("rootfs")
    if s is None:
        return [Row(measure, key, "ms", None, note=kernels.missing.get("rootfs", ""))]
    plain, shown = "%image debian\ntrue", "%image debian\n%show ls /usr\ntrue"
    turns = {"plain": s, "shown": s}
    old = kernels.get("before") if "before" in KERNELS else None
    if old is not None:   # its store needs the debian image too (--before-data)
        turns.update({"before plain": old, "before shown": old})
    codes = {label: shown if label.endswith("shown") else plain for label in turns}
    try:
        times = _turns(turns, codes, 1, cfg.view_reps, gap=cfg.gap_ms / 1e3)
    except RuntimeError as err:
        if old is None:
            raise
        log(f"show ls /usr before: {err}; without it")
        turns = {"plain": s, "shown": s}
        times = _turns(turns, codes, 1, cfg.view_reps, gap=cfg.gap_ms / 1e3)
    added = median(times["shown"]) - median(times["plain"])
    log(f"show ls /usr: {median(times['shown']):.1f} ms vs {median(times['plain']):.1f} ms")
    bases = {"the cell without it": median(times["plain"])}
    if "before shown" in times:
        bases["before"] = median(times["before shown"]) - median(times["before plain"])
    return [Row(measure, key, "ms", added, bases, None, None, "<= 100 ms added", added <= 100)]


# -- memory ---------------------------------------------------------------------------------------
def tree_rss_kib(pid: int) -> int:
    """VmRSS of a process and all its descendants, KiB."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        with contextlib.suppress(OSError), open(f"/proc/{p}/status") as f:
            total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
    return total


def _idle_rss_mb(s: KernelSession, code: str) -> float:
    for _ in range(3):
        s.run(code)
    time.sleep(1.0)   # the prepared container is made; nothing else moves
    return tree_rss_kib(s.pid) / 1024


def bench_memory(cfg: Config, kernels: Kernels) -> list[Row]:
    """Fresh kernels (the shared ones hold what earlier measures showed), three cells each."""
    mb: dict[str, float | None] = {}
    for label in ("rootfs", "ipython", *_before({})):
        if kernels.get(label) is None:
            mb[label] = None
            continue
        s = KernelSession(KERNELS[label][0])
        try:
            mb[label] = _idle_rss_mb(s, KERNELS[label][1])
        finally:
            s.close()
    log(f"memory: {mb}")
    r = ratio(mb["rootfs"], mb["ipython"])
    return [Row("idle kernel memory, RSS of the kernel's process tree (rootfs: kernel, helper, "
                "prepared container)", "memory_idle", "MB", mb["rootfs"],
                {"ipython": mb["ipython"], **_before(mb)}, r, "ipython", "<= 1.2x IPython",
                None if r is None else r <= 1.2)]


# -- a class: many idle kernels --------------------------------------------------------------------
def bench_scale(cfg: Config, kernels: Kernels) -> list[Row]:
    """cfg.scale_kernels rootfs kernels and as many IPython kernels, all idle: memory in
    all; then one of each takes turns with cells while the others sit idle."""
    n = cfg.scale_kernels
    fleets: dict[str, list[KernelSession]] = {"rootfs": [], "ipython": []}
    try:
        for label in fleets:
            for _ in range(n):
                s = KernelSession(KERNELS[label][0])
                fleets[label].append(s)
                s.run(KERNELS[label][1])
        time.sleep(1.0)
        mb = {label: sum(tree_rss_kib(s.pid) for s in fleet) / 1024
              for label, fleet in fleets.items()}
        times = _turns({label: fleet[0] for label, fleet in fleets.items()},
                       {label: KERNELS[label][1] for label in fleets}, cfg.warmup, cfg.reps,
                       gap=cfg.gap_ms / 1e3)
    finally:
        for fleet in fleets.values():
            for s in fleet:
                s.close()
    p50 = {label: median(v) for label, v in times.items()}
    log(f"scale {n}: memory {mb}, round trip {p50}")
    return [Row(f"{n} idle kernels: memory of all (RSS of their process trees)", "scale_memory",
                "MB", mb["rootfs"], {"ipython": mb["ipython"]}, ratio(mb["rootfs"], mb["ipython"]),
                "ipython"),
            Row(f"cell round trip p50 while {n - 1} other kernels sit idle (`true`; IPython "
                "`pass`, as many IPython kernels idle)", "scale_roundtrip", "ms", p50["rootfs"],
                {"ipython": p50["ipython"]}, ratio(p50["rootfs"], p50["ipython"]), "ipython")]


# -- 3. stdout throughput ----------------------------------------------------------------------
def bench_stream(cfg: Config, kernels: Kernels) -> list[Row]:
    mbs: dict[str, float | None] = {}
    sizes: dict[str, int] = {}
    for label in KERNELS:
        s = kernels.get(label)
        if s is None:
            mbs[label] = None
            continue
        size = cfg.stream_bytes if label != "bash_kernel" else cfg.stream_bytes_slow
        sizes[label] = size
        code = _stream_code(label, size)
        s.run(_stream_code(label, 100_000))  # warm-up
        results = []
        for _ in range(cfg.stream_reps):
            t, nbytes, status = s.run(code)
            if status != "ok" or nbytes < size * 0.99:
                raise RuntimeError(f"{label}: stream got {nbytes} of {size} bytes ({status})")
            results.append(nbytes / t / 1e6)
        mbs[label] = median(results)
        log(f"stream {label}: {mbs[label]:.1f} MB/s ({size / 1e6:g} MB)")
    r = ratio(mbs["rootfs"], mbs["ipython"])
    sz = ", ".join(f"{k} {v / 1e6:g} MB" for k, v in sizes.items())
    note = "; ".join(x for x in (f"bytes per run: {sz}",
                                 _missing_note(kernels, ("ipython", "bash_kernel"))) if x)
    return [Row(measure="stdout throughput (iopub stream text)", key="stream_mb_s",
                unit="MB/s", value=mbs["rootfs"],
                baselines={"ipython": mbs["ipython"], "bash_kernel": mbs["bash_kernel"],
                           **_before(mbs)},
                ratio=r, ratio_base="ipython", target=">= 1.0x IPython",
                met=None if r is None else r >= 1.0, note=note)]


def _stream_code(label: str, size: int) -> str:
    if label == "ipython":  # a print loop: 10,000-byte lines
        return (f"import sys\nfor _ in range({size // 10000}):\n"
                f"    print({'a' * 9999!r})\nsys.stdout.flush()")
    # This version shows a cell 64 MiB of output unless the cell lifts the budget (an
    # earlier version has no such line).
    lift = "%limit output=none\n" if label == "rootfs" else ""
    return f"{lift}head -c {size} /dev/zero | tr '\\0' a"


# -- 4. kernel start-up ------------------------------------------------------------------------
def bench_startup(cfg: Config, kernels: Kernels) -> list[Row]:
    """Fresh kernels, started in turns (the order rotating each round) after one untimed
    start of each: the first start in a process also pays the client's own lazy imports
    (about 30 ms), which would land on whichever kernel came first."""
    labels = [label for label in KERNELS if kernels.get(label) is not None]
    times: dict[str, list[float]] = {label: [] for label in labels}
    for turn in range(cfg.startup_reps + 1):
        shift = turn % len(labels)
        for label in labels[shift:] + labels[:shift]:
            s = KernelSession(KERNELS[label][0])
            if turn:
                times[label].append(s.startup)
            s.close()
    meds: dict[str, float | None] = {label: None for label in KERNELS}
    for label, values in times.items():
        meds[label] = median(values) * 1e3
        log(f"startup {label}: {meds[label]:.0f} ms (n={len(values)})")
    r = ratio(meds["rootfs"], meds["ipython"])
    return [Row(measure="kernel start-up (start_new_kernel -> kernel_info reply)",
                key="startup", unit="ms", value=meds["rootfs"],
                baselines={"ipython": meds["ipython"], "bash_kernel": meds["bash_kernel"],
                           **_before(meds)},
                ratio=r, ratio_base="ipython", target="<= 1.1x IPython",
                met=None if r is None else r <= 1.1,
                note=_missing_note(kernels, ("ipython", "bash_kernel")))]


# -- 6. %keep chain ----------------------------------------------------------------------------
def bench_keep(cfg: Config, kernels: Kernels) -> list[Row]:
    s = kernels.get("rootfs")
    if s is None:
        return [Row("%keep chain", "keep_last_vs_first", "ms", None,
                    note=kernels.missing.get("rootfs", ""))]
    # The chain runs `keep_chains` times: on a shared machine one chain's first or last
    # cells can land on someone else's burst; the median over chains is what is reported.
    firsts, lasts, ratios = [], [], []
    n = max(2, min(10, cfg.keep_cells // 2))
    for _ in range(cfg.keep_chains):
        s.run("true")  # ends any chain a previous run left
        times = []
        for i in range(cfg.keep_cells):
            t, _, status = s.run(f"%keep\necho {i} >> /f; wc -l < /f > /dev/null")
            if status != "ok":
                raise RuntimeError(f"%keep cell {i} failed")
            times.append(t * 1e3)
        _, out, status = s.run("%keep\ntest $(wc -l < /f) -eq " + str(cfg.keep_cells))
        if status != "ok":
            raise RuntimeError("the %keep chain lost lines of /f")
        firsts.append(median(times[:n]))
        lasts.append(median(times[-n:]))
        ratios.append(lasts[-1] / firsts[-1])
    s.run("true")  # drop the chain
    first, last, r = median(firsts), median(lasts), median(ratios)
    log(f"keep chain: first {n} {first:.1f} ms, last {n} {last:.1f} ms, ratios {ratios}")
    return [Row(measure=f"%keep chain of {cfg.keep_cells} cells: median of last {n} vs "
                        f"first {n} (median of {cfg.keep_chains} chains)",
                key="keep_last_vs_first", unit="ms", value=last, baselines={"first cells": first},
                ratio=r, ratio_base="first cells", target="must not grow (<= 1.25x)",
                met=None if r is None else r <= 1.25), *_keep_cells(cfg, kernels)]


def _keep_cells(cfg: Config, kernels: Kernels) -> list[Row]:
    """What a %keep cell costs next to a plain one: chains of ten %keep cells (each
    cell's changes copied out of its tmpfs and merged onto the kept layer) that append a
    line to a kept file, or write 8 MiB, then ten plain `true` cells, the kernels (this
    version, --before) taking turns cell by cell, each first every other turn."""
    sessions = {label: kernels.get(label) for label in ("rootfs", *_before({}))}
    sessions = {label: s for label, s in sessions.items() if s is not None}
    cells = {"line": "%keep\necho {i} >> /f", "8m": "%keep\nhead -c 8M /dev/zero > /f{i}"}
    times: dict[str, dict[str, list[float]]] = {
        what: {label: [] for label in sessions} for what in (*cells, "plain")}
    order = list(sessions.items())

    def turns(code: str, into: dict[str, list[float]] | None) -> None:
        # The kernel that goes second would pay for the namespace teardown the other's
        # cell leaves behind: each goes first every other turn.
        order.reverse()
        for label, s in order:
            t, _, status = s.run(code)
            if status != "ok":
                raise RuntimeError(f"{label}: {code!r} failed")
            if into is not None:
                into[label].append(t * 1e3)

    for block in range(cfg.keep_chains + 1):   # the first block warms up
        for what, code in cells.items():
            for i in range(10):
                turns(code.format(i=i), times[what] if block else None)
            turns("true", None)   # ends each chain
        for _ in range(10):
            turns("true", times["plain"] if block else None)
    med = {what: {label: median(v) for label, v in by.items()} for what, by in times.items()}
    log(f"keep cells: {med}")
    plain = med["plain"]
    rows = []
    for what, key, words in (("line", "keep_cell_vs_plain", "`echo N >> /f`"),
                             ("8m", "keep_8m_vs_plain", "`head -c 8M /dev/zero > /fN`")):
        k = med[what]
        before = {"before": k.get("before"), "before, plain": plain.get("before")} \
            if "before" in k else {}
        rows.append(Row(f"a %keep cell ({words} in a chain) next to a plain `true`", key,
                        "ms", k.get("rootfs"), {"plain cell": plain.get("rootfs"), **before},
                        ratio(k.get("rootfs"), plain.get("rootfs")), "plain cell",
                        note="" if "before" not in k else
                        f"before: {ratio(k['before'], plain['before']):.2f}x its plain cell"))
    return rows


# -- 2. fresh-container setup ------------------------------------------------------------------
def _image_dir() -> Path:
    from rootfs_kernel.images import ImageStore

    layers = ImageStore().get("minimal").layers
    if len(layers) != 1:
        raise RuntimeError(f"the minimal image has {len(layers)} layers; expected one")
    return Path(layers[0])


def _cells_filter() -> bytes | None:
    """The cells' seccomp filter as a BPF program (struct sock_filter[]), for bwrap's
    --seccomp: read from the header init.c compiles in (seccomp-filter.h), this machine's
    architecture's; None where it has none."""
    from rootfs_kernel.sandbox import initbin

    arch = {"x86_64": "__x86_64__", "aarch64": "__aarch64__"}.get(platform.machine())
    text = initbin.SECCOMP_HEADER.read_text()
    start = text.find(f"defined({arch})") if arch else -1
    if start < 0:
        return None
    body = text[text.index("{", text.index("rk_seccomp_filter[]", start)) + 1:]
    body = body[:body.index("};")]
    insns = re.findall(r"\{(0x[0-9a-f]+), (\d+), (\d+), (0x[0-9a-f]+)\}", body)
    return b"".join(struct.pack("<HBBI", int(c, 16), int(t), int(f), int(k, 16))
                    for c, t, f, k in insns)


def _bwrap_argv(img: Path, filter_fd: int | None) -> list[str] | None:
    """bwrap doing what a cell's container does that bwrap can: every namespace (user
    mapped to root, mnt, pid, uts, ipc, net with lo up, cgroup), the image as its root,
    its own /proc, a minimal /dev, /sys, a tmpfs, a hostname, the cells' seccomp filter,
    then `/bin/sh -c true`."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None
    seccomp = ["--seccomp", str(filter_fd)] if filter_fd is not None else []
    return [bwrap, "--unshare-all", "--unshare-user", "--uid", "0", "--gid", "0",
            "--ro-bind", str(img), "/", "--proc", "/proc", "--dev", "/dev",
            "--ro-bind", "/sys", "/sys", "--tmpfs", "/tmp", "--hostname", "rootfs",
            *seccomp, "/bin/sh", "-c", "true"]


def _time_cmd(argv: list[str], reps: int, warmup: int, pass_fds: tuple[int, ...] = (),
              prepare: Callable[[], None] | None = None) -> list[float]:
    out = []
    for i in range(warmup + reps):
        if prepare is not None:
            prepare()
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, pass_fds=pass_fds)
        if i >= warmup:
            out.append((time.perf_counter() - t0) * 1e3)
        time.sleep(0.02)   # as containers.py waits between its runs
    return out


def _containers(python: str, reps: int, mode: str, *flags: str) -> list[float]:
    """containers.py's run times (ms) through the SandboxClient `python` imports."""
    env = BEFORE["env"] if python == BEFORE.get("python") else None
    done = subprocess.run([python, str(HERE / "containers.py"), str(reps), mode, *flags],
                          capture_output=True, text=True, timeout=600, env=env)
    if done.returncode:
        raise RuntimeError(f"containers.py {mode} failed: {done.stderr.strip()[-400:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_setup(cfg: Config, kernels: Kernels) -> list[Row]:
    """Fresh containers running `true`, timed from the call to the container gone. Made on
    demand (every step on the clock: the plan, the helper's spawn, the setup, the shell's
    exec, the teardown) against bwrap doing the same work (_bwrap_argv), started and
    waited for by subprocess.run, in rounds taking turns; the earlier version's on demand
    too (--before). Then this version's prepared ones (their setup before the clock
    starts, as a notebook's kernel has it), and on demand without the template mount
    namespace (template.py): what it saves on this host's table."""
    img = _image_dir()
    python = sys.executable
    old = BEFORE.get("python")
    bpf = _cells_filter()
    rounds, per = 4, max(2, cfg.setup_reps // 4)
    times: dict[str, list[float]] = {}

    def add(label: str, values: list[float]) -> None:
        times.setdefault(label, []).extend(values)

    with tempfile.TemporaryFile() as f:
        if bpf is not None:
            f.write(bpf)
        argv = _bwrap_argv(img, f.fileno() if bpf is not None else None)
        for r in range(rounds):
            turns: list[tuple[str, Callable[[], list[float]]]] = [
                ("rootfs", lambda: _containers(python, per, "on-demand")),
                ("rootfs, no template", lambda: _containers(python, per, "on-demand",
                                                            "--no-template")),
                ("rootfs prepared", lambda: _containers(python, per, "prepared"))]
            if argv is not None:
                turns.append(("bwrap", lambda: _time_cmd(argv, per, 2, (f.fileno(),),
                                                         lambda: f.seek(0))))
            if old is not None:
                turns.append(("before", lambda: _containers(old, per, "on-demand")))
            shift = r % len(turns)
            for label, measure in turns[shift:] + turns[:shift]:
                add(label, measure())
    # The same on a host with cfg.extra_mounts more mounts (root: they are mounted on it):
    # what the template mount namespace saves a container made on demand.
    many: dict[str, list[float]] = {}
    if os.geteuid() == 0:
        with _host_mounts(cfg.extra_mounts):
            for r in range(2):
                turns = [("template", lambda: _containers(python, per, "on-demand")),
                         ("no template", lambda: _containers(python, per, "on-demand",
                                                             "--no-template"))]
                if old is not None:
                    turns.append(("before", lambda: _containers(old, per, "on-demand")))
                for label, measure in turns[r % 2:] + turns[:r % 2]:
                    many.setdefault(label, []).extend(measure())
    med = {label: median(v) for label, v in times.items()}
    log(f"setup: {med}")
    bw = med.get("bwrap")
    r = ratio(med["rootfs"], bw)
    work = ("rootfs: SandboxClient.run() until the container is gone: its plan encoded, the "
            "helper's posix_spawn, rootfs-init's namespaces (user, mnt, pid, uts, ipc, net), "
            "overlay with a tmpfs upper, /proc, /dev, /sys, runc's masks, pivot_root, the "
            "script's locked user namespace with the unprivileged id map, lo, hostname, "
            "seccomp, /bin/sh reading `true` from its pipe, the teardown; bwrap: "
            + (" ".join(argv[1:]).replace(str(img), "IMG") if argv else "not installed")
            + ", timed from subprocess.run: the same namespaces, filesystems and filter, "
            "a read-only bind for the root instead of an overlay, no masks, no "
            "unprivileged id map")
    bases = {"bwrap": bw, **({"before": med["before"]} if "before" in med else {})}
    return [Row("a container made on demand (both cold, all work on the clock), `true`",
                "setup_on_demand", "ms", med["rootfs"], bases, r, "bwrap", "<= 1.0x bwrap",
                None if r is None else r <= 1.0, note=work),
            Row("the same, prepared while the caller waited (its setup off the clock)",
                "setup", "ms", med["rootfs prepared"], {"bwrap (on demand)": bw},
                ratio(med["rootfs prepared"], bw), "bwrap (on demand)",
                note="what a notebook's cell meets: the next container is made while the "
                     "kernel is idle"),
            Row("made on demand without the template mount namespace (cloned from the "
                "host's)", "setup_no_template", "ms", med["rootfs, no template"],
                {"with it": med["rootfs"]}, ratio(med["rootfs, no template"], med["rootfs"]),
                "with it", note=f"this host's table: {_mount_count()} mounts"),
            *_many_mounts_row(cfg.extra_mounts, many)]


def _many_mounts_row(n: int, many: dict[str, list[float]]) -> list[Row]:
    if not many:
        return [Row(f"a container made on demand on a host with {n:,} more mounts",
                    "setup_many_mounts", "ms", None, note="n/a (mounting on the host needs "
                                                          "root)")]
    med = {label: median(v) for label, v in many.items()}
    log(f"setup with {n} more mounts: {med}")
    return [Row(f"a container made on demand on a host with {n:,} more mounts (tmpfs, "
                "shared), cloned from the template mount namespace", "setup_many_mounts",
                "ms", med["template"], {"cloned from the host's": med["no template"],
                                        **({"before": med["before"]} if "before" in med
                                           else {})},
                ratio(med["template"], med["no template"]), "cloned from the host's",
                note="as the row above, the mounts added on the host for it (hostmounts.py)")]


def _mount_count() -> int:
    with open("/proc/self/mountinfo") as f:
        return sum(1 for _ in f)


# -- %show steps and %show mounts: a view cell next to a plain one -----------------------------
STEPS_CELL = "%show steps\ntrue"
MOUNTS_CELL = "%show mounts\ntrue"


def bench_steps(cfg: Config, kernels: Kernels) -> list[Row]:
    """What a view costs a cell. `%show steps`: its container records every step's mount
    table (init.c), the kernel words and diffs them and sends the view; `%show mounts`:
    the kernel diffs the cell's table with the host's and sends the view. Cells run in
    blocks of the same kind, as a notebook runs them (each gets a container made ahead
    with its own setup), the blocks taking turns so drift falls on all, an earlier
    version's kernel (--before) taking its turns too; then the plain cell right after a
    `%show steps` one, whose container is made when it comes (the one made ahead recorded,
    and only a `%show steps` cell takes it)."""
    s = kernels.get("rootfs")
    if s is None:
        note = f"n/a: {kernels.missing.get('rootfs', 'the rootfs kernel did not start')}"
        return [Row("a `%show steps` cell next to a plain one", "steps_cell", "ms", None,
                    note=note),
                Row("a `%show mounts` cell next to a plain one", "mounts_cell", "ms", None,
                    note=note),
                Row("a plain cell right after a `%show steps` cell", "plain_after_steps",
                    "ms", None, note=note)]
    sessions = {"rootfs": s}
    old = kernels.get("before") if "before" in KERNELS else None
    if old is not None:
        sessions["before"] = old
    codes = {"plain": "true", "steps": STEPS_CELL, "mounts": MOUNTS_CELL}
    block = max(2, cfg.reps // 20)
    times: dict[tuple[str, str], list[float]] = {(k, c): [] for k in sessions for c in codes}
    after: list[float] = []
    for round_ in range(max(2, cfg.reps // block // 2) + 1):
        warm = round_ == 0   # the first round warms up
        for label, session in sessions.items():
            for kind, code in codes.items():
                for i in range(block + 1):   # the block's first cell: its container on demand
                    t, _, status = session.run(code)
                    if status != "ok":
                        raise RuntimeError(f"{label}: {code!r} failed ({status})")
                    if i and not warm:
                        times[label, kind].append(t * 1e3)
        s.run(STEPS_CELL)
        t, _, _ = s.run("true")
        if not warm:
            after.append(t * 1e3)
    p50 = {key: median(v) for key, v in times.items()}
    p, af = p50["rootfs", "plain"], median(after)
    for label in sessions:
        log(f"views {label}: plain p50 {p50[label, 'plain']:.2f} ms, %show steps p50 "
            f"{p50[label, 'steps']:.2f} ms, %show mounts p50 {p50[label, 'mounts']:.2f} ms")
    log(f"steps: plain after steps p50 {af:.2f} ms (n={len(after)})")
    rows = []
    for kind, key, target in (("steps", "steps_cell", 2.0), ("mounts", "mounts_cell", None)):
        r = ratio(p50["rootfs", kind], p)
        bases = {"plain `true`": p}
        note = ("the same kernel, blocks of each kind taking turns; the view's display_data "
                "(text, HTML, payload, widget) is part of the round trip")
        if "before" in sessions:
            before = ratio(p50["before", kind], p50["before", "plain"])
            bases.update({"before": p50["before", kind],
                          "before's plain `true`": p50["before", "plain"]})
            note += f"; before: {before:.2f}x its plain cell" if before else ""
        rows.append(Row(measure=f"a `%show {kind}` cell next to a plain one (`true`), round "
                                "trip p50", key=key, unit="ms", value=p50["rootfs", kind],
                        baselines=bases, ratio=r, ratio_base="plain `true`",
                        target=f"<= {target:g}x" if target else "",
                        met=None if r is None or target is None else r <= target, note=note))
    rows.append(Row(measure="a plain cell right after a `%show steps` cell, round trip p50",
                    key="plain_after_steps", unit="ms", value=af, baselines={"plain `true`": p},
                    ratio=ratio(af, p), ratio_base="plain `true`", target="-", met=None,
                    note="the container made ahead recorded its steps, so this one is made "
                         "when the cell comes (once, after each `%show steps` cell)"))
    return rows


# -- 5. comparison views -----------------------------------------------------------------------
def synth_mountinfo(n: int, cell_side: bool) -> str:
    """n mountinfo lines; the cell's side differs from the host's in a fifth of them."""
    lines = []
    for i in range(n):
        opts = "ro,relatime" if cell_side and i % 5 == 0 else "rw,relatime"
        prop = "" if cell_side else f"shared:{i + 1}"
        point = "/" if i == 0 else f"/srv/vol{i // 50}/m{i}"
        if cell_side and i % 7 == 3:
            point += "-cell"
        lines.append(f"{i + 20} {i + 19 if i else 1} 0:{i + 30} / {point} {opts} {prop} - "
                     f"{'tmpfs' if i % 3 else 'ext4'} dev{i} rw,size={i}k")
    return "\n".join(lines) + "\n"


def _time_fn(fn: Callable[[], object], reps: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def _bundle_json_ms(bundle: tuple[dict, dict], reps: int) -> float:
    return median(_time_fn(lambda: json.dumps(bundle[0]).encode(), reps))


def make_tree(root: Path, entries: int, variant: int) -> None:
    """entries files and directories below root, 100 per directory, two levels deep."""
    per = 100
    made = 0
    d = 0
    while made < entries:
        sub = root / f"d{d:03d}"
        sub.mkdir()
        made += 1
        for f in range(min(per, entries - made)):
            p = sub / f"f{f:03d}"
            p.write_bytes(b"x" * ((f + variant) % 7 if (d + f) % 9 == 0 else f % 7))
            made += 1
        d += 1


def bench_views(cfg: Config, kernels: Kernels) -> list[Row]:
    # widget=True needs a comm: outside a kernel, the comm package's default is DummyComm.
    import comm  # noqa: F401 - nothing of ipykernel is imported here, so DummyComm stays

    from rootfs_kernel.inspect import diff_listings, diff_mounts, parse_mountinfo, snapshot
    from rootfs_kernel.views import listing_payload, mounts_payload, view_bundle

    rows = []
    for n in cfg.mount_counts:
        cell_text, host_text = synth_mountinfo(n, True), synth_mountinfo(n, False)
        last: dict = {}

        def compare(cell_text: str = cell_text, host_text: str = host_text,
                    last: dict = last) -> None:
            payload = mounts_payload(diff_mounts(parse_mountinfo(cell_text),
                                                 parse_mountinfo(host_text)))
            # view_bundle renders text/plain and text/html (render_html) and the widget:
            # the kernel's own path, so render_html is not called a second time here.
            last["bundle"] = view_bundle(payload, widget=True)

        v = median(_time_fn(compare, cfg.view_reps))
        b = _bundle_json_ms(last["bundle"], cfg.view_reps)
        r = ratio(v, b)
        target = "<= 300 ms" if n == 5000 else ""
        rows.append(Row(measure=f"mount comparison, {n:,} mounts (parse+diff+payload+"
                                f"view_bundle: text, html, widget)",
                        key=f"views_mounts_{n}", unit="ms",
                        value=v, baselines={"json.dumps of the bundle": b}, ratio=r,
                        ratio_base="json.dumps of the bundle", target=target,
                        met=(v <= 300) if target else None))
        log(f"views {n} mounts: {v:.1f} ms (json {b:.1f} ms)")

    with tempfile.TemporaryDirectory(prefix="rootfs-bench-") as tmp:
        cell_dir, host_dir = Path(tmp, "cell"), Path(tmp, "host")
        cell_dir.mkdir()
        host_dir.mkdir()
        make_tree(cell_dir, cfg.dir_entries, 0)
        make_tree(host_dir, cfg.dir_entries, 1)
        limit = cfg.dir_entries * 2
        last: dict = {}

        def listing() -> None:
            diff = diff_listings(snapshot(str(cell_dir), max_entries=limit),
                                 snapshot(str(host_dir), max_entries=limit))
            payload = listing_payload(diff)
            last["bundle"] = view_bundle(payload, widget=True)

        def walk() -> None:  # the floor: reading both trees, nothing else
            for d in (cell_dir, host_dir):
                for top, dirs, files in os.walk(d):
                    for name in dirs + files:
                        os.lstat(os.path.join(top, name))

        v = median(_time_fn(listing, cfg.view_reps))
        b = median(_time_fn(walk, cfg.view_reps))
        log(f"views listing {cfg.dir_entries}: {v:.1f} ms (walk {b:.1f} ms)")
        rows.append(Row(measure=f"directory comparison, {cfg.dir_entries:,} entries per side "
                                "(2 snapshots+diff+payload+view_bundle)",
                        key="views_listing", unit="ms", value=v,
                        baselines={"os.walk+lstat of both trees": b}, ratio=ratio(v, b),
                        ratio_base="os.walk+lstat of both trees"))
    return rows


# -- 7. images ---------------------------------------------------------------------------------
def _import_function() -> Callable | None:
    try:
        from rootfs_kernel.images.oci_import import import_image
    except ImportError:
        return None
    return import_image


def write_oci_tar(path: Path, total: int) -> Path:
    """An OCI image layout tar with one uncompressed layer of ~total bytes; returns the layer."""
    work = path.parent
    layer = work / "layer.tar"
    per = 1_000_000
    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as t:
        for name, mode in (("data", 0o755), ("etc", 0o755)):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, mode, 0
            t.addfile(ti)
        ti = tarfile.TarInfo("etc/hostname")
        ti.size, ti.mtime = 6, 0
        t.addfile(ti, io.BytesIO(b"bench\n"))
        for i in range(max(1, total // per)):
            ti = tarfile.TarInfo(f"data/blob{i:04d}")
            ti.size, ti.mode, ti.mtime = per, 0o644, 0
            t.addfile(ti, io.BytesIO(os.urandom(per)))
    layer_digest = "sha256:" + _sha256_file(layer)
    config = json.dumps({
        "architecture": _oci_arch(), "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer.stat().st_size}],
    }).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
        "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}).encode()
    with tarfile.open(path, "w") as t:
        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))

        add("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        add("index.json", index)
        add(f"blobs/sha256/{config_digest[7:]}", config)
        add(f"blobs/sha256/{manifest_digest[7:]}", manifest)
        t.add(layer, f"blobs/sha256/{layer_digest[7:]}")
    return layer


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _oci_arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def bench_image(cfg: Config, kernels: Kernels) -> list[Row]:
    import_image = _import_function()
    rows = []
    with tempfile.TemporaryDirectory(prefix="rootfs-bench-img-") as tmp:
        tmpd = Path(tmp)
        if import_image is None:
            rows.append(Row("OCI image import", "image_import", "s", None,
                            note="n/a (not implemented)"))
        else:
            from rootfs_kernel.images import ImageStore

            archive = tmpd / "bench-oci.tar"
            layer = write_oci_tar(archive, cfg.image_bytes)
            size = archive.stat().st_size
            imports, untars = [], []
            for i in range(cfg.image_reps):
                store = ImageStore(tmpd / f"store{i}")
                t0 = time.perf_counter()
                import_image(store, archive, "bench")
                imports.append(time.perf_counter() - t0)
                out = tmpd / f"untar{i}"
                out.mkdir()
                t0 = time.perf_counter()
                subprocess.run(["tar", "-xf", str(layer), "-C", str(out)], check=True)
                untars.append(time.perf_counter() - t0)
                shutil.rmtree(tmpd / f"store{i}", ignore_errors=True)
                shutil.rmtree(out)
            v, b = median(imports), median(untars)
            log(f"image import {size / 1e6:.0f} MB: {v:.2f} s (tar -xf {b:.2f} s)")
            rows.append(Row(f"OCI image import ({size / 1e6:.0f} MB layout tar, one layer)",
                            "image_import", "s", v, {"tar -xf of the layer": b}, ratio(v, b),
                            "tar -xf of the layer"))
        try:
            from rootfs_kernel.images.minimal import build_minimal
        except ImportError:
            rows.append(Row("`minimal` image build", "image_minimal", "s", None,
                            note="n/a (not implemented)"))
            return rows
        from rootfs_kernel.images import ImageStore

        builds, copies = [], []
        for i in range(cfg.image_reps):
            store = ImageStore(tmpd / f"mstore{i}")
            t0 = time.perf_counter()
            image = store.build("minimal", build_minimal)
            builds.append(time.perf_counter() - t0)
            out = tmpd / f"copy{i}"
            t0 = time.perf_counter()
            subprocess.run(["cp", "-a", str(image.layers[0]), str(out)], check=True)
            copies.append(time.perf_counter() - t0)
            shutil.rmtree(tmpd / f"mstore{i}", ignore_errors=True)
            shutil.rmtree(out)
        v, b = median(builds), median(copies)
        log(f"minimal build: {v:.2f} s (cp -a {b:.2f} s)")
        rows.append(Row("`minimal` image build (fresh store)", "image_minimal", "s", v,
                        {"cp -a of the built tree": b}, ratio(v, b), "cp -a of the built tree"))
    return rows


# -- driver ------------------------------------------------------------------------------------
# -- 14. the cell's network ---------------------------------------------------------------------
def netns_allocated() -> int | None:
    """Network namespaces the kernel holds, freed or not yet (the net_namespace slab's
    active objects: /proc/slabinfo, root only)."""
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                if line.startswith("net_namespace "):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


NEITHER = "%net host\n%seccomp off\ntrue"   # a cell as every cell was before issue 21


def _descendants(pid: int) -> list[int]:
    """The processes below `pid` (/proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError), \
                    open(f"/proc/{entry}/stat") as f:
                children.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(
                    int(entry))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def bench_net(cfg: Config, kernels: Kernels) -> list[Row]:
    """Issue 21's cost: every cell's own network namespace (lo only) and seccomp filter,
    against cells on the host's network without the filter (`%net host` + `%seccomp off`,
    what every cell had before issue 21): kernels of this version take turns, each
    sending its own cell, so each runs in containers prepared for it; then the same back
    to back (Run All), and made on demand; idle memory after each. `%net user` (pasta)
    too, prepared and made when its cell comes. Then cfg.net_cells cells in a row, back
    to back (text varied): the last 100 against the first 100, and what the host holds
    before and after them: network namespaces allocated (root only), mounts in the
    kernel's namespace, the kernel's processes."""
    own = kernels.get("rootfs")
    if own is None:
        return [Row("own network namespace", "net_own_vs_host", "ms", None,
                    note=kernels.missing.get("rootfs", "no rootfs kernel"))]
    host, user = KernelSession("rootfs"), KernelSession("rootfs")
    on_demand = KernelSession("rootfs", env={**os.environ, "ROOTFS_KERNEL_PREPARE": "0"})
    try:
        # own and host take turns; user has rotations of its own (what one kernel leaves
        # to the machine after its cell, pasta's end, must not land on the others' times).
        sessions = {"own": own, "host": host}
        codes = {"own": "true", "host": NEITHER, "user": "%net user\ntrue"}
        times = _turns(sessions, codes, cfg.warmup, cfg.reps // 2, gap=cfg.gap_ms / 1e3)
        blocks = _turns(sessions, codes, 1, max(1, cfg.reps // 20), block=10)
        times |= _turns({"user": user}, codes, cfg.warmup, cfg.reps // 4, gap=cfg.gap_ms / 1e3)
        blocks |= _turns({"user": user}, codes, 1, max(1, cfg.reps // 40), block=10)
        made = _turns({"own made": on_demand, "host made": on_demand},
                      {"own made": "true", "host made": NEITHER},
                      1, max(5, cfg.reps // 3), gap=cfg.gap_ms / 1e3)
        made |= _turns({"user made": on_demand}, {"user made": "%net user\ntrue"},
                       1, max(5, cfg.reps // 20), gap=cfg.gap_ms / 1e3)
        idle = {"user": _idle_rss_mb(user, "%net user\ntrue")}
    finally:
        for s in (host, user, on_demand):
            s.close()
    # Idle memory: fresh kernels (the shared one holds what earlier measures showed).
    for label, code in (("own", "true"), ("host", NEITHER)):
        fresh = KernelSession("rootfs")
        try:
            idle[label] = _idle_rss_mb(fresh, code)
        finally:
            fresh.close()
    p50 = {k: median(v) for k, v in {**times, **made}.items()}
    p95s = {k: p95(v) for k, v in times.items()}
    b50 = {k: median(v) for k, v in blocks.items()}
    log(f"net: p50 {p50}, p95 {p95s}, back to back {b50}")
    rows = [
        Row("round trip p50, every cell's own network namespace (lo up) and seccomp filter "
            "vs neither (`%net host` + `%seccomp off`)",
            "net_own_vs_host", "ms", p50["own"], {"neither": p50["host"]},
            ratio(p50["own"], p50["host"]), "neither", target="<= 1.1x",
            met=p50["own"] <= 1.1 * p50["host"],
            note=f"p95 {p95s['own']:.2f} vs {p95s['host']:.2f} ms; {cfg.gap_ms:g} ms "
                 "between cells; made ahead (prepared containers)"),
        Row("the same, cells sent back to back (Run All)", "net_own_vs_host_back_to_back",
            "ms", b50["own"], {"neither": b50["host"]}, ratio(b50["own"], b50["host"]),
            "neither", target="<= 1.1x", met=b50["own"] <= 1.1 * b50["host"]),
        Row("the same, containers made when the cell comes (ROOTFS_KERNEL_PREPARE=0)",
            "net_own_vs_host_on_demand", "ms", p50["own made"],
            {"neither": p50["host made"]}, ratio(p50["own made"], p50["host made"]),
            "neither"),
        Row("`%net user` (pasta) round trip p50, prepared", "net_user", "ms", p50["user"],
            {"own (lo only)": p50["own"]}, ratio(p50["user"], p50["own"]), "own (lo only)",
            note=f"back to back {b50['user']:.2f} ms vs {b50['own']:.2f} ms"),
        Row("`%net user` made when its cell comes (pasta started then)", "net_user_on_demand",
            "ms", p50["user made"], {"own (lo only)": p50["own made"]},
            ratio(p50["user made"], p50["own made"]), "own (lo only)"),
    ]
    log(f"net: idle memory {idle}")
    rows.append(Row("idle memory of a fresh kernel after three plain cells (its prepared "
                    "container with its network namespace and filter) vs three `%net host` + "
                    "`%seccomp off` cells",
                    "net_own_idle_memory", "MB", idle["own"], {"neither": idle["host"]},
                    ratio(idle["own"], idle["host"]), "neither",
                    note="RSS of the kernel's process tree: a namespace's own memory is the "
                         "kernel's (slab), not a process's"))
    rows.append(Row("idle memory after a `%net user` cell (its prepared container's pasta), "
                    "against a fresh kernel after a plain cell",
                    "net_user_idle_memory", "MB", idle["user"], {"after a plain cell": idle["own"]},
                    ratio(idle["user"], idle["own"]), "after a plain cell"))
    n = max(cfg.net_cells, 20)
    k = min(100, n // 5)
    own.run("true")
    time.sleep(1.0)
    before = netns_allocated(), _mount_count(), len(_descendants(own.pid))
    series = []
    for i in range(n):
        t, _, status = own.run(f"true  # {i}")
        if status != "ok":
            raise RuntimeError("a cell of the series failed")
        series.append(t * 1e3)
    time.sleep(2.0)   # the kernel frees namespaces in a work queue
    after = netns_allocated(), _mount_count(), len(_descendants(own.pid))
    first, last = median(series[:k]), median(series[-k:])
    left = (f"before the series and 2 s after it: the host's network namespaces allocated "
            f"{before[0]} and {after[0]} (the whole host's, other users' too), mounts in the "
            f"kernel's namespace {before[1]} and {after[1]}, the kernel's processes "
            f"{before[2]} and {after[2]} (helper, prepared container)")
    log(f"net series: first {k} {first:.2f} ms, last {k} {last:.2f} ms; {left}")
    rows.append(Row(f"{n} cells in a row, back to back: median of the last {k} vs the first {k}",
                    "net_series_last_vs_first", "ms", last, {"first cells": first},
                    ratio(last, first), "first cells", target="<= 1.1x (no pile-up)",
                    met=last <= 1.1 * first, note=left))
    return rows


@dataclass
class Config:
    warmup: int = 5
    reps: int = 300          # round trips: a few ms each, rootfs and IPython taking turns
    stream_bytes: int = 100_000_000
    stream_bytes_slow: int = 1_000_000   # bash_kernel streams ~0.3 MB/s
    stream_reps: int = 3
    startup_reps: int = 7
    keep_cells: int = 50
    keep_chains: int = 3
    setup_reps: int = 200
    mount_counts: tuple[int, ...] = (100, 1000, 5000)
    dir_entries: int = 10_000
    view_reps: int = 7
    image_bytes: int = 100_000_000
    image_reps: int = 3
    extra_mounts: int = 2000
    gap_ms: float = 20.0     # quiet after each timed cell (see bench_roundtrip)
    script_bytes: int = 10_000_000
    scale_kernels: int = 20
    net_cells: int = 1000    # cells in a row: does the namespaces' teardown pile up?
    runall_cells: int = 40   # a notebook's cells, sent at once
    runall_reps: int = 15

    @classmethod
    def quick(cls) -> Config:
        return cls(warmup=1, reps=5, stream_bytes=1_000_000, stream_bytes_slow=20_000,
                   stream_reps=1, startup_reps=1, keep_cells=6, keep_chains=1, setup_reps=5,
                   mount_counts=(100, 1000), dir_entries=500, view_reps=2,
                   image_bytes=2_000_000, image_reps=1, extra_mounts=100,
                   script_bytes=1_000_000, scale_kernels=2, net_cells=60, runall_reps=2)


BENCHES: dict[str, Callable[[Config, Kernels], list[Row]]] = {
    "startup": bench_startup,
    "roundtrip": bench_roundtrip,
    "runall": bench_runall,
    "mounts": bench_mounts,
    "script": bench_script,
    "showls": bench_showls,
    "memory": bench_memory,
    "scale": bench_scale,
    "stream": bench_stream,
    "keep": bench_keep,
    "setup": bench_setup,
    "steps": bench_steps,
    "views": bench_views,
    "image": bench_image,
    "net": bench_net,
}


def _missing_note(kernels: Kernels, labels: tuple[str, ...]) -> str:
    return "; ".join(f"{k} skipped: {kernels.missing[k]}" for k in labels if k in kernels.missing)


def machine() -> dict:
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f
                    if line.startswith("model name")), "")
    versions = {}
    for mod in ("jupyter_client", "ipykernel", "bash_kernel"):
        with contextlib.suppress(Exception):
            versions[mod] = __import__(mod).__version__
    bwrap = shutil.which("bwrap")
    if bwrap:
        out = subprocess.run([bwrap, "--version"], capture_output=True, text=True).stdout
        versions["bwrap"] = out.strip().split()[-1] if out.strip() else "?"
    return {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "python": platform.python_version(), "euid": os.geteuid(), "versions": versions,
            "loadavg_at_start": round(os.getloadavg()[0], 2)}


def _fmt(x: float | None, unit: str = "") -> str:
    if x is None:
        return "n/a"
    s = f"{x:.3g}" if abs(x) < 10 else f"{x:,.0f}"
    if abs(x) < 100 and abs(x) >= 10:
        s = f"{x:.1f}"
    return f"{s} {unit}".strip()


def render(meta: dict, rows: list[Row]) -> str:
    out = [f"- date: {meta['date']}",
           f"- machine: nproc {meta['nproc']} ({meta['cpu']}), Linux {meta['kernel']}, "
           f"Python {meta['python']}, euid {meta['euid']}, load average at start "
           f"{meta['loadavg_at_start']}; "
           + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
           f"- command: `{meta['command']}`" + (" (quick: tiny sizes, NOT representative)"
                                                if meta["quick"] else ""),
           "",
           "| measure | rootfs-kernel | baseline(s) | ratio | target | met? |",
           "| --- | --- | --- | --- | --- | --- |"]
    notes = []
    for r in rows:
        bases = "; ".join(f"{k}: {_fmt(v, r.unit)}" for k, v in r.baselines.items()) or "-"
        rat = f"{r.ratio:.2f}x vs {r.ratio_base}" if r.ratio is not None else "n/a"
        if r.baselines.get("before") and r.value is not None:
            rat += f"; {r.value / r.baselines['before']:.2f}x vs before"
        met = "-" if r.met is None else ("yes" if r.met else "**no**")
        value = _fmt(r.value, r.unit) if r.value is not None else (r.note or "n/a")
        out.append(f"| {r.measure} | {value} | {bases} | {rat} | {r.target or '-'} | {met} |")
        if r.note and r.value is not None:
            notes.append(f"- {r.key}: {r.note}")
    if notes:
        out += ["", "Notes:", *notes]
    return "\n".join(out)


def compile_bytecode(pythons: list[str]) -> None:
    """Compile each rootfs_kernel's bytecode before any kernel starts, as pip does when it
    installs a wheel (IPython's is compiled that way). A source checkout run with
    PYTHONDONTWRITEBYTECODE (some machines set it) would otherwise compile every module of
    the package again at each start-up: about 30 ms here, on one side of the comparison."""
    code = ("import compileall, os, rootfs_kernel; "
            "compileall.compile_dir(os.path.dirname(rootfs_kernel.__file__), quiet=1)")
    for python in pythons:
        subprocess.run([python, "-c", code], check=False, timeout=300,
                       env={k: v for k, v in os.environ.items()
                            if k != "PYTHONDONTWRITEBYTECODE"})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, few repetitions")
    ap.add_argument("--only", default="", help=f"comma-separated subset of {','.join(MEASURES)}")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--before", metavar="PYTHON",
                    help="also run the rootfs_kernel this Python imports (an earlier version)")
    ap.add_argument("--before-data", metavar="DIR", help="XDG_DATA_HOME of --before's kernel")
    args = ap.parse_args(argv)
    only = [m.strip() for m in args.only.split(",") if m.strip()] or list(MEASURES)
    unknown = [m for m in only if m not in MEASURES]
    if unknown:
        ap.error(f"unknown measure(s) {', '.join(unknown)}; choose from {', '.join(MEASURES)}")
    cfg = Config.quick() if args.quick else Config()
    meta = machine()
    meta["command"] = " ".join(["python", "benchmarks/run.py", *map(shlex.quote,
                                                                   sys.argv[1:] if argv is None
                                                                   else argv)])
    meta["quick"] = args.quick
    specs = add_before(args.before, args.before_data) if args.before else {}
    specs[FLOOR] = [sys.executable, str(HERE / "nullkernel.py"), "-f", "{connection_file}"]
    compile_bytecode([sys.executable] + ([args.before] if args.before else []))
    stack = contextlib.ExitStack()
    stack.enter_context(kernelspecs(specs))
    kernels = Kernels()
    rows: list[Row] = []
    failures: dict[str, str] = {}
    t0 = time.perf_counter()
    try:
        for name in MEASURES:
            if name not in only:
                continue
            log(f"== {name}")
            try:
                rows += BENCHES[name](cfg, kernels)
            except Exception as err:  # noqa: BLE001 - one broken measure must not hide the rest
                failures[name] = f"{type(err).__name__}: {err}"
                log(f"{name} FAILED: {failures[name]}")
    finally:
        kernels.close()
        stack.close()
    meta["seconds"] = round(time.perf_counter() - t0, 1)
    print(render(meta, rows))
    for name, why in failures.items():
        print(f"\nFAILED {name}: {why}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": [asdict(r) for r in rows], "failures": failures},
                      f, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
