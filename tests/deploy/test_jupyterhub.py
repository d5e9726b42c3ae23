"""JupyterHub for a class, on this machine, started as deploy/jupyterhub/README.md says.

- Two students (real system accounts) log in from chromium, each runs cells and a `%show`
  view in JupyterLab; each one's server, kernel and cells run as that student (rootless
  mode); one student's cells cannot read what Unix permissions deny them of the other's,
  neither through `%bind` nor in a `%%host` cell, while the owner can.
- A class of 20 runs a notebook at once, driven by a script through the hub's REST API
  and the kernels' WebSockets (hubclass.py): every cell of every student replies, each sees
  its own processes only and none reads another's homework.
- What one student takes is bounded for all of their kernels and cells together (a cgroup
  per student, studentspawner.py): a fork bomb stops at the student's process limit, a
  memory hog is killed at the student's memory limit, busy loops run under the student's
  CPU quota, while a classmate's cells keep running.
- When the hub stops, nothing of any student's is left running and their cgroups are gone.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest
from e2e.jupyter_e2e import (
    CHROMIUM,
    VIEWPORT,
    View,
    launch,
    outputs,
    run_cell,
    write_notebook,
)
from hubclass import Hub, Seat, make_students, missing, notebook, processes_of, run_class

GROUP = "rkstudents"
CLASS = [f"rkstudent{i}" for i in range(1, 21)]
BROWSER = CLASS[:2]
CGROUP = "rootfs-hub-test"
# Per student: the hub's cgroup limits (deploy/jupyterhub/jupyterhub_config.py's settings).
LIMITS = {"ROOTFS_HUB_MEMORY": "1G", "ROOTFS_HUB_PIDS": "400", "ROOTFS_HUB_CPU": "1",
          "ROOTFS_HUB_CGROUP": CGROUP}


def _missing() -> str | None:
    why = missing()
    if why is None and not Path(CHROMIUM).is_file():
        why = f"no chromium at {CHROMIUM}"
    return why


pytestmark = [pytest.mark.deploy, pytest.mark.rootonly,
              pytest.mark.skipif(bool(_missing()), reason=_missing() or ""),
              pytest.mark.timeout(900)]

CELLS = {
    "whoami": "echo cell root is uid $(id -u); cat /etc/hostname 2>/dev/null; true",
    "host": "%%host\necho on the host as $(id -un)",
    "view": "%root none\n%mount tmpfs /tmp\n%show mounts\nmount | grep ' /tmp '",
    "bind": "%bind /home/rkstudent1 /data\ncat /data/homework.txt",
    "host-read": "%%host\ncat /home/rkstudent1/homework.txt",
}


@pytest.fixture(scope="module")
def students():
    """The class: 20 accounts, the first two with passwords and a notebook for the browser."""
    import os

    made = make_students(CLASS, GROUP, passwords=False)
    for s in make_students(BROWSER, GROUP, passwords=True):
        made[CLASS.index(s.name)] = s
        nb = s.home / "class.ipynb"
        write_notebook(nb, list(CELLS.values()))
        settings = (s.home / ".jupyter/lab/user-settings/@jupyterlab/apputils-extension"
                    / "notification.jupyterlab-settings")
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text('{"fetchNews": "false", "checkForUpdates": false}')
        for p in [nb, *(s.home / ".jupyter").rglob("*"), s.home / ".jupyter"]:
            os.chown(p, s.uid, s.uid)
    return made


@pytest.fixture(scope="module")
def hub(students, tmp_path_factory):
    # The recipe waits 3 minutes for a server; a test machine shared with other work may
    # need longer to start 20 at once.
    h = Hub(tmp_path_factory.mktemp("hub"), GROUP, env=LIMITS,
            args=("--Spawner.http_timeout=600", "--Spawner.start_timeout=600")).start()
    try:
        yield h
    finally:
        h.stop()


def _login(browser, url: str, name: str, password: str):
    ctx = browser.new_context(viewport=VIEWPORT)
    page = ctx.new_page()
    page.goto(f"{url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_url(re.compile(rf"/user/{name}/lab"), timeout=120_000)
    page.goto(f"{url}/user/{name}/lab/tree/class.ipynb")
    page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=60_000)
    page.wait_for_function(
        "() => { const n = document.querySelector('.jp-Notebook-ExecutionIndicator');"
        " return n && n.getAttribute('data-status') === 'idle'; }", timeout=90_000)
    return ctx, page


def _text(page, index: int) -> str:
    return outputs(run_cell(page, index, timeout=90_000)).all_inner_texts()


def test_two_students_log_in_run_cells_and_views_and_stay_apart(hub, students):
    from playwright.sync_api import sync_playwright

    pair = {s.name: s for s in students if s.name in BROWSER}
    secret = pair["rkstudent1"].secret
    index = {key: i for i, key in enumerate(CELLS)}
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            pages = {name: _login(browser, hub.url, name, s.password)
                     for name, s in pair.items()}
            for name, (_, page) in pages.items():
                # a cell: root inside, in the image (not the host's /etc/hostname)
                text = " ".join(_text(page, index["whoami"]))
                assert "cell root is uid 0" in text, (name, text)
                # a %%host cell runs as the student
                assert f"on the host as {name}" in " ".join(_text(page, index["host"]))
                # a %show view
                cell = run_cell(page, index["view"], timeout=90_000)
                view = View.find(page, cell, timeout=60_000)
                assert view.mark(view.row("/tmp")) == "+", (name, view.kind)
                assert "none on /tmp type tmpfs" in " ".join(outputs(cell).all_inner_texts())
            # Unix permissions between students hold in cells as outside
            owner, other = pages["rkstudent1"][1], pages["rkstudent2"][1]
            assert secret in " ".join(_text(owner, index["bind"]))
            assert secret in " ".join(_text(owner, index["host-read"]))
            for key in ("bind", "host-read"):
                text = " ".join(_text(other, index[key]))
                assert secret not in text and "Permission denied" in text, (key, text)
            # every kernel's helper runs as its student, none as root
            uids = {s.uid for s in pair.values()}
            helpers = [(p, uid) for p, uid, comm in processes_of(uids) if comm == "rootfs-helper"]
            assert {uid for _, uid in helpers} == uids, helpers
        finally:
            browser.close()


def _seats(hub: Hub, students) -> list[Seat]:
    return [Seat(hub, s) for s in students]


def test_a_class_of_20_runs_a_notebook_at_once_and_stays_apart(hub, students):
    seats = _seats(hub, students)
    neighbour = {s.name: students[(i + 1) % len(students)] for i, s in enumerate(students)}

    def kernel_files() -> dict[str, dict]:
        """Each class kernel's connection file (in its student's runtime directory)."""
        out = {}
        for seat in seats:
            runtime = seat.student.home / ".local/share/jupyter/runtime"
            assert runtime.stat().st_uid == seat.student.uid, runtime
            assert runtime.stat().st_mode & 0o077 == 0, oct(runtime.stat().st_mode)
            out[seat.student.name] = json.loads(
                (runtime / f"kernel-{seat.kernel_id}.json").read_text())
        return out

    async def go():
        from hubclass import start_servers, stop_kernels

        await start_servers(seats)
        run = await run_class(seats, "rootfs",
                              lambda s: notebook("rootfs", s, neighbour[s.name]), stop=False)
        files = kernel_files()   # while the kernels are up
        await stop_kernels(seats)
        return run, files

    start = time.monotonic()
    run, files = asyncio.run(go())
    took = time.monotonic() - start
    assert run.failures == [], run.failures   # every cell of every student replied
    # every kernel on Unix sockets in its student's private runtime directory: no
    # classmate can subscribe to its IOPub and read its cells, as on a TCP port
    for name, info in files.items():
        assert info["transport"] == "ipc" and info["ip"].startswith("/home/"), (name, info)
    assert len(run.latencies()) == 20 * 7
    for s in students:
        got = {name: by[s.name] for name, by in run.ran.items()}
        other = neighbour[s.name]
        assert got["hello"].stdout == f"{s.name}: uid 0 in the cell\n", got["hello"]
        assert got["work"].stdout == "5000\n", got["work"]
        # its own PID namespace: init, the shell, sleep, ls, grep; none of 19 classmates'
        assert int(got["processes"].stdout) <= 6, got["processes"]
        assert got["own file"].stdout == s.secret + "\n", got["own file"]
        for key in ("other's file", "other's file, bound"):
            ran = got[key]
            assert ran.status == "error" and other.secret not in ran.stdout, (key, ran)
            assert "Permission denied" in ran.stderr + ran.evalue, (key, ran)
        assert got["view"].status == "ok", got["view"]
    summary = run.summary()
    print(f"class of 20: {took:.0f} s in all, cells p50 {summary['p50_ms']:.0f} ms, "
          f"p95 {summary['p95_ms']:.0f} ms, {summary['pss_mb_per_student']:.0f} MB "
          "(PSS) per student")


def _cgroup(controller: str, name: str) -> Path:
    return Path("/sys/fs/cgroup") / controller / CGROUP / name


def _count(path: Path, key: str) -> int:
    """A counter of a cgroup v1 file of `key value` lines."""
    for line in path.read_text().splitlines():
        if line.split()[0] == key:
            return int(line.split()[1])
    return 0


def test_one_students_cells_are_bounded_by_the_students_cgroup(hub, students):
    """rkstudent3's kernel and cells live in the student's cgroups; a memory hog and a fork
    bomb there stop at the student's limits, busy loops run under its CPU quota, while
    rkstudent4's cells run."""
    greedy, neighbour = Seat(hub, students[2]), Seat(hub, students[3])
    name = greedy.student.name

    async def go():
        from hubclass import start_servers

        await start_servers([greedy, neighbour])
        await asyncio.gather(greedy.start_kernel("rootfs"), neighbour.start_kernel("rootfs"))
        helper = next(pid for pid, uid, comm in processes_of({greedy.student.uid})
                      if comm == "rootfs-helper")
        cgroups = Path(f"/proc/{helper}/cgroup").read_text()
        hog = "%timeout 60\nhead -c 3G /dev/zero | tail > /dev/null"
        bomb = "%limit pids=none\n%timeout 10\nbomb() { bomb | bomb & }; bomb; wait; sleep 60"
        burn = "%timeout 4\nwhile :; do :; done & while :; do :; done"
        out = {}
        for key, code in (("hog", hog), ("bomb", bomb), ("burn", burn)):
            greedy_cell = asyncio.ensure_future(greedy.run(code, timeout=120))
            beside = []
            while not greedy_cell.done():
                beside.append(await neighbour.run("echo beside", timeout=60))
            out[key] = (await greedy_cell, beside)
        out["after"] = await greedy.run("echo alive")
        await asyncio.gather(greedy.stop_kernel(), neighbour.stop_kernel())
        return cgroups, out

    cgroups, out = asyncio.run(go())
    lines = {ln.split(":")[1]: ln.split(":")[2] for ln in cgroups.splitlines()}
    for controller in ("memory", "pids", "cpu"):   # the kernel's helper is the student's
        assert any(controller in k.split(",") and v == f"/{CGROUP}/{name}"
                   for k, v in lines.items()), cgroups
    assert _cgroup("memory", name).joinpath("memory.limit_in_bytes").read_text().strip() == \
        str(1 << 30)
    # the hog: killed by the OOM killer within the student's memory, the kernel lives on
    ran, beside = out["hog"]
    assert ran.status == "error", ran
    assert _count(_cgroup("memory", name) / "memory.oom_control", "oom_kill") >= 1
    # the bomb: held at the student's 400 tasks (the cell's own limit lifted)
    assert _count(_cgroup("pids", name) / "pids.events", "max") >= 1, out["bomb"][0]
    # the busy loops ran under the student's CPU quota (one CPU; whether they reached it
    # and were throttled depends on what else this shared machine runs)
    cpu = _cgroup("cpu", name)
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "100000"
    assert _count(cpu / "cpu.stat", "nr_periods") >= 1
    # the neighbour's cells replied all along, and the greedy kernel still answers
    for key in ("hog", "bomb", "burn"):
        ran, beside = out[key]
        assert beside and all(r.status == "ok" and r.stdout == "beside\n" for r in beside), key
    assert out["after"].status == "ok" and out["after"].stdout == "alive\n", out["after"]


def test_when_the_hub_stops_nothing_of_any_student_is_left(hub, students):
    uids = {s.uid for s in students}
    assert processes_of(uids), "the class's servers are running before the hub stops"
    hub.stop()
    deadline = time.monotonic() + 30
    while processes_of(uids) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_of(uids) == [], hub.tail(3000)
    for s in students:
        for controller in ("memory", "pids", "cpu"):
            assert not _cgroup(controller, s.name).exists(), (controller, s.name)
    for controller in ("memory", "pids", "cpu"):   # the test's parent cgroups, now empty
        _cgroup(controller, "").rmdir()
