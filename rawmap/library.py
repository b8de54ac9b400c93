"""The per-body library: one defect map and its statistics per camera body.

Every camera body (make, model, serial) gets a folder holding its current
map and the accumulated per-photosite statistics the map came from, so that
new photos are folded into the stored statistics without re-reading the old
ones and the map keeps improving as the photographer shoots.  Maps made from
RAW files and from developed images (JPEG) of the same body are kept apart:
their statistics are not comparable.

Layout (``ROOT`` is :func:`default_library_dir` unless given)::

    ROOT/
      .lock                          held while the library is written (fcntl.flock)
      canon-eos-d30-171048961 -> .entries/canon-eos-d30-171048961@7
                                     one entry per body and source: a link to its current version
      canon-eos-d30-171048961-image -> .entries/...@2
                                     the same body's map from JPEGs
      .entries/
        canon-eos-d30-171048961@7/   the current version of an entry, never changed in place:
          body.json                    identity, source, times, counts, files used
          map.json                     the current map (rawmap-defect-map JSON)
          map.previous.json            the map before the last update, if any
          state.rawstate               accumulator state (Accumulator.save)
          imported.json                a map imported from elsewhere, if any
      .trash/
        canon-eos-d30-171048961-20260301T101500/   a removed (or replaced) entry: a plain folder

Read an entry through its name (``ROOT/<name>/map.json``): the link leads to
the current version.  An entry written by an older rawmap is a plain folder
``ROOT/<name>/`` holding the same files; it is read as it is, and its first
update moves it into ``.entries`` (see below).

Folder names are :attr:`CameraId.slug` (``-image`` appended for image maps,
``-<H>x<W>`` for a second sensor size of the same body, ``-2``, ``-3``...
when two bodies share a slug); ``body.json`` is what identifies the body,
never the folder name.

Sensor sizes
------------
A body that shoots in several crop modes has one entry per sensor size
(``body.json`` records ``shape``; entries written before it did are sized
from their ``map.json``).  Lookups that give no size take the body's first
entry.

Counted photos
--------------
``body.json`` lists the photos counted in the statistics by path
(``files``) and by content (``content_keys``: content key -> path, see
:func:`rawmap.mapping.content_key`), so a copied, renamed or moved photo is
recognised as already counted (:meth:`Library.known_keys`).  Entries written
before content keys were recorded are matched by path only.

Imported maps
-------------
A map imported from another machine (:meth:`Library.import_map`) has no
statistics behind it.  Its defects are kept in ``imported.json``, which
every later version of the entry keeps; :func:`rawmap.bodies.update_entry`
merges them into each new map, so an imported defect is never dropped.
Statistics start from the first new photos.

Edits by hand
-------------
``rawmap edit`` (:meth:`Library.save_edited`) replaces ``map.json`` with an
edited copy (the map before it kept as ``map.previous.json``); its manual
defects and dropped photosites are carried over to the maps made later
from new photos by :func:`rawmap.bodies.update_entry`.

Storage only
------------
The library stores and loads entries; it decides no map.  An update from
new photos is decided by :func:`rawmap.bodies.update_entry` (continuing or
merging the statistics, classifying again, imported defects, edits by
hand) from the entry as stored (:meth:`Library.stored`), and written as
given by :meth:`Library.store`, which refuses it when the entry changed
after it was read.

First seen
----------
The accumulator records, per photosite, the capture time of the first scene
in which it showed as an outlier; merging statistics keeps the earlier time,
so a defect present from the start keeps its early date and one that appeared
later gets a later date, however the photos were split between runs.

An entry changes all at once
----------------------------
The files of an entry must agree (the statistics' frames are the frames the
body and the map count): an update that stopped half-way, killed or out of
disk space, would leave statistics of 12 frames under a body that says 6,
and every later run would refuse the photos as already counted.  So an
entry is never changed in place.  A write (:meth:`Library.store`,
:meth:`~Library.save_edited`, :meth:`~Library.import_map`) goes:

1. write a complete new version into ``.entries/.new-XXXX/`` (files that do
   not change, the statistics of an edit or an imported map, are hard links
   to the current version's: no copy of a large state), flush it to disk;
2. rename it to ``.entries/<name>@<n+1>`` (a complete, not yet current version);
3. **the switch**: make a link ``.link-<name>-XXXX`` to it and rename that link
   over ``ROOT/<name>``.  ``rename`` replaces a link atomically (POSIX), so
   a reader opening ``ROOT/<name>/...`` finds the old version or the new
   one, never a mix of the two, never nothing;
4. delete the old version (move it to the trash when an import replaced it).

A kill or an error at any step leaves the entry as the old version (before
the switch) or the new one (after it).  The leftovers are cleaned up the
next time the library's lock is taken (every write takes it; a reader takes
it when it is free and something is left over), which rolls each entry to
one committed version: a ``.new-*`` folder or a ``.link-*`` is deleted; a
version that no link points to is deleted (an older version, or a new one
killed before its switch: rolled back), or sent to the trash when the
current version records that it ``replaced`` it; an entry name with
versions but no link at all (a new entry, or an old-layout folder being
moved to ``<name>@0``, killed before its link was made) is linked to its
newest version (rolled forward); a dangling link (a :meth:`Library.remove`
killed after it moved the version to the trash) is deleted.  Rerunning the
interrupted command then simply finishes the work: the photos of a
rolled-back update are not counted yet and are read again; those of an
update that was switched are recognised as counted (``rawmap map`` then
reports nothing new and exits 0).  Nothing is lost but the work of the
interrupted run.

The lock is ``fcntl.flock`` on ``ROOT/.lock`` (Linux, macOS, BSD; on
network file systems only where the server supports it; where ``fcntl`` is
missing, as on Windows, writes are not serialised between processes).  Hold
it with :meth:`Library.updating` around a whole update, from reading the
stored statistics to :meth:`Library.store`: ``rawmap map --save`` does, so
that two runs adding photos to the same body run one after the other and
the second continues the statistics the first stored; readers never wait
for it.  Needs a file system with symbolic links (all Unix ones).

Examples
--------
>>> lib = Library()                                          # doctest: +SKIP
>>> with lib.updating():                                     # doctest: +SKIP
...     run = map_files(paths, states=lib.states())
...     for body in run.maps:
...         lib.store(update_entry(body, lib.stored(body.camera, body.source, shape=body.shape)))
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from .accumulate import Accumulator, FrameRecord
from .defectmap import DefectMap
from .errors import LibraryBusyError, LibraryError, OutputExistsError, RawmapError
from .fileio import _umask, atomic_copy
from .frame import BodyKey, CameraId, SourceKind

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: writes are not serialised between processes
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "ENTRY_FORMAT",
    "ENTRY_VERSION",
    "LIBRARY_ENV",
    "LibraryBusyError",
    "LibraryError",
    "LibraryEntry",
    "Library",
    "StoredStates",
    "StoredEntry",
    "EntryUpdate",
    "default_library_dir",
    "recorded_path",
]

#: environment variable naming the library folder
LIBRARY_ENV = "RAWMAP_LIBRARY"
ENTRY_FORMAT = "rawmap-library-entry"
ENTRY_VERSION = 1

BODY_FILE = "body.json"
MAP_FILE = "map.json"
PREVIOUS_MAP_FILE = "map.previous.json"
STATE_FILE = "state.rawstate"
IMPORTED_FILE = "imported.json"
TRASH_DIR = ".trash"
LOCK_FILE = ".lock"
ENTRIES_DIR = ".entries"  #: the version folders behind the entries' links
VERSION_SEP = "@"  #: ``<entry name>@<number>``: a version folder
NEW_PREFIX = ".new-"  #: a version (or, from older rawmaps, an entry) being written
LINK_PREFIX = ".link-"  #: a link being made, before it is renamed over the entry's name


def default_library_dir() -> Path:
    """The library folder used when none is given.

    Returns
    -------
    Path
        ``$RAWMAP_LIBRARY`` when that environment variable is set and not
        empty, otherwise ``platformdirs.user_data_dir("rawmap") / "library"``
        (``~/.local/share/rawmap/library`` on Linux).
    """
    env = os.environ.get(LIBRARY_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("rawmap")) / "library"


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0)


def _describe(camera: CameraId, source: SourceKind) -> str:
    name = camera.label or "an unknown camera"
    return name + (" (maps from developed images)" if source is SourceKind.IMAGE else "")


def _frames_digest(records: list[FrameRecord]) -> str:
    """A fingerprint of a list of frame records (to tell a continued state from another one).

    Without ``view_outliers``: a view still open when the statistics were
    stored records its count in its frames when it closes, in a later run.
    """
    h = hashlib.sha256()
    for rec in records:
        d = rec.to_dict()
        d.pop("view_outliers", None)
        h.update(json.dumps(d, sort_keys=True).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def recorded_path(path: str | os.PathLike[str]) -> str:
    """A photo's path as an entry records it (``body.json`` ``files``): absolute, links resolved."""
    try:
        return str(Path(path).expanduser().resolve())
    except (OSError, RuntimeError):
        return str(path)


