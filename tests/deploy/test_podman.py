"""The container image of deploy/container under a real runtime (podman).

With the runtime's defaults JupyterLab and the kernel start, a cell fails with the
doctor's cause and fix, `%%host` cells run, and doctor says the same; an ordinary user in
the container needs only the unmasked /proc; with the Kubernetes pod's settings in
Podman's words (a user namespace whose root is an unprivileged range of the host, uid 1000,
no capability, no_new_privs) cells run, `%keep` included; with the flags deploy/README.md
documents, the kernel's own tests pass inside the container.
"""

from __future__ import annotations

import pytest
from podmanimage import FLAGS, LAB, TEST, build, cells, missing, run

pytestmark = [pytest.mark.deploy, pytest.mark.rootonly,
              pytest.mark.skipif(bool(missing()), reason=missing() or ""),
              pytest.mark.timeout(2400)]

HOST_CELL = "%%host\necho host cell; id -u"


@pytest.fixture(scope="module", autouse=True)
def images():
    build()


def test_defaults_cells_name_the_missing_flags_and_host_cells_run():
    cell, host = cells("echo inside", HOST_CELL)
    assert cell["status"] == "error" and cell["ename"] == "ContainerError", cell
    assert "inside" not in cell["stdout"]
    for word in ("CAP_SYS_ADMIN", "podman container", "--cap-add SYS_ADMIN",
                 "--security-opt seccomp=unconfined", "systempaths=unconfined",
                 "%%host cells still run"):
        assert word in cell["evalue"], (word, cell["evalue"])
    assert host == {"status": "ok", "ename": "", "evalue": "", "stdout": "host cell\n0\n"}


def test_defaults_doctor_fails_naming_the_capability():
    done = run(LAB, "rootfs-kernel", "doctor")
    assert done.returncode == 1, done.stdout
    assert "[FAIL] capabilities: root without CAP_SYS_ADMIN" in done.stdout, done.stdout
    assert "[ok  ] runtime: running in a podman container" in done.stdout
    assert "[warn] seccomp" in done.stdout and "[warn] masked /proc" in done.stdout
    assert "Still working: %%host cells" in done.stdout


def test_an_ordinary_user_needs_only_an_unmasked_proc():
    user = ["--user", "jovyan"]
    cell, host = cells("echo inside", HOST_CELL, options=user)
    assert cell["status"] == "error" and "systempaths=unconfined" in cell["evalue"], cell
    assert "the mount of proc on /proc" in cell["evalue"], cell["evalue"]
    assert host["status"] == "ok" and host["stdout"] == "host cell\n1000\n"
    (cell,) = cells("echo inside; mount -t tmpfs none /mnt && echo mounted",
                    options=[*user, "--security-opt", "systempaths=unconfined"])
    assert cell["status"] == "ok" and cell["stdout"] == "inside\nmounted\n", cell


# deploy/kubernetes's securityContext in Podman's words: hostUsers: false (the container's
# ids an unprivileged range of the host), runAsUser/runAsGroup 1000, capabilities drop
# [ALL], allowPrivilegeEscalation: false, seccompProfile and appArmorProfile Unconfined,
# procMount: Unmasked; /tmp is a volume of the image, as the emptyDir is the pod's.
POD = ["--uidmap", "0:200000:65536", "--gidmap", "0:200000:65536", "--user", "1000:1000",
       "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
       "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
       "--security-opt", "systempaths=unconfined"]


def test_the_kubernetes_pods_settings_run_cells():
    cell, keep, kept, host = cells(
        "id -u; grep '^NoNewPrivs' /proc/self/status; mount -t tmpfs none /mnt && echo mounted",
        "%keep\necho kept > /etc/kept", "cat /etc/kept", "%%host\ncat /proc/self/uid_map; id -u",
        options=POD)
    assert cell["status"] == "ok", cell
    assert cell["stdout"] == "0\nNoNewPrivs:\t1\nmounted\n", cell
    assert keep["status"] == "ok" and kept["stdout"] == "kept\n", (keep, kept)
    # the server: uid 1000 of a user namespace whose root is uid 200000 of the host
    assert host["stdout"].split() == ["0", "200000", "65536", "1000"], host


def test_with_the_documented_flags_doctor_passes_and_the_kernel_tests_pass_inside():
    done = run(LAB, "rootfs-kernel", "doctor", options=FLAGS)
    assert done.returncode == 0, done.stdout
    assert "[ok  ] container: a cell ran `true`" in done.stdout
    done = run(TEST, "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m",
               "not deploy", "tests/kernel", options=FLAGS, timeout=1500)
    tail = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, tail
    assert " passed" in done.stdout.splitlines()[-1] and "failed" not in done.stdout, tail
