"""JupyterHub for a class on one machine, with rootfs-kernel (see README.md here).

Students log in with their system accounts (PAM); each one's server, and so each kernel
and cell, runs as that student: the kernel's rootless mode, in which a cell's root is the
student's own uid in a user namespace and Unix permissions between students hold inside
cells as they do outside. The hub itself runs as root (it starts servers as other users).

Settings (environment variables, all optional):
  ROOTFS_HUB_URL     where the hub listens             (default http://127.0.0.1:8000)
  ROOTFS_HUB_GROUP   the Unix group that may log in    (default students)
  ROOTFS_HUB_STATE   the hub's database, cookie secret (default /var/lib/rootfs-kernel-hub)
  ROOTFS_HUB_PROXY   configurable-http-proxy to run    (default: the one on PATH)
  ROOTFS_HUB_RUNTIME each student's XDG_RUNTIME_DIR is a directory in it
                                                       (default /run/rootfs-kernel-hub)
  ROOTFS_HUB_LOCKED  1: students get the locked kernel only, and no terminal (README.md)
"""

import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821 - JupyterHub's config loader provides it

state = Path(os.environ.get("ROOTFS_HUB_STATE", "/var/lib/rootfs-kernel-hub"))
state.mkdir(mode=0o700, parents=True, exist_ok=True)

c.JupyterHub.bind_url = os.environ.get("ROOTFS_HUB_URL", "http://127.0.0.1:8000")
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(state / "jupyterhub-proxy.pid")
c.ConfigurableHTTPProxy.command = [os.environ.get("ROOTFS_HUB_PROXY", "configurable-http-proxy")]

# System accounts, those of one group. No PAM session: a student's server is a process of
# that student, not a login.
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_groups = {os.environ.get("ROOTFS_HUB_GROUP", "students")}
c.PAMAuthenticator.open_sessions = False

# Each server: JupyterLab from this environment (the one with rootfs-kernel and its
# kernelspec), started as the student in the student's home.
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(Path(sys.prefix) / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.http_timeout = 60
c.Spawner.start_timeout = 90

# Each student's runtime directory, made before their server starts as systemd-logind
# makes /run/user/UID for a login (the hub's spawner passes no XDG_RUNTIME_DIR): the
# kernel keeps its helpers' directories there. Without it, a kernel falls back to
# /tmp/rootfs-kernel-UID, which another student could create first (the kernel then
# refuses to run cells rather than use it).
runtime = Path(os.environ.get("ROOTFS_HUB_RUNTIME", "/run/rootfs-kernel-hub"))


def make_runtime_dir(spawner) -> None:
    """runtime/UID, 0700 and the student's, made through fds (no link followed) in a
    directory only root may write; the server gets it as XDG_RUNTIME_DIR."""
    import pwd

    student = pwd.getpwnam(spawner.user.name)
    runtime.mkdir(mode=0o755, parents=True, exist_ok=True)
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    top = os.open(runtime, flags)
    try:
        st = os.fstat(top)
        if st.st_uid != 0 or st.st_mode & 0o022:
            raise RuntimeError(f"{runtime} must be root's and writable by root only")
        name = str(student.pw_uid)
        try:
            os.mkdir(name, 0o700, dir_fd=top)
        except FileExistsError:
            pass
        fd = os.open(name, flags, dir_fd=top)
        try:
            os.fchown(fd, student.pw_uid, student.pw_gid)
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
    finally:
        os.close(top)
    spawner.environment = {**spawner.environment,
                           "XDG_RUNTIME_DIR": str(runtime / name)}


c.Spawner.pre_spawn_hook = make_runtime_dir

# A class whose cells must not reach the host (README.md): the locked kernelspec only
# (`rootfs-kernel install --locked --sys-prefix`), found in this environment before a
# student's own kernelspecs of the same name; no terminal; no code of the student's in
# the server's Python (user site-packages). Command-line options outrank any config file
# a student could write.
if os.environ.get("ROOTFS_HUB_LOCKED", "0") == "1":
    c.Spawner.args = ["--KernelSpecManager.allowed_kernelspecs=rootfs-locked",
                      "--ServerApp.terminals_enabled=False",
                      "--ContentsManager.allow_hidden=False"]
    c.Spawner.environment = {"JUPYTER_PREFER_ENV_PATH": "1", "PYTHONNOUSERSITE": "1"}
