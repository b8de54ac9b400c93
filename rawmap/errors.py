"""Typed errors raised by the rawmap library.

The library never prints or exits: it raises one of these, each carrying a
message that names the file, what is wrong and what to do.  The CLI turns
them into a single ``Error: ...`` line and exit code 1.

Hierarchy::

    RawmapError
    ├── InputError            (a user's file cannot be used)
    │   ├── UnreadableFileError   (missing, empty, truncated, corrupt, not an image)
    │   ├── UnsupportedFileError  (a format LibRaw/Pillow cannot decode)
    │   ├── NotBayerError         (decodes, but is not a 2x2 colour mosaic: linear DNG, stacks, scanners)
    │   └── FrameMismatchError    (another sensor size or another body than the rest of the series)
    ├── MapFormatError        (a map or state file that is not ours, or of an unknown version)
    ├── MapEditError          (an edit a map cannot take: a photosite outside its sensor, a conflict)
    └── NothingToMapError     (no usable frame was left)
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
]


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


class UnreadableFileError(InputError):
    """Missing, empty, truncated or corrupt file, or not an image at all."""


class UnsupportedFileError(InputError):
    """A file format that neither LibRaw nor Pillow can decode."""


class NotBayerError(InputError):
    """The file decodes but holds no 2x2 colour mosaic (linear DNG, stacked or scanner data)."""


class FrameMismatchError(InputError):
    """A frame that does not belong to the series (other sensor size, other body, other CFA)."""


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

    def __init__(self, message: str, *, skipped: "list | None" = None) -> None:
        super().__init__(message)
        self.skipped = list(skipped or [])
