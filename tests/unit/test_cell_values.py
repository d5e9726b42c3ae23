"""Numbers and lengths a header line hands on to the system, fuzzed: every line is either a
HeaderError naming it or a spec whose values the system takes (cgroup files, setrlimit,
tmpfs sizes, mount(2) options, paths, rootfs-init's plan, one argv string each)."""

from __future__ import annotations

import math
import shlex
import subprocess

import pytest
from cellfuzz import ARG
from hypothesis import given, settings
from hypothesis import strategies as st

from rootfs_kernel import cell
from rootfs_kernel.cell import HeaderError, parse
from rootfs_kernel.ids import IdRange
from rootfs_kernel.sandbox import initbin, ops, wire
from rootfs_kernel.sandbox.plan import Context, Places, plan_for

PLACES = Places.under("/run/rk")
FACTS = wire.Launch(mnt_ns=4026531841)


class Image:
    layers = [f"/var/lib/rootfs-kernel/layers/sha256-{i:064x}/rootfs" for i in range(32)]
    env = ["A=1"]
    workdir = None


NUMBER = st.one_of(
    st.integers(-10**30, 10**30).map(str), st.floats(allow_nan=True).map(repr),
    st.sampled_from(["1e308", "1e309", "-1e309", "inf", "-inf", "nan", "NaN", "0", "-0",
                     "0.001", "0.01", "2", "8192", "8192.5", "4194304", "4194305", "9" * 400,
                     "1.5", "0x10", "1_000", " 1"]))
UNIT = st.sampled_from(["", "k", "m", "g", "t", "K", "M", "G", "T", "mib", "GiB", "b"])


def _check_limits(limits: dict) -> None:
    for key, value in limits.items():
        if value is None:
            continue
        if key == "pids":
            assert isinstance(value, int) and 2 <= value <= 4_194_304
        elif key == "cpu":
            assert math.isfinite(value) and 0.01 <= value <= 8192
        else:   # output, what the kernel shows of the cell, may be 0
            low = 0 if key == "output" else 1 << 20
            assert isinstance(value, int) and low <= value <= cell.MAX_SIZE


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(cell.LIMIT_KEYS), NUMBER, UNIT, st.integers(1, 3))
def test_a_limit_is_within_what_the_system_takes_or_a_header_error(key, number, unit, lineno):
    word = f"{key}={number}{unit if key in cell.SIZE_KEYS else ''}"
    code = "%env A=1\n" * (lineno - 1) + f"%limit {word}\ntrue"
    try:
        spec = parse(code)
    except HeaderError as err:
        assert err.lineno == lineno and err.problem and key in err.problem
        assert len(str(err)) < 1000
        return
    _check_limits(dict(spec.limits))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(cell.LIMIT_KEYS).flatmap(
    lambda k: st.tuples(st.just(k), NUMBER, UNIT)), min_size=1, max_size=4))
def test_kernel_wide_limits_go_through_the_same_ranges(words):
    text = [f"{k}={n}{u if k in cell.SIZE_KEYS else ''}" for k, n, u in words]
    try:
        limits = cell.parse_limits(text)
    except ValueError:
        return
    _check_limits(dict(limits))


PATH_PART = st.one_of(st.sampled_from(["a", "é", "容器", "x" * 255, "y" * 256, "..", "."]),
                      st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                                            exclude_characters="/'\"\\%"),
                              min_size=1, max_size=300))
PATH = st.lists(PATH_PART, min_size=1, max_size=30).map(lambda parts: "/" + "/".join(parts))
PATH_LINES = ["%mount tmpfs {}", "%mount proc {}", "%bind /tmp {}", "%bind {} /mnt",
              "%shell {}", "%show ls {}", "%show ls /etc {}"]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(PATH_LINES), PATH)
