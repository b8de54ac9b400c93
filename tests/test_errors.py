"""rawmap.errors: every error class of the package is defined there, in one hierarchy the CLI catches whole."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import rawmap
from rawmap import errors
from rawmap.errors import (
    ExportError,
    FrameMismatchError,
    InputError,
    LibraryBusyError,
    LibraryError,
    MapMismatchError,
    OutputError,
    OutputExistsError,
    RawmapError,
    one_line,
)


def _modules():
    for m in pkgutil.iter_modules(rawmap.__path__):
        if m.name not in ("__main__",) and not m.ispkg:
            yield importlib.import_module(f"rawmap.{m.name}")


def test_every_public_error_class_lives_in_errors():
    found = 0
    for mod in _modules():
        for name, obj in vars(mod).items():
            if inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__.startswith("rawmap"):
                if name.startswith("_") or obj.__name__.startswith("_"):
                    continue  # a module's private signal, never raised out of it
                assert obj.__module__ == "rawmap.errors", f"{mod.__name__}.{name} is defined in {obj.__module__}"
                assert issubclass(obj, RawmapError) or obj is errors.StateFormatProblem, name
                found += 1
    assert found >= 10


def test_old_import_paths_name_the_same_classes():
    from rawmap import export, fileio, library, repair, safeio

    assert fileio.OutputError is OutputError and fileio.OutputExistsError is OutputExistsError
    assert export.ExportError is ExportError
    assert library.LibraryError is LibraryError and library.LibraryBusyError is LibraryBusyError
    assert repair.MapMismatchError is MapMismatchError
    assert safeio.StateFormatProblem is errors.StateFormatProblem


def test_hierarchy():
    assert issubclass(MapMismatchError, FrameMismatchError) and issubclass(MapMismatchError, InputError)
    assert issubclass(OutputExistsError, OutputError) and issubclass(LibraryBusyError, LibraryError)
    for cls in (ExportError, OutputError, LibraryError, InputError):
        assert issubclass(cls, RawmapError)
    exc = MapMismatchError(Path("a/IMG.CR2"), "taken by another body", "use that body's map")
    assert (exc.path, exc.reason, exc.hint) == (Path("a/IMG.CR2"), "taken by another body", "use that body's map")
    assert str(exc) == "a/IMG.CR2: taken by another body (use that body's map)"


@pytest.mark.parametrize(
    "text, limit, expected",
    [
        ("a\n  b\tc\r\n", None, "a b c"),
        ("x" * 10, 8, "xxxxx..."),
        ("short", 8, "short"),
        (ValueError("v\nw"), None, "v w"),
    ],
)
def test_one_line(text, limit, expected):
    assert one_line(text, limit) == expected


@pytest.mark.parametrize("cls", [InputError, FrameMismatchError, MapMismatchError])
def test_input_errors_pickle_whole(cls):
    """A file skipped on a Dask worker reaches the client with its path, reason and hint."""
    import pickle

    exc = cls(Path("a/b.dng"), "is truncated", "copy it again")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is cls
    assert (back.path, back.reason, back.hint, str(back)) == (
        Path("a/b.dng"),
        "is truncated",
        "copy it again",
        str(exc),
    )
