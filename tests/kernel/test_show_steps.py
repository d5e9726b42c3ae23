"""`%show steps` end to end, through jupyter_client: the real container's setup, step by
step, as its init recorded it (its calls, times and mount tables), for the default
container, a prepared one, `%root chroot`, the cell's network (lo, %net host, %net user)."""

from __future__ import annotations

import os

import jsonschema
import pytest

from rootfs_kernel.ids import IdRange
from rootfs_kernel.views import MIME_TYPE, WIDGET_MIME_TYPE
from rootfs_kernel.views.payload import schema

ROOT = os.geteuid() == 0


def _steps(res) -> dict:
    found = [d["data"] for d in res.displays if MIME_TYPE in d["data"]
             and d["data"][MIME_TYPE]["kind"] == "steps"]
    assert len(found) == 1, (res.stderr, [list(d["data"]) for d in res.displays])
    assert WIDGET_MIME_TYPE in found[0] and "What each step did" in found[0]["text/html"]
    p = found[0][MIME_TYPE]
    jsonschema.validate(p, schema())
    return p


def _step(p: dict, start: str, by: str | None = None) -> dict:
    """The first step whose calls start so (run by `by`: "init (host)", "init (PID 1)",
    "script")."""
    return next(r for r in p["rows"] if (r["cell"]["calls"] or "").startswith(start)
                and by in (None, r["cell"]["process"]))


def _init_clone(p: dict) -> dict:
    return _step(p, "clone(", "init (PID 1)")


def _script_clone(p: dict) -> dict:
    return _step(p, "clone(", "script")


def _changes(row: dict, status: str) -> dict[str, dict]:
    return {k["key"]: k for k in row["children"]["rows"] if k["status"] == status}


def _host_points() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


def test_the_default_container_step_by_step(kernel):
    p = _steps(kernel.ok("%show steps\ntrue"))
    calls = [r["cell"]["calls"] or "" for r in p["rows"]]
    # In the order the init took them: its namespaces, private propagation first, the
    # image's layers, the overlay, the root switch, the script's namespace, the exec.
    clone = _init_clone(p)
    assert {"CLONE_NEWNS", "CLONE_NEWPID"} <= set(clone["cell"]["calls"].split("(")[1]
                                                  .split(")")[0].split("|"))
    first_op = calls.index(clone["cell"]["calls"]) + 1
    assert calls[first_op] == 'mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL)'
    overlay = _step(p, 'mount("overlay"')
    pivot = _step(p, "chdir(")
    assert 'pivot_root(".", ".")' in pivot["cell"]["calls"]
    assert 'umount2(".", MNT_DETACH)' in pivot["cell"]["calls"]
    assert calls.index(overlay["cell"]["calls"]) < calls.index(pivot["cell"]["calls"])
    # the cell's seccomp filter, then the shell, which reads the cell's text from the
    # script pipe (fd 3) as its script `cell`
    assert calls[-2].startswith("seccomp(SECCOMP_SET_MODE_FILTER, 0, {")
    assert calls[-2].endswith(" instructions})") and "EPERM" in p["rows"][-2]["note"]
    assert calls[-1].startswith('execve("/bin/sh", ["/bin/sh", "cell"]')
    assert [r["cell"]["process"] for r in p["rows"][-2:]] == ["script", "script"]
    # The overlay step adds what becomes the cell's /; pivot_root moves it there and
    # takes the host's mounts away.
    (root,) = _changes(overlay, "only-cell").values()
    # The container's directory is named once, in the heading: the rows say $CELL.
    assert root["cell"]["fstype"] == "overlay" and root["key"] == "$CELL/root"
    assert p["names"]["$CELL"].endswith("/cell")
    gone = set(_changes(pivot, "only-host"))
    template = next((r for r in p["rows"] if "setns(TEMPLATE" in (r["cell"]["calls"] or "")),
                    None)
    if ROOT:   # cloned from the helper's template: the host's other mounts never came
        assert template is not None and template["cell"]["process"] == "init (host)"
        assert "template's" in clone["note"]
        gone |= set(_changes(template, "only-host"))
    else:      # an ordinary user's init may not enter it: a copy of the host's table
        assert template is None and "host's" in clone["note"]
    assert _host_points() - {"/"} <= gone, _host_points() - gone
    moved = [k for k in pivot["children"]["rows"] if k["key"] == "/" and
             k["status"] == "differs"]
    assert moved and moved[0]["cell"]["fstype"] == "overlay"
    assert moved[0]["note"] == f"moved from {root['key']}"
    # Each step timed, and the table's size after it.
    for r in p["rows"]:
        assert r["cell"]["took"].endswith(" ms") and float(r["cell"]["took"].split()[0]) >= 0
    assert pivot["cell"]["mounts"].endswith(f"({len(_changes(pivot, 'differs'))})")
    assert p["headline"].startswith(f"{len(p['rows'])} steps in ")


