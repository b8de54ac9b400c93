"""Typed errors raised by the rawmap library.

The library never prints or exits: it raises one of these, each carrying a
message that names the file, what is wrong and what to do.  The CLI turns
them into a single ``Error: ...`` line and exit code 1.

Every error class of the package is defined here (the modules that raise
them re-export theirs: ``rawmap.fileio.OutputExistsError`` is
:class:`OutputExistsError`).  Hierarchy::

    RawmapError
    ├── InputError            (a user's file cannot be used; .path, .reason, .hint)
    │   ├── UnreadableFileError   (missing, empty, truncated, corrupt, not an image)
    │   ├── UnsupportedFileError  (a format LibRaw/Pillow cannot decode)
    │   ├── NotBayerError         (decodes, but is not a 2x2 colour mosaic: linear DNG, stacks, scanners)
    │   └── FrameMismatchError    (a photo that does not fit: another sensor size or body than the series)
    │       └── MapMismatchError      (... than the defect map it is repaired or shown with)
    ├── MapFormatError        (a map or state file that is not ours, or of an unknown version)
    ├── MapEditError          (an edit a map cannot take: a photosite outside its sensor, a conflict)
    ├── NothingToMapError     (no usable frame was left)
    ├── OutputError           (an output cannot be written where it was asked for)
    │   └── OutputExistsError     (it exists and overwriting was not allowed)
    ├── ExportError           (a map a format cannot express, an unknown format)
    ├── LibraryError          (the library cannot do what was asked)
    │   └── LibraryBusyError      (another process holds its write lock)
    ├── MissingExtraError     (an optional part is not installed: the message gives the pip command)
    └── EngineError           (the Dask cluster of ``map --dask`` cannot be reached or failed)

The CLI catches :class:`RawmapError` and prints its message as one line.
:class:`StateFormatProblem` stands apart: a ``ValueError`` that the readers
of state files raise inside themselves and turn into a :class:`MapFormatError`
naming the file; it never leaves the package.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "RawmapError",
    "InputError",
    "UnreadableFileError",
    "UnsupportedFileError",
    "NotBayerError",
    "FrameMismatchError",
    "MapFormatError",
    "MapEditError",
    "NothingToMapError",
    "MapMismatchError",
    "OutputError",
    "OutputExistsError",
    "ExportError",
    "LibraryError",
    "LibraryBusyError",
    "MissingExtraError",
    "EngineError",
    "StateFormatProblem",
    "one_line",
]


def one_line(text: object, limit: int | None = None) -> str:
    r"""``text`` (a message, an exception) on one line: every run of blanks and line ends becomes one blank.

    Parameters
    ----------
    text : object
        Turned into text with ``str``.
    limit : int, optional
        At most this many characters, the cut marked with ``...``.

    Examples
    --------
    >>> one_line("a\n  b\tc")
    'a b c'
    >>> one_line("x" * 10, 8)
    'xxxxx...'
    """
    out = " ".join(str(text).split())
    if limit is not None and len(out) > limit:
        out = out[: max(limit - 3, 0)] + "..."
    return out


class RawmapError(Exception):
    """Base class of every error rawmap raises on purpose."""


class InputError(RawmapError):
    """A user's input file cannot be used.

    Parameters
    ----------
    path : path-like or None
        The offending file.
    reason : str
        What is wrong, in a few words (used as the skip reason in summaries).
    hint : str, optional
        What the user can do about it.
    """

    def __init__(self, path: str | Path | None, reason: str, hint: str = "") -> None:
        self.path = None if path is None else Path(path)
        self.reason = reason
        self.hint = hint
        where = f"{self.path}: " if self.path is not None else ""
        tail = f" ({hint})" if hint else ""
        super().__init__(f"{where}{reason}{tail}")

    def __reduce__(self):
        # pickled with its fields (a Dask worker's skipped file reaches the client whole): the
        # default would call the class with the message alone
        return (type(self), (self.path, self.reason, self.hint))


class UnreadableFileError(InputError):
    """Missing, empty, truncated or corrupt file, or not an image at all."""


class UnsupportedFileError(InputError):
    """A file format that neither LibRaw nor Pillow can decode."""


class NotBayerError(InputError):
    """The file decodes but holds no 2x2 colour mosaic (linear DNG, stacked or scanner data)."""


class FrameMismatchError(InputError):
    """A frame that does not belong to the series (other sensor size, other body, other CFA)."""


class MapMismatchError(FrameMismatchError):
    """The defect map belongs to another camera body, sensor size, pattern or kind of file than the photo.

    ``path`` is the photo; ``reason`` says what differs.
    """


class MapFormatError(RawmapError):
    """A defect-map or accumulator-state file that rawmap cannot read."""


class MapEditError(RawmapError):
    """An edit of a defect map that cannot be made (a photosite outside the sensor, a conflicting request)."""


class NothingToMapError(RawmapError):
    """No usable frame was left to build a map from.

    Attributes
    ----------
    skipped : list of rawmap.mapping.Skipped
        Every file left out, with its reason and kind (empty when not given):
        a caller tells "nothing new" (all already counted) from a failure.
    """

    def __init__(self, message: str, *, skipped: list | None = None) -> None:
        super().__init__(message)
        self.skipped = list(skipped or [])


class OutputError(RawmapError):
    """An output cannot be written where it was asked for (folder missing and not creatable, not writable)."""


class OutputExistsError(OutputError):
    """The output file exists and overwriting was not allowed."""


class ExportError(RawmapError):
    """The map cannot be written in the requested format."""


class LibraryError(RawmapError):
    """The library cannot do what was asked (no such body, a conflicting entry, a damaged folder)."""


class LibraryBusyError(LibraryError):
    """Another process holds the library's write lock (only raised when asked not to wait)."""


class MissingExtraError(RawmapError):
    """An optional part of rawmap is not installed (``rawmap[dask]``); the message says how to install it."""


class EngineError(RawmapError):
    """The Dask scheduler of ``rawmap map --dask`` cannot be reached, or its cluster failed a task."""


class StateFormatProblem(ValueError):
    """What is wrong inside a member of a state file (without the file name); callers turn it into a MapFormatError."""