@dataclass(frozen=True)
class LibraryEntry:
    """One body's entry in the library, as described by its ``body.json``.

    Attributes
    ----------
    camera : CameraId
    source : SourceKind
        RAW mosaic maps or developed-image maps.
    path : Path
        The entry's folder, ``ROOT/<name>``: a link to its current version
        (a plain folder for entries written by older rawmaps).
    frames : int
        Frames behind the current map (imported maps' frames included).
    defects : int
        Defects in the current map.
    created, updated : datetime
        When the entry was made and last changed (UTC).
    state_frames : int
        Frames in the stored statistics; 0 when the entry has none
        (an imported map that no photos were added to yet).
    imported : bool
        The map includes defects imported from another map file.
    shape : tuple of int or None
        (H, W) of the sensor area mapped; ``None`` for entries written
        before it was recorded (see :meth:`Library.entry_shape`).
    """

    camera: CameraId
    source: SourceKind
    path: Path
    frames: int
    defects: int
    created: _dt.datetime
    updated: _dt.datetime
    state_frames: int = 0
    imported: bool = False
    shape: tuple[int, int] | None = None

    @property
    def key(self) -> BodyKey:
        """``(camera, source)``, the key :func:`rawmap.mapping.map_files` uses."""
        return (self.camera, self.source)

    @property
    def label(self) -> str:
        """The body's name, e.g. ``"Canon Canon EOS D30 171048961"``."""
        return self.camera.label

    @property
    def has_state(self) -> bool:
        """Whether statistics are stored (new photos continue them)."""
        return (self.path / STATE_FILE).is_file()

    @property
    def map_path(self) -> Path:
        return self.path / MAP_FILE

    @property
    def state_path(self) -> Path:
        return self.path / STATE_FILE


@dataclass(frozen=True)
class StoredEntry:
    """One entry as stored, read from one version of it (a version never changes: a consistent snapshot).

    Made by :meth:`Library.stored`; :func:`rawmap.bodies.update_entry`
    builds an :class:`EntryUpdate` from it, which :meth:`Library.store`
    writes only while the entry is still this version.

    Attributes
    ----------
    entry : LibraryEntry
    folder : Path
        The version folder read (the entry's own folder for an entry of
        the old layout).
    files : tuple of str
        The photos counted in the statistics (:func:`recorded_path` form).
    content_keys : dict
        Content key -> path of the photos counted (empty for entries
        written before they were recorded).
    state_digest : str or None
        Fingerprint of the stored statistics' frame records; ``None`` when
        the entry has no statistics.
    token : str
        Identifies the version read (its folder and ``body.json``).
    """

    entry: LibraryEntry
    folder: Path
    files: tuple[str, ...] = ()
    content_keys: Mapping[str, str] = field(default_factory=dict)
    state_digest: str | None = None
    token: str = ""

    @property
    def has_state(self) -> bool:
        """Whether statistics are stored."""
        return self.state_digest is not None and (self.folder / STATE_FILE).is_file()

    def continued_by(self, acc: Accumulator) -> bool:
        """Whether ``acc`` continues the stored statistics (its first frames are exactly theirs)."""
        n_old = self.entry.state_frames
        return self.has_state and acc.n_frames >= n_old and _frames_digest(acc.frames[:n_old]) == self.state_digest

    def load_state(self) -> Accumulator | None:
        """The stored statistics, read now; ``None`` when there are none.

        Raises
        ------
        rawmap.errors.MapFormatError
            The state file is damaged.
        """
        return Accumulator.load(self.folder / STATE_FILE) if self.has_state else None

    def load_map(self) -> DefectMap | None:
        """The stored map (edits by hand included); ``None`` when the version has none."""
        path = self.folder / MAP_FILE
        return DefectMap.load(path) if path.is_file() else None

    def load_imported(self) -> DefectMap | None:
        """The map imported from elsewhere (``imported.json``), ``None`` when there is none."""
        path = self.folder / IMPORTED_FILE
        return DefectMap.load(path) if path.is_file() else None