def test_the_scripts_user_namespace_and_its_id_map(kernel):
    p = _steps(kernel.ok("%show steps\nid -u"))
    userns = _script_clone(p)
    assert userns["cell"]["calls"].startswith("clone(CLONE_NEWUSER|CLONE_NEWNS|")
    line = IdRange().map_line() if ROOT else "0 0 1"
    assert f'write("/proc/SCRIPT/uid_map", "{line}")' in userns["cell"]["calls"]
    assert "locked" in userns["note"]
    if ROOT:   # the image's layers, idmapped
        layer = _step(p, "open_tree(AT_FDCWD, ")
        assert "MOUNT_ATTR_IDMAP" in layer["cell"]["calls"]
        assert "move_mount(" in layer["cell"]["calls"]
        (added,) = _changes(layer, "only-cell").values()
        assert "idmapped" in added["cell"]["options"]
        # the user namespace of the id map: made with the helper's template, once
        (idmap,) = [r for r in p["rows"] if "idmapped mounts" in r.get("note", "")]
        assert idmap["cell"]["process"] == "init (host)" and "template" in idmap["note"]
        assert IdRange().map_line().split()[1] in idmap["note"]
    else:      # an ordinary user's cell: its init maps the user as root
        assert f'"0 {os.getuid()} 1"' in _init_clone(p)["cell"]["calls"]


def test_a_prepared_container_records_its_steps_too(kernel):
    kernel.ok("%show steps\ntrue")   # the next container is made ahead, recording
    # ... unless the host's mount table changed meanwhile (another program mounted
    # something): then it was thrown away, and the next one is made ahead again.
    for _ in range(10):
        p = _steps(kernel.ok("%show steps\ntrue"))
        if any((r["cell"]["calls"] or "").startswith("read(3, ") for r in p["rows"]):
            break
    wait = _step(p, "read(3, ", "script")
    assert "prepared ahead" in wait["note"] and "prepared ahead" in p["headline"]
    keys = [r["key"] for r in p["rows"]]
    # Set up before its cell came, the script's process and its shell included: the shell
    # waited on the script pipe for the cell's text, the last step.
    assert keys.index(_script_clone(p)["key"]) < keys.index(wait["key"])
    assert keys.index(_step(p, "chdir(")["key"]) < keys.index(wait["key"])
    assert keys[-1] == wait["key"]
    kernel.ok("true")   # a plain cell after it runs as ever (its own container)


def test_no_process_of_the_cell_holds_the_record_while_the_script_runs(kernel):
    res = kernel.ok("%show steps\nfor f in /proc/self/fd/* /proc/1/fd/*; do "
                    "readlink \"$f\"; done 2>/dev/null; true")
    assert "rootfs-steps" not in res.stdout and "memfd" not in res.stdout
    _steps(res)


