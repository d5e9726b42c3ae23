"""The notebooks as saved: what GitHub, the book and Binder show without running them."""

from __future__ import annotations

import json
import os
import pwd
import re

from nbhelpers import NOTEBOOKS

MAX_BYTES = 300 * 1024   # GitHub and nbconvert render it; a reader downloads it


def saved() -> list[tuple[str, dict]]:
    return [(p.name, json.loads(p.read_text())) for p in sorted(NOTEBOOKS.glob("*.ipynb"))]


def test_only_cells_that_say_they_fail_saved_an_error():
    for name, nb in saved():
        for n, cell in enumerate(nb["cells"]):
            if cell["cell_type"] != "code":
                continue
            errors = [o for o in cell.get("outputs", []) if o["output_type"] == "error"]
            tags = cell["metadata"].get("tags", [])
            source = "".join(cell["source"])
            if "raises-exception" in tags:
                # nbclient's convention, and a reader's: the cell's own text says so.
                assert "Expected error:" in source, (name, n, source[:120])
                assert errors, f"{name} cell {n} is tagged raises-exception but saved no error"
            else:
                assert not errors, (name, n, [(e["ename"], e["evalue"][:200]) for e in errors])


def test_every_saved_notebook_is_small():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        assert path.stat().st_size <= MAX_BYTES, (path.name, path.stat().st_size)


def _outputs_text(nb: dict) -> str:
    """Every saved output of a notebook as text: streams, errors and each data item."""
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                parts.append("".join(out["text"]))
            elif out["output_type"] == "error":
                parts.append(out["evalue"] + "\n" + "\n".join(out.get("traceback", [])))
            for value in out.get("data", {}).values():
                parts.append(value if isinstance(value, str) else
                             "".join(value) if isinstance(value, list) else json.dumps(value))
    return "\n".join(parts)


def _this_machine() -> tuple[set[str], set[str], set[str]]:
    """This machine's mount points, entries of / and users."""
    with open("/proc/self/mountinfo") as f:
        mounts = {line.split()[4] for line in f}
    return mounts, set(os.listdir("/")), {p.pw_name for p in pwd.getpwall()}


def test_saved_outputs_show_the_recording_host_not_this_machine():
    """Recorded on a neutral host (run-notebooks.py --vm), and nothing of the machine they
    were made on in them: none of this machine's mounts, entries of / or users that the
    recording host does not have."""
    mounts, root, users = _this_machine()
    for name, nb in saved():
        host = nb["metadata"].get("rootfs_kernel", {}).get("recorded_on")
        assert host, f"{name} was not recorded on a neutral host (run-notebooks.py --vm)"
        assert nb["cells"][1].get("id") == "recorded-on", name
        assert host["system"] in "".join(nb["cells"][1]["source"]), name
        text = _outputs_text(nb)
        for path in sorted(mounts - set(host["mounts"])):
            assert not re.search(rf"(?<![\w./-]){re.escape(path)}(?![\w./-])", text), \
                (name, "a mount of this machine", path)
        for entry in sorted(root - set(host["root"])):
            # as a path, as a line of `ls /`, as a listing's row
            found = re.search(rf"(?<![\w./-])/{re.escape(entry)}(?![\w.-])|^{re.escape(entry)}$|"
                              rf'"key": "{re.escape(entry)}"', text, re.M)
            assert not found, (name, "an entry of this machine's /", entry)
        for user in sorted(users - set(host["users"])):
            assert not re.search(rf"(?<![\w.-]){re.escape(user)}(?![\w.-])", text), \
                (name, "a user of this machine", user)
