"""The plan -> rootfs-init argv encoding (wire.py), its C side, and the init's report."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from rootfs_kernel import cell
from rootfs_kernel.ids import IdRange
from rootfs_kernel.linux import OVERFLOW_ID
from rootfs_kernel.sandbox import initbin, ops, report, wire
from rootfs_kernel.sandbox.plan import Context, Places, Plan, plan_for
from rootfs_kernel.sandbox.prepared import setup_key
from rootfs_kernel.sandbox.snapshots import inside, parse_id_map

PLACES = Places.under("/run/rk")
FACTS = wire.Launch(mnt_ns=4026531841)  # the helper's to tell


class Image:
    layers = ["/img/a", "/img/b"]
    env = ["A=1"]
    workdir = None


def plan_of(text: str, rootless: bool = False) -> Plan:
    ctx = Context(places=PLACES, rootless=rootless, uid=1000, gid=1000, cwd="/home",
                  host_env={"PATH": "/bin"})
    return plan_for(cell.parse(text), Image, ctx)


def decode(tokens: list[str]) -> tuple[dict[str, list[str]], list[list[str]], list[str]]:
    """A reading of the format as init.c's parse() does it, to check encode() against."""
    assert tokens[0] == wire.VERSION
    keys: dict[str, list[str]] = {}
    found: list[list[str]] = []
    i = 1
    while tokens[i] != "argv":
        key = tokens[i]
        if key in ("op", "sop"):
            n = int(tokens[i + 2])
            assert n == len(ops.OPS[tokens[i + 1]].WIRE)
            found.append([key, tokens[i + 1], *tokens[i + 3:i + 3 + n]])
            i += 3 + n
        else:
            keys.setdefault(key, []).append(tokens[i + 1])
            i += 2
    return keys, found, tokens[i + 1:]


# -- the C side: rootfs-init parses what wire.py encodes ---------------------------------


def _example(cls: type[ops.Op], salt: int) -> ops.Op:
    """An instance whose every field has a value no other field has."""
    values = {}
    for n, (name, kind) in enumerate(zip(cls.WIRE, cls.KINDS, strict=True)):
        values[name] = {"str": f"{cls.KIND}.{name} \"quoted\" \\ {salt}",
                        "int": 1000 * salt + n, "bool": (n + salt) % 2 == 0}[kind]
    return cls(**values)


def _dump(tokens: list[str]) -> subprocess.CompletedProcess:
    """rootfs-init --dump reads a plan as the memfd holds it (wire.pack) on its stdin."""
    return subprocess.run([str(initbin.path()), "--dump"], input=wire.pack(tokens),
                          capture_output=True, timeout=30)


def test_every_operation_reaches_rootfs_init_field_by_field():
    """Each kind's fields, parsed by the binary into its struct and printed back from the
    struct's members by name: a field order that wire.py and the header did not agree
    on, or a table that pointed at the wrong member, shows here."""
    setup = tuple(_example(cls, salt) for salt, cls in enumerate(ops.OPS.values(), 1))
    script = tuple(_example(cls, salt) for salt, cls in enumerate(ops.OPS.values(), 50))
    plan = replace(plan_of("true"), ops=setup, script_ops=script)
    done = _dump(wire.encode(plan, FACTS, parent=1))
    assert done.returncode == 0, done.stderr
    got = [json.loads(line) for line in done.stdout.decode().splitlines()]
    want = [{"list": tag, "kind": op.KIND, "fields": {f: getattr(op, f) for f in op.WIRE}}
            for tag, group in (("op", setup), ("sop", script)) for op in group]
    assert got == want
    assert [list(g["fields"]) for g in got[:len(setup)]] == [list(c.WIRE)
                                                             for c in ops.OPS.values()]