def test_chroot_keeps_the_host_mounts_only_out_of_sight(kernel):
    p = _steps(kernel.ok("%root chroot\n%show steps\ntrue"))
    chroot = _step(p, "chdir(")
    assert 'chroot(".")' in chroot["cell"]["calls"] and "pivot_root" not in chroot["cell"]["calls"]
    assert chroot["cell"]["process"] == "script"   # after the script's user namespace
    hidden = _changes(chroot, "only-host")
    assert _host_points() - {"/"} <= set(hidden)
    assert {k["note"] for k in hidden.values()} == {
        "still mounted: outside the new root, so out of this process's sight"}
    assert "after chroot, still mounted" in p["headline"]


@pytest.mark.parametrize("unshare", ["", "%unshare net\n"])
def test_every_cell_gives_the_script_a_network_namespace_whose_lo_it_brings_up(kernel,
                                                                              unshare):
    p = _steps(kernel.ok(f"{unshare}%show steps\ntrue"))
    assert "CLONE_NEWNET" in _script_clone(p)["cell"]["calls"]
    assert "CLONE_NEWNET" not in _init_clone(p)["cell"]["calls"]
    lo = _step(p, "socket(AF_INET, SOCK_DGRAM, 0)", "script")
    assert 'ioctl(SOCK, SIOCSIFFLAGS, {ifr_name="lo", ifr_flags=IFF_UP' in lo["cell"]["calls"]
    assert "only lo" in lo["note"]
    host = _steps(kernel.ok("%net host\n%show steps\ntrue"))
    calls = " ".join(r["cell"]["calls"] or "" for r in host["rows"])
    assert "CLONE_NEWNET" not in calls and "SIOCSIFFLAGS" not in calls


@pytest.mark.skipif(not any(os.access(os.path.join(d, "pasta"), os.X_OK)
                            for d in ("/usr/bin", "/bin", "/usr/local/bin")),
                    reason="pasta (package passt) not installed")
def test_net_user_shows_pasta_and_the_namespace_it_serves(kernel):
    p = _steps(kernel.ok("%net user\n%show steps\ntrue"))
    pasta = _step(p, 'execve("/', "init (host)")
    assert "--config-net" in pasta["cell"]["calls"] and "--no-map-gw" in pasta["cell"]["calls"]
    routes = _step(p, "ioctl(SOCK, SIOCADDRT", "init (PID 1)")
    assert "RTF_REJECT" in routes["cell"]["calls"] and "169.254.169.254" in routes["cell"]["calls"]
    # the script makes no network namespace of its own here: it is not its to change
    assert "CLONE_NEWNET" not in _script_clone(p)["cell"]["calls"]
    if ROOT:   # made by rootfs-init as an unprivileged id, joined by the cell's PID 1
        made = _step(p, "fork() = CHILD", "init (host)")
        assert "unshare(CLONE_NEWUSER|CLONE_NEWNET)" in made["cell"]["calls"]
        assert "setns(NETNS, CLONE_NEWNET)" in _init_clone(p)["cell"]["calls"]
    else:      # made by the cell's PID 1's own clone, in its user namespace
        assert "CLONE_NEWNET" in _init_clone(p)["cell"]["calls"]


def test_root_none_has_no_root_switch(kernel):
    p = _steps(kernel.ok("%root none\n%show steps\ntrue"))
    calls = " ".join(r["cell"]["calls"] or "" for r in p["rows"])
    assert "pivot_root" not in calls and "chroot" not in calls
    proc = _step(p, 'mount("proc", "/proc"')
    assert list(_changes(proc, "only-cell")) == ["/proc"]


@pytest.mark.rootonly
def test_a_bind_is_an_idmapped_mount_of_the_host_path(kernel, tmp_path):
    p = _steps(kernel.ok(f"%bind {tmp_path} /mnt/host\n%show steps\ntrue"))
    bind = next(r for r in p["rows"] if f'"{tmp_path}"' in (r["cell"]["calls"] or "")
                and "open_tree" in r["cell"]["calls"])
    assert "%bind, header line 1" in bind["note"]
    assert list(_changes(bind, "only-cell"))[0] == "$CELL/root/mnt/host"


# --- the widget over comms ----------------------------------------------------------------


