"""The cell language (cell.py) on its own: header lines -> CellSpec, sizes; no helper."""

from __future__ import annotations

import pytest

from rootfs_kernel.cell import (
    DEFAULT_IMAGE,
    MAGICS,
    Bind,
    CellSpec,
    HeaderError,
    Mount,
    Show,
    format_size,
    help_text,
    parse,
    parse_limits,
    parse_size,
)


@pytest.mark.parametrize(("n", "short", "fixed"), [
    (0, "0 B", "0 B"), (20, "20 B", "20 B"), (1024, "1 KiB", "1.0 KiB"),
    (123456, "121 KiB", "120.6 KiB"), (3 << 19, "1.5 MiB", "1.5 MiB"),
    (5 << 30, "5 GiB", "5.0 GiB")])
def test_sizes_are_written_in_binary_units_short_or_with_fixed_decimals(n, short, fixed):
    assert format_size(n) == short
    assert format_size(n, decimals=1) == fixed


@pytest.mark.parametrize("n", [512, 64 << 20, 3 << 29, 1 << 30])
def test_a_written_limit_reads_back(n):
    assert parse_size(format_size(n).replace(" ", "")) == n


# -- header lines -> CellSpec -----------------------------------------------------------------
def test_a_cell_without_header_lines_is_all_script_with_the_defaults():
    spec = parse("echo hi\n%not-a-header-once-the-script-began")
    assert spec == CellSpec(script="echo hi\n%not-a-header-once-the-script-began")
    assert (spec.image, spec.root, spec.propagation, spec.shell) == \
        (DEFAULT_IMAGE, "pivot", "private", "/bin/sh")


@pytest.mark.parametrize(("line", "expected"), [
    ("%image busybox", {"image": "busybox", "image_lineno": 1}),
    ("%image busybox --build", {"image": "busybox", "build": "busybox"}),
    ("%image tools --build busybox", {"image": "tools", "build": "busybox"}),
    ("%root chroot", {"root": "chroot"}),
    ("%mount tmpfs /tmp size=10m", {"mounts": (Mount("tmpfs", "/tmp", "size=10m", 1),)}),
    ("%mount proc /proc/", {"mounts": (Mount("proc", "/proc", "", 1),)}),
    ("%bind /etc /mnt/etc ro", {"mounts": (Bind("/etc", "/mnt/etc", True, 1),)}),
    ("%bind /srv /srv rw", {"mounts": (Bind("/srv", "/srv", False, 1),)}),
    ("%propagation slave", {"propagation": "slave"}),
    ("%unshare net,user", {"namespaces": frozenset({"mnt", "net", "user"})}),
    ("%net user", {"net": "user", "net_lineno": 1}),
    ("%net host", {"net": "host"}),
    ("%keep", {"keep": True}),
    ("%timeout 2.5", {"timeout": 2.5}),
    ("%env GREETING=hello world", {"env": (("GREETING", "hello world"),)}),
    ("%shell /bin/bash", {"shell": "/bin/bash"}),
    ("%show ls /etc", {"show": (Show("ls", "/etc", None),)}),
    ("%show ls /etc /srv/etc", {"show": (Show("ls", "/etc", "/srv/etc"),)}),
    ("%show tree", {"show": (Show("tree"),)}),
    ("%show tree /tmp/x", {"show": (Show("tree", "/tmp/x"),)}),
    ("%show tree /tmp vs a", {"show": (Show("tree", "/tmp", against="a"),)}),
    ("%export mine", {"export": "mine", "export_lineno": 1}),
    ("%export busybox --replace", {"export": "busybox", "export_replace": True}),
    ("%limit pids=40 memory=64m", {"limits": (("pids", 40), ("memory", 64 << 20))}),
    ("%limit memory=none", {"limits": (("memory", None),)}),
    ("%help", {"help": True}),
    ("%seccomp off", {"seccomp": False}),
    ("%seccomp on", {"seccomp": True}),
])
def test_each_header_line_sets_its_field(line, expected):
    spec = parse(f"{line}\necho done")
    for name, value in expected.items():
        assert getattr(spec, name) == value, name
    assert spec.script == "echo done" and spec.script_line == 2


def test_lines_add_up_in_order_and_a_later_limit_overrides():
    spec = parse("%mount tmpfs /a\n  %bind /etc /b\n%limit pids=10\n%limit pids=20 cpu=0.5\n:")
    assert [type(m).__name__ for m in spec.mounts] == ["Mount", "Bind"]
    assert [m.lineno for m in spec.mounts] == [1, 2]
    assert spec.limits == (("pids", 20), ("cpu", 0.5))


def test_cell_magics_on_the_first_line():
    assert parse("%%host\nid").host and parse("%%host\nid").script == "id"
    c = parse("%%c -O2 -DX=1\n%limit pids=9\nint main(void) { return 0; }")
    assert c.c_flags == "-O2 -DX=1" and c.limits == (("pids", 9),)
    assert c.script == "int main(void) { return 0; }"