def test_a_plan_of_another_schema_or_a_wrong_field_count_is_refused():
    plan = plan_of("%mount tmpfs /tmp\ntrue")
    tokens = wire.encode(plan, FACTS, parent=1)
    assert _dump(tokens).returncode == 0
    prepared = wire.encode(plan, FACTS, parent=1, warm=True)
    assert _dump(prepared).returncode == 0
    no_argv = tokens[:tokens.index("argv")]   # every plan names its program
    assert _dump(no_argv).returncode == ops.EXIT_SETUP_FAILED
    stale = ["rootfs-init-2/0000000000000000", *tokens[1:]]
    assert _dump(stale).returncode == ops.EXIT_SETUP_FAILED
    torn = subprocess.run([str(initbin.path()), "--dump"], input=wire.pack(tokens)[:-1],
                          capture_output=True, timeout=30)   # the last token unterminated
    assert torn.returncode == ops.EXIT_SETUP_FAILED
    i = tokens.index("mkdir")
    short = [*tokens[:i + 1], "1", tokens[i + 2], *tokens[i + 4:]]   # mkdir without mode
    assert _dump(short).returncode == ops.EXIT_SETUP_FAILED
    not_int = [*tokens[:i + 3], "0o755", *tokens[i + 4:]]
    assert _dump(not_int).returncode == ops.EXIT_SETUP_FAILED


def test_init_c_compiles_without_a_warning(tmp_path):
    initbin.compile_to(tmp_path / "rootfs-init")   # CFLAGS has -Wall -Wextra -Werror
    assert "-Werror" in initbin.CFLAGS and "-Wextra" in initbin.CFLAGS
    assert (tmp_path / "rootfs-init").is_file()


def test_the_header_is_generated_from_the_operations():
    text = initbin.header()
    assert f'#define RK_VERSION "{ops.VERSION}"' in text
    assert f"#define RK_EXIT_SETUP_FAILED {ops.EXIT_SETUP_FAILED}" in text
    kinds = [line.strip().rstrip(",") for line in
             text.split("enum op_kind {")[1].split("};")[0].split()]
    assert kinds == [f"OP_{k.upper()}" for k in ops.OPS] + ["OP_KINDS"]
    assert ("struct op_bind { const char *source; const char *target; int rec; "
            "int readonly; const char *create; int optional; int idmap; int program; "
            "int in_root; };") in text
    # A changed schema is a new version, so a binary built before it refuses the plan.
    assert ops.VERSION.startswith(ops.WIRE_VERSION + "/")
    # The namespaces whose ids %show ns reports: the names of ops.NAMESPACES, in order.
    names = text.split("rk_namespace_names[RK_NAMESPACES] = {")[1].split("};")[0]
    assert [n.strip(' "\n') for n in names.split(",")] == list(ops.NAMESPACES)


def test_a_namespace_flag_that_disagrees_with_sched_h_does_not_compile(tmp_path, monkeypatch):
    monkeypatch.setitem(ops.NAMESPACES, "net", ops.NAMESPACES["net"] << 1)
    with pytest.raises(initbin.InitMissing, match="ops.NAMESPACES: net"):
        initbin.compile_to(tmp_path / "rootfs-init")


# -- wire.py ---------------------------------------------------------------------------------


