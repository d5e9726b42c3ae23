"""The payload schema and the golden payloads shared with the JupyterLab renderer's tests.

tests/fixtures/payloads/*.json hold payloads and the views every renderer must draw from
them; extension/test/golden.test.ts checks the TypeScript side against the same files.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from fixtures.payloads import make

from rootfs_kernel.views import view_bundle
from rootfs_kernel.views.model import State
from rootfs_kernel.views.payload import MIME_TYPE, VERSION, schema

GOLDEN = Path(make.__file__).parent
FILES = sorted(GOLDEN.glob("*.json"))
VALIDATOR = jsonschema.Draft202012Validator(schema())


def validate(payload: dict) -> None:
    """Every payload the kernel makes is checked against the one schema."""
    errors = sorted(VALIDATOR.iter_errors(payload), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    assert schema()["properties"]["version"]["const"] == VERSION


def test_every_golden_file_is_what_the_kernel_makes_now() -> None:
    """The files are make.py's output: a change of payload or view shows up here first
    (then run `python tests/fixtures/payloads/make.py` and read the diff)."""
    built = make.build()
    assert sorted(f.stem for f in FILES) == sorted(built)
    for f in FILES:
        assert json.loads(f.read_text()) == built[f.stem], f"{f.name} is stale"


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_golden_views(path: Path) -> None:
    data = json.loads(path.read_text())
    payload = data["payload"]
    if payload["version"] == VERSION:
        validate(payload)
    else:  # an older kernel's payload: only the renderer reads it (it upgrades it)
        assert payload["version"] == 1
        return
    for view in data["views"]:
        s = view["state"]
        state = State(tuple(s["path"]), s["query"], s["differences_only"], s["expanded"],
                      s["more_columns"])
        assert make.expected(payload, state) == view


def test_a_wrong_payload_is_refused_by_the_schema() -> None:
    payload = json.loads((GOLDEN / "ns.json").read_text())["payload"]
    bad = dict(payload, rows=[dict(payload["rows"][0], status="gone")])
    assert not VALIDATOR.is_valid(bad)
    extra = dict(payload, surprise=1)
    assert not VALIDATOR.is_valid(extra)
    mounts = json.loads((GOLDEN / "changes.json").read_text())["payload"]
    assert not VALIDATOR.is_valid(dict(mounts, rows=[dict(mounts["rows"][0], host={})]))


def test_bundles_carry_a_valid_payload() -> None:
    for f in FILES:
        payload = json.loads(f.read_text())["payload"]
        if payload["version"] != VERSION:
            continue
        data, _ = view_bundle(payload, widget=False)
        assert data[MIME_TYPE] is payload
        assert data["text/plain"].startswith(payload["title"])
