"""The plan -> rootfs-init argv encoding (wire.py) and the init's report (report.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rootfs_kernel import cell
from rootfs_kernel.sandbox import report, wire
from rootfs_kernel.sandbox.plan import Places, container_plan, host_plan
from rootfs_kernel.sandbox.snapshots import OVERFLOW_ID, inside, parse_id_map

INIT_C = Path(wire.__file__).with_name("init.c")
PLACES = Places(scratch="/run/rk/cell", keep_upper="/run/rk/keep/upper",
                keep_work="/run/rk/keep/work", keep_active=False)


def plan_for(text: str, rootless: bool = False) -> dict:
    spec = cell.parse(text)
    if spec.host:
        return host_plan(spec, {"PATH": "/bin"}, "/home").to_json()
    plan = container_plan(spec, layers=["/img/a", "/img/b"], image_env=["A=1"],
                          image_workdir=None, user_env={}, places=PLACES, rootless=rootless,
                          uid=1000, gid=1000, host_cwd="/home").to_json()
    plan["host_mnt_ns"] = 4026531841  # the helper's to fill in (helper._complete)
    return plan


def decode(tokens: list[str]) -> tuple[dict[str, list[str]], list[list[str]], list[str]]:
    """A reading of the format as init.c's parse() does it, to check encode() against."""
    assert tokens[0] == wire.VERSION
    keys: dict[str, list[str]] = {}
    ops: list[list[str]] = []
    i = 1
    while tokens[i] != "argv":
        key, value = tokens[i], tokens[i + 1]
        if key in ("op", "sop"):
            n = len(wire.ARGS[value])
            ops.append([key, value, *tokens[i + 2:i + 2 + n]])
            i += 2 + n
        else:
            keys.setdefault(key, []).append(value)
            i += 2
    return keys, ops, tokens[i + 1:]


def test_arities_match_init_c():
    table = dict(re.findall(r'\{"(\w+)", (\d+)\}', INIT_C.read_text()))
    assert {k: int(v) for k, v in table.items()} == {k: len(v) for k, v in wire.ARGS.items()}


def test_every_operation_crosses_with_its_arguments_in_order():
    plan = plan_for("%mount tmpfs /tmp size=1m\n%bind /etc /mnt/etc ro\n%root chroot\n"
                    "%unshare uts\necho 'a b'\n")
    keys, ops, argv = decode(wire.encode(plan, parent=42))
    assert keys["parent"] == ["42"] and keys["root"] == [plan["root"]]
    assert keys["lock"] == [str(plan["script_namespaces"])] and keys["lock"] != ["0"]
    assert [o[1] for o in ops if o[0] == "op"] == [o["op"] for o in plan["ops"]]
    assert [o[1] for o in ops if o[0] == "sop"] == [o["op"] for o in plan["script_ops"]]
    bind = next(o for o in ops if o[1] == "bind" and o[2] == "/etc")
    assert bind[2:] == ["/etc", "/mnt/etc", "1", "1", "like-source", "0"]
    overlay = next(o for o in ops if o[1] == "mount" and o[4] == "overlay")
    assert "lowerdir=/img/b:/img/a" in overlay[6] and overlay[9] == ""
    assert argv == plan["argv"] and argv[-1] == "echo 'a b'\n"
    assert "A=1" in keys["env"] and keys["cwd"] == ["/"]


def test_values_with_spaces_newlines_and_equals_signs_are_single_tokens():
    plan = plan_for("%env X=a b\n%env Y=1=2\nprintf '%s\\n' \"$X\"\n")
    keys, _, argv = decode(wire.encode(plan, parent=1))
    assert "X=a b" in keys["env"] and "Y=1=2" in keys["env"]
    assert len(argv) == 3


def test_show_asks_for_what_the_snapshots_need():
    keys, _, _ = decode(wire.encode(plan_for("%show changes\n%show ns\ntrue"), parent=1))
    assert keys["nsids"] == ["1"]
    assert keys["snap"][0] == "/run/rk/cell/upper" and keys["snap"][1:] == ["/img/b", "/img/a"]
    keys, _, _ = decode(wire.encode(plan_for("true"), parent=1))
    assert keys["nsids"] == ["0"] and keys["snap"][0] == "/run/rk/cell/upper"
    keys, _, _ = decode(wire.encode(plan_for("%root none\ntrue"), parent=1))
    assert "snap" not in keys


