"""Atomic, never-overwriting file output shared by every writer in rawmap."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["atomic_copy", "atomic_write_bytes", "atomic_write_text", "OutputExistsError"]

from .errors import RawmapError


def _umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


class OutputExistsError(RawmapError):
    """The output file exists and overwriting was not allowed."""


def _publish(tmp: str, path: Path, *, overwrite: bool) -> Path:
    """Give the finished temporary file ``tmp`` its final name, never replacing ``path`` unless ``overwrite``."""
    if overwrite:
        os.replace(tmp, path)
        return path
    # link() fails if the target appeared meanwhile: no silent overwrite race.
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExistsError(f"{path}: already exists (choose another output, or allow overwriting)") from None
    except OSError:  # no hard links on this file system
        if path.exists():
            raise OutputExistsError(f"{path}: already exists (choose another output, or allow overwriting)") from None
        os.replace(tmp, path)
        return path
    os.unlink(tmp)
    return path


def _atomic(path: str | Path, fill, *, overwrite: bool) -> Path:
    """Create ``path`` through a temporary file in the same folder that ``fill(tmp_path, fd)`` writes."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: already exists (choose another output, or allow overwriting)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        # mkstemp creates the file 0600; give it the mode a plain open() would have
        os.chmod(tmp, 0o666 & ~_umask())
        fill(tmp, fd)
        return _publish(tmp, path, overwrite=overwrite)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | Path, data: bytes, *, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder.

    The file appears complete or not at all.  Without ``overwrite`` an
    existing file is never replaced (:class:`OutputExistsError`).
    """

    def fill(tmp: str, fd: int) -> None:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    return _atomic(path, fill, overwrite=overwrite)


def atomic_copy(src: str | Path, dst: str | Path, *, overwrite: bool = False) -> Path:
    """Copy ``src`` to ``dst`` (streamed, for large files) with the guarantees of :func:`atomic_write_bytes`."""

    def fill(tmp: str, fd: int) -> None:
        os.close(fd)
        shutil.copyfile(src, tmp)

    return _atomic(dst, fill, overwrite=overwrite)


def atomic_write_text(path: str | Path, text: str, *, overwrite: bool = False) -> Path:
    """Text variant of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)