@dataclass(frozen=True)
class EntryUpdate:
    """What :meth:`Library.store` writes into one body's entry, as given.

    Made by :func:`rawmap.bodies.update_entry`.

    Attributes
    ----------
    camera : CameraId
    source : SourceKind
    defect_map : DefectMap
        The entry's new map, final (written as it is).
    accumulator : Accumulator
        The entry's statistics, whole (not only the new frames).
    files : tuple of str
        Every photo counted in ``accumulator`` (:func:`recorded_path` form).
    content_keys : dict
        Content key -> path of every photo counted.
    base : StoredEntry or None
        The version this update was made from; ``None`` for a new entry.
    """

    camera: CameraId
    source: SourceKind
    defect_map: DefectMap
    accumulator: Accumulator
    files: tuple[str, ...] = ()
    content_keys: Mapping[str, str] = field(default_factory=dict)
    base: StoredEntry | None = None


class StoredStates(Mapping[BodyKey, Accumulator]):
    """The library's stored statistics as a read-only mapping, loaded on demand.

    Pass it as ``states=`` to :func:`rawmap.mapping.map_files`: a state is
    read from disk only when a body with that key is actually mapped, and it
    is not cached (each state takes about 28 bytes per photosite).  Keys are
    ``(CameraId, SourceKind)`` of the entries that hold statistics (the
    body's first entry); ``(CameraId, SourceKind, (H, W))`` finds the entry
    of one sensor size.

    Parameters
    ----------
    library : Library
    """

    def __init__(self, library: Library) -> None:
        self._library = library

    def __getitem__(self, key: tuple) -> Accumulator:
        """``(camera, source)``, or ``(camera, source, (H, W))`` for the entry of that sensor size."""
        if not isinstance(key, tuple) or len(key) not in (2, 3):
            raise KeyError(key)
        shape = tuple(key[2]) if len(key) == 3 else None
        acc = self._library.state_for(key[0], SourceKind(key[1]), shape=shape)
        if acc is None:
            raise KeyError(key)
        return acc

    def __iter__(self) -> Iterator[BodyKey]:
        return iter(dict.fromkeys(e.key for e in self._library.entries() if e.has_state))

    def __len__(self) -> int:
        return len(dict.fromkeys(e.key for e in self._library.entries() if e.has_state))

    def __contains__(self, key: object) -> bool:
        if not (isinstance(key, tuple) and len(key) in (2, 3) and isinstance(key[0], CameraId)):
            return False
        try:
            source = SourceKind(key[1])
        except ValueError:
            return False
        entry = self._library.get(key[0], source, shape=tuple(key[2]) if len(key) == 3 else None)
        return entry is not None and entry.has_state


