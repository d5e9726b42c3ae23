"""Session (session.py) on its own: parse -> plan, what carries from cell to cell, and how a
run's result becomes a failure, with a sandbox client that has no helper behind it."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path

import pytest

from rootfs_kernel import cell, settings
from rootfs_kernel.images import ImageStore
from rootfs_kernel.images.store import BuildContext, BuildOutput
from rootfs_kernel.sandbox.client import CellRun, SandboxClient
from rootfs_kernel.sandbox.ops import Layer
from rootfs_kernel.sandbox.plan import Places, script_head
from rootfs_kernel.session import Session


class NoHelper(SandboxClient):
    """The sandbox client as Session uses it, with no helper started: run() keeps the plan
    it is given and answers with the next CellRun of `runs` (status 0 when none is left)."""

    def __init__(self, *runs: CellRun, base: str = "/run/rootfs-kernel-unit",
                 uppers: list[Path] = ()) -> None:
        super().__init__(prepare=False)
        self._places = Places.under(str(base))   # as if the helper said ready
        self.plans: list = []
        self.runs = list(runs)
        self.uppers = list(uppers)   # what the cells asked for with upper=True wrote
        self.dropped: list[str] = []

    async def run(self, plan, on_stdout, on_stderr, upper: bool = False, **kwargs) -> CellRun:
        self.plans.append(plan)
        run = self.runs.pop(0) if self.runs else CellRun(status=0)
        if upper and self.uppers:
            run.upper = os.open(self.uppers.pop(0), os.O_RDONLY | os.O_DIRECTORY)
        return run

    def drop(self, what: str) -> None:
        self.dropped.append(what)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ImageStore:
    store = ImageStore(root=tmp_path_factory.mktemp("store"))
    store.get("minimal")   # built once, offline, from the host's programs

    def one_file(ctx: BuildContext) -> BuildOutput:
        root = ctx.new_layer_dir()
        (root / "mine").write_text("mine\n")
        return BuildOutput([ctx.add_layer(root)], {}, "test")

    store.build("mine", one_file)
    return store


def session(store: ImageStore, *runs: CellRun, base: str = "/run/rootfs-kernel-unit",
            uppers: list[Path] = (), **kwargs) -> tuple[Session, NoHelper]:
    sandbox = NoHelper(*runs, base=base, uppers=uppers)
    return Session(store=store, sandbox=sandbox, **kwargs), sandbox


def an_upper(where: Path, **files: bytes) -> Path:
    """A directory standing for a cell's upper layer, with these files."""
    where.mkdir()
    for name, data in files.items():
        (where / name).write_bytes(data)
    return where


def execute(s: Session, code: str):
    return asyncio.run(s.execute(code, lambda _b: None, lambda _b: None))


def test_a_header_error_fails_the_cell_before_the_sandbox_sees_it(store):
    s, sandbox = session(store)
    out = execute(s, "%mount tmpfs\necho never")
    assert out.error.name == "HeaderError" and isinstance(out.error.exception, cell.HeaderError)
    assert out.error.exception.lineno == 1 and out.run is None
    assert sandbox.plans == []


def test_the_plan_carries_the_image_the_script_and_every_earlier_env_line(store):
    s, sandbox = session(store)
    assert execute(s, "%env GREETING=hello").error is None    # env only: nothing runs
    assert sandbox.plans == []
    assert execute(s, "%env OTHER=1\necho $GREETING").error is None
    (plan,) = sandbox.plans
    # read by the shell from its pipe, line 2 of the cell
    assert plan.script == script_head("/", plan.env, 2) + "echo $GREETING"
    assert plan.env["GREETING"] == "hello" and plan.env["OTHER"] == "1"
    assert plan.env["PATH"] == cell.DEFAULT_PATH                  # the image's PATH
    # The overlay's lower layers, top first, are the image's (through an idmapped mount
    # of each when the cell's root is an unprivileged range).
    attached = {op.target: op.source for op in plan.ops if isinstance(op, Layer)}
    assert [Path(attached.get(p, p)) for p in plan.layers.lowers] == \
        list(reversed(store.load("minimal").layers))


