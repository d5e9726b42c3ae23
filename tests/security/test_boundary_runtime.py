"""Issue 21, class 7: another local user can neither plant nor take over the kernel's
runtime directory, nor own or redirect a file the kernel, the CLI or the test scripts make
in a directory others can write.

The runtime directory is /run/rootfs-kernel for root and $XDG_RUNTIME_DIR/rootfs-kernel
for a user with a login session; else $TMPDIR/rootfs-kernel-UID, used only when it is
the user's own (sandbox/rundir.py). Each reproduction of the report runs here: an
attacker process of another user (rkuser against root, nobody against rkuser) plants a
link or a directory before the victim's kernel (driven through jupyter_client) or CLI
starts, or swaps what it made meanwhile; the victim's files must stay as they were.
The attacks need a second user, so they run in the root pass; the rkuser pass runs the
same checks with what one user can plant for itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import glob
import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import hostmarkers as hm
import pytest
from kerneldriver import KernelDriver, helper_of

from rootfs_kernel import cell
from rootfs_kernel.images import ImageStore
from rootfs_kernel.sandbox import rundir
from rootfs_kernel.sandbox.client import SandboxClient
from rootfs_kernel.sandbox.ops import Mkdir
from rootfs_kernel.sandbox.plan import plan_for

HERE = Path(__file__).resolve().parent
ROOT = os.geteuid() == 0
VICTIM, NOBODY = "rkuser", "nobody"
two_users = pytest.mark.skipif(not ROOT, reason="an attacker of another user needs root "
                               "to start (the root pass plays both users)")


def uid_of(user: str) -> int:
    return pwd.getpwnam(user).pw_uid


def chown_to(path: Path, user: str) -> None:
    os.chown(path, uid_of(user), pwd.getpwnam(user).pw_gid)


def setpriv(user: str) -> list[str]:
    """The command prefix that runs as `user` in the same process (no fork: its pid is
    the caller's); none for this process's own user."""
    if user == pwd.getpwuid(os.geteuid()).pw_name:
        return []
    pw = pwd.getpwnam(user)
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]


def as_user(user: str, *argv: str, env: dict | None = None, check: bool = True,
            **kw) -> subprocess.CompletedProcess:
    """argv as `user`, its environment `env` only."""
    env = env or {"PATH": "/usr/bin:/bin"}
    return subprocess.run([*setpriv(user), "env", "-i", *(f"{k}={v}" for k, v in env.items()),
                           *argv],
                          check=check, capture_output=True, text=True, **kw)


def user_env(user: str, **extra: str) -> dict:
    home = pwd.getpwnam(user).pw_dir
    return {"HOME": home, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "LANG": "C.UTF-8", **extra}


@pytest.fixture
def shared(tmp_path_factory):
    """A directory like /tmp: every user may create in it, sticky."""
    d = Path(tempfile.mkdtemp(prefix="rk-shared-", dir="/tmp"))
    os.chmod(d, 0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def victim_cells(user: str, scripts: Path, cells: list[dict], **env: str) -> list[dict]:
    """The cells in a kernel of `user` (through jupyter_client: victim.py)."""
    done = as_user(user, sys.executable, str(scripts / "victim.py"), json.dumps(cells),
                   env=user_env(user, **env), timeout=300)
    return json.loads(done.stdout.strip().splitlines()[-1])


def private_file(directory: Path, user: str) -> hm.SecretFile:
    """A 0600 file of `user` in `directory` (a victim's ~/.bashrc, say)."""
    marker = hm.make_secret(directory, "victim")
    if user != pwd.getpwuid(os.geteuid()).pw_name:
        chown_to(marker.path, user)
        marker = hm.SecretFile(marker.path, marker.public, uid_of(user))
    return marker


def private_dir(parent: Path, user: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix="rk-private-", dir=parent))
    if user != pwd.getpwuid(os.geteuid()).pw_name:
        chown_to(d, user)
    os.chmod(d, 0o700)
    return d


def listing(d: Path) -> tuple:
    st = os.lstat(d)
    return sorted(os.listdir(d)), stat.S_IMODE(st.st_mode), st.st_uid, st.st_mtime_ns


def refused(result: dict) -> str:
    text = " ".join(result["errors"])
    assert not result["ok"] and "runtime directory cannot be used" in text, result
    assert "XDG_RUNTIME_DIR" in text   # and what to do
    return text


# -- the runtime directory -----------------------------------------------------------------
@pytest.mark.rootonly
@two_users
@pytest.mark.parametrize("victim", ["root", VICTIM])
def test_a_link_planted_at_the_runtime_path_is_never_followed(shared, scripts, victim):
    """Planted before the kernel starts: root chmodded the link's target 0711; an ordinary
    user's kernel made its directories inside it."""
    attacker = VICTIM if victim == "root" else NOBODY
    target = private_dir(Path("/root") if victim == "root" else shared, victim)
    secret = private_file(target, victim)
    before = listing(target)
    planted = shared / f"rootfs-kernel-{uid_of(victim)}"
    as_user(attacker, "ln", "-s", str(target), str(planted))
    results = victim_cells(victim, scripts, [{"code": "true"}], TMPDIR=str(shared))
    try:
        assert listing(target) == before, "the kernel used the planted link's target"
        secret.assert_unchanged()
        if victim == "root":   # /run/rootfs-kernel, where no one else may plant
            assert results[0]["ok"] or "symbolic link" in refused(results[0])
        else:
            assert "is a symbolic link" in refused(results[0])
        assert os.readlink(planted) == str(target)
    finally:
        shutil.rmtree(target)


SWAP = r"""
import os, sys, time
base, attack, victim_file, flag = sys.argv[1:5]
deadline = time.time() + 90
while time.time() < deadline:
    for name in os.listdir(base):
        real = os.path.join(base, name)
        if name[0].isdigit():
            # The helper's directory (0700: the helper has made its cell/ by now): away
            # with it, and one of the attacker's in its place.
            time.sleep(0.2)
            os.rename(real, os.path.join(base, ".stolen-" + name))
            for d in ("", "cell", "c", "keep/upper/usr/bin", "keep/work"):
                os.makedirs(os.path.join(real, d), exist_ok=True)
                os.chmod(os.path.join(real, d), 0o777)
            if attack == "source":   # the %%c source is written through these
                for n in range(1, 6):
                    os.symlink(victim_file, os.path.join(real, "c", f"cell{n}.c"))
            elif attack == "keep":   # the %keep layer: the victim's next cell runs this
                with open(os.path.join(real, "keep/upper/usr/bin/id"), "w") as f:
                    f.write("#!/bin/sh\necho PLANTED\n")
                os.chmod(os.path.join(real, "keep/upper/usr/bin/id"), 0o755)
            open(flag, "w").close()
            if attack == "program":  # once linked, the program becomes a link to the file
                program = os.path.join(real, "c", "cell1")
                while time.time() < deadline:
                    if os.path.isfile(program) and not os.path.islink(program):
                        os.rename(program, program + ".gcc")
                        os.symlink(victim_file, program)
                        sys.exit(0)
                    time.sleep(0.0005)
            sys.exit(0)
    time.sleep(0.002)
"""

ATTACKS = {   # what the victim runs once the attacker swapped the helper's directory
    "source": "%%c\nint main(void) { return 0; }\n",
    "program": "%%c\nint main(void) { return 0; }\n",
    "keep": "%keep\nid\n",
}


@pytest.mark.rootonly
@two_users
@pytest.mark.parametrize("attack", sorted(ATTACKS))
@pytest.mark.parametrize("victim", ["root", VICTIM])
def test_a_planted_directory_cannot_take_the_kernels_files_over(shared, scripts, victim,
                                                                attack):
    """A directory of the attacker's at the runtime path: the attacker swapped the
    helper's directory for one of its own; then the %%c source (open(..., "w")) overwrote
    the victim's file through the attacker's link, the program's chmod 0755 made a 0600
    file of the victim's readable by all, or the victim's %keep cell ran the attacker's
    program."""
    attacker = VICTIM if victim == "root" else NOBODY
    home = private_dir(Path("/root") if victim == "root" else shared, victim)
    bashrc = private_file(home, victim)
    planted = shared / f"rootfs-kernel-{uid_of(victim)}"
    as_user(attacker, "mkdir", "-m", "0777", str(planted))
    flag = shared / "swapped"
    swap = subprocess.Popen([*setpriv(attacker), sys.executable, "-I", "-c", SWAP,
                             str(planted), attack, str(bashrc.path), str(flag)])
    try:
        results = victim_cells(victim, scripts, [{"code": "true"},
                                                 {"code": ATTACKS[attack], "wait": str(flag)}],
                               TMPDIR=str(shared))
        bashrc.assert_unchanged()
        assert bashrc.path.read_text().startswith(bashrc.public)
        assert "PLANTED" not in results[1]["stdout"], "the attacker's program ran"
        made = [p for p in glob.glob(f"{planted}/**", recursive=True)
                if os.lstat(p).st_uid == uid_of(victim)]
        assert made == [], f"the victim's kernel wrote into the planted directory: {made}"
        if victim == "root":
            assert all(r["ok"] for r in results), results   # in /run/rootfs-kernel
        else:
            assert "is owned by uid 65534" in refused(results[0])
            assert not results[1]["ok"]
    finally:
        swap.kill()
        swap.wait()
        shutil.rmtree(home)


@pytest.mark.skipif(ROOT, reason="root's runtime directory is /run/rootfs-kernel: "
                    "the attacks above cover root")
@pytest.mark.parametrize("plant", ["link", "others-writable"])
def test_a_runtime_path_that_is_not_private_is_refused(tmp_path, scripts, plant):
    """What one user can plant for the check: the same refusal, in its own words."""
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    base = tmp_path / f"rootfs-kernel-{os.geteuid()}"
    if plant == "link":
        base.symlink_to(target)
    else:
        base.mkdir()
        os.chmod(base, 0o777)
    me = pwd.getpwuid(os.geteuid()).pw_name
    results = victim_cells(me, scripts, [{"code": "true"}], TMPDIR=str(tmp_path))
    text = refused(results[0])
    assert ("is a symbolic link" if plant == "link" else "is writable by others") in text
    assert os.listdir(target) == []


# -- %%c sources and programs -------------------------------------------------------------
def helper_dir(kernel: KernelDriver) -> Path:
    (d,) = glob.glob(os.path.join(rundir.base(), f"{helper_of(kernel)}-*"))
    return Path(d)


SLOW_C = ("%%c\n#include <unistd.h>\n/* {token} */\n"
          "int main(void) {{ sleep(1); return 0; }}\n")


def watch_c_files(cdir: Path, seen: dict, stop: threading.Event) -> None:
    while not stop.is_set():
        for p in [cdir, *cdir.glob("cell*")] if cdir.exists() else []:
            try:
                seen.setdefault(p.name, set()).add(stat.S_IMODE(os.lstat(p).st_mode))
            except FileNotFoundError:
                pass
        time.sleep(0.001)


def test_c_sources_and_programs_are_readable_by_their_owner_only():
    """Root's %%c sources were 0644 in a 0755 directory while they compiled; now the
    source is no host file at all (the compile writes it in its own tmpfs from its script
    pipe), and the program is its owner's."""
    kernel = KernelDriver()
    try:
        kernel.ok("true")
        cdir = helper_dir(kernel) / "c"
        seen: dict = {}
        stop = threading.Event()
        watcher = threading.Thread(target=watch_c_files, args=(cdir, seen, stop))
        watcher.start()
        try:
            kernel.ok(SLOW_C.format(token="x"))
        finally:
            stop.set()
            watcher.join()
    finally:
        kernel.shutdown()
    assert seen.get("c") and seen.get("cell1"), seen
    assert "cell1.c" not in seen, seen
    assert all(m & 0o066 == 0 for m in seen["c"]), seen
    assert all(m & 0o066 == 0 for m in seen["cell1"]), seen


READER = r"""
import os, sys, time
cdir, seconds = sys.argv[1], float(sys.argv[2])
deadline = time.time() + seconds
while time.time() < deadline:
    for name in ("cell1.c", "cell1", "cell2.c", "cell2"):
        try:
            with open(os.path.join(cdir, name), "rb") as f:
                print("READ", name, f.read(4096).hex())
                sys.exit(0)
        except OSError:
            pass
    time.sleep(0.001)
"""


@pytest.mark.rootonly
@two_users
def test_another_user_cannot_read_roots_c_sources_while_they_compile():
    """nobody knows the path (the helper's directory is on rootfs-init's command line)
    and tries to read the source and the program while the cell runs."""
    kernel = KernelDriver()
    try:
        kernel.ok("true")
        cdir = helper_dir(kernel) / "c"
        reader = subprocess.Popen([*setpriv(NOBODY), sys.executable, "-I", "-c", READER,
                                   str(cdir), "30"], stdout=subprocess.PIPE, text=True)
        token = secrets.token_hex(8)
        try:
            kernel.ok(SLOW_C.format(token=token))
        finally:
            reader.kill()
            out, _ = reader.communicate()
    finally:
        kernel.shutdown()
    assert "READ" not in out, f"nobody read a %%c file of root's: {out[:200]}"


# -- image export's partial file --------------------------------------------------------
@pytest.mark.rootonly
@two_users
@pytest.mark.parametrize("plant", ["link", "file"])
@pytest.mark.parametrize("victim", ["root", VICTIM])
def test_image_export_makes_its_partial_file_fresh(shared, victim, plant):
    """`rootfs-kernel image export NAME OUT` wrote .OUT.partial-PID next to OUT with
    open(..., "wb"): through a link planted there, or into a file another user owns."""
    attacker = VICTIM if victim == "root" else NOBODY
    home = private_dir(Path("/root") if victim == "root" else shared, victim)
    data = home / "data"
    target = private_file(home, victim)
    env = user_env(victim, XDG_DATA_HOME=str(data))
    cli = [sys.executable, "-m", "rootfs_kernel.cli", "image"]
    try:
        as_user(victim, *cli, "build", "minimal", "m", env=env)
        out = shared / "out.tar"
        # The attacker plants at the name of the shell's pid, which then execs the CLI.
        partial = f"{shared}/.out.tar.partial-$PPID"
        plant_cmd = (f"ln -s {target.path} {partial}" if plant == "link" else
                     f"echo attacker > {partial} && chmod 666 {partial}")
        script = f"{' '.join(setpriv(attacker))} sh -c '{plant_cmd}' && exec \"$@\""
        run = subprocess.run(["sh", "-c", script, "sh", *setpriv(victim), "env", "-i",
                              *(f"{k}={v}" for k, v in env.items()), *cli, "export", "m",
                              str(out)], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        target.assert_unchanged()
        planted = [p for p in shared.iterdir() if p.name.startswith(".out.tar.partial-")]
        assert len(planted) == 1, planted   # the attacker's, as it was; no partial left
        if plant == "link":
            assert os.readlink(planted[0]) == str(target.path)
        else:
            assert planted[0].read_text() == "attacker\n"
            assert planted[0].stat().st_uid == uid_of(attacker)
        st = os.lstat(out)
        assert stat.S_ISREG(st.st_mode) and st.st_uid == uid_of(victim)
        back = as_user(victim, *cli, "import", str(out), "back", env=env, check=False)
        assert back.returncode == 0, back.stderr
    finally:
        shutil.rmtree(home)


# -- scripts/test.sh's root marker ------------------------------------------------------------
@pytest.mark.rootonly
@two_users
def test_placing_the_root_marker_follows_no_link_the_user_planted(tmp_path):
    """test.sh (as root) placed ~/.rootfs-root-marker.id with write_text, chown and
    chmod: a link the user put there made /etc/passwd theirs, 0644."""
    home = Path(tempfile.mkdtemp(prefix="rk-home-", dir="/tmp"))
    chown_to(home, VICTIM)
    os.chmod(home, 0o755)
    stand_ins = [hm.make_secret(tmp_path, "passwd"), hm.make_secret(tmp_path, "shadow")]
    try:
        for name, target in ((hm.ROOT_MARKER + ".id", stand_ins[0]),
                             (hm.ROOT_MARKER, stand_ins[1])):
            as_user(VICTIM, "ln", "-s", str(target.path), str(home / name))
        subprocess.run([sys.executable, str(HERE / "hostmarkers.py"), "place-root-marker",
                        str(home), str(uid_of(VICTIM))], check=True)
        for target in stand_ins:
            target.assert_unchanged()
        marker, ident = os.lstat(home / hm.ROOT_MARKER), os.lstat(home / (hm.ROOT_MARKER + ".id"))
        assert stat.S_ISREG(marker.st_mode) and marker.st_uid == 0
        assert stat.S_IMODE(marker.st_mode) == 0o600
        assert stat.S_ISREG(ident.st_mode) and ident.st_uid == uid_of(VICTIM)
        assert stat.S_IMODE(ident.st_mode) == 0o644
        public = (home / (hm.ROOT_MARKER + ".id")).read_text().strip()
        assert (home / hm.ROOT_MARKER).read_text().startswith(public)
    finally:
        shutil.rmtree(home)
        for target in stand_ins:
            target.remove()


# -- rootfs-init's mkdir of the helper's directories --------------------------------------
def run_with_mkdir(path: Path, uid: int = -1) -> str | None:
    """A default cell whose setup also makes `path` first (as it makes the %keep layer's
    directories); the setup's error, if any."""
    sandbox = SandboxClient(prepare=False)
    sandbox.start()
    try:
        plan = plan_for(cell.parse("true"), ImageStore().get("minimal"), sandbox.context())
        plan = dataclasses.replace(plan, ops=(plan.ops[0], Mkdir(str(path), 0o755, uid, uid),
                                              *plan.ops[1:]))
        run = asyncio.run(sandbox.run(plan, lambda _b: None, lambda _b: None))
    finally:
        sandbox.close()
    return run.error


def test_rootfs_init_makes_the_helpers_directories_through_no_link(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    error = run_with_mkdir(tmp_path / "link" / "upper")
    assert os.listdir(target) == []
    assert error and "is a symbolic link" in error and str(tmp_path / "link") in error
    assert run_with_mkdir(tmp_path / "fresh" / "upper") is None   # what it is for
    assert (tmp_path / "fresh" / "upper").is_dir()


def test_rootfs_init_refuses_a_directory_others_may_write(tmp_path):
    shared_dir = tmp_path / "shared"
    shared_dir.mkdir()
    os.chmod(shared_dir, 0o777)
    error = run_with_mkdir(shared_dir / "upper")
    assert error and "others may write" in error
    assert os.listdir(shared_dir) == []


@pytest.mark.rootonly
@two_users
def test_rootfs_init_refuses_a_directory_another_user_made(tmp_path):
    os.chmod(tmp_path, 0o755)
    theirs = tmp_path / "upper"
    theirs.mkdir()
    os.chown(theirs, uid_of(NOBODY), uid_of(NOBODY))
    error = run_with_mkdir(theirs)
    assert error and "another user's" in error
    assert os.lstat(theirs).st_uid == uid_of(NOBODY)