def _iopub_until(kernel, done, timeout: float = 60) -> list[dict]:
    """IOPub messages up to and including the first for which done(msg) holds."""
    msgs = []
    while True:
        msg = kernel.kc.get_iopub_msg(timeout=timeout)
        msgs.append(msg)
        if done(msg):
            return msgs


def _cell(kernel, code: str) -> list[dict]:
    """A cell's IOPub messages (its reply ok)."""
    msg_id = kernel.kc.execute(code)
    msgs = [m for m in _iopub_until(kernel, lambda m: m["parent_header"].get("msg_id") == msg_id
                                    and m["msg_type"] == "status"
                                    and m["content"]["execution_state"] == "idle")
            if m["parent_header"].get("msg_id") == msg_id]
    assert kernel.kc.get_shell_msg(timeout=60)["content"]["status"] == "ok"
    return msgs


def _opened(msgs: list[dict]) -> dict[str, dict]:
    return {m["content"]["comm_id"]: m["content"]["data"]["state"] for m in msgs
            if m["msg_type"] == "comm_open"}


def _send(kernel, comm_id: str, data: dict) -> list[dict]:
    """Send a front-end's comm message; the IOPub messages it caused, up to its idle."""
    kc = kernel.kc
    msg = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
    kc.session.send(kc.shell_channel.socket, msg)
    parent = msg["header"]["msg_id"]
    return [m for m in _iopub_until(kernel, lambda m: m["parent_header"].get("msg_id") == parent
                                    and m["msg_type"] == "status"
                                    and m["content"]["execution_state"] == "idle")
            if m["parent_header"].get("msg_id") == parent]


def _table_update(msgs: list[dict], table_id: str) -> str:
    (value,) = [m["content"]["data"]["state"]["value"] for m in msgs
                if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == table_id
                and "value" in m["content"]["data"].get("state", {})]
    return value


def test_the_widget_is_a_few_models_however_many_steps_and_steps_through(kernel):
    """Each widget model is a comm_open message sent with every `%show steps` cell: a
    handful, born in their first state (no update after), the same for more steps; the
    view still opens a step and steps to the next over comms."""
    _cell(kernel, "%show steps\ntrue")   # (the first view also makes the shared layouts)
    few = _cell(kernel, "%show steps\ntrue")
    more = _cell(kernel, "%mount tmpfs /tmp\n%mount tmpfs /mnt\n%show steps\ntrue")
    counts = []
    for msgs in (few, more):
        (display,) = [m["content"]["data"] for m in msgs if m["msg_type"] == "display_data"]
        counts.append((len(display[MIME_TYPE]["rows"]), len(_opened(msgs))))
        assert not [m for m in msgs if m["msg_type"] == "comm_msg"]
    (steps, opens), (more_steps, more_opens) = counts
    assert more_steps > steps and opens == more_opens <= 8, counts

    # Open the pivot_root step in the picker, then the step after it.
    models = _opened(more)
    (display,) = [m["content"]["data"] for m in more if m["msg_type"] == "display_data"]
    top = models[display[WIDGET_MIME_TYPE]["model_id"]]
    heading_id = top["children"][0].removeprefix("IPY_MODEL_")
    (picker_id,) = [i for i, s in models.items() if s["_model_name"] == "DropdownModel"]
    key = _step(display[MIME_TYPE], "chdir(")["key"]
    index = models[picker_id]["_options_labels"].index(key)
    msgs = _send(kernel, picker_id, {"method": "update", "state": {"index": index},
                                     "buffer_paths": []})
    table_id = top["children"][-1].removeprefix("IPY_MODEL_")
    assert 'data-status="only-host"' in _table_update(msgs, table_id)
    # Its heading names the step and repeats its calls.
    opened = _table_update(msgs, heading_id)
    assert f": {key}<" in opened and "pivot_root(" in opened
    (ahead,) = [i for i, s in _opened(msgs).items() if s.get("description") == "next step ▶"]
    msgs = _send(kernel, ahead, {"method": "custom", "content": {"event": "click"}})
    assert f": step {int(key.split()[1]) + 1}<" in _table_update(msgs, heading_id)
