"""Every cell's seccomp filter (sandbox/seccomp.py): the committed header is what
libseccomp makes of the policy; the x86_64 filter, run here instruction by instruction
over every system call of each of its three ABIs, refuses exactly the policy's with
EPERM; the policy is Docker's default profile with each difference listed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rootfs_kernel import cell
from rootfs_kernel.sandbox import seccomp, wire
from rootfs_kernel.sandbox.plan import Context, Places, compile_plan, plan_for

DOCKER_PROFILE = Path("/var/cache/rootfs-kernel/docker-seccomp-default.json")
# What Docker gives a container by default (moby's oci/caps/defaults.go).
DOCKER_CAPS = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
               "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
               "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}
# Our ABI names -> the profile's.
DOCKER_ARCH = {"x86_64": "amd64", "x86": "x86", "x32": "x32"}
SECCOMP_RET_ALLOW = 0x7FFF0000


@pytest.fixture(scope="module")
def lib():
    try:
        return seccomp.libseccomp()
    except OSError as err:
        pytest.skip(f"libseccomp.so.2 is not installed ({err})")


def _committed_version() -> str:
    return re.search(r"with libseccomp (\S+);", seccomp.HEADER.read_text()).group(1)


def test_the_committed_header_is_what_libseccomp_makes_of_the_policy(lib):
    if seccomp.version(lib) != _committed_version():
        pytest.skip(f"libseccomp {seccomp.version(lib)} here, the header was made with "
                    f"{_committed_version()}: its BPF may differ in form")
    assert seccomp.HEADER.read_text() == seccomp.header(lib), \
        "run: python -m rootfs_kernel.sandbox.seccomp --write"


def test_every_denied_name_is_a_call_libseccomp_knows(lib):
    for name in seccomp.denied():
        assert lib.seccomp_syscall_resolve_name(name.encode()) != seccomp.NR_SCMP_ERROR, name
    assert not set(seccomp.denied()) & set(seccomp.ALLOWED)


# -- the x86_64 filter, run ---------------------------------------------------------------------
def _program(condition: str) -> list[tuple[int, int, int, int]]:
    text = seccomp.HEADER.read_text()
    block = text.split(f"if {condition}\n", 1)[1].split("};", 1)[0]
    return [(int(c, 16), int(jt), int(jf), int(k, 16)) for c, jt, jf, k in
            re.findall(r"\{0x([0-9a-f]+), (\d+), (\d+), 0x([0-9a-f]+)\}", block)]


def run_bpf(program: list[tuple[int, int, int, int]], nr: int, arch: int) -> int:
    """Classic BPF as the kernel runs a seccomp filter, over struct seccomp_data
    {int nr; u32 arch; u64 ip; u64 args[6]} (all but nr and arch zero)."""
    data = {0: nr & 0xFFFFFFFF, 4: arch}
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code == 0x20:                      # BPF_LD | BPF_W | BPF_ABS
            acc = data.get(k, 0)
        elif code == 0x06:                    # BPF_RET | BPF_K
            return k
        elif code == 0x05:                    # BPF_JMP | BPF_JA
            pc += k
        elif code == 0x54:                    # BPF_ALU | BPF_AND | BPF_K
            acc &= k
        elif code in (0x15, 0x25, 0x35, 0x45):   # JEQ, JGT, JGE, JSET (| BPF_K)
            taken = {0x15: acc == k, 0x25: acc > k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if taken else jf
        else:
            raise AssertionError(f"instruction 0x{code:02x} not expected from libseccomp")


@pytest.mark.parametrize("abi", ["x86_64", "x86", "x32"])
def test_the_x86_64_filter_refuses_the_policy_and_only_it_through_each_abi(lib, abi):
    program = _program(seccomp.TARGETS[0][0])
    # The i386 ABI (int $0x80, sysenter) has its own audit arch; x32's calls come as
    # x86_64's with bit 30 set in their number.
    arch = seccomp.ARCHES["x86" if abi == "x86" else "x86_64"]
    denied = set(seccomp.denied())
    known = seccomp.names(lib, abi)
    assert len(known) > 300
    for name, nr in known.items():
        want = seccomp.errno_action() if name in denied else SECCOMP_RET_ALLOW
        assert run_bpf(program, nr, arch) == want, (abi, name, nr)
    assert {n for n in known if n in denied} >= {"bpf", "keyctl", "perf_event_open",
                                                 "userfaultfd", "io_uring_setup"}


def test_an_abi_the_filter_does_not_know_is_refused_whole():
    program = _program(seccomp.TARGETS[0][0])
    for arch in ("aarch64", "arm", "s390x"):
        assert run_bpf(program, 0, seccomp.ARCHES[arch]) == seccomp.errno_action()


# -- against Docker's default profile -------------------------------------------------------------
def _docker_allowed(profile: dict, arch: str) -> set[str]:
    """What the profile lets a container with Docker's default capabilities call on
    `arch`, whatever the arguments (a rule with argument conditions allows only some)."""
    out: set[str] = set()
    for rule in profile["syscalls"]:
        inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
        if rule["action"] != "SCMP_ACT_ALLOW" or rule.get("args"):
            continue
        if inc.get("arches") and arch not in inc["arches"]:
            continue
        if exc.get("arches") and arch in exc["arches"]:
            continue
        if not set(inc.get("caps", ())) <= DOCKER_CAPS or set(exc.get("caps", ())) & DOCKER_CAPS:
            continue
        out.update(rule["names"])
    return out


@pytest.mark.parametrize("abi", ["x86_64", "x86", "x32"])
def test_the_policy_is_dockers_default_profile_with_each_difference_listed(lib, abi):
    if not DOCKER_PROFILE.exists():
        pytest.skip(f"{DOCKER_PROFILE} is missing: scripts/setup.sh fetches it")
    profile = json.loads(DOCKER_PROFILE.read_text())
    known = seccomp.names(lib, abi)
    allowed = _docker_allowed(profile, DOCKER_ARCH[abi])
    named = {n for rule in profile["syscalls"] for n in rule["names"]}
    # Calls newer than the profile (numbered, in x86_64's table, above every call it
    # names): Docker refuses them by default, runc answers ENOSYS so that the C library
    # falls back to an older call; allowed here (a denylist lets them through).
    table = seccomp.names(lib, "x86_64")
    newest = max(nr for name, nr in table.items() if name in named)
    newer = {name for name, nr in table.items() if nr > newest}
    docker_denied = {name for name in known if name not in allowed}
    ours = {name for name in seccomp.denied() if name in known}
    unexplained = {name for name in docker_denied - ours
                   if name not in seccomp.ALLOWED and name not in newer}
    assert unexplained == set(), "refused by Docker, allowed here without a reason"
    extra = ours - docker_denied - set(seccomp.DENIED_UNLIKE_DOCKER)
    assert extra == set(), "refused here, allowed by Docker, without a reason"
    # Each listed difference is one in this profile, or one with a newer moby profile.
    assert set(seccomp.ALLOWED) & known.keys() <= docker_denied | set(seccomp.ALLOWED)


# -- where the filter is asked for -----------------------------------------------------------------
PLACES = Places.under("/run/rk")


class Image:
    layers = ["/img/a"]
    env: list[str] = []
    workdir = None


def _plan(text: str, **ctx):
    context = Context(places=PLACES, rootless=False, uid=0, gid=0, cwd="/", **ctx)
    return plan_for(cell.parse(text), Image, context)


def _token(plan) -> str:
    tokens = wire.script_tokens(plan)
    return tokens[tokens.index("seccomp") + 1]


def test_every_container_and_the_compiler_get_the_filter_unless_the_cell_says_off():
    assert _plan("true").seccomp and _token(_plan("true")) == "1"
    assert _plan("%root none\ntrue").seccomp and _plan("%propagation shared\ntrue").seccomp
    assert not _plan("%seccomp off\ntrue").seccomp and _token(_plan("%seccomp off\ntrue")) == "0"
    assert not _plan("%%host\ntrue").seccomp   # the host itself: no container to filter
    ctx = Context(places=PLACES, rootless=False, uid=0, gid=0, cwd="/")
    assert compile_plan(ctx, "/run/rk/c/cell1.c", "", ["gcc"], {}, []).seccomp
