"""rawmap.fileio: atomic, never-overwriting output."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from rawmap import fileio
from rawmap.errors import RawmapError
from rawmap.fileio import OutputExistsError, atomic_write_bytes, atomic_write_text

DATA = bytes(range(256)) * 17 + b"\x00end"


def _names(folder: Path) -> list[str]:
    """Everything in ``folder``, hidden ``.part`` files included."""
    return sorted(os.listdir(folder))


@pytest.fixture
def umask():
    """Set the process umask for one test, and put the old one back."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def test_writes_exact_bytes(tmp_path):
    path = tmp_path / "out.bin"
    assert atomic_write_bytes(path, DATA) == path
    assert path.read_bytes() == DATA
    assert _names(tmp_path) == ["out.bin"]


def test_accepts_str_path_and_empty_data(tmp_path):
    path = atomic_write_bytes(str(tmp_path / "empty.bin"), b"")
    assert path == tmp_path / "empty.bin" and isinstance(path, Path)
    assert path.read_bytes() == b""


def test_text_is_utf8(tmp_path):
    path = atomic_write_text(tmp_path / "map.json", "Ångström ✓\n")
    assert path.read_bytes() == "Ångström ✓\n".encode()


def test_creates_missing_folders(tmp_path):
    path = tmp_path / "a" / "b" / "out.bin"
    atomic_write_bytes(path, DATA)
    assert path.read_bytes() == DATA
    assert _names(path.parent) == ["out.bin"]


def test_refuses_existing_file_and_leaves_it_untouched(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"precious")
    os.utime(path, (1_000_000_000, 1_000_000_000))
    with pytest.raises(OutputExistsError) as exc:
        atomic_write_bytes(path, DATA)
    assert isinstance(exc.value, RawmapError)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: already exists") and "\n" not in msg
    assert path.read_bytes() == b"precious"
    assert path.stat().st_mtime == 1_000_000_000
    assert _names(tmp_path) == ["out.bin"]


def test_refuses_existing_folder(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputExistsError):
        atomic_write_bytes(tmp_path / "out", DATA)
    assert _names(tmp_path) == ["out"]
    assert _names(tmp_path / "out") == []


def test_overwrite_replaces(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old contents, longer than the new ones" * 100)
    assert atomic_write_bytes(path, b"new", overwrite=True) == path
    assert path.read_bytes() == b"new"
    assert _names(tmp_path) == ["out.bin"]


def test_overwrite_of_missing_file_writes_it(tmp_path):
    path = tmp_path / "out.bin"
    atomic_write_bytes(path, DATA, overwrite=True)
    assert path.read_bytes() == DATA
    assert _names(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_failed_write_leaves_nothing_behind(tmp_path, overwrite):
    path = tmp_path / "out.bin"
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes", overwrite=overwrite)  # type: ignore[arg-type]
    assert _names(tmp_path) == []


def test_failed_overwrite_keeps_the_old_file(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"precious")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, ["not", "bytes"], overwrite=True)  # type: ignore[arg-type]
    assert path.read_bytes() == b"precious"
    assert _names(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_disk_full_leaves_nothing_behind(tmp_path, monkeypatch, overwrite):
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    path = tmp_path / "out.bin"
    if overwrite:
        path.write_bytes(b"precious")
    monkeypatch.setattr(fileio.os, "fsync", full)
    with pytest.raises(OSError) as exc:
        atomic_write_bytes(path, DATA, overwrite=overwrite)
    assert exc.value.errno == errno.ENOSPC
    assert _names(tmp_path) == (["out.bin"] if overwrite else [])
    if overwrite:
        assert path.read_bytes() == b"precious"


def test_target_appearing_meanwhile_is_not_overwritten(tmp_path, monkeypatch):
    """Another writer creates the file between the check and the link: refused, no temp file left."""
    path = tmp_path / "out.bin"
    real_link = os.link

    def racing_link(src, dst, *args, **kwargs):
        Path(dst).write_bytes(b"theirs")
        return real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(fileio.os, "link", racing_link)
    with pytest.raises(OutputExistsError):
        atomic_write_bytes(path, DATA)
    assert path.read_bytes() == b"theirs"
    assert _names(tmp_path) == ["out.bin"]


def test_file_system_without_hard_links(tmp_path, monkeypatch):
    def no_link(src, dst, *args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(fileio.os, "link", no_link)
    path = tmp_path / "out.bin"
    atomic_write_bytes(path, DATA)
    assert path.read_bytes() == DATA
    assert _names(tmp_path) == ["out.bin"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write into read-only folders")
def test_read_only_folder_leaves_nothing_behind(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(PermissionError):
            atomic_write_bytes(folder / "out.bin", DATA)
        assert _names(folder) == []
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664), (0o000, 0o666)])
def test_mode_follows_umask(tmp_path, umask, mask, mode):
    umask(mask)
    path = atomic_write_bytes(tmp_path / "out.bin", DATA)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    replaced = atomic_write_bytes(path, b"again", overwrite=True)
    assert stat.S_IMODE(replaced.stat().st_mode) == mode
    # the same as a plain open() would give
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"")
    assert stat.S_IMODE(plain.stat().st_mode) == mode


def test_error_names_the_users_file_not_the_temporary_one(tmp_path, monkeypatch):
    """A full disk while writing is reported on the user's path (errno kept), and leaves nothing behind."""
    path = tmp_path / "m.json"

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", lambda fd: full(fd, b""))
    with pytest.raises(OSError) as info:
        atomic_write_bytes(path, DATA)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(path)
    assert ".part" not in str(info.value)
    assert _names(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_folder_names_the_users_file(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(PermissionError) as info:
            atomic_write_text(ro / "m.json", "{}")
        assert info.value.filename == str(ro / "m.json")
        with pytest.raises(fileio.OutputError, match="not writable"):
            fileio.check_output(ro / "m.json")
        with pytest.raises(fileio.OutputError, match="not writable"):
            fileio.check_output(ro / "new" / "deeper" / "m.json")
    finally:
        ro.chmod(0o755)


def test_check_output_before_the_work(tmp_path):
    (tmp_path / "exists.json").write_text("x")
    (tmp_path / "afile").write_text("x")
    assert fileio.check_output(tmp_path / "new" / "m.json") == tmp_path / "new" / "m.json"
    assert not (tmp_path / "new").exists()  # checking creates nothing
    with pytest.raises(OutputExistsError):
        fileio.check_output(tmp_path / "exists.json")
    assert fileio.check_output(tmp_path / "exists.json", overwrite=True)
    with pytest.raises(fileio.OutputError, match="is a folder"):
        fileio.check_output(tmp_path, overwrite=True)
    with pytest.raises(fileio.OutputError, match="is a file"):
        fileio.check_output(tmp_path / "afile" / "m.json")
    with pytest.raises(fileio.OutputError, match="is a file"):
        fileio.check_output_folder(tmp_path / "afile")


def test_same_file(tmp_path):
    a = tmp_path / "a.dng"
    a.write_bytes(b"x")
    os.link(a, tmp_path / "b.dng")
    os.symlink(a, tmp_path / "c.dng")
    assert fileio.same_file(a, tmp_path / "sub" / ".." / "a.dng")
    assert fileio.same_file(a, tmp_path / "b.dng") and fileio.same_file(tmp_path / "c.dng", a)
    assert not fileio.same_file(a, tmp_path / "d.dng")
