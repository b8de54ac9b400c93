"""One body's statistics kept in a state file between runs, without the library (``rawmap map --state``).

A state file (:func:`rawmap.mapping.save_state`) holds a body's exact sums,
the content keys of the photos counted in them, and the maps written from
it.  :class:`SeriesState` is what one continuation does with it:

1. :meth:`SeriesState.open` reads it (or starts empty when it does not
   exist yet);
2. :meth:`SeriesState.states` and :meth:`SeriesState.counted` give
   :func:`rawmap.mapping.map_files` the sums to continue and the photos to
   leave out;
3. :meth:`SeriesState.wrote` tells whether a map file is still the one
   this state wrote last time (its SHA-256 recorded), so the next
   continuation may replace it without being asked to overwrite, and only
   while nobody changed it;
4. :meth:`SeriesState.save` writes the continued sums back, recording the
   map about to be written as the state's own (before that map is written:
   a kill between the two leaves the map still replaceable).

A state keeps one body and one sensor size.

Examples
--------
>>> st = SeriesState.open("d750.rawstate")                              # doctest: +SKIP
>>> run = map_files(photos, states=st.states(), counted=st.counted())   # doctest: +SKIP
>>> update = st.save(run, targets=[Path("d750.json")])                  # doctest: +SKIP
>>> run.maps[0].defect_map.save("d750.json", overwrite=st.wrote(Path("d750.json")))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .accumulate import Accumulator
from .defectmap import DefectMap
from .frame import CameraId, SourceKind
from .mapping import Checkpoint, Counted, MapRun, load_state_keys, load_state_outputs, save_state

__all__ = ["SeriesState", "StateUpdate", "file_digest", "map_digest"]


def map_digest(defect_map: DefectMap) -> str:
    """SHA-256 (hex) of the file :meth:`DefectMap.save` writes for ``defect_map``."""
    return hashlib.sha256(defect_map.to_json().encode("utf-8")).hexdigest()


def file_digest(path: str | os.PathLike[str]) -> str | None:
    """SHA-256 (hex) of a file's bytes; None when it cannot be read."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


@dataclass(frozen=True)
class StateUpdate:
    """What :meth:`SeriesState.save` did with the state file.

    Attributes
    ----------
    path : Path
        The state file.
    written : bool
        False when the run had no frames of the state's body and size (the file is left as it was).
    camera : CameraId
        The body whose statistics the file keeps.
    shape : tuple of int
        Its sensor size (rows, columns).
    frames : int
        Frames in the statistics now.
    """

    path: Path
    written: bool
    camera: CameraId
    shape: tuple[int, int]
    frames: int


