"""Issue 13, class 11: host names through side doors. Completion and %show changes answer
from the image's layers, never from the host (only the host-access lines complete against
the host's names)."""

from __future__ import annotations

import os

from rootfs_kernel.views import MIME_TYPE


def complete(kernel, code: str) -> list[str]:
    kernel.kc.complete(code, len(code))
    return kernel.kc.get_shell_msg(timeout=30)["content"]["matches"]


def _walks_to(path: os.PathLike, cwd: str) -> list[str]:
    """Ways to name `path` that climb out of an image root (or the kernel's cwd)."""
    ups = "../" * (max(cwd.count("/"), 12) + 2)   # deeper than the store's layer paths
    return [f"/{ups}{str(path).lstrip('/')}", f"/bin/{ups}{str(path).lstrip('/')}",
            f"{ups}{str(path).lstrip('/')}", f"/proc/self/root{path}"]


def test_class11_completion_never_lists_host_names(kernel, secret):
    cwd = os.getcwd()   # the kernel's working directory is the client's
    prefix = secret.path.name[:12]
    for way in _walks_to(secret.path.parent, cwd):
        for code in (f"ls {way}/{prefix}", f"cat {way}/"):
            found = complete(kernel, code)
            assert not any(secret.path.name in m for m in found), (code, found)


def test_class11_completion_of_commands_comes_from_the_image(kernel, tmp_path):
    """A program only the host has is not offered as a command."""
    assert "mount" in complete(kernel, "mou")
    assert not any(m.startswith("jupyter") for m in complete(kernel, "jupyter"))


def test_class11_host_access_lines_still_complete_against_the_host(kernel, secret):
    code = f"%root none\nls {secret.path.parent}/{secret.path.name[:12]}"
    assert f"{secret.path}" in complete(kernel, code)
    code = f"%%host\nls {secret.path.parent}/{secret.path.name[:12]}"
    assert f"{secret.path}" in complete(kernel, code)


def _changes(res) -> dict[str, str]:
    (data,) = [d["data"][MIME_TYPE] for d in res.displays if MIME_TYPE in d["data"]]
    return {row["key"]: row["cell"]["change"] for row in data["rows"]}


def test_class11_show_changes_does_not_tell_what_exists_on_the_host(kernel, secret):
    """A symlink kept by one cell is a lower layer of the next: looking a changed path
    up in it must not follow the link out to the host."""
    try:
        kernel.ok("%keep\nln -s / /h")
        probe = secret.path.parent / "rk-no-such-file"
        res = kernel.ok(f"%show changes\nrm /h && mkdir -p /h{secret.path.parent}\n"
                        f"touch /h{secret.path} /h{probe}")
        kinds = _changes(res)
        assert kinds[f"/h{probe}"] == "A"
        assert kinds[f"/h{secret.path}"] == "A", "the view told that the host has the file"
    finally:
        kernel.ok("true")   # a cell without %keep ends the chain