class Library:
    """A folder of per-body defect maps and their statistics.

    Parameters
    ----------
    root : path-like, optional
        The library folder; :func:`default_library_dir` when omitted.  It is
        created on the first write; reading a missing library finds no entries.

    Notes
    -----
    Writes are serialised by a lock file (``ROOT/.lock``, see
    :meth:`updating`), and each changes an entry all at once: a complete
    new version is written beside the current one, then the entry's link is
    switched to it with one atomic rename (see the module docstring), so an
    interrupted update leaves the old entry or the new one, whole.  No map
    is lost: :meth:`remove` moves an entry to ``ROOT/.trash``, an update
    keeps the previous map as ``map.previous.json``.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_library_dir()
        self._thread_lock = threading.RLock()
        self._lock_depth = 0

    def __repr__(self) -> str:
        return f"Library({str(self.root)!r})"

    # ------------------------------------------------------------------ reading
    def _read_body(self, folder: Path) -> dict[str, Any]:
        path = folder / BODY_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise LibraryError(f"{folder}: not a library entry (no {BODY_FILE}); move it out of {self.root}") from None
        except (OSError, ValueError) as exc:
            raise LibraryError(
                f"{path}: damaged library entry ({exc}); move the folder out of {self.root} and import its map.json"
            ) from None
        if not isinstance(data, dict) or data.get("format") != ENTRY_FORMAT:
            raise LibraryError(f"{path}: not a rawmap library entry; move the folder out of {self.root}")
        if data.get("version") != ENTRY_VERSION:
            raise LibraryError(
                f"{path}: library entry version {data.get('version')!r} is not supported by this rawmap "
                f"(it reads {ENTRY_VERSION}); upgrade rawmap"
            )
        return data

    def _entry(self, folder: Path, body: dict[str, Any]) -> LibraryEntry:
        try:
            state = body.get("state") or {}
            return LibraryEntry(
                camera=CameraId.from_dict(body["camera"]),
                source=SourceKind(body["source"]),
                path=folder,
                frames=int(body.get("frames", 0)),
                defects=int(body.get("defects", 0)),
                created=_dt.datetime.fromisoformat(body["created"]),
                updated=_dt.datetime.fromisoformat(body["updated"]),
                state_frames=int(state.get("frames", 0)),
                imported=bool(body.get("imported")),
                shape=(int(body["shape"][0]), int(body["shape"][1])) if body.get("shape") else None,
            )
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise LibraryError(
                f"{folder / BODY_FILE}: damaged library entry ({exc}); move the folder out of {self.root}"
            ) from None

    def _folders(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        self._recover_if_needed()
        return sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def entries(self) -> list[LibraryEntry]:
        """Every body in the library, sorted by name, RAW maps before image maps.

        Returns
        -------
        list of LibraryEntry

        Raises
        ------
        LibraryError
            A folder in the library is not a readable entry (its message
            names the folder).
        """
        out = [self._entry(f, self._read_body(f)) for f in self._folders()]
        return sorted(out, key=lambda e: (e.camera.label.lower(), e.source is not SourceKind.RAW, e.path.name))

    @staticmethod
    def _base_name(camera: CameraId, source: SourceKind) -> str:
        return camera.slug + ("-image" if source is SourceKind.IMAGE else "")

    def _body_folders(self, camera: CameraId, source: SourceKind) -> list[tuple[Path, dict[str, Any]]]:
        """Every entry of one body and source (one per sensor size), with its body.json."""
        base = self._base_name(camera, source)
        pattern = re.compile(re.escape(base) + r"(-\d+x\d+)?(-\d+)?")
        out = []
        for folder in self._folders():
            if not pattern.fullmatch(folder.name):
                continue
            body = self._read_body(folder)
            try:
                same = CameraId.from_dict(body["camera"]) == camera and SourceKind(body["source"]) is source
            except (KeyError, ValueError, TypeError, AttributeError):
                continue
            if same:
                out.append((folder, body))
        return out

    def _shape_of(self, folder: Path, body: dict[str, Any]) -> tuple[int, int] | None:
        """An entry's sensor size: from body.json, else (older entries) from its map."""
        try:
            if body.get("shape"):
                return int(body["shape"][0]), int(body["shape"][1])
            sensor = DefectMap.load(folder / MAP_FILE).sensor
        except (RawmapError, OSError, TypeError, ValueError, IndexError):
            return None
        return sensor.height, sensor.width

    def _find_folder(self, camera: CameraId, source: SourceKind, shape: tuple[int, int] | None = None) -> Path | None:
        for folder, body in self._body_folders(camera, source):
            if shape is None or self._shape_of(folder, body) == tuple(shape):
                return folder
        return None

    def get(
        self, camera: CameraId, source: SourceKind = SourceKind.RAW, *, shape: tuple[int, int] | None = None
    ) -> LibraryEntry | None:
        """The entry of one body, or ``None`` when the library has none.

        Parameters
        ----------
        camera : CameraId
        source : SourceKind, optional
            RAW (default) or IMAGE maps.
        shape : tuple of int, optional
            (H, W): the entry of that sensor size; without it, the body's
            first entry.
        """
        source = SourceKind(source)
        folder = self._find_folder(camera, source, shape)
        return None if folder is None else self._entry(folder, self._read_body(folder))

    def entry_shape(self, entry: LibraryEntry) -> tuple[int, int] | None:
        """(H, W) of an entry's map (read from its map for entries that do not record it)."""
        return entry.shape or self._shape_of(entry.path, self._read_body(entry.path))

    def _require(self, what: LibraryEntry | CameraId, source: SourceKind) -> LibraryEntry:
        if isinstance(what, LibraryEntry):
            return what
        source = SourceKind(source)
        entry = self.get(what, source)
        if entry is None:
            hint = "rawmap map JPEGS --save" if source is SourceKind.IMAGE else "rawmap map PHOTOS --save"
            raise LibraryError(f"no map for {_describe(what, source)} in {self.root}; make one with `{hint}`")
        return entry

    def load_map(self, what: LibraryEntry | CameraId, source: SourceKind = SourceKind.RAW) -> DefectMap:
        """The current map of a body.

        Parameters
        ----------
        what : LibraryEntry or CameraId
        source : SourceKind, optional
            Used with a CameraId only.

        Raises
        ------
        LibraryError
            No entry for that body.
        rawmap.errors.MapFormatError
            The stored map is damaged.
        """
        return DefectMap.load(self._require(what, source).map_path)

    def state_for(
        self, camera: CameraId, source: SourceKind = SourceKind.RAW, *, shape: tuple[int, int] | None = None
    ) -> Accumulator | None:
        """The stored statistics of a body (of sensor size ``shape`` when given), read from disk now; ``None`` when there are none.

        Raises
        ------
        rawmap.errors.MapFormatError
            The state file is damaged.
        """
        entry = self.get(camera, SourceKind(source), shape=shape)
        if entry is None or not entry.has_state:
            return None
        return Accumulator.load(entry.state_path)

    def _read_token(self, folder: Path) -> str:
        """Identifies the current version of an entry: its version folder and the bytes of its body.json."""
        version = self._linked_version(folder) or folder
        try:
            data = (version / BODY_FILE).read_bytes()
        except OSError:
            data = b""
        return f"{version.name}:{hashlib.sha256(data).hexdigest()}"

    def stored(
        self, camera: CameraId, source: SourceKind = SourceKind.RAW, *, shape: tuple[int, int] | None = None
    ) -> StoredEntry | None:
        """The entry of one body as stored, for an update (:func:`rawmap.bodies.update_entry`); ``None`` when none.

        Takes the library's write lock while reading (hold
        :meth:`updating` until :meth:`store` so that nobody changes the
        entry in between).

        Parameters
        ----------
        camera : CameraId
        source : SourceKind, optional
        shape : tuple of int, optional
            (H, W): the entry of that sensor size; without it, the body's
            first entry.

        Raises
        ------
        LibraryError
            The entry is damaged.
        """
        source = SourceKind(source)
        if not self.root.is_dir():
            return None  # an empty library: nothing to read, nothing created
        with self.updating():
            folder = self._find_folder(camera, source, shape)
            if folder is None:
                return None
            body = self._read_body(folder)
            entry = self._entry(folder, body)
            state = body.get("state") or None
            keys = body.get("content_keys") or {}
            return StoredEntry(
                entry=entry,
                folder=self._linked_version(folder) or folder,
                files=tuple(str(f) for f in body.get("files", [])),
                content_keys={str(k): str(v) for k, v in keys.items()} if isinstance(keys, dict) else {},
                state_digest=str(state.get("digest") or "") if isinstance(state, dict) else None,
                token=self._read_token(folder),
            )

    def load_state(self, what: LibraryEntry | CameraId, source: SourceKind = SourceKind.RAW) -> Accumulator:
        """The stored statistics of a body (like :meth:`state_for`, but an entry must hold them).

        Raises
        ------
        LibraryError
            No entry, or an entry without statistics (an imported map).
        """
        entry = self._require(what, source)
        if not entry.has_state:
            raise LibraryError(
                f"{entry.path}: the map of {_describe(entry.camera, entry.source)} was imported and has no "
                "statistics yet; add photos with `rawmap map PHOTOS --save`"
            )
        return Accumulator.load(entry.state_path)

    def states(self) -> StoredStates:
        """All stored statistics as a lazy mapping, for ``map_files(states=...)``."""
        return StoredStates(self)

    def known_files(self) -> set[Path]:
        """Photos whose frames are already in some stored statistics (absolute paths).

        Mapping one of them again would count it twice; leave them out of
        the paths given to :func:`rawmap.mapping.map_files` (compare with
        ``Path(p).resolve()``) before the update
        (:func:`rawmap.bodies.update_entry` refuses double-counted files).
        """
        out: set[Path] = set()
        for folder in self._folders():
            out.update(Path(p) for p in self._read_body(folder).get("files", []))
        return out

    def known_keys(self) -> dict[str, str]:
        """Content keys of the photos already in some stored statistics (content key -> path counted).

        Pass them, with :meth:`known_files`, as
        ``map_files(counted=Counted(keys, paths))``: a copy, a renamed file
        or a moved folder of a counted photo is then left out.  Photos
        stored before content keys were recorded are not in it (their paths
        still are in :meth:`known_files`).
        """
        out: dict[str, str] = {}
        for folder in self._folders():
            keys = self._read_body(folder).get("content_keys") or {}
            if isinstance(keys, dict):
                out.update((str(k), str(v)) for k, v in keys.items())
        return out

    # ------------------------------------------------------------------ writing
    @contextmanager
    def updating(self, *, wait: bool = True) -> Iterator[None]:
        """Hold the library's write lock: no other process changes the library meanwhile.

        Every write (:meth:`store`, :meth:`save_edited`, :meth:`remove`,
        :meth:`import_map`) takes this lock by itself.  Hold it around a
        whole update, from reading the stored statistics
        (:meth:`states`) to :meth:`store`, so that two processes adding
        photos to the same body run one after the other and neither loses
        its frames (``rawmap map --save`` does).  The lock is re-entrant
        within one :class:`Library` object; a half-done update left by a
        killed process is finished or undone when the lock is taken (see
        the module docstring).

        Parameters
        ----------
        wait : bool, optional
            Wait for another process to release the lock (default); when
            false, raise :class:`LibraryBusyError` at once instead.

        Raises
        ------
        LibraryBusyError
            ``wait`` is false and another process (or thread) holds the lock.
        LibraryError
            The library folder cannot be created.

        Notes
        -----
        ``fcntl.flock`` on ``ROOT/.lock`` (Linux, macOS, BSD; on NFS only
        where the server supports it).  Where ``fcntl`` is missing (Windows)
        writes are not serialised between processes.
        """
        if not self._thread_lock.acquire(blocking=wait):
            raise LibraryBusyError(f"{self.root}: another thread is updating the library")
        try:
            if self._lock_depth:
                self._lock_depth += 1
                try:
                    yield
                finally:
                    self._lock_depth -= 1
                return
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                fh = open(self.root / LOCK_FILE, "a+b")
            except OSError as exc:
                raise LibraryError(f"{self.root}: cannot create the library folder ({exc.strerror})") from None
            with fh:
                if fcntl is not None:
                    try:
                        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                    except BlockingIOError:
                        raise LibraryBusyError(
                            f"{self.root}: another rawmap run is updating the library; wait for it to finish"
                        ) from None
                self._lock_depth = 1
                try:
                    self._recover()
                    yield
                finally:
                    self._lock_depth = 0
                    if fcntl is not None:
                        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    # ------------------------------------------------------------------ versions, switch, recovery
    @property
    def _store_dir(self) -> Path:
        return self.root / ENTRIES_DIR

    def _linked_version(self, link: Path) -> Path | None:
        """The version folder ``link`` (an entry's name in ROOT) points to, if it is a link to an existing one."""
        if not link.is_symlink():
            return None
        try:
            target = os.readlink(link)
        except OSError:
            return None
        version = (link.parent / target) if not os.path.isabs(target) else Path(target)
        if version.parent.name != ENTRIES_DIR or not version.is_dir():
            return None
        return self._store_dir / version.name

    def _version_dirs(self) -> dict[str, list[tuple[int, Path]]]:
        """The complete version folders in ``ROOT/.entries``, by entry name, oldest first."""
        out: dict[str, list[tuple[int, Path]]] = {}
        try:
            items = list(self._store_dir.iterdir())
        except OSError:
            return out
        for p in items:
            name, sep, num = p.name.rpartition(VERSION_SEP)
            if p.name.startswith(".") or not sep or not num.isdigit() or not p.is_dir() or p.is_symlink():
                continue
            out.setdefault(name, []).append((int(num), p))
        return {k: sorted(v) for k, v in out.items()}

    def _needs_recovery(self) -> bool:
        """Whether an interrupted write left something behind (cheap: two folder listings, no file read)."""
        try:
            items = list(self.root.iterdir())
        except OSError:
            return False
        for p in items:
            if p.name.startswith((NEW_PREFIX, LINK_PREFIX)) or (p.is_symlink() and not p.exists()):
                return True
        try:
            if any(p.name.startswith(".") for p in self._store_dir.iterdir()):
                return True
        except OSError:
            return False
        for name, versions in self._version_dirs().items():
            current = self._linked_version(self.root / name)
            if current is None or len(versions) > 1:
                return True
        return False

    def _recover_if_needed(self) -> None:
        """Finish or undo an interrupted write before reading, when the lock is free (readers never wait)."""
        if self._lock_depth or not self._needs_recovery():
            return
        try:
            with self.updating(wait=False):
                pass  # taking the lock recovers
        except (LibraryError, OSError):
            pass  # another process is writing (it recovers), or the library is read-only

    def _recover(self) -> None:
        """Bring the library back to committed entries only; the lock is held.

        * temporary folders and links of an interrupted write are removed;
        * a link left dangling by an interrupted :meth:`remove` is removed;
        * an entry name with version folders but no link (a new or migrated
          entry killed before its link was made) is linked to its newest
          version (rolled forward);
        * version folders that no link points to (older versions, or a new
          version killed before the switch: rolled back) are deleted, or
          moved to the trash when the current version replaced them
          (``library import --replace``).
        """
        if not self.root.is_dir():
            return
        for p in list(self.root.iterdir()):
            if p.name.startswith(LINK_PREFIX) and p.is_symlink():
                _quietly(os.unlink, p)
            elif p.name.startswith(NEW_PREFIX) and p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)  # a new entry of an older rawmap, never renamed into place
            elif p.is_symlink() and not p.exists() and not p.name.startswith("."):
                _quietly(os.unlink, p)  # a removed entry whose link was not taken away yet
        if not self._store_dir.is_dir():
            return
        for p in list(self._store_dir.iterdir()):
            if p.name.startswith(NEW_PREFIX):
                shutil.rmtree(p, ignore_errors=True)  # a version killed while being written
        for name, versions in self._version_dirs().items():
            link = self.root / name
            current = self._linked_version(link)
            if current is None:
                if link.exists() or link.is_symlink():
                    continue  # an entry of the old layout (a real folder) or something not ours: leave it
                current = versions[-1][1]
                self._switch(name, current)
            replaced = None
            try:
                replaced = json.loads((current / BODY_FILE).read_text(encoding="utf-8")).get("replaced")
            except (OSError, ValueError, AttributeError):
                replaced = "?"  # unreadable: keep the other versions, in the trash
            for _, version in versions:
                if version == current:
                    continue
                if replaced is not None and replaced in (version.name, "?"):
                    self._to_trash(version, name)
                else:
                    shutil.rmtree(version, ignore_errors=True)

    def _switch(self, name: str, version: Path) -> None:
        """Point ``ROOT/name`` at ``version`` with one atomic rename of a new link over the old one: the commit."""
        tmp = self.root / f"{LINK_PREFIX}{name}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            os.symlink(os.path.join(ENTRIES_DIR, version.name), tmp)
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.ENOTSUP, errno.ENOSYS, errno.EOPNOTSUPP):
                raise LibraryError(
                    f"{self.root}: the library's file system has no symbolic links (FAT or exFAT?), which the "
                    "library needs to change an entry all at once; keep it on another disk (--library DIR or "
                    f"${LIBRARY_ENV})"
                ) from None
            raise
        try:
            os.replace(tmp, self.root / name)
        except BaseException:
            _quietly(os.unlink, tmp)
            raise
        _fsync_dir(self.root)

    def _current_version(self, folder: Path) -> Path:
        """The version folder behind an entry, first moving an entry of the old layout (a real folder) into one."""
        version = self._linked_version(folder)
        if version is not None:
            return version
        if folder.is_symlink() or not folder.is_dir():
            raise LibraryError(f"{folder}: not a library entry; move it out of {self.root}")
        # old layout: the folder itself becomes version 0 (a kill between the two steps is rolled forward)
        self._store_dir.mkdir(exist_ok=True)
        version = self._store_dir / f"{folder.name}{VERSION_SEP}0"
        os.rename(folder, version)
        _fsync_dir(self.root)
        self._switch(folder.name, version)
        return version

    def _commit(
        self, name: str, files: Mapping[str, bytes | Path], *, previous: Path | None = None, replaced: bool = False
    ) -> Path:
        """Write a complete new version of entry ``name``, switch the entry to it, and drop ``previous``.

        ``files`` maps file names to their bytes, or to an existing file of
        the previous version (hard-linked, copied where links are not
        supported: those files never change in place).  Until the switch the
        entry is the previous version; after it, the new one.

        Returns
        -------
        Path
            ``ROOT/name``.
        """
        try:
            self._store_dir.mkdir(exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=NEW_PREFIX, dir=self._store_dir))
            try:
                os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700; give the mode a plain mkdir would
                for fname, content in files.items():
                    if isinstance(content, Path):
                        _link_or_copy(content, tmp / fname)
                    else:
                        _write_new(tmp / fname, content)
                _fsync_dir(tmp)
                numbers = [n for n, _ in self._version_dirs().get(name, [])]
                final = self._store_dir / f"{name}{VERSION_SEP}{max(numbers, default=0) + 1}"
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            _fsync_dir(self._store_dir)
            try:
                self._switch(name, final)
            except BaseException:
                if self._linked_version(self.root / name) != final:
                    shutil.rmtree(final, ignore_errors=True)
                raise
        except OSError as exc:
            raise LibraryError(f"{self.root / name}: cannot write the library entry ({exc.strerror or exc})") from None
        if previous is not None and previous != final:
            if replaced:
                try:
                    self._to_trash(previous, name)
                except OSError:
                    pass  # still there: the next write moves it (see _recover)
            else:
                shutil.rmtree(previous, ignore_errors=True)
        return self.root / name

    def _trash_dest(self, name: str) -> Path:
        trash = self.root / TRASH_DIR
        trash.mkdir(exist_ok=True)
        stamp = _now().strftime("%Y%m%dT%H%M%S")
        dest = trash / f"{name}-{stamp}"
        n = 1
        while dest.exists() or dest.is_symlink():
            n += 1
            dest = trash / f"{name}-{stamp}-{n}"
        return dest

    def _to_trash(self, folder: Path, name: str) -> Path:
        dest = self._trash_dest(name)
        os.rename(folder, dest)
        return dest

    def _new_folder_name(self, camera: CameraId, source: SourceKind, shape: tuple[int, int] | None = None) -> str:
        base = self._base_name(camera, source)
        if shape is not None and self._body_folders(camera, source):  # another sensor size of this body
            base += f"-{shape[0]}x{shape[1]}"
        name, n = base, 1
        while (self.root / name).exists() or (self.root / name).is_symlink():
            n += 1
            name = f"{base}-{n}"
        return name

    def _write_entry(
        self,
        folder: Path | None,
        camera: CameraId,
        source: SourceKind,
        dmap: DefectMap,
        *,
        acc: Accumulator | None,
        imported: DefectMap | None,
        imported_info: dict[str, Any] | None,
        files: list[str],
        created: _dt.datetime | None = None,
        content_keys: Mapping[str, str] | None = None,
        replace_entry: bool = False,
    ) -> LibraryEntry:
        """Write a new version of an entry (a new entry when ``folder`` is None) and switch to it at once.

        An update keeps the previous map as ``map.previous.json`` and the
        imported defects; ``replace_entry`` starts the entry afresh and
        sends the version it replaces to the trash.
        """
        now = _now()
        body = {
            "format": ENTRY_FORMAT,
            "version": ENTRY_VERSION,
            "camera": camera.to_dict(),
            "source": source.value,
            "created": (created or now).isoformat(),
            "updated": now.isoformat(),
            "frames": dmap.frames.count,
            "defects": len(dmap),
            "state": None if acc is None else {"frames": acc.n_frames, "digest": _frames_digest(acc.frames)},
            "imported": imported_info,
            "files": files,
            "shape": [dmap.sensor.height, dmap.sensor.width],
            "content_keys": dict(content_keys or {}),
        }
        previous = None
        if folder is None:
            name = self._new_folder_name(camera, source, (dmap.sensor.height, dmap.sensor.width))
        else:
            name = folder.name
            try:
                previous = self._current_version(folder)
            except OSError as exc:
                raise LibraryError(f"{folder}: cannot write the library entry ({exc.strerror or exc})") from None
            if replace_entry:
                body["replaced"] = previous.name
        content: dict[str, bytes | Path] = {}
        if acc is not None:
            content[STATE_FILE] = acc.to_bytes()
        if imported is not None:
            content[IMPORTED_FILE] = imported.to_json().encode("utf-8")
        elif previous is not None and not replace_entry and (previous / IMPORTED_FILE).is_file():
            content[IMPORTED_FILE] = previous / IMPORTED_FILE
        if previous is not None and not replace_entry and (previous / MAP_FILE).is_file():
            content[PREVIOUS_MAP_FILE] = previous / MAP_FILE
        content[MAP_FILE] = dmap.to_json().encode("utf-8")
        content[BODY_FILE] = (json.dumps(body, indent=1) + "\n").encode("utf-8")
        path = self._commit(name, content, previous=previous, replaced=replace_entry)
        return self._entry(path, body)

    def store(self, update: EntryUpdate) -> LibraryEntry:
        """Write one body's entry as ``update`` gives it: statistics, map, photos counted.

        Nothing is decided here: ``update`` comes from
        :func:`rawmap.bodies.update_entry`, which merges statistics, imported
        defects and edits by hand, and its map is written as it is.  The
        entry keeps, from the version ``update.base`` was read from, its
        creation time, its imported map and what it records about it, and
        the map it replaces as ``map.previous.json``.  The entry changes all
        at once (see the module docstring): killed or failing at any point,
        it is left as it was or as updated, whole.

        Parameters
        ----------
        update : EntryUpdate

        Returns
        -------
        LibraryEntry
            The updated entry (``update.defect_map`` is its map: no need to
            read it back).

        Raises
        ------
        LibraryError
            ``update`` is inconsistent (its map or statistics belong to
            another body or size), the entry changed after ``update.base``
            was read (or appeared, for a new entry): another run updated it
            meanwhile; or a write failed.
        """
        camera, source = update.camera, SourceKind(update.source)
        acc, dmap = update.accumulator, update.defect_map
        if acc.camera != camera or acc.source is not source or dmap.camera != camera:
            raise LibraryError(
                f"cannot store the map of {_describe(camera, source)}: its statistics or map belong to "
                f"{acc.camera.label} ({acc.source.value}); this is a bug in the caller"
            )
        if (dmap.sensor.height, dmap.sensor.width) != acc.shape:
            raise LibraryError(
                f"cannot store the map of {_describe(camera, source)}: map is {dmap.sensor.height}x"
                f"{dmap.sensor.width}, its statistics {acc.shape[0]}x{acc.shape[1]}; this is a bug in the caller"
            )
        with self.updating():
            folder = self._find_folder(camera, source, acc.shape)
            base = update.base
            if base is None:
                fresh = folder is None
            else:
                fresh = folder == base.entry.path and self._read_token(folder) == base.token
            if not fresh:
                where = folder if folder is not None else base.entry.path if base is not None else self.root
                raise LibraryError(
                    f"{where}: the entry of {_describe(camera, source)} changed after this "
                    "update was prepared (another run updated it meanwhile); prepare it again from the stored "
                    "entry, holding Library.updating() from reading it to storing"
                )
            body = self._read_body(folder) if folder is not None else None
            created = _dt.datetime.fromisoformat(body["created"]) if body and body.get("created") else None
            return self._write_entry(
                folder,
                camera,
                source,
                dmap,
                acc=acc,
                imported=None,
                imported_info=(body or {}).get("imported"),
                files=list(update.files),
                created=created,
                content_keys=update.content_keys,
            )

    def save_edited(self, entry: LibraryEntry, dmap: DefectMap) -> LibraryEntry:
        """Replace a body's map with an edited copy of it (:meth:`DefectMap.edited`).

        The statistics are untouched; the map before the edit is kept as
        ``map.previous.json``.  Later updates from new photos keep the edits
        (see :func:`rawmap.bodies.update_entry`).

        Raises
        ------
        LibraryError
            ``dmap`` belongs to another body or sensor size, is an edit of
            an older version of the map (the entry was updated since it was
            read: the update would be lost), the entry is gone, or a write
            failed.
        """
        with self.updating():
            folder = self._find_folder(entry.camera, entry.source)
            if folder is None:
                raise LibraryError(f"{entry.path}: the entry of {entry.label} is no longer in {self.root}")
            current = DefectMap.load(folder / MAP_FILE)
            if dmap.camera != current.camera or (dmap.sensor.height, dmap.sensor.width) != (
                current.sensor.height,
                current.sensor.width,
            ):
                raise LibraryError(
                    f"{folder}: the edited map ({dmap.camera.label}, {dmap.sensor.height}x{dmap.sensor.width}) "
                    f"is not a map of {_describe(entry.camera, entry.source)}; edit the body's own map"
                )
            if dmap.created != current.created or dmap.frames.count != current.frames.count:
                raise LibraryError(
                    f"{folder}: the map of {_describe(entry.camera, entry.source)} changed after the copy being "
                    "edited was read (another rawmap run updated it meanwhile); make the edit again"
                )
            body = self._read_body(folder)
            body["updated"] = _now().isoformat()
            body["defects"] = len(dmap)
            body.pop("replaced", None)
            try:
                version = self._current_version(folder)
            except OSError as exc:
                raise LibraryError(f"{folder}: cannot write the library entry ({exc.strerror or exc})") from None
            content: dict[str, bytes | Path] = {
                f: version / f for f in (STATE_FILE, IMPORTED_FILE) if (version / f).is_file()
            }
            content[PREVIOUS_MAP_FILE] = version / MAP_FILE
            content[MAP_FILE] = dmap.to_json().encode("utf-8")
            content[BODY_FILE] = (json.dumps(body, indent=1) + "\n").encode("utf-8")
            return self._entry(self._commit(folder.name, content, previous=version), body)

    def remove(self, camera: CameraId, source: SourceKind = SourceKind.RAW) -> Path:
        """Take a body's entry out of the library by moving it to ``ROOT/.trash``.

        Nothing is deleted: the folder is moved to
        ``ROOT/.trash/<folder>-<YYYYmmddTHHMMSS>/`` and can be moved back by
        hand.  Empty the trash folder to free the space.

        Returns
        -------
        Path
            Where the entry now is.

        Raises
        ------
        LibraryError
            No entry for that body.
        """
        source = SourceKind(source)
        with self.updating():
            entry = self._require(camera, source)
            return self._trash(entry.path)

    def _trash(self, folder: Path) -> Path:
        """Move an entry's folder to the trash; the entry disappears in one step (its link is left dangling)."""
        try:
            version = self._linked_version(folder)
            if version is None:  # an entry of the old layout: the folder itself
                return self._to_trash(folder, folder.name)
            dest = self._to_trash(version, folder.name)
            _quietly(os.unlink, folder)  # a dangling link left by a kill here is removed by _recover
            _fsync_dir(self.root)
            return dest
        except OSError as exc:
            raise LibraryError(
                f"{folder}: cannot move the entry to {self.root / TRASH_DIR} ({exc.strerror or exc})"
            ) from None

    def import_map(
        self,
        path: str | os.PathLike[str],
        *,
        state: str | os.PathLike[str] | None = None,
        replace: bool = False,
    ) -> LibraryEntry:
        """Add a map file made elsewhere (another machine, a backup) to the library.

        Parameters
        ----------
        path : path-like
            A rawmap defect-map JSON file.  Its camera and source (RAW or
            image) say which entry it becomes.
        state : path-like, optional
            The statistics file exported with it (:meth:`export_entry`).
            Without one the map is kept as imported defects: new photos start
            new statistics and their map is merged with the imported defects.
        replace : bool, optional
            When the body already has an entry, move that entry to the trash
            (see :meth:`remove`) and import this map instead.  Otherwise the
            import is refused.

        Returns
        -------
        LibraryEntry

        Notes
        -----
        A map that itself carries imported defects (``thresholds["imported"]``,
        as exported from an entry that had some) keeps all its defects as
        imported ones even when ``state`` is given, so none is lost.

        Raises
        ------
        rawmap.errors.MapFormatError
            ``path`` or ``state`` is not a rawmap file, or is damaged (a defect
            outside its sensor, see :meth:`rawmap.defectmap.DefectMap.load`).
        LibraryError
            The map does not match ``state``, or the body already has a map
            and ``replace`` is false.  (A map that names no camera is filed
            under the unknown camera's entry, as ``rawmap map --save`` files
            photos without make and model, so that such an entry exported by
            :meth:`export_entry` comes back.)
        """
        path = Path(path)
        dmap = DefectMap.load(path)
        # a map that names no camera (photos without make/model) is filed as `map --save` files
        # it, under the one "unknown camera" body, so that an exported entry can be imported back
        camera = dmap.camera
        try:
            source = SourceKind(dmap.sensor.source)
        except ValueError:
            raise LibraryError(
                f"{path}: unknown map source {dmap.sensor.source!r} (expected 'raw' or 'image')"
            ) from None
        H, W = dmap.sensor.height, dmap.sensor.width
        if H <= 0 or W <= 0:
            raise LibraryError(f"{path}: the map's sensor size {H}x{W} is not valid; make the map again")
        outside = [d for d in dmap.defects if not (0 <= d.row < H and 0 <= d.col < W)]
        if outside:
            d = outside[0]
            raise LibraryError(
                f"{path}: defect at row {d.row}, col {d.col} lies outside the {H}x{W} sensor; the map is damaged"
            )
        acc = None
        if state is not None:
            acc = Accumulator.load(Path(state))
            if acc.camera != camera or acc.source is not source or acc.shape != (H, W):
                raise LibraryError(
                    f"{state}: statistics of {acc.camera.label} ({acc.source.value}, {acc.shape[0]}x{acc.shape[1]}) "
                    f"do not belong to the map {path} ({camera.label}, {source.value}, {H}x{W})"
                )
        with self.updating():
            existing = self._find_folder(camera, source, (H, W))
            if existing is not None:
                if not replace:
                    raise LibraryError(
                        f"{_describe(camera, source)} already has a map in {self.root}; "
                        "replace it (the old entry goes to the trash) or remove it first"
                    )
            # with statistics, only a map that already carried imported defects keeps them as such
            keep_imported = acc is None or bool(dmap.thresholds.get("imported"))
            info = None
            if keep_imported:
                info = {
                    "file": str(path.resolve()),
                    "at": _now().isoformat(),
                    "defects": len(dmap),
                    "frames": dmap.frames.count,
                }
            # --replace: a new version of the same entry, the old one going to the trash after the switch
            return self._write_entry(
                existing,
                camera,
                source,
                dmap,
                acc=acc,
                imported=dmap if keep_imported else None,
                imported_info=info,
                files=[recorded_path(f.path) for f in acc.frames] if acc is not None else [],
                replace_entry=existing is not None,
            )

    def export_entry(
        self,
        camera: CameraId,
        source: SourceKind,
        dest_dir: str | os.PathLike[str],
    ) -> list[Path]:
        """Copy a body's map and statistics out of the library.

        Writes ``<folder>.map.json`` and, when the entry has statistics,
        ``<folder>.rawstate`` into ``dest_dir`` (created if missing), where
        ``<folder>`` is the entry's folder name.  :meth:`import_map` with
        ``state=`` takes them back on another machine.

        Returns
        -------
        list of Path
            The files written.

        Raises
        ------
        LibraryError
            No entry for that body.
        rawmap.errors.OutputExistsError
            One of the files exists already (nothing is written).
        """
        entry = self._require(camera, SourceKind(source))
        dest = Path(dest_dir)
        pairs = [(entry.map_path, dest / f"{entry.path.name}.map.json")]
        if entry.has_state:
            pairs.append((entry.state_path, dest / f"{entry.path.name}.rawstate"))
        for _, target in pairs:
            if target.exists():
                raise OutputExistsError(f"{target}: already exists (choose another folder, or move the file away)")
        try:
            dest.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LibraryError(f"{dest}: cannot create the folder ({exc.strerror})") from None
        out = []
        for src, target in pairs:
            out.append(_copy_file(src, target, overwrite=False))
        return out


def _quietly(func: Any, *args: Any) -> None:
    try:
        func(*args)
    except OSError:
        pass


def _fsync_dir(folder: Path) -> None:
    """Make a folder's new names durable (a rename is only as durable as its folder); a no-op where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist) with ``data``, flushed to the disk."""
    with open(path, "xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` as a hard link to ``src`` (files of an entry never change in place), else a flushed copy."""
    try:
        os.link(src, dst)
        return
    except OSError:
        if dst.exists():
            raise
    shutil.copyfile(src, dst)
    with open(dst, "rb+") as fh:
        os.fsync(fh.fileno())


def _copy_file(src: Path, dst: Path, *, overwrite: bool) -> Path:
    """Copy through a temporary file beside ``dst``; never replaces ``dst`` unless ``overwrite``."""
    return atomic_copy(src, dst, overwrite=overwrite)
