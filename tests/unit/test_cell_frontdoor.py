"""The parser as the front door: what no program can carry, the locked kernel's lines,
%env sizes, %export names and %%c flags are refused where the user's text enters; any
other text is a spec or a HeaderError naming its line (fuzzed)."""

from __future__ import annotations

import pytest
from cellfuzz import LINE
from hypothesis import given, settings
from hypothesis import strategies as st

from rootfs_kernel import cell
from rootfs_kernel.cell import HeaderError, parse

# -- characters no program can be handed ------------------------------------------------------
UNCARRIABLE = st.one_of(st.just("\x00"), st.characters(min_codepoint=0xD800, max_codepoint=0xDC7F))
HEADER_CONTROLS = st.one_of(UNCARRIABLE, st.sampled_from(
    [chr(c) for c in (*range(0x01, 0x09), *range(0x0B, 0x20), 0x7F)]))
PRINTABLE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E,
                                  exclude_characters="'\"\\"), max_size=12)
HEADER_TEMPLATES = ["%env A={}", "%mount tmpfs /mnt/{}", "%bind /tmp/{} /mnt", "%show ls /{}",
                    "%shell /bin/{}", "%image {}", "%export x{}", "%timeout {}",
                    "%limit pids={}", "%%c -D{}", "%root {}", "%unshare {}"]


def _line_of(err: HeaderError, code: str) -> str:
    return code.split("\n")[err.lineno - 1]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(HEADER_TEMPLATES), PRINTABLE, HEADER_CONTROLS, PRINTABLE,
       st.integers(0, 3))
def test_a_header_line_with_a_control_character_is_refused_at_that_line(
        template, before, bad, after, script_lines):
    line = template.format(before + bad + after)
    code = "\n".join([line] + ["echo ok"] * script_lines)
    with pytest.raises(HeaderError) as info:
        parse(code)
    err = info.value
    assert err.lineno == 1 and err.line == line
    assert "remove it" in err.problem
    column = line.index(bad) + 1
    assert f"at column {column}" in err.problem
    # The message never carries the character itself: it shows an escape.
    assert bad not in str(err) and ascii(bad)[1:-1] in str(err)


SCRIPT_LINE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E,
                                    exclude_characters="%"), max_size=12)


@settings(max_examples=400, deadline=None)
@given(st.lists(SCRIPT_LINE, min_size=1, max_size=6), UNCARRIABLE, st.data())
def test_a_script_with_nul_or_a_lone_surrogate_is_refused_naming_its_line(lines, bad, data):
    where = data.draw(st.integers(0, len(lines) - 1))
    lines = list(lines)
    lines[where] = lines[where] + bad
    code = "%env A=1\n" + "\n".join(lines)
    with pytest.raises(HeaderError) as info:
        parse(code)
    assert info.value.lineno == where + 2
    assert _line_of(info.value, code) == info.value.line
    assert bad not in str(info.value)


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
               max_size=60))
def test_a_script_of_any_other_text_is_kept_as_it_is(text):
    """Controls other than NUL (\\r, escape sequences, tabs) belong to scripts."""
    code = text if not text.lstrip().startswith("%") else "true\n" + text
    assert parse(code).script == code


@pytest.mark.parametrize("char", ["\x00", "\ud800", "\udbff", "\udc00", "\udc7f"])
def test_nul_and_surrogates_without_a_byte_form_are_refused_in_the_script(char):
    with pytest.raises(HeaderError, match="no program can be handed"):
        parse(f"echo a{char}b")


def test_surrogateescape_bytes_of_a_file_name_are_carried():
    # os.fsdecode of a non-UTF-8 name gives U+DC80-U+DCFF; the wire encodes them back.
    spec = parse("%bind /tmp/caf\udce9 /mnt\ncat /mnt/x\udcff")
    assert spec.mounts[0].source == "/tmp/caf\udce9" and spec.script == "cat /mnt/x\udcff"


def test_a_tab_still_separates_header_words():
    assert parse("%mount\ttmpfs\t/tmp\ntrue").mounts[0].target == "/tmp"


def test_an_env_value_with_nul_names_the_line_and_says_what_to_do():
    with pytest.raises(HeaderError) as info:
        parse("%root pivot\n%env SECRET=a\x00b\ntrue")
    assert info.value.lineno == 2
    assert str(info.value) == ("line 2: `%env SECRET=a\\x00b`: a NUL byte (\\x00) at column "
                               "14: no program can be handed one (it ends a C string); "
                               "remove it")


# -- %env sizes ---------------------------------------------------------------------------------
def test_an_env_value_over_128_kib_is_refused_at_its_own_line():
    value = "x" * (cell.MAX_ARG_STRLEN - len("BIG=") - 1)      # exactly fits with its NUL
    assert parse(f"%env BIG={value}\ntrue").env == (("BIG", value),)
    with pytest.raises(HeaderError) as info:
        parse(f"%keep\n%env BIG={value}x\ntrue")
    err = info.value
    assert err.lineno == 2 and "131073 bytes" in err.problem and "128 KiB" in err.problem
    assert "every later cell would fail" in err.problem
    assert len(str(err)) < 1000   # the line is shortened in the message


def test_env_counts_bytes_not_characters():
    value = "é" * 70_000      # 140,000 bytes in UTF-8
    with pytest.raises(HeaderError, match="128 KiB"):
        parse(f"%env E={value}\ntrue")


