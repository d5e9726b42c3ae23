"""The kernel-wide settings are defined once (settings.py): the README's table, the kernel's
options (--help-all) and the API's keywords are that table, and a wrong value is said,
not raised at the kernel's start (tests/kernel/test_settings.py drives such a kernel)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import rootfs_kernel
from rootfs_kernel import kernelspec, settings
from rootfs_kernel.ids import IdRange

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "kernel" / "rootfs_kernel"


def test_the_readme_table_is_the_settings_table() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Kernel-wide settings\n", 1)[1].split("\n## ", 1)[0]
    table = "\n".join(line for line in section.splitlines() if line.startswith("|")) + "\n"
    assert table == settings.markdown(), \
        "README's table is not settings.markdown(): `python -m rootfs_kernel.settings` prints it"


def test_no_module_but_settings_reads_a_settings_variable() -> None:
    """Every ROOTFS_KERNEL_* variable is read through the table; kernelspec.py (standard
    library only: the wheel's build loads it alone) writes host_access's by name."""
    reads = re.compile(r"environ(?:\.get\(|\[)\s*[\"']ROOTFS_KERNEL_|\bgetenv\(")
    readers = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
               if reads.search(p.read_text())]
    assert readers == [], readers
    assert kernelspec.kernel_json(locked=True)["env"] == {
        settings.BY_NAME["host_access"].env: "0"}


def test_the_kernel_options_are_the_table() -> None:
    """`python -m rootfs_kernel --help-all`: each setting, its default and its variable."""
    out = subprocess.run([sys.executable, "-m", "rootfs_kernel", "--help-all"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    for s in settings.SETTINGS:
        block = out.split(f"--RootfsKernel.{s.name}=", 1)[1].split("\n--", 1)[0]
        text = " ".join(block.split())
        assert f"Also ${s.env}." in text, text
        assert s.doc.split(",")[0] in text, text
        default = re.search(r"Default: (\S+)", text).group(1).strip("'")
        assert str(s.parse(default)) == str(s.parse(s.default)), (s.name, default)


def test_the_api_keywords_are_the_table() -> None:
    doc = " ".join(rootfs_kernel.Sandbox.__doc__.split())
    for s in settings.SETTINGS:
        if not s.api:
            assert f"{s.name}=" not in doc
            continue
        assert re.search(rf"{s.name} .*?\(\${s.env}, default \"{re.escape(s.default)}\"\)",
                         doc), s.name


def where(s: settings.Setting) -> str:
    return f"--RootfsKernel.{s.name}"


def test_given_wins_over_the_environment_which_wins_over_the_default() -> None:
    env = {"ROOTFS_KERNEL_PREPARE": "0", "ROOTFS_KERNEL_LIMITS": "pids=512 memory=2g",
           "ROOTFS_KERNEL_ID_RANGE": "100000:70000"}
    values, wrong = settings.resolve({"prepare_next": True, "store_size": "20g"}, env, where)
    assert wrong == []
    assert values["prepare_next"] is True and values["store_size"] == "20g"
    assert values["default_limits"] == {"pids": 512, "disk": 1 << 30, "output": 64 << 20,
                                        "memory": 2 << 30}
    assert values["id_range"] == IdRange(100000, 70000)
    assert values["host_access"] is True and values["max_live_views"] == 50
    assert settings.resolve({}, {"ROOTFS_KERNEL_HOST_ACCESS": "off"}, where)[0][
        "host_access"] is False
    # An empty variable is no value.
    assert settings.resolve({}, {"ROOTFS_KERNEL_STORE_SIZE": " "}, where)[0][
        "store_size"] == "10g"


@pytest.mark.parametrize("given, env, says", [
    ({}, {"ROOTFS_KERNEL_LIMITS": "pids=abc"},
     "ROOTFS_KERNEL_LIMITS='pids=abc': pids must be a number, got 'abc'; for example "
     "ROOTFS_KERNEL_LIMITS='pids=512 memory=2g'"),
    ({}, {"ROOTFS_KERNEL_ID_RANGE": "x"}, "ROOTFS_KERNEL_ID_RANGE='x': expected FIRST:COUNT"),
    ({}, {"ROOTFS_KERNEL_STORE_SIZE": "lots"},
     "ROOTFS_KERNEL_STORE_SIZE='lots': 'lots' is not a size"),
    ({}, {"ROOTFS_KERNEL_STORE_SIZE": "1k"}, "ROOTFS_KERNEL_STORE_SIZE='1k': '1k' is smaller"),
    ({"max_live_views": "many"}, {}, "--RootfsKernel.max_live_views='many': takes a whole"),
    ({"host_access": "maybe"}, {}, "--RootfsKernel.host_access='maybe': takes 1 or 0"),
])
def test_a_wrong_value_is_said_with_what_it_takes(given, env, says) -> None:
    values, wrong = settings.resolve(given, env, where)
    assert len(wrong) == 1 and wrong[0].startswith(says), wrong
    if "host_access" in given:
        assert values["host_access"] is False   # wrong: locked while it refuses cells


def test_the_api_raises_a_wrong_value_naming_the_keyword() -> None:
    with pytest.raises(rootfs_kernel.SettingError, match=r"Sandbox\(default_limits=...\)="
                                                         r"'pids=abc': pids must be"):
        rootfs_kernel.Sandbox(default_limits="pids=abc")
    with pytest.raises(TypeError):
        rootfs_kernel.Sandbox(host_access=False)   # the API runs as its caller
