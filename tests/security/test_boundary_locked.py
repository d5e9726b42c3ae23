"""The locked kernel for shared machines: every host-access line is refused with a message
that says why, every other cell runs unchanged. Reached the three documented ways:
`rootfs-kernel install --locked`, $ROOTFS_KERNEL_HOST_ACCESS=0 and
--RootfsKernel.host_access=False."""

from __future__ import annotations

import os

import hostmarkers as hm
import pytest
from kerneldriver import KernelDriver

from rootfs_kernel.cell import HOST_ACCESS_LINES


@pytest.fixture(params=["kernelspec", "env", "argument"])
def locked(request, locked_kernelspec):
    if request.param == "kernelspec":
        k = KernelDriver(kernel_name=locked_kernelspec)
    elif request.param == "env":
        k = KernelDriver(env={**os.environ, "ROOTFS_KERNEL_HOST_ACCESS": "0"})
    else:
        k = KernelDriver(extra_arguments=["--RootfsKernel.host_access=False"])
    k.ok("true")
    yield k
    k.shutdown()


def _attacks(secret, empty_dir) -> list[tuple[str, str]]:
    return [
        (f"%%host\ncat {secret.path}; touch {empty_dir.path}/x", "%%host"),
        (f"%root none\ncat {secret.path}; touch {empty_dir.path}/x", "%root none"),
        (f"%bind {secret.path.parent} /mnt\ncat /mnt/{secret.path.name}", "%bind"),
        (f"%bind {empty_dir.path} /mnt rw\ntouch /mnt/x", "%bind"),
        (f"%propagation shared\n%mount tmpfs {empty_dir.path}\ntrue", "%propagation shared"),
        (f"%env ROOTFS_KERNEL_HOST_ACCESS=1\n%timeout 9\n%root none\ncat {secret.path}",
         "%root none"),
        (f"%show ls / {secret.path.parent}\ntrue", "%show ls PATH HOST_PATH"),
        ("%net host\n%image busybox\nnc -w 3 127.0.0.1 22", "%net host"),
        ("%seccomp off\ntrue", "%seccomp off"),
    ]


def test_locked_kernel_refuses_every_host_access_line(locked, secret, empty_dir):
    texts = []
    for code, which in _attacks(secret, empty_dir):
        res = locked.run(code, timeout=30)
        texts.append(hm.texts_of(res))
        assert res.reply["ename"] == "HeaderError", res.reply
        evalue = res.reply["evalue"]
        assert f"this kernel is locked (host access is off): {which} " in evalue
        assert HOST_ACCESS_LINES[which] in evalue and res.stdout == ""
    secret.assert_unread(*texts)
    empty_dir.assert_unchanged()


def test_locked_kernel_runs_plain_cells_unchanged(locked, tmp_path):
    assert locked.ok("echo hello").stdout == "hello\n"
    res = locked.ok("%mount tmpfs /tmp size=1m\n%show mounts\nmount | grep -c ' /tmp '")
    assert res.stdout == "1\n" and res.displays
    locked.ok("%keep\necho kept > /kept")
    assert locked.ok("%keep\ncat /kept").stdout == "kept\n"
    assert locked.ok("%root chroot\n%propagation slave\nls /etc >/dev/null; echo ok").stdout \
        == "ok\n"
    c = locked.ok('%%c\n#include <stdio.h>\nint main(void){puts("c ok");return 0;}', timeout=60)
    assert c.stdout == "c ok\n"


def test_locked_kernel_compiles_c_without_reading_host_files(locked, secret):
    res = locked.run(f'%%c\n#include "{secret.path}"\nint main(void){{return 0;}}', timeout=60)
    secret.assert_unread(hm.texts_of(res))


def test_locked_kernel_completes_against_the_image_only(locked, secret):
    code = f"%root none\nls {secret.path.parent}/{secret.path.name[:12]}"
    locked.kc.complete(code, len(code))
    matches = locked.kc.get_shell_msg(timeout=30)["content"]["matches"]
    assert not any(secret.path.name in m for m in matches), matches


def test_the_unlocked_kernel_keeps_its_host_access_lines(kernel, tmp_path):
    """The lock is opt-in: the default kernel still runs the seed's experiments."""
    os.chmod(tmp_path, 0o777)
    kernel.ok(f"%%host\ntouch {tmp_path}/x")
    assert (tmp_path / "x").exists()
