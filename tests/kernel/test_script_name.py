"""The shell names the cell in its messages: `cell: LINE: ...`, with the cell's own line
numbers (its header lines counted, as the notebook numbers them), whether its container
was made ahead or when the cell came, whatever its root, and for cells of any length
(the shell still reads them from the script pipe)."""

from __future__ import annotations

import pytest
from kerneldriver import prepared_containers, wait_for


@pytest.mark.parametrize("head", ["", "%root chroot\n", "%root none\n", "%unshare net\n",
                                  # the cell's own mounts over where the shell starts
                                  "%mount tmpfs /dev\n", "%root none\n%mount tmpfs /tmp\n",
                                  "%root none\n%mount tmpfs /run\n"])
def test_an_unknown_command_is_reported_as_the_cells(kernel, head):
    skip = head.count("\n")
    res = kernel.run(f"{head}true\nrootfs_no_such_command_x", timeout=30)
    assert res.stderr == f"cell: {2 + skip}: rootfs_no_such_command_x: not found\n", res.stderr
    # The same cell again takes the container prepared after it: the same words. (A
    # cell whose own mounts hide where the shell starts has its text handed to `sh -c`,
    # named `cell` all the same; such a cell is never prepared.)
    if head in ("", "%root chroot\n", "%unshare net\n"):
        assert wait_for(lambda: prepared_containers(kernel.pid), 10)
    again = kernel.run(f"{head}true\nrootfs_no_such_command_x", timeout=30)
    assert again.stderr == res.stderr


def test_a_host_cell_names_the_cell_too(kernel):
    res = kernel.run("%%host\n\n\nrootfs_no_such_command_x", timeout=30)
    assert res.stderr == "cell: 4: rootfs_no_such_command_x: not found\n", res.stderr


def test_line_numbers_stay_the_cells_own_in_a_long_cell(kernel):
    body = ": " + "x" * 200_000 + "\n"
    res = kernel.run(f"{body * 3}echo ran\nrootfs_no_such_command_x", timeout=60)
    assert res.stdout == "ran\n"
    assert res.stderr == "cell: 5: rootfs_no_such_command_x: not found\n", res.stderr


def test_the_script_starts_where_it_always_did(kernel):
    """The shell's directory, $0, $PWD and OLDPWD are the cell's, not the kernel's."""
    res = kernel.ok('pwd; echo "$0 $PWD ${OLDPWD-unset}"; cd /etc && cd - >/dev/null; pwd',
                    timeout=30)
    assert res.stdout == "/\ncell / unset\n/\n", res.stdout
    host = kernel.ok('%root none\npwd; echo "$PWD ${OLDPWD-unset}"', timeout=30)
    here = kernel.ok("%%host\npwd", timeout=30).stdout.strip()
    assert host.stdout == f"{here}\n{here} unset\n"
