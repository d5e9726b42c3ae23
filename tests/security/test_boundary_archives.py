"""Issue 21, class 6: an image archive writes nothing outside its layer, whatever it holds.

Each archive is built here (images/ocifixtures.py) in the shapes that broke Docker
(chrootarchive), containerd (fs.RootPath) and umoci (securejoin): symlinked parents,
`..` through symlinks, hard links out, whiteouts and opaque markers under a symlink made
later, device nodes, duplicate entries, PAX paths, absolute paths, a symlink replaced by a
directory and back. Each is imported through the CLI as the user running the tests (root,
then rkuser), and a marker directory outside the store, which every symlink of the
archive names, must stay as it was: no entry made, changed or given an xattr.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from images.ocifixtures import (
    Entry,
    directory,
    docker_save,
    file,
    hardlink,
    layer_tar,
    oci_layout,
    symlink,
)

from rootfs_kernel.images import ImageStore


def snapshot(top: Path) -> dict[str, tuple]:
    """Everything about a tree that an extraction could change, links never followed."""
    out = {}
    for path in [top, *sorted(top.rglob("*"))]:
        st = os.lstat(path)
        xattrs = {name: os.getxattr(path, name, follow_symlinks=False)
                  for name in os.listxattr(path, follow_symlinks=False)}
        content = (hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode)
                   else os.readlink(path) if stat.S_ISLNK(st.st_mode) else None)
        out[str(path.relative_to(top))] = (
            stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
            st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_rdev, st.st_nlink, content,
            sorted(xattrs.items()))
    return out


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """The host directory the archives aim at: a file, a subdirectory, nothing else."""
    marker = tmp_path / "outside"
    marker.mkdir(mode=0o755)
    (marker / "f").write_text("the host's file\n")
    (marker / "s").mkdir(mode=0o755)
    return marker


def import_cli(tmp_path: Path, archive: Path, name: str = "evil"):
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    return subprocess.run([sys.executable, "-m", "rootfs_kernel.cli", "image", "import",
                           str(archive), name], capture_output=True, text=True, env=env,
                          timeout=120)


def store(tmp_path: Path) -> ImageStore:
    return ImageStore(root=tmp_path / "data" / "rootfs-kernel")


def nothing_stored(tmp_path: Path) -> bool:
    root = tmp_path / "data" / "rootfs-kernel"
    return store(tmp_path).names() == [] and all(
        not (root / d).exists() or not any((root / d).iterdir()) for d in ("layers", "tmp"))


def shapes(m: Path) -> dict[str, tuple[list[Entry], str]]:
    """Archives that must be refused: (entries, what the message must name)."""
    up = "../" * (len(m.parts) + 3)
    return {
        # The report: whiteouts first, then their directories as links to the host.
        "whiteout-then-symlink": ([file("a/.wh.foo"), file("c/newdir/.wh..wh..opq"),
                                   symlink("a", str(m)), symlink("c", str(m))],
                                  "symbolic link"),
        "opaque-then-symlink": ([file("c/newdir/.wh..wh..opq"), symlink("c", str(m))],
                                "symbolic link"),
        "whiteout-under-symlink": ([symlink("d", str(m)), file("d/.wh.gone")],
                                   "symbolic link"),
        "symlinked-parent": ([symlink("x", str(m)), file("x/evil", "x")], "symbolic link"),
        "relative-symlinked-parent": ([symlink("up", up.rstrip("/")),
                                       file(f"up{m}/evil", "x")], "symbolic link"),
        "symlinked-grandparent": ([directory("d"), symlink("d/l", str(m)),
                                   file("d/l/s/evil", "x")], "symbolic link"),
        "dotdot-through-symlink": ([directory("d"), symlink("d/l", str(m / "s")),
                                    file("d/l/../evil", "x")], ".."),
        "dotdot-out": ([file("ok", "fine"), file(f"{up}{str(m)[1:]}/evil", "x")], ".."),
        "absolute-path": ([file(f"{m}/evil", "x")], "absolute"),
        "absolute-whiteout": ([file(f"{m}/.wh.f")], "absolute"),
        "dotdot-whiteout": ([file(f"{up}{str(m)[1:]}/.wh.f")], ".."),
        "hardlink-absolute": ([hardlink("h", str(m / "f"))], "absolute"),
        "hardlink-dotdot": ([hardlink("h", f"{up}{str(m)[1:]}/f")], ".."),
        "hardlink-through-symlink": ([symlink("s", str(m)), hardlink("h", "s/f")],
                                     "symbolic link"),
        "hardlink-to-directory": ([directory("d"), hardlink("h", "d")], "directory"),
        "hardlink-to-nothing": ([hardlink("h", "missing")], "missing"),
        "chardev": ([Entry("dev/mem", None, "chardev")], "device"),
        "blockdev": ([Entry("dev/sda", None, "blockdev")], "device"),
        "fifo": ([Entry("p", None, "fifo")], "device"),
        # umoci CVE-2021-29136: the layer's root itself replaced by a link.
        "dot-symlink": ([symlink(".", str(m)), file("evil", "x")], "root"),
        "symlink-dir-symlink": ([symlink("a", str(m)), directory("a", 0o777),
                                 symlink("a", str(m)), file("a/x", "x")], "symbolic link"),
        "pax-path-dotdot": ([Entry("innocent", b"x", pax={"path": f"{up}{str(m)[1:]}/evil"})],
                            ".."),
        "pax-path-absolute": ([Entry("innocent", b"x", pax={"path": f"{m}/evil"})],
                              "absolute"),
        "pax-path-through-symlink": ([Entry("a", None, "symlink", "", 0o777,
                                            pax={"linkpath": str(m)}),
                                      Entry("innocent", b"x", pax={"path": "a/evil"})],
                                     "symbolic link"),
        "pax-linkpath-absolute": ([Entry("h", None, "hardlink", "f",
                                         pax={"linkpath": str(m / "f")})], "absolute"),
        "nul-in-pax-path": ([Entry("innocent", b"x", pax={"path": "a\0b"})], "NUL"),
    }


def import_layer(tmp_path: Path, outside: Path, entries: list[Entry]):
    """One layer of these entries in a `docker save` tarball, imported through the CLI;
    asserts that `outside` stayed as it was."""
    archive = docker_save(tmp_path / "save.tar", [layer_tar(entries)]).path
    before = snapshot(outside)
    done = import_cli(tmp_path, archive)
    assert snapshot(outside) == before, f"the import changed {outside}"
    return done


@pytest.mark.parametrize("shape", sorted(shapes(Path("/x"))))
def test_a_crafted_layer_is_refused_and_writes_nothing_outside(tmp_path, outside, shape):
    entries, why = shapes(outside)[shape]
    done = import_layer(tmp_path, outside, entries)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "refusing entry" in done.stderr and why in done.stderr, done.stderr
    assert "nothing was stored" in done.stderr
    assert "Traceback" not in done.stderr
    assert nothing_stored(tmp_path)


def test_the_reported_layer_in_an_oci_layout_too(tmp_path, outside):
    """The same layer, gzipped in an OCI layout (a different reader of the same entries)."""
    entries, _ = shapes(outside)["whiteout-then-symlink"]
    archive = oci_layout(tmp_path / "oci", [layer_tar(entries)], gzipped=[True]).path
    before = snapshot(outside)
    done = import_cli(tmp_path, archive)
    assert snapshot(outside) == before
    assert done.returncode == 1 and "refusing entry 'a/.wh.foo'" in done.stderr, done.stderr


def replaced(m: Path) -> dict[str, tuple[list[Entry], dict[str, str]]]:
    """Archives whose later entries replace earlier ones (tar's rule: the last one wins):
    accepted, with what the layer then holds (path -> kind or content)."""
    return {
        # The directory's mode was applied through the link to the host directory.
        "symlink-replaced-by-directory": (
            [symlink("a", str(m)), directory("a", 0o777)], {"a": "dir 777"}),
        "file-over-symlink": ([symlink("f", str(m / "f")), file("f", "over")],
                              {"f": "over"}),
        "file-over-hardlinked-symlink": (
            [symlink("s", str(m / "f")), hardlink("h", "s"), file("h", "over")],
            {"h": "over", "s": f"-> {m / 'f'}"}),
        "directory-replaced-by-file": ([directory("d"), file("d/x", "x"), file("d", "flat")],
                                       {"d": "flat"}),
        "whiteout-then-file": ([file("d/.wh.x"), file("d/x", "back")], {"d/x": "back"}),
    }


@pytest.mark.parametrize("shape", sorted(replaced(Path("/x"))))
def test_a_replacing_entry_replaces_in_the_layer_only(tmp_path, outside, shape):
    entries, expect = replaced(outside)[shape]
    done = import_layer(tmp_path, outside, entries)
    assert done.returncode == 0, done.stderr
    (layer,) = store(tmp_path).load("evil").layers
    for rel, what in expect.items():
        path = layer / rel
        st = os.lstat(path)
        if what.startswith("dir "):
            assert stat.S_ISDIR(st.st_mode) and f"{stat.S_IMODE(st.st_mode):o}" == what[4:]
        elif what.startswith("-> "):
            assert os.readlink(path) == what[3:]
        else:
            assert stat.S_ISREG(st.st_mode) and path.read_text() == what, rel


def test_a_good_image_imports_as_before(tmp_path):
    """Implied parents, absolute and relative symlinks, hard links, whiteouts, an opaque
    directory, 1777 and 0555 modes, long PAX names, "./" names: what an image holds."""
    long = "d/" + "n" * 150
    layer = layer_tar([
        Entry("./", None, "dir", mode=0o755), directory("./etc"),
        file("./etc/hostname", "h\n"), symlink("etc/localtime", "/usr/share/zoneinfo/UTC"),
        symlink("lib", "usr/lib"), file("usr/lib/libx.so", "elf"),
        hardlink("usr/lib/liby.so", "usr/lib/libx.so"), directory("tmp", 0o1777),
        directory("ro", 0o555), file("ro/f", "f"), file(long, "long"),
        file("etc/.wh.passwd"), directory("var"), file("var/.wh..wh..opq"),
        file("var/new", "n"), symlink("up", "../../.."),
    ])
    archive = docker_save(tmp_path / "save.tar", [layer]).path
    done = import_cli(tmp_path, archive, "good")
    assert done.returncode == 0, done.stderr
    img = store(tmp_path).load("good")
    (root,) = img.layers
    assert (root / "etc/hostname").read_text() == "h\n"
    assert os.readlink(root / "lib") == "usr/lib" and os.readlink(root / "up") == "../../.."
    assert os.stat(root / "usr/lib/liby.so").st_ino == os.stat(root / "usr/lib/libx.so").st_ino
    assert stat.S_IMODE(os.stat(root / "tmp").st_mode) == 0o1777
    assert stat.S_IMODE(os.stat(root / "ro").st_mode) == 0o555
    assert (root / long).read_text() == "long"
    wh = os.lstat(root / "etc/passwd")
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
    assert sorted(os.listdir(root / "var")) == ["new"]
    # Its digest is the canonical tar's: export and import again give the same layer.
    out = tmp_path / "again.tar"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    subprocess.run([sys.executable, "-m", "rootfs_kernel.cli", "image", "export", "good",
                    str(out)], check=True, env=env, capture_output=True)
    done = import_cli(tmp_path, out, "again")
    assert done.returncode == 0, done.stderr
    assert store(tmp_path).load("again").meta["layers"][0]["digest"] == \
        img.meta["layers"][0]["digest"]