def test_keep_reads_the_kept_layer_next_and_a_cell_without_it_drops_it(store, tmp_path):
    upper = an_upper(tmp_path / "upper", kept=b"x")
    s, sandbox = session(store, base=str(tmp_path / "helper"), uppers=[upper])
    assert execute(s, "%keep\ntouch /kept").error is None
    execute(s, "ls /kept")
    execute(s, "true")
    first, second, third = sandbox.plans
    kept = sandbox.places.kept
    # Every cell writes on its own tmpfs; the kernel merged the first one's changes.
    assert first.layers.upper == second.layers.upper == f"{sandbox.places.scratch}/upper"
    assert kept not in first.layers.lowers and (Path(kept) / "kept").read_bytes() == b"x"
    assert second.layers.lowers[0] == kept             # the kept changes, on top
    assert kept not in third.layers.lowers
    assert sandbox.dropped == ["keep"] and s.keep_image is None and s.kept_size == 0


def test_keep_past_the_cells_disk_bound_keeps_nothing_and_says_so(store, tmp_path):
    uppers = [an_upper(tmp_path / "u1", a=b"a" * (600 << 10)),
              an_upper(tmp_path / "u2", b=b"b" * (600 << 10))]
    s, sandbox = session(store, base=str(tmp_path / "helper"), uppers=uppers)
    assert execute(s, "%limit disk=1m\n%keep\ntrue").error is None
    size = s.kept_size
    assert 600 << 10 < size < 700 << 10
    out = execute(s, "%limit disk=1m\n%keep\ntrue")
    assert out.error.name == "LimitExceeded"
    assert out.error.message.startswith("the cell's writable layer is full (%limit disk=1 "
                                        "MiB): with this cell's changes, what %keep keeps")
    assert "(what earlier cells kept still is)" in out.error.message
    assert s.keep_image == "minimal" and s.kept_size == size
    assert sorted(os.listdir(sandbox.places.kept)) == ["a"]


def test_export_to_an_existing_image_needs_replace_before_anything_runs(store):
    s, sandbox = session(store)
    out = execute(s, "%export mine\ntrue")
    assert out.error.name == "HeaderError" and out.error.exception.lineno == 1
    assert "exists already" in out.error.message and "--replace" in out.error.message
    assert sandbox.plans == []


def test_a_bind_of_a_missing_host_path_names_its_line(store, tmp_path):
    s, sandbox = session(store)
    out = execute(s, f"%timeout 5\n%bind {tmp_path}/missing /mnt\ntrue")
    assert out.error.name == "HeaderError" and out.error.exception.lineno == 2
    assert sandbox.plans == []


@pytest.mark.parametrize(("run", "name"), [
    (CellRun(status=3), "ExitStatus"),
    (CellRun(status=137, signal=9, timed_out=True), "Timeout"),
    (CellRun(status=137, signal=9, limit="the memory limit (32 MiB) ended 1 process(es)"),
     "LimitExceeded"),
    (CellRun(status=130, interrupted=True), "Interrupted"),
    (CellRun(status=125, error="mount of tmpfs on /tmp: Operation not permitted"),
     "ContainerError"),
    (CellRun(status=0), None),
])
def test_how_a_run_ends_names_the_failure(store, run, name):
    s, _ = session(store, run)
    out = execute(s, "%timeout 5\ntrue")
    assert (out.error.name if out.error else None) == name
    assert out.status == run.status


def test_a_locked_session_refuses_host_access_lines(store):
    s, sandbox = session(store, host_access=False)
    out = execute(s, "%%host\nid")
    assert out.error.name == "HeaderError" and "locked" in out.error.message
    assert sandbox.plans == []


def test_the_output_budget_is_the_kernels_not_the_containers(store):
    s, sandbox = session(store, default_limits=settings.BY_NAME["default_limits"].parse(
        "output=1m"))
    assert s.output_budget("true") == 1 << 20
    assert s.output_budget("%limit output=2k\ntrue") == 2048
    assert s.output_budget("%limit output=none\ntrue") is None
    assert s.output_budget("%mount\ntrue") == 1 << 20     # a wrong header: the default
    assert execute(s, "%limit output=2k\ntrue").error is None
    # The container's plan is the same as without the line: it bounds nothing in there
    # (the script's text differs by a newline: the shell counts the header's line).
    assert execute(s, "true").error is None
    with_line, without = sandbox.plans
    assert "output" not in with_line.limits
    assert replace(with_line, script=None) == replace(without, script=None)
    assert with_line.script == script_head("/", with_line.env, 2) + "true"