def test_the_environment_of_all_cells_together_stays_under_a_budget():
    chunk = "y" * 100_000
    earlier = {f"V{i}": chunk for i in range(10)}          # about 1,000,040 bytes
    assert parse("%env W=1\ntrue", env={"V0": chunk}).env == (("W", "1"),)
    with pytest.raises(HeaderError) as info:
        parse(f"%env A=1\n%env W={chunk}\ntrue", env=earlier)
    assert info.value.lineno == 2 and "ARG_MAX" in info.value.problem
    # Replacing a variable does not count it twice.
    assert parse(f"%env V0={chunk}\ntrue", env=earlier).env


# -- the locked kernel ------------------------------------------------------------------------
HOST_LINES = [
    ("%%host\nid", 1, "%%host"),
    ("%root none\nls", 1, "%root none"),
    ("%timeout 5\n%bind /etc /mnt ro\nls /mnt", 2, "%bind"),
    ("%propagation shared\ntrue", 1, "%propagation shared"),
    ("%show mounts\n%show ls /etc /root\ntrue", 2, "%show ls PATH HOST_PATH"),
    ("%image busybox\n%net host\nnc 127.0.0.1 8888", 2, "%net host"),
    ("%seccomp off\ntrue", 1, "%seccomp off"),
]


@pytest.mark.parametrize("code,lineno,which", HOST_LINES)
def test_a_locked_parser_refuses_each_host_access_line(code, lineno, which):
    parse(code)   # fine when host access is on
    with pytest.raises(HeaderError) as info:
        parse(code, host_access=False)
    assert info.value.lineno == lineno
    assert f"this kernel is locked (host access is off): {which} " in info.value.problem
    assert cell.HOST_ACCESS_LINES[which] in info.value.problem


@pytest.mark.parametrize("code", [
    "echo hi", "%root pivot\ntrue", "%root chroot\ntrue", "%propagation private\ntrue",
    "%propagation slave\ntrue", "%mount tmpfs /tmp\n%show mounts\n%show ns\ntrue",
    "%show changes\ntouch /x", "%show ls /etc\ntrue",   # the image, not the host
    "%%c\nint main(void){return 0;}", "%keep\n%export mine\ntrue", "%unshare net\ntrue",
    "%net none\ntrue", "%net user\napt-get update",   # the outside, not the host
    "%seccomp on\ntrue",
])
def test_a_locked_parser_runs_every_other_cell_unchanged(code):
    assert parse(code, host_access=False) == parse(code)


# -- %export ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", cell.BUILD_KINDS)
def test_export_to_a_built_in_name_needs_replace_and_says_how_to_name_another(name):
    with pytest.raises(HeaderError) as info:
        parse(f"%export {name}\ntrue")
    assert f"`%export my-{name}`" in info.value.problem
    assert f"`%export {name} --replace`" in info.value.problem
    spec = parse(f"%export {name} --replace\ntrue")
    assert spec.export == name and spec.export_replace


def test_export_replace_is_a_flag_of_its_own():
    assert parse("%export mine\ntrue").export_replace is False
    assert parse("%export mine --replace\ntrue").export_replace is True
    for bad in ("%export mine --force", "%export mine --replace x", "%export"):
        with pytest.raises(HeaderError, match="wrong number of arguments"):
            parse(bad + "\ntrue")


# -- %%c flags ----------------------------------------------------------------------------------
@pytest.mark.parametrize("flags,problem", [
    ("-D'X", "cannot split the gcc flags into words (No closing quotation)"),
    ('-DX="a', "cannot split the gcc flags"),
    ("-o /var/tmp/x", "-o: the kernel names the compiled program itself"),
    ("-O2 -o/tmp/x", "-o/tmp/x: the kernel names"),
    ("--output=/tmp/x", "--output=/tmp/x: the kernel names"),
])
def test_c_flags_that_cannot_work_are_refused_on_line_1(flags, problem):
    with pytest.raises(HeaderError) as info:
        parse(f"%%c {flags}\nint main(void){{return 0;}}")
    assert info.value.lineno == 1 and problem in info.value.problem


def test_c_flags_that_split_are_kept_as_written():
    assert parse("%%c -O2 -DNAME='\"x y\"' -lm\nint main(void){return 0;}").c_flags == \
        "-O2 -DNAME='\"x y\"' -lm"


def test_visible_escapes_controls_and_shortens():
    assert cell.visible("a\x1b[31mb\x00") == "a\\x1b[31mb\\x00"
    assert cell.visible("x" * 500).endswith("... (500 characters)")


# -- any header line, any text: accepted, or refused naming its line ----------------------
def _check(code: str) -> None:
    try:
        spec = cell.parse(code)
    except cell.HeaderError as err:
        lines = code.split("\n")
        assert 1 <= err.lineno <= len(lines), err
        assert str(err).startswith(f"line {err.lineno}: ")
        assert err.line == lines[err.lineno - 1]
        return
    assert isinstance(spec, cell.CellSpec)
    for m in spec.mounts:
        for path in (m.target, getattr(m, "source", "/")):
            assert path.startswith("/") and ".." not in path.split("/")
    for show in spec.show:
        for path in (show.path, show.host_path):
            assert path is None or ".." not in path.split("/")
    assert spec.timeout is None or 0 < spec.timeout <= 7 * 24 * 3600


@settings(max_examples=1500, deadline=None)
@given(st.lists(LINE, min_size=1, max_size=5), st.text(max_size=20))
def test_parse_accepts_or_names_the_line(lines, script):
    _check("\n".join(lines) + "\n" + script)


@settings(max_examples=1500, deadline=None)
@given(st.text(max_size=200))
def test_parse_of_any_text(text):
    _check(text)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["%%host", "%%c", "%%c -O2", "%%", "%%hostx"]), st.lists(LINE, max_size=3))
def test_parse_cell_magics(first, lines):
    _check("\n".join([first, *lines, "true"]))
