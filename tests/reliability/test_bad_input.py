"""Bad input: fuzzed header lines on a live kernel, malformed Jupyter messages (the parser
alone is fuzzed with the unit tests: tests/unit/test_cell_frontdoor.py)."""

from __future__ import annotations

import os
import time

import pytest
from cellfuzz import MAGIC_NAMES, WORDS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rkutil import KernelDriver, alive

# -- the live kernel ----------------------------------------------------------------------
SAFE_NAME = st.sampled_from([n for n in MAGIC_NAMES if n not in ("propagation", "image")]
                            + ["propagation", "image", "nosuch"])


def _live_line(name: str, args: list[str]) -> str:
    if name == "propagation":      # shared + %root none + %mount would mount on the host
        args = [a for a in args if a != "shared"] or ["slave"]
    if name == "image":            # a builder name (debian) would start a long build
        args = ["fz-" + a for a in args]
    return "%" + name + " " + " ".join(args)


LIVE_LINE = st.builds(_live_line, SAFE_NAME, st.lists(WORDS, max_size=3))
# What a reply may say. Not InternalError (the kernel's own failure) nor SandboxError.
ERRORS = {"HeaderError", "ContainerError", "ImageError", "LimitExceeded", "ExitStatus",
          "Timeout"}
REPLY_SECONDS = 30   # "within seconds", with room for a loaded 2-core machine


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(LIVE_LINE, min_size=1, max_size=3))
def test_live_kernel_answers_every_header_and_stays_alive(rk, lines):
    res = rk.run("\n".join(lines) + "\necho ran", timeout=60)
    assert res.elapsed < REPLY_SECONDS, res.reply
    if res.ok:
        assert "ran" in res.stdout
    else:
        assert res.reply["ename"] in ERRORS, res.reply
        if res.reply["ename"] == "HeaderError":
            assert res.reply["evalue"].startswith("line "), res.reply
        assert res.reply["evalue"].strip()
    assert rk.ok("echo alive").stdout == "alive\n"


C_FLAGS = st.sampled_from([
    "-O2", "-Wall", "-std=c99", "-DX=1", "-D'X", '-DX="a', "'", '"', "\\", "\x00", "\x1b",
    "-c", "-E", "-S", "-M", "-x", "c", "-nonsense", "-v", "-o", "-ofile", "--output=x", "-lm",
    "-static", "-g", "-", "--", "-Werror", "-DMAIN=main",
])


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(C_FLAGS, max_size=4))
def test_live_c_cells_with_any_flags_get_a_reply(rk, flags):
    res = rk.run("%%c " + " ".join(flags) + "\nint main(void) { return 0; }", timeout=60)
    assert res.elapsed < REPLY_SECONDS, res.reply
    assert res.ok or res.reply["ename"] in ERRORS | {"CompileError"}, res.reply
    assert res.ok or res.reply["evalue"].strip()
    assert rk.ok("echo alive").stdout == "alive\n"


@pytest.fixture(scope="module")
def locked_rk():
    """A locked kernel (no host-access line): any text may be sent to it as a cell."""
    k = KernelDriver(env={**os.environ, "ROOTFS_KERNEL_HOST_ACCESS": "0"})
    k.ok("true")
    yield k
    k.shutdown()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=120))
def test_live_any_text_gets_a_reply_in_seconds(locked_rk, text):
    res = locked_rk.run("%timeout 10\n" + text, timeout=60)
    assert res.elapsed < REPLY_SECONDS, res.reply
    assert res.ok or res.reply["ename"] in ERRORS, res.reply
    if "\x00" in text:   # refused before anything runs (an earlier bad line may come first)
        assert res.reply["ename"] == "HeaderError" and res.stdout == "", res.reply
    assert locked_rk.ok("echo alive").stdout == "alive\n"