def test_a_host_cell_carries_no_namespaces_or_operations():
    keys, ops, argv = decode(wire.encode(plan_for("%%host\nls"), parent=7))
    assert keys["host"] == ["1"] and "ns" not in keys and ops == []
    assert keys["cwd"] == ["/home"] and argv[-1] == "ls"


def test_limits_cross_as_cgroup_files_or_rlimits():
    plan = plan_for("true")
    plan["cgroup_procs"] = ["/sys/fs/cgroup/pids/x/cgroup.procs"]
    plan["rlimits"] = {"nproc": 64, "as": 1 << 30}
    keys, _, _ = decode(wire.encode(plan, parent=1))
    assert keys["cgroup"] == plan["cgroup_procs"]
    assert keys["nproc"] == ["64"] and keys["as"] == [str(1 << 30)]


def test_shared_propagation_needs_the_parent_mount_resolved_by_the_helper():
    plan = plan_for("%propagation shared\ntrue")
    with pytest.raises(ValueError, match="mount point"):
        wire.encode(plan, parent=1)
    for op in plan["ops"]:
        if op.get("private_parent") is True:
            op["private_parent"] = "/run"
    _, ops, _ = decode(wire.encode(plan, parent=1))
    assert next(o for o in ops if o[1] == "mount")[9] == "/run"


# -- report.py ------------------------------------------------------------------------------


def test_report_lines_merge_and_a_torn_line_is_dropped():
    data = b'{"init": 12}\n{"status": 0, "signal": null, "snapfds": [5]}\n{"stat'
    assert report.parse(data) == {"init": 12, "status": 0, "signal": None, "snapfds": [5]}
    assert report.parse(b"") == {}


def test_setup_errors_name_the_operation_and_the_header_line():
    plan = plan_for("%mount sysfs /mnt\ntrue", rootless=True)
    index = next(i for i, op in enumerate(plan["ops"]) if op.get("target") == "/mnt")
    text = report.describe_error(plan, {"kind": "errno", "index": index, "errno": 1})
    assert "container setup failed at" in text and "sysfs" in text
    assert "(header line 1)" in text and "Operation not permitted" in text
    # what an ordinary user's cell may really mount (sysfs and mqueue fail with EPERM)
    assert "sysfs is refused in a user namespace" in text and "mqueue" not in text


def test_other_setup_errors_say_what_to_do():
    plan = plan_for("%bind /no/such /mnt/x\ntrue")
    index = next(i for i, op in enumerate(plan["ops"]) if op.get("source") == "/no/such")
    assert report.describe_error(plan, {"kind": "bind-source", "index": index}) == \
        "bind source /no/such does not exist on the host"
    plan = plan_for("%mount tmpfs /a/b/c\ntrue")
    index = next(i for i, op in enumerate(plan["ops"]) if op.get("target") == "/a/b/c")
    text = report.describe_error(plan, {"kind": "dangling", "index": index, "depth": 2})
    assert text.startswith("/a/b/c: /a/b is a symlink") and "name a real directory" in text
    assert "rootfs-kernel doctor" in report.describe_error(plan, {"kind": "clone", "errno": 1})
    assert "host's mount namespace" in report.describe_error(plan, {"kind": "host-mnt-ns"})


def test_profile_names_each_operation():
    plan = plan_for("true")
    prof = report.profile(plan, [0.001] * len(plan["ops"]))
    assert prof[0] == ("propagation", "", 0.001) and len(prof) == len(plan["ops"])
    assert report.profile(plan, None) is None


def test_owners_map_through_the_user_namespace():
    rootless = parse_id_map("         0       1000          1\n")
    assert inside(1000, rootless) == 0 and inside(0, rootless) == OVERFLOW_ID
    root = parse_id_map("0 0 4294967295\n")
    assert inside(0, root) == 0 and inside(1000, root) == 1000


def test_a_container_plan_without_the_hosts_mount_namespace_is_refused():
    plan = plan_for("true")
    plan["host_mnt_ns"] = 0  # init.c could not tell the host's namespace from its own
    with pytest.raises(ValueError, match="mount namespace"):
        wire.encode(plan, parent=1)