@pytest.mark.parametrize(("code", "lineno", "problem"), [
    ("%mount tmpfs", 1, "wrong number of arguments (1 given)"),
    ("%keep\n%mount nfs /x", 2, "unknown filesystem type 'nfs'"),
    ("%root sideways", 1, "choose one of: pivot, chroot, none"),
    ("%unshare time", 1, "unknown namespace 'time'"),
    ("%mount tmpfs tmp", 1, "TARGET must be an absolute path"),
    ("%bind /etc /x maybe", 1, "the third word must be 'ro' or 'rw'"),
    ("%timeout 0", 1, "SECONDS must be between 0 and one week"),
    ("%env 1A=2", 1, "expected NAME=VALUE"),
    ("%image Big", 1, "is not an image name"),
    ("%image x --build gentoo", 1, "unknown image kind to build 'gentoo'"),
    ("%show ls", 1, "`%show ls` takes PATH"),
    ("%show ns /x", 1, "`%show ns` takes no arguments"),
    ("%limit pids=1", 1, "too small"),
    ("%seccomp maybe", 1, "unknown seccomp mode 'maybe'; choose one of: on, off"),
    ("%nosuch", 1, "unknown header line %nosuch"),
    ("%", 1, "a lone '%'"),
    ("%keep\n%%host", 2, "must be the first line"),
    ("%%host\n%keep", 2, "takes no header lines"),
    ("%root none\n%keep", 2, "`%root none` has no root filesystem"),
    ("%show changes\n%root none", 1, "reads the cell's overlay"),
    ("%shwo mounts", 1, "did you mean `%show`?"),
    ("%lable pivot", 1, "did you mean `%label`?"),
    ("%show changes vs pivot", 1, "`%show changes` has no `vs`"),
    ("%show mounts vs", 1, "`%show mounts vs NAME`"),
    ("%show mounts vs a b", 1, "`vs` ends the line"),
    ("%show ls /etc /srv vs a", 1, "drop HOST_PATH or `vs NAME`"),
    ("%show tree vs ../x", 1, "is not a label"),
    ("%show tree tmp", 1, "PATH"),
    ("%show tree /a /b", 1, "takes no arguments but PATH"),
    ("%label", 1, "wrong number of arguments (0 given)"),
    ("%net bridge", 1, "unknown network 'bridge'; choose one of: none, user, host"),
    ("%net host\n%unshare net,cgroup", 2, "drop one of them"),
])
def test_a_wrong_line_is_named_with_what_was_expected(code, lineno, problem):
    with pytest.raises(HeaderError) as info:
        parse(code + "\ntrue")
    err = info.value
    assert err.lineno == lineno and problem in err.problem, err
    assert str(err).startswith(f"line {lineno}: `{code.split(chr(10))[lineno - 1].strip()}`")


def test_a_wrong_number_of_words_shows_the_usage():
    with pytest.raises(HeaderError) as info:
        parse("%propagation\ntrue")
    assert info.value.usage == MAGICS["propagation"].usage
    assert "expected: %propagation private|slave|shared" in str(info.value)


def test_help_lists_every_header_line():
    text = help_text()
    for magic in MAGICS.values():
        assert magic.usage in text
    assert "%%host" in text and "%%c [GCC_FLAGS]" in text
    # ... and the command every cell's script has.
    assert "display FILE" in text and "SVG, HTML or Markdown" in text


def test_label_and_vs_name_an_earlier_cell():
    spec = parse("%label pivot\n%show mounts vs chroot\n%show ls /etc vs chroot\n"
                 "%show steps\ntrue")
    assert spec.label == "pivot"
    assert [(s.kind, s.path, s.against, s.lineno) for s in spec.show] == [
        ("mounts", None, "chroot", 2), ("ls", "/etc", "chroot", 3), ("steps", None, None, 4)]
    # Where a view's line is does not change what it is (plans are cached by views).
    assert parse("%show tree vs a\ntrue").show == parse("%keep\n%show tree vs a\ntrue").show
    # A typo far from every line gets no guess.
    with pytest.raises(HeaderError) as info:
        parse("%zzzzzz\ntrue")
    assert "did you mean" not in info.value.problem


def test_limits_parse_sizes_and_lift_defaults():
    assert parse_limits(["memory=1.5G", "disk=512MiB", "cpu=0.25", "pids=none"]) == (
        ("memory", 3 << 29), ("disk", 512 << 20), ("cpu", 0.25), ("pids", None))
    with pytest.raises(ValueError, match="expected pids=N"):
        parse_limits(["swap=1g"])
    with pytest.raises(ValueError, match="memory: '1q' is not a size"):
        parse_limits(["memory=1q"])


def test_the_output_budget_is_a_size_and_may_be_lifted():
    assert parse_limits(["output=16m", "output=none"]) == (("output", None),)
    assert parse_limits(["output=0"]) == (("output", 0),)
    with pytest.raises(ValueError, match="output: '1x' is not a size"):
        parse_limits(["output=1x"])
