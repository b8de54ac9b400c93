"""Atomic, never-overwriting file output shared by every writer in rawmap.

Every writer goes through a hidden temporary file beside the target
(``.<name>.XXXXXXXX.part``) that is renamed into place when complete.  The
temporary name is an implementation detail: an OS error raised while
writing (a read-only folder, a full disk) names the user's path, never the
temporary file.  :func:`check_output` finds such problems before any work
is done, and :func:`same_file` tells whether an output would land on an
input.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

__all__ = [
    "atomic_copy",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output",
    "check_output_folder",
    "same_file",
    "OutputError",
    "OutputExistsError",
]

from .errors import OutputError, OutputExistsError  # defined in errors.py, re-exported here


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


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when ``a`` and ``b`` are the same file: the same resolved path, or one file under two names.

    Hard links and symbolic links count as the same file (:func:`os.path.samefile`);
    a path that does not exist is compared by its resolved name only.

    Examples
    --------
    >>> same_file("a/../b.json", "b.json")
    True
    """
    try:
        if Path(a).resolve() == Path(b).resolve():
            return True
    except (OSError, RuntimeError):
        pass
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def _nearest_existing(folder: Path) -> Path:
    """``folder`` or its closest ancestor that exists."""
    folder = Path(os.path.abspath(folder))
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder


def check_output_folder(folder: str | os.PathLike[str]) -> Path:
    """Check, before any work, that files can be created in ``folder`` (created later if missing).

    Parameters
    ----------
    folder : path-like

    Returns
    -------
    Path
        ``folder``.

    Raises
    ------
    OutputError
        ``folder`` is a file, or it (or the closest existing folder above
        it, where it would be created) is not a folder rawmap may write in.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: is a file, not a folder (choose a folder for the output)")
    base = _nearest_existing(folder)
    if not base.is_dir():
        raise OutputError(f"{folder}: cannot be created, {base} is a file (choose another output)")
    if not os.access(base, os.W_OK | os.X_OK):
        what = "folder" if base == Path(os.path.abspath(folder)) else f"folder {base}, where it would be created,"
        raise OutputError(f"{folder}: the {what} is not writable (choose another output)")
    return folder


def check_output(path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Check, before any work, that ``path`` can be written: what the atomic writers would refuse or fail on.

    Parameters
    ----------
    path : path-like
        The output file.
    overwrite : bool, optional
        An existing file may be replaced.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is false.
    OutputError
        ``path`` is a folder, or its folder cannot be created or written in.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder (give a file name, or end the folder with / to write into it)")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: already exists (choose another output, or add --overwrite to replace it)")
    check_output_folder(path.parent)
    return path


def _named(exc: OSError, path: Path) -> OSError:
    """``exc`` (raised on a temporary file, or with no file name) as the same error naming ``path``."""
    code = exc.errno if exc.errno is not None else errno.EIO
    return OSError(code, exc.strerror or os.strerror(code), str(path))


def _publish(tmp: str, path: Path, *, overwrite: bool) -> Path:
    """Give the finished temporary file ``tmp`` its final name, never replacing ``path`` unless ``overwrite``."""
    if overwrite:
        os.replace(tmp, path)
        return path
    # link() fails if the target appeared meanwhile: no silent overwrite race.
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExistsError(
            f"{path}: already exists (choose another output, or add --overwrite to replace it)"
        ) from None
    except OSError:  # no hard links on this file system
        if path.exists():
            raise OutputExistsError(
                f"{path}: already exists (choose another output, or add --overwrite to replace it)"
            ) from None
        os.replace(tmp, path)
        return path
    os.unlink(tmp)
    return path


def _atomic(path: str | Path, fill, *, overwrite: bool) -> Path:
    """Create ``path`` through a temporary file in the same folder that ``fill(tmp_path, fd)`` writes."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: already exists (choose another output, or add --overwrite to replace it)")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder (give a file name)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise _named(exc, path) from exc
    try:
        # mkstemp creates the file 0600; give it the mode a plain open() would have
        os.chmod(tmp, 0o666 & ~_umask())
        fill(tmp, fd)
        return _publish(tmp, path, overwrite=overwrite)
    except OSError as exc:
        # a full disk, a quota, a folder made read-only meanwhile: name the user's file, not ours
        ours = exc.filename is None or tmp in (exc.filename, exc.filename2) or exc.errno in (errno.ENOSPC, errno.EDQUOT)
        if isinstance(exc, FileExistsError) or not ours:
            raise  # e.g. the source of a copy that cannot be read: that error names it
        raise _named(exc, path) from exc
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