def test_the_wheel_build_needs_only_the_standard_library():
    """hatch_build.py imports initbin (ops, linux) and kernelspec from the source tree, in a
    build environment where none of the package's dependencies is installed."""
    code = ("import sys; import rootfs_kernel.sandbox.initbin, rootfs_kernel.kernelspec; "
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} - "
            "set(sys.stdlib_module_names) - {'rootfs_kernel', '__main__'})))")
    kernel_dir = str(Path(initbin.__file__).parents[2])
    done = subprocess.run([sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, "
                           f"{kernel_dir!r}); {code}"], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == [], done.stdout


def test_every_operation_crosses_with_its_fields_in_order():
    plan = plan_of("%mount tmpfs /tmp size=1m\n%bind /etc /mnt/etc ro\n%root chroot\n"
                   "%unshare uts\necho 'a b'\n")
    keys, found, argv = decode(wire.encode(plan, FACTS, parent=42))
    assert keys["parent"] == ["42"] and keys["root"] == [plan.root]
    assert keys["lock"] == [str(plan.script_namespaces)] and keys["lock"] != ["0"]
    assert keys["hostmnt"] == [str(FACTS.mnt_ns)]
    assert [o[1] for o in found if o[0] == "op"] == [op.KIND for op in plan.ops]
    assert [o[1] for o in found if o[0] == "sop"] == [op.KIND for op in plan.script_ops]
    bind = next(o for o in found if o[1] == "bind" and o[2] == "/etc")
    assert bind[2:] == ["/etc", "/mnt/etc", "1", "1", "like-source", "0", "0", "0", "1"]
    overlay = next(o for o in found if o[1] == "mount" and o[4] == "overlay")
    assert "lowerdir=/img/b:/img/a" in overlay[6]
    # The shell reads the cell from the script pipe as its script `cell`, which it finds
    # in the container's /dev: its text is not an argument.
    assert argv == list(plan.argv) == ["/bin/sh", "cell"]
    assert keys["script"] == ["1"] and plan.script.endswith("\n" * 4 + "echo 'a b'\n")
    assert "A=1" in keys["env"] and keys["cwd"] == ["/dev/.rootfs-kernel"]
    assert ["op", "symlink", "/proc/self/fd/3", "/dev/.rootfs-kernel/cell"] in found


def test_values_with_spaces_newlines_and_equals_signs_are_single_tokens():
    plan = plan_of("%env X=a b\n%env Y=1=2\n%shell /bin/bash\nprintf '%s\\n' \"$X\"\n")
    keys, _, argv = decode(wire.encode(plan, FACTS, parent=1))
    assert "X=a b" in keys["env"] and "Y=1=2" in keys["env"]
    # %shell's program reads the script pipe as its script file (the header's lines empty)
    assert argv == ["/bin/bash", "/proc/self/fd/3"] and keys["script"] == ["1"]
    assert plan.script == "\n\n\nprintf '%s\\n' \"$X\"\n"


def test_show_asks_for_what_the_snapshots_need():
    keys, _, _ = decode(wire.encode(plan_of("%show changes\n%show ns\ntrue"), FACTS, parent=1))
    assert keys["nsids"] == ["1"] and keys["look"] == ["0"]
    assert keys["snap"][0] == "/run/rk/cell/upper" and keys["snap"][1:] == ["/img/b", "/img/a"]
    keys, _, _ = decode(wire.encode(plan_of("true"), FACTS, parent=1))
    assert keys["nsids"] == ["0"] and keys["snap"][0] == "/run/rk/cell/upper"
    for kind in ("mounts", "ls /etc", "tree"):   # read through /proc/<init>: it enters
        keys, _, _ = decode(wire.encode(plan_of(f"%show {kind}\ntrue"), FACTS, parent=1))
        assert keys["look"] == ["1"], kind
    keys, _, _ = decode(wire.encode(plan_of("%root none\ntrue"), FACTS, parent=1))
    assert "snap" not in keys


def test_a_host_cell_carries_no_namespaces_or_operations():
    keys, found, argv = decode(wire.encode(plan_of("%%host\nls"), FACTS, parent=7))
    assert keys["host"] == ["1"] and "ns" not in keys and found == []
    assert keys["cwd"] == [PLACES.script_dir] and argv == ["/bin/sh", "cell"]


def test_limits_cross_as_cgroup_files_or_rlimits_the_helper_adds():
    plan = plan_of("%limit pids=64\ntrue")
    facts = wire.Launch(FACTS.mnt_ns, cgroup_procs=("/sys/fs/cgroup/pids/x/cgroup.procs",))
    keys, _, _ = decode(wire.encode(plan, facts, parent=1))
    assert keys["cgroup"] == list(facts.cgroup_procs) and "nproc" not in keys
    facts = wire.Launch(FACTS.mnt_ns, rlimits={"nproc": 64, "as": 1 << 30})
    keys, _, _ = decode(wire.encode(plan, facts, parent=1))
    assert keys["nproc"] == ["64"] and keys["as"] == [str(1 << 30)] and "cgroup" not in keys


def test_the_profile_is_asked_for_by_the_run_not_the_plan():
    plan = plan_of("true")
    keys, _, _ = decode(wire.encode(plan, FACTS, parent=1))
    assert keys["profile"] == ["0"]
    keys, _, _ = decode(wire.encode(plan, FACTS, parent=1, profile=True))
    assert keys["profile"] == ["1"]
    assert setup_key(plan) != setup_key(plan, profile=True)


def test_a_container_plan_without_the_hosts_mount_namespace_is_refused():
    with pytest.raises(ValueError, match="mount namespace"):
        wire.encode(plan_of("true"), wire.Launch(mnt_ns=0), parent=1)


# -- report.py ------------------------------------------------------------------------------


def test_report_lines_merge_and_a_torn_line_is_dropped():
    data = b'{"init": 12}\n{"status": 0, "signal": null, "snapfds": [5]}\n{"stat'
    assert report.parse(data) == {"init": 12, "status": 0, "signal": None, "snapfds": [5]}
    assert report.parse(b"") == {}


def test_setup_errors_name_the_operation_and_the_header_line():
    plan = plan_of("%net host\n%mount sysfs /mnt\ntrue", rootless=True)
    index = next(i for i, op in enumerate(plan.ops) if getattr(op, "target", "") == "/mnt")
    text = report.describe_error(plan, {"kind": "errno", "index": index, "errno": 1})
    assert "container setup failed at" in text and "sysfs" in text
    assert "(header line 2)" in text and "Operation not permitted" in text
    # what an ordinary user's cell may really mount (sysfs and mqueue fail with EPERM)
    assert "sysfs is refused in a user namespace" in text and "mqueue" not in text


def test_other_setup_errors_say_what_to_do():
    plan = plan_of("%bind /no/such /mnt/x\ntrue")
    index = next(i for i, op in enumerate(plan.ops) if getattr(op, "source", "") == "/no/such")
    assert report.describe_error(plan, {"kind": "bind-source", "index": index}) == \
        "bind source /no/such does not exist on the host"
    plan = plan_of("%mount tmpfs /a/b/c\ntrue")
    index = next(i for i, op in enumerate(plan.ops) if getattr(op, "target", "") == "/a/b/c")
    text = report.describe_error(plan, {"kind": "dangling", "index": index, "depth": 2})
    assert text.startswith("/a/b/c: /a/b is a symlink") and "name a real directory" in text
    assert "rootfs-kernel doctor" in report.describe_error(plan, {"kind": "clone", "errno": 1})
    assert "host's mount namespace" in report.describe_error(plan, {"kind": "host-mnt-ns"})


def test_profile_names_each_operation():
    plan = plan_of("true")
    prof = report.profile(plan, [0.001] * len(plan.ops))
    assert prof[0] == ("propagation", "", 0.001) and len(prof) == len(plan.ops)
    assert prof[-1] == ("pivot_root", plan.root, 0.001)
    assert report.profile(plan, None) is None


def test_owners_map_through_the_user_namespace():
    rootless = parse_id_map("         0       1000          1\n")
    assert inside(1000, rootless) == 0 and inside(0, rootless) == OVERFLOW_ID
    root = parse_id_map("0 0 4294967295\n")
    assert inside(0, root) == 0 and inside(1000, root) == 1000


def test_a_prepared_container_is_started_as_its_cell_would_be_and_takes_only_its_text():
    """A prepared container's rootfs-init gets the same arguments as one made when the
    cell comes (only named `warm`); the cell's text never is one of them: it goes down
    the script pipe, to the shell alone. So two cells that differ only in their text share
    a prepared container, and nothing a cell says can change how its container is made."""
    plan = plan_of("%env A=1\necho hi\n")
    cold, warm = wire.encode(plan, FACTS, parent=1), wire.encode(plan, FACTS, parent=1,
                                                                 warm=True)
    assert warm[:3] == cold[:3] and warm[3:5] == ["warm", "1"] and warm[5:] == cold[3:]
    other = plan_of("%env A=1\nlock 0 ns 0 host 1 argv /bin/sh -c 'cat /root/x'\n")
    assert setup_key(other) == setup_key(plan)
    assert not any("echo hi" in t or "cat /root" in t for t in cold + wire.encode(other, FACTS,
                                                                                  parent=1))
    # what does change the container: its environment, limits, working directory
    for changed in ("%env A=2\necho hi\n", "%limit pids=9\necho hi\n", "%root none\necho hi\n"):
        assert setup_key(plan_of(changed)) != setup_key(plan), changed
    run = _dump(cold)
    assert run.returncode == 0, run.stderr
    for bad in (["bogus", "1"], ["script"]):   # an unknown key, or a key without a value
        i = cold.index("argv")
        assert _dump([*cold[:i], *bad, *cold[i:]]).returncode == ops.EXIT_SETUP_FAILED, bad


def test_a_net_user_plan_reaches_rootfs_init():
    ctx = Context(places=PLACES, rootless=False, uid=0, gid=0, cwd="/",
                  ids=IdRange(first=300000, count=65536), pasta="/usr/bin/pasta")
    plan = plan_for(cell.parse("%net user\ntrue"), Image, ctx)
    tokens = wire.encode(plan, FACTS, parent=1)
    done = _dump(tokens)
    assert done.returncode == 0, done.stderr
    assert b'"kind": "unreachable"' in done.stdout
    # pasta's options must not swallow the plan's own keys: `pasta X` is one argument
    assert tokens.count("pasta") == len(plan.pasta) and "netmap" in tokens