def test_a_path_is_one_linux_takes_or_a_header_error(template, path):
    line = template.format(shlex.quote(path))
    try:
        spec = parse(line + "\ntrue")
    except HeaderError as err:
        assert err.lineno == 1 and ("'..'" in err.problem or "bytes" in err.problem), err
        return
    for p in [*(m.target for m in spec.mounts), *(getattr(m, "source", "/") for m in
                                                 spec.mounts), spec.shell,
              *(s.path or "/" for s in spec.show), *(s.host_path or "/" for s in spec.show)]:
        data = p.encode("utf-8", "surrogateescape")
        assert len(data) < cell.PATH_MAX and all(len(n) <= cell.NAME_MAX
                                                 for n in data.split(b"/"))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 9000), st.sampled_from(["size=1m,", "", "mode=0755,nr_inodes="]))
def test_mount_options_fit_one_page_or_are_a_header_error(n, head):
    line = f"%mount tmpfs /mnt {head}{'1' * n}"
    try:
        spec = parse(line + "\ntrue")
    except HeaderError as err:
        assert err.lineno == 1 and "one page" in err.problem
        assert len((head + "1" * n).encode()) >= cell.MOUNT_OPTIONS_MAX
        return
    assert len(spec.mounts[0].options.encode()) < cell.MOUNT_OPTIONS_MAX


def _plan(lines: list[str], rootless: bool, env_values: int = 10):
    """A cell's plan with %env at its total budget and 32 image layers."""
    env = {f"V{i}": "v" * 100_000 for i in range(env_values)}
    ctx = Context(places=PLACES, rootless=rootless, uid=1000, gid=1000, cwd="/", env=env,
                  ids=None if rootless else IdRange())
    spec = parse("\n".join(lines) + "\n%unshare net\ntrue")
    return spec, plan_for(spec, Image, ctx)


LONG = "/" + "/".join(["p" * 250] * 16)[:4000]


@pytest.mark.parametrize("rootless", [False, True])
def test_the_largest_cell_the_parser_accepts_fits_rootfs_init(rootless):
    """Every %mount line a proc mount (with runc's masks) at the longest path, %env at its
    budget, 32 image layers: no more operations than rootfs-init takes, and it parses
    them all (it refused more than 256 with "did not understand its plan")."""
    lines = [f"%mount proc {LONG}{i:02d}" for i in range(cell.MAX_MOUNT_LINES)]
    spec, plan = _plan(lines, rootless)
    assert len(plan.ops) <= ops.MAX_OPS and len(plan.script_ops) <= ops.MAX_OPS
    done = subprocess.run([str(initbin.path()), "--dump"], capture_output=True, timeout=30,
                          input=wire.pack(wire.encode(plan, FACTS, parent=1)))
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == len(plan.ops) + len(plan.script_ops)


@settings(max_examples=300, deadline=None)
@given(st.lists(ARG, max_size=3), st.integers(0, 40))
def test_any_number_of_mount_lines_is_a_plan_that_fits_or_a_header_error(args, n):
    lines = [f"%mount proc /p{i}" for i in range(n)] + ["%limit " + " ".join(args)]
    try:
        spec = parse("\n".join(lines) + "\ntrue")
    except HeaderError as err:
        assert err.lineno == min(n + 1, cell.MAX_MOUNT_LINES + 1)
        return
    assert len(spec.mounts) <= cell.MAX_MOUNT_LINES
    _check_limits(dict(spec.limits))
    ctx = Context(places=PLACES, rootless=False, uid=0, gid=0, cwd="/", ids=IdRange())
    assert len(plan_for(spec, Image, ctx).ops) <= ops.MAX_OPS


def test_c_flags_are_bounded_by_the_compilers_command_line():
    flags = "-DX " * 16_000
    assert parse(f"%%c {flags}\nint main(){{}}").c_flags == flags.strip()
    with pytest.raises(HeaderError, match="64 KiB") as info:
        parse("%%c " + "-DX " * 16_000 + "-D" + "y" * 5_000 + "\nint main(){}")
    assert info.value.lineno == 1