# -- the caches: a cell run again reuses its parse and its plan, never a stale one ----------


def _version(text: str):
    def build(ctx: BuildContext) -> BuildOutput:
        root = ctx.new_layer_dir()
        (root / "version").write_text(text)
        return BuildOutput([ctx.add_layer(root)], {}, "test")
    return build


def test_a_cell_run_again_after_its_image_was_made_again_gets_the_new_image(store):
    """The plan cache keys on the image's stamp: the same text after the image was made
    again (an export with --replace, an import, another kernel's) is planned anew."""
    store.build("again", _version("one"), replace=True)
    s, sandbox = session(store)
    execute(s, "%image again\ncat /version")
    store.build("again", _version("two"), replace=True)
    execute(s, "%image again\ncat /version")
    first, second = (_image_layers(p) for p in sandbox.plans)
    assert second == {str(store.load("again").layers[0])} and first != second


def _image_layers(plan) -> set[str]:
    """The image's layer directories a plan stacks (idmapped, in root mode)."""
    return {op.source for op in plan.ops if isinstance(op, Layer)} or set(plan.layers.lowers)


def test_a_cell_run_again_after_an_env_line_gets_the_new_value(store):
    s, sandbox = session(store)
    for value in ("1", "2"):
        execute(s, f"%env X={value}")
        execute(s, "echo $X")
    assert [p.env["X"] for p in sandbox.plans] == ["1", "2"]


def test_a_cell_run_again_in_another_working_directory_starts_there(store, tmp_path):
    """A %root none cell starts in the kernel's working directory (the Python API's
    caller may change it between cells)."""
    s, sandbox = session(store)
    here = os.getcwd()
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            os.chdir(tmp_path / name)
            execute(s, "%root none\npwd")
    finally:
        os.chdir(here)
    assert [f"cd -P -- {tmp_path / n} " in p.script for p in sandbox.plans
            for n in "ab"] == [True, False, False, True]


def test_a_cell_run_again_after_the_helper_was_replaced_uses_the_new_ones_directories(store):
    """A helper that went away is replaced by one with directories of its own: a plan
    made for the old one would set the cell up where nothing is."""
    s, sandbox = session(store, base="/run/rootfs-kernel-unit/old")
    execute(s, "true")
    sandbox._places = Places.under("/run/rootfs-kernel-unit/new")
    execute(s, "true")
    old, new = sandbox.plans
    assert old.layers.upper.startswith("/run/rootfs-kernel-unit/old/")
    assert new.layers.upper.startswith("/run/rootfs-kernel-unit/new/")


def test_a_cell_run_again_after_a_keep_chain_ended_reads_no_kept_layer(store, tmp_path):
    upper = an_upper(tmp_path / "upper", f=b"x")
    s, sandbox = session(store, base=str(tmp_path / "helper"), uppers=[upper])
    execute(s, "%keep\ntouch /f")
    execute(s, "ls /f")   # reads the kept layer, and ends the chain
    execute(s, "ls /f")
    _, chained, after = sandbox.plans
    assert chained.layers.lowers[0] == sandbox.places.kept
    assert sandbox.places.kept not in after.layers.lowers


def test_a_cell_parsed_again_after_env_lines_grew_is_checked_against_them(store):
    """The parse cache keys on the earlier cells' %env values: the same %env line is
    refused once, with those, every variable together would pass what a program is
    handed (cell.py's ARG_MAX check)."""
    s, _ = session(store)
    big = "v" * (120 << 10)
    line = f"%env C={big}\ntrue"
    assert execute(s, line).error is None
    assert execute(s, "%env C=small").error is None
    for i in range(8):
        assert execute(s, f"%env A{i}={big}").error is None
    out = execute(s, line)
    assert out.error is not None and out.error.name == "HeaderError", out.error