def test_script_larger_than_one_argument_runs(rk):
    """A cell's script larger than MAX_ARG_STRLEN (128 KiB) runs (the shell reads it from
    a pipe, %shell's program as its script file); only a cell whose own mount covers
    where the shell starts (/dev's own directory) is `-c`'s argument, and says why it
    cannot."""
    res = rk.run(": " + "x" * 200_000 + "\necho big", timeout=60)
    assert res.ok and res.stdout == "big\n", res.reply
    res = rk.run("%shell /bin/sh\n: " + "x" * 200_000 + "\necho big", timeout=60)
    assert res.ok and res.stdout == "big\n", res.reply
    res = rk.run("%shell /bin/dash\n: " + "x" * 200_000 + "\necho big", timeout=60)
    assert res.ok and res.stdout == "big\n", res.reply
    res = rk.run("%mount tmpfs /dev\n: " + "x" * 200_000 + "\necho big", timeout=60)
    assert not res.ok and "too long for `/bin/sh -c`" in res.stderr, res.reply
    assert rk.ok("echo alive").stdout == "alive\n"


# -- malformed Jupyter messages -----------------------------------------------------------
def _send_raw(k, msg_type: str, content, wait: float = 3.0):
    """Send a message on the shell socket; return its reply, or None if it was ignored."""
    msg = k.kc.session.msg(msg_type, content=content)
    k.kc.shell_channel.send(msg)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            reply = k.kc.get_shell_msg(timeout=max(0.05, deadline - time.monotonic()))
        except Exception:  # noqa: BLE001 - queue.Empty: nothing yet
            continue
        if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            return reply
    return None


def _still_answers(k) -> None:
    """`echo alive` runs. ipykernel aborts requests queued just after an error reply
    (stop_on_error), so an `aborted` status is retried, not taken as a dead kernel."""
    for _ in range(3):
        res = k.run("echo alive", timeout=60)
        if res.reply.get("status") != "aborted":
            break
        time.sleep(0.5)
    assert res.ok and res.stdout == "alive\n", res.reply


MALFORMED = [
    ("execute_request", {}),
    ("execute_request", {"code": 42}),
    ("execute_request", {"code": None, "silent": "yes"}),
    ("execute_request", {"code": ["echo", "x"]}),
    ("execute_request", {"code": "echo x", "silent": False, "unknown": {"deep": [1, 2]},
                         "store_history": "maybe", "user_expressions": "nope"}),
    ("execute_request", {"code": "echo \x00 x"}),
    ("complete_request", {"code": 5, "cursor_pos": "x"}),
    ("complete_request", {"code": "%mou", "cursor_pos": 10**9}),
    ("complete_request", {"code": "%image ", "cursor_pos": -5}),
    ("inspect_request", {"code": None}),
    ("is_complete_request", {"code": {"a": 1}}),
    ("history_request", {"hist_access_type": 3}),
    ("comm_msg", {"comm_id": None, "data": None}),
    ("comm_open", {"target_name": "nosuch", "comm_id": "x", "data": {}}),
    ("comm_close", {}),
    ("no_such_request", {"x": 1}),
    ("kernel_info_request", {"surprise": True}),
]


@pytest.mark.parametrize("msg_type,content", MALFORMED,
                         ids=[f"{m}-{i}" for i, (m, _) in enumerate(MALFORMED)])
def test_malformed_message_is_answered_or_ignored(rk, msg_type, content):
    reply = _send_raw(rk, msg_type, content, wait=2.0)
    if reply is not None and msg_type == "execute_request":
        assert reply["content"]["status"] in ("ok", "error")
    assert alive(rk.pid)
    _still_answers(rk)


def test_50_mb_code_string_gets_an_error_and_the_kernel_lives(rk):
    reply = _send_raw(rk, "execute_request", {"code": "#" + "x" * (50 << 20) + "\necho hi",
                                              "silent": False}, wait=120)
    assert reply is not None and reply["content"]["status"] in ("ok", "error")
    assert alive(rk.pid)
    _still_answers(rk)
    assert os.path.exists(f"/proc/{rk.pid}")
