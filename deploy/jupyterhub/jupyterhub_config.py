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