@dataclass
class SeriesState:
    """A ``--state`` file as one run continues it.

    Attributes
    ----------
    path : Path
        The state file (it need not exist yet).
    accumulator : Accumulator or None
        The stored sums; None for a state file that does not exist yet.
    keys : dict
        Content key -> path of each photo counted in ``accumulator`` (those recorded).
    outputs : dict
        Map file (absolute path) -> SHA-256 digests of the maps written there from this state.
    """

    path: Path
    accumulator: Accumulator | None = None
    keys: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> SeriesState:
        """Read the state file at ``path``, or start an empty one when there is no file.

        Raises
        ------
        MapFormatError
            The file is not a readable state file.
        """
        path = Path(path)
        if not path.exists():
            return cls(path)
        acc = Accumulator.load(path)
        return cls(path, acc, load_state_keys(path), load_state_outputs(path))

    def states(self) -> dict[tuple[CameraId, SourceKind, tuple[int, int]], Accumulator] | None:
        """The stored sums as :func:`rawmap.mapping.map_files` continues them; None when there are none."""
        if self.accumulator is None:
            return None
        acc = self.accumulator
        return {(acc.camera, acc.source, acc.shape): acc}

    def counted(self) -> Counted:
        """The photos already in the stored sums: by content key, and by path for those recorded without one."""
        if self.accumulator is None:
            return Counted()
        paths: set[Path] = set()
        for rec in self.accumulator.frames:
            try:
                paths.add(Path(rec.path).resolve())
            except (OSError, RuntimeError):
                continue
        return Counted(dict(self.keys), paths)

    def wrote(self, map_path: str | os.PathLike[str]) -> bool:
        """Whether ``map_path`` is still the map this state wrote there (so it may be replaced without asking)."""
        digests = self.outputs.get(str(Path(map_path).resolve()), [])
        return bool(digests) and file_digest(map_path) in digests

    def record_output(self, target: Path, defect_map: DefectMap) -> None:
        """Record ``defect_map``, about to be written to ``target``, as this state's own map (the sums unchanged).

        For the map of the stored statistics that a killed run never wrote.
        """
        acc = self.accumulator
        if acc is None:
            return
        outputs = dict(self.outputs)
        outputs[str(target.resolve())] = [map_digest(defect_map)]
        save_state(self.path, acc, dict(self.keys), overwrite=True, outputs=outputs)
        self.outputs = outputs

    def body_index(self, run: MapRun) -> int | None:
        """Which of ``run.maps`` this state keeps: its own body and size, or the only map of a new state.

        Returns
        -------
        int or None
            None when the run made no map of the state's body and size.

        Raises
        ------
        ValueError
            A new state (nothing stored yet) and not exactly one map to keep.
        """
        acc = self.accumulator
        if acc is not None:
            match = [i for i, b in enumerate(run.maps) if b.key == (acc.camera, acc.source) and b.shape == acc.shape]
            return match[0] if match else None
        if len(run.maps) != 1:
            raise ValueError(f"a state keeps one body and sensor size; the run made {len(run.maps)} maps")
        return 0

    def checkpoint(self, cp: Checkpoint) -> None:
        """Save a body's statistics part-way through the run (see :func:`rawmap.mapping.map_files`).

        The state file then counts the photos folded so far (their content
        keys recorded), its open views saved open, so the same command run
        again after a kill reads only the rest, and ends with the map an
        uninterrupted run makes.  Only the state's own body is saved; the
        maps it wrote stay recorded as its own.
        """
        acc = self.accumulator
        if acc is not None and (cp.camera, cp.source, cp.accumulator.shape) != (acc.camera, acc.source, acc.shape):
            return
        keys = dict(self.keys)
        keys.update((k, str(p)) for p, k in cp.content.items() if k)
        save_state(self.path, cp.accumulator, keys, overwrite=True, outputs=self.outputs)

    def save(self, run: MapRun, *, targets: Sequence[Path] = ()) -> StateUpdate:
        """Write the continued sums back, the map about to be written to ``targets`` recorded as this state's own.

        Parameters
        ----------
        run : MapRun
            The run that continued :meth:`states`.
        targets : sequence of Path, optional
            Where each of ``run.maps`` is about to be written (empty when no map is).

        Returns
        -------
        StateUpdate
            ``written`` False, and the file untouched, when the run had no frames of this state's body.

        Raises
        ------
        ValueError
            See :meth:`body_index`.
        OutputError
            The file cannot be written.
        """
        index = self.body_index(run)
        acc = self.accumulator
        if index is None and acc is not None:  # None only for a stored state
            return StateUpdate(self.path, False, acc.camera, acc.shape, acc.n_frames)
        index = index or 0
        body = run.maps[index]
        keys = dict(self.keys)
        keys.update((k, str(p)) for p, k in body.content.items() if k)
        outputs = dict(self.outputs)
        if targets:
            target = targets[index]
            new = map_digest(body.defect_map)
            current = file_digest(target) if target.is_file() else None
            # the map about to be written, and the one it replaces (kept acceptable in case the write is interrupted)
            outputs[str(target.resolve())] = [new] + ([current] if current and current != new else [])
        save_state(self.path, body.accumulator, keys, overwrite=True, outputs=outputs)
        return StateUpdate(self.path, True, body.camera, body.shape, body.accumulator.n_frames)
