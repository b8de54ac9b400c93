"""The accumulator: folds frames into the exact sums, asks the views' record which view each joins.

See :mod:`rawmap.accumulate` for what it keeps and why.
"""

from __future__ import annotations

import copy
import datetime as _dt
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import _kernels
from .._memory import available_bytes, gigabytes
from ..errors import FrameMismatchError, UnsupportedFileError
from ..fileio import atomic_write_bytes
from ..frame import CameraId, Frame, SourceKind, black_per_position
from .noise import noise_model
from .records import _EPOCH, DetectionParams, FrameRecord, PreparedFrame, _unix, dark_current_factor
from .state import load_state, state_bytes
from .sums import BYTES_PER_PHOTOSITE, _merge_rows, _merge_sorted, _pend, frame_plane, new_sums
from .views import Views, _detail_correlation, _edges_in_both, _OpenView, border_glow, median3x3

#: Frame types a file declares (FITS ``IMAGETYP``, see :mod:`rawmap.readers.fits`) that are trusted over
#: the content test: a flat with strong vignetting or a dark with amplifier glow is still one.
_DECLARED_KIND = {"dark": "dark", "bias": "dark", "dark flat": "dark", "flat": "flat"}


def _channels(frame: Frame) -> int | None:
    """Channels of a developed image (1 grayscale, 3 colour); None for a RAW mosaic."""
    if frame.source is SourceKind.RAW:
        return None
    return int(frame.mosaic.shape[2]) if frame.mosaic.ndim == 3 else 1


def _find_sorted(keys: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each ``query`` value sits in the sorted unique ``keys`` of a sparse record, and whether it is there.

    Returns ``(pos, hit)``: ``keys[pos[i]] == query[i]`` where ``hit[i]``
    (``pos`` is 0 where the record is empty).
    """
    if keys.size == 0:
        return np.zeros(query.shape, np.intp), np.zeros(query.shape, bool)
    pos = np.minimum(np.searchsorted(keys, query), keys.size - 1)
    return pos, keys[pos] == query


class Accumulator:
    """Running per-photosite statistics of one camera body's frames.

    Parameters
    ----------
    shape : tuple of int
        (H, W) of the visible area; both at least 4.
    cfa : (2, 2) array_like of int or None
        Colour index per pattern position; ``None`` for developed images and
        for monochrome RAW mosaics (``source`` RAW: treated as a mosaic whose
        photosites are all of one colour).
    black : (4,) array_like of float
        Black level per colour index (zeros for images; one value repeated
        for a monochrome mosaic).
    white : int
        White level of the plane.
    camera : CameraId
    source : SourceKind
    margins, full_shape : tuple of int
        Geometry of the visible area in the full frame, kept for the map.
    params : DetectionParams, optional
    sums : dict of ndarray, optional
        Fresh arrays from :func:`new_sums` for this shape (made ahead of time,
        e.g. while the first frames decode); new ones are made otherwise.

    Raises
    ------
    MemoryError
        New sums (:attr:`BYTES_PER_PHOTOSITE` per photosite) would not fit
        in the memory available (checked before allocating, see
        :mod:`rawmap._memory`), or their allocation failed.
    """

    _ARRAYS = ("n_invalid", "s_v", "s_r", "vmin", "vmax", "s_xr", "s_xi", "s_xxi", "s_zz", "s_hi", "s_lo")
    #: bytes of running sums per photosite (the arrays of :func:`new_sums`)
    BYTES_PER_PHOTOSITE = BYTES_PER_PHOTOSITE
    # the running sums (set from :func:`new_sums` or a saved state; see the class docstring)
    n_invalid: np.ndarray
    s_v: np.ndarray
    s_r: np.ndarray
    vmin: np.ndarray
    vmax: np.ndarray
    s_xr: np.ndarray
    s_xi: np.ndarray
    s_xxi: np.ndarray
    s_zz: np.ndarray
    s_hi: np.ndarray
    s_lo: np.ndarray
    _SPARSE = ("fs_index", "fs_time", "ln_code", "ln_count", "cl_code", "cl_stats")
    #: columns of :attr:`cl_stats`: per photosite, over the frames in which it was clipped (and valid)
    CLIP_STATS = ("n", "sum_x", "sum_xx", "sum_r", "sum_xr", "sum_xxf")

    # the views' record, under the names the state file and older callers use
    @property
    def view_sigs(self) -> dict[int, np.ndarray]:
        return self.views.sigs

    @view_sigs.setter
    def view_sigs(self, value: dict[int, np.ndarray]) -> None:
        self.views.sigs = value

    @property
    def view_w(self) -> dict[int, np.ndarray]:
        return self.views.weights

    @view_w.setter
    def view_w(self, value: dict[int, np.ndarray]) -> None:
        self.views.weights = value

    @property
    def _open(self) -> dict[int, _OpenView]:
        return self.views.open

    @property
    def _dark_views(self) -> set[int]:
        return self.views.dark

    @_dark_views.setter
    def _dark_views(self, value: set[int]) -> None:
        self.views.dark = value

    @property
    def _clock(self) -> int:
        return self.views.clock

    @_clock.setter
    def _clock(self, value: int) -> None:
        self.views.clock = value

    def __init__(
        self,
        shape: tuple[int, int],
        *,
        cfa: np.ndarray | None,
        black: np.ndarray,
        white: int,
        camera: CameraId,
        source: SourceKind = SourceKind.RAW,
        margins: tuple[int, int] = (0, 0),
        full_shape: tuple[int, int] = (0, 0),
        params: DetectionParams | None = None,
        sums: dict[str, np.ndarray] | None = None,
    ) -> None:
        H, W = int(shape[0]), int(shape[1])
        if H < 4 or W < 4:
            raise ValueError(f"shape must be at least 4x4 photosites, got {H}x{W}")
        self.shape = (H, W)
        self.cfa = None if cfa is None else np.asarray(cfa, dtype=np.uint8).reshape(2, 2)
        self.black = np.asarray(black, dtype=np.float64).reshape(4)
        self.white = int(white)
        self.camera = camera
        self.source = SourceKind(source)
        self.margins = (int(margins[0]), int(margins[1]))
        self.full_shape = (int(full_shape[0]), int(full_shape[1]))
        self.params = params or DetectionParams()
        if sums is None:
            need = H * W * self.BYTES_PER_PHOTOSITE
            free = available_bytes()
            if free is not None and need > free:
                raise MemoryError(
                    f"the statistics of a {H}x{W} sensor need {gigabytes(need)}, "
                    f"more than the {gigabytes(free)} of memory available"
                )
            sums = new_sums(self.shape)
        for name in self._ARRAYS:
            if sums[name].shape != self.shape:
                raise ValueError(f"{name} is {sums[name].shape}, not {self.shape}")
            setattr(self, name, sums[name])
        # sparse: first capture time (unix s, camera clock) at which a photosite was a confirmed outlier
        self.fs_index = np.zeros(0, np.int64)
        self.fs_time = np.zeros(0, np.float64)
        # sparse: scenes in which a photosite leaned across a line; code = flat * 4 + 2 * row_line + dark
        self.ln_code = np.zeros(0, np.int64)
        self.ln_count = np.zeros(0, np.uint32)
        # photosites clipped while their neighbours were not: what those frames put into the sums (see :meth:`unclipped`)
        self.cl_code = np.zeros(0, np.int64)
        self.cl_stats = np.zeros((0, len(self.CLIP_STATS)), np.float64)
        # developed images: their channels (1 grayscale, 3 colour, 0 when they differ); None for RAW
        self.channels: int | None = None
        self.n_frames = 0
        self.n_scenes = 0
        self.sum_x = 0.0
        self.sum_xx = 0.0
        self.frames: list[FrameRecord] = []
        # the series' views (which frames show the same scene, the open ones' pending outliers):
        # bookkeeping, apart from the sums (see rawmap.accumulate.views)
        self.views = Views(self.params)

    # ------------------------------------------------------------------ set-up
    @classmethod
    def from_frame(
        cls, frame: Frame, *, params: DetectionParams | None = None, sums: dict[str, np.ndarray] | None = None
    ) -> Accumulator:
        """An empty accumulator shaped for ``frame``'s body and sensor (``sums``: see the class).

        Raises
        ------
        UnsupportedFileError
            The running sums of a sensor this size (31 bytes per photosite)
            do not fit in the memory available (see :mod:`rawmap._memory`).
        """
        plane, white = frame_plane(frame)
        black = frame.black if frame.source is SourceKind.RAW else np.zeros(4)
        try:
            acc = cls(
                plane.shape,
                cfa=frame.cfa if frame.source is SourceKind.RAW else None,
                black=black,
                white=white,
                camera=frame.camera,
                source=frame.source,
                margins=frame.margins,
                full_shape=frame.full_shape,
                params=params,
                sums=sums,
            )
            acc.channels = _channels(frame)
            return acc
        except MemoryError as exc:
            raise UnsupportedFileError(
                frame.path,
                f"is too large to map here: {exc}",
                "close other programs, or map on a machine with more memory",
            ) from None

    @property
    def black2(self) -> np.ndarray:
        """(2, 2) ndarray of float64: black level at each pattern position (:func:`rawmap.frame.black_per_position`)."""
        return black_per_position(self.black, self.cfa)

    @property
    def clip(self) -> int:
        """Values at or above this are treated as clipped."""
        b = float(self.black.max())
        return int(b + 0.97 * (self.white - b))

    def check(self, frame: Frame) -> None:
        """Raise :class:`FrameMismatchError` if ``frame`` cannot join this series."""
        plane_shape = frame.mosaic.shape[:2]
        if frame.camera != self.camera:
            raise FrameMismatchError(
                frame.path,
                f"taken by {frame.camera.label or 'an unknown camera'}, not {self.camera.label}",
                "map each body separately",
            )
        if tuple(plane_shape) != self.shape:
            raise FrameMismatchError(
                frame.path,
                f"frame is {plane_shape[0]}x{plane_shape[1]}, this body's series is {self.shape[0]}x{self.shape[1]}",
                "crop or resized images cannot be mapped with the others",
            )
        if frame.source is not self.source:
            raise FrameMismatchError(
                frame.path,
                f"{frame.source.value} frame in a {self.source.value} series",
                "map RAW files and developed images separately",
            )
        if (self.cfa is None) != (frame.cfa is None) or (
            self.cfa is not None and not np.array_equal(np.asarray(frame.cfa), self.cfa)
        ):
            raise FrameMismatchError(frame.path, "CFA pattern differs from the rest of the series", "")

    # ---------------------------------------------------------------- update
    def update(self, frame: Frame) -> FrameRecord:
        """Fold one frame into the statistics.

        The same as :meth:`prepare`, :meth:`fold` on every band, then
        :meth:`commit`; :func:`rawmap.mapping.map_files` runs those steps of
        successive frames on two threads at once.

        Parameters
        ----------
        frame : Frame
            Same body, size and kind as the series (see :meth:`check`).

        Returns
        -------
        FrameRecord
        """
        prep = self.prepare(frame)
        self.reserve(1)
        for band in range(self.N_BANDS):
            self.fold(prep, band)
        return self.commit(prep)

    #: the frame is folded in this many bands of rows (each may run on its own thread)
    N_BANDS = 4

    def band_rows(self, band: int) -> tuple[int, int]:
        """First row and row after the last of ``band``."""
        H = self.shape[0]
        per = (H + self.N_BANDS - 1) // self.N_BANDS
        return min(H, band * per), min(H, (band + 1) * per)

    def reserve(self, n_more: int) -> None:
        """Widen the integer sums now if ``n_more`` further frames could overflow them.

        Call before folding frames on several threads: the arrays must not be
        replaced while bands are being folded.
        """
        self._ensure_capacity(self.n_frames + n_more)

    def prepare(self, frame: Frame) -> PreparedFrame:
        """Check ``frame`` against the series and measure what folding it needs.

        Reads only the series' fixed description (shape, levels, parameters),
        never the running sums, so frames can be prepared on any thread.

        Raises
        ------
        FrameMismatchError
            When the frame cannot join this series (see :meth:`check`).
        """
        self.check(frame)
        plane, _ = frame_plane(frame)
        black2 = self.black2.astype(np.float32)
        clip = self.clip
        noise_a, noise_b = noise_model(plane, black2, clip)
        row_max = plane.max(axis=1)
        row_clip = row_max >= clip
        if row_clip.any():
            near = row_clip.copy()
            for d in (1, 2):
                near[d:] |= row_clip[:-d]
                near[:-d] |= row_clip[d:]
            row_clip = near
        thumb, sigma_block, per_block, other = self._thumb(plane)
        kind = _DECLARED_KIND.get(str(frame.extra.get("frame_type", ""))) or self._frame_kind(
            thumb, sigma_block, per_block, noise_a, noise_b, other
        )
        cut = self._zero_cut_noise(thumb, sigma_block, per_block) if kind == "dark" else None
        if cut is not None:
            # a dark whose noise is cut at zero: the fit, on the residuals' lower quartile, saw 0.16 DN
            # of a true 6 in generated 12-bit darks, and every photosite's noise was an outlier (a
            # 256x384 dark overflowed its outlier buffer); its measured noise, where larger (the
            # residual 4 v - sum4 has 20x the variance of one photosite).  Darks only: in a dim photo
            # the blocks' difference holds the scene's texture too (129 DN against a fitted 0.3)
            noise_a = max(noise_a, 20.0 * cut * cut)
        # in a raw dark a clipped neighbour is stood in for by the opposite one, in the kernel's sums
        # (isolation mode 2, :meth:`_isolation`) and so in the clipped points
        clipped_points = self._clipped_points(plane, row_max, clip, self._isolation(kind) == 2)
        n = self.N_BANDS
        return PreparedFrame(
            path=str(frame.path),
            time=frame.time,
            exposure=float(frame.exposure),
            iso=float(frame.iso),
            plane=plane,
            black2=black2,
            clip=clip,
            row_clip=row_clip,
            x=float(frame.exposure) * (float(frame.iso) / 100.0 if frame.iso > 0 else 1.0),
            noise_a=noise_a,
            noise_b=noise_b,
            thumb=thumb,
            kind=kind,
            found=[None] * n,
            lines=[None] * n,
            counts=[0] * n,
            folded=[False] * n,
            clipped=clipped_points,
            temperature=None if frame.temperature is None else float(frame.temperature),
            channels=_channels(frame),
            level=_levels(plane, black2),
        )

    def fold(self, prep: PreparedFrame, band: int) -> None:
        """Add rows :meth:`band_rows` ``(band)`` of a prepared frame into the sums.

        Writes only those rows of the state: different bands may be folded
        on different threads at the same time (the compiled kernel releases
        the GIL), but one band must not be folded by two threads at once.
        Folding the frames of a band in capture order keeps the float sums
        bit-identical to a serial run.
        """
        r0, r1 = self.band_rows(band)
        H, W = self.shape
        cap = max(64, (H * W) // (50 * self.N_BANDS))  # 2 % of the band's photosites
        lcap = max(256, (H * W) // (20 * self.N_BANDS))
        out_idx = np.empty(cap, np.int64)
        line_idx = np.empty(lcap, np.int64)
        p = self.params
        _kernels.await_warmup()  # a first run's kernel compiling in another process (see fold_warmup)
        n, nl = _kernels.update_kernel(
            prep.plane,
            r0,
            r1,
            prep.black2,
            np.int32(prep.clip),
            prep.row_clip,
            np.float32(prep.x),
            np.float32(prep.noise_a),
            np.float32(prep.noise_b),
            np.float32(p.k * p.k),
            np.float32(p.k_adjacent * p.k_adjacent),
            int(p.max_adjacent),
            self._isolation(prep.kind),
            self.n_invalid,
            self.s_v,
            self.s_r,
            self.vmin,
            self.vmax,
            self.s_xr,
            self.s_xi,
            self.s_xxi,
            self.s_zz,
            out_idx,
            np.float32(p.k_line * p.k_line),
            line_idx,
        )
        prep.found[band] = out_idx[:n].copy() if n <= cap else None
        prep.lines[band] = line_idx[:nl].copy() if nl <= lcap else None
        prep.counts[band] = n
        prep.folded[band] = True
        if all(prep.folded):
            prep.plane = None

    def _isolation(self, kind: str) -> int:
        """The kernel's isolation mode for a frame of ``kind``.

        0 for developed images (no isolation test); 1 for raw photos, where
        an outlier with more than ``max_adjacent`` deviating adjacent
        photosites is scene detail; 2 for raw lens-cap darks, which have no
        scene edges: there a hot cluster's members darken their neighbours'
        estimates, which deviate the other way, so only neighbours deviating
        the same way (a cosmic ray's track) count, and a clipped same-colour
        neighbour (a hot one) is stood in for by the opposite one.
        """
        if self.source is not SourceKind.RAW:
            return 0
        return 2 if kind == "dark" else 1

    def _clipped_points(
        self, plane: np.ndarray, row_max: np.ndarray, clip: int, stand_in: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """The photosites clipped in this frame while their four same-colour neighbours are not
        (with ``stand_in``, in darks, one of two opposite ones clipped counts as the other).

        A strong hot photosite clips in long exposures: those frames enter
        its sums at the clip level (its neighbours are below it, so the
        kernel takes the frame) and flatten its dark-current slope.  Their
        share is kept apart (:attr:`cl_code`, :attr:`cl_stats`) so that the
        slope can be taken over the other frames (:meth:`unclipped`).  Only
        rows that hold a clipped photosite are read (a compiled scan,
        :func:`rawmap._kernels.clipped_points`); inside a clipped highlight
        every neighbour is clipped too, so what is recorded is points: hot
        photosites, glints, stars.

        Returns
        -------
        flat : (N,) ndarray of int64
            Sorted flat indices.
        residual : (N,) ndarray of float64
            ``4 v - sum4`` (neighbours reflected at the border, as the kernel does).
        """
        rows = np.nonzero(row_max >= clip)[0].astype(np.int64)
        if rows.size == 0:
            return np.zeros(0, np.int64), np.zeros(0)
        cap = 4096
        while True:
            idx = np.empty(cap, np.int64)
            res = np.empty(cap, np.float64)
            n = _kernels.clipped_points(plane, rows, np.int32(clip), stand_in, idx, res)
            if n <= cap:
                return idx[:n], res[:n]
            cap = n

    def commit(self, prep: PreparedFrame) -> FrameRecord:
        """Close the frame once all its bands are folded: scenes, outliers, the frame record."""
        if not all(prep.folded):
            raise RuntimeError("commit() before every band of the frame was folded")
        lines = np.concatenate(prep.lines) if all(ln is not None for ln in prep.lines) else np.zeros(0, np.int64)
        overflow = any(f is None for f in prep.found)
        found = np.concatenate(prep.found) if not overflow else np.zeros(0, np.int64)
        noise_a, noise_b = prep.noise_a, prep.noise_b
        view = self._view_for(prep)
        self.views.touch(view, _unix(prep.time))
        if len(found):
            view.pending = _pend(view.pending, found)
        if lines.size:
            view.pending_lines = _pend(view.pending_lines, lines)
        stale = self.views.stale()
        if stale is not None:
            self._close_view(stale)
        x = prep.x
        if prep.channels != self.channels:
            self.channels = 0 if self.n_frames else prep.channels
        flat, res = prep.clipped
        if flat.size:
            xxf = x * x * dark_current_factor(prep.temperature)
            rows = np.stack(
                [
                    np.ones_like(res),
                    np.full_like(res, x),
                    np.full_like(res, x * x),
                    res,
                    res * x,
                    np.full_like(res, xxf),
                ],
                axis=1,
            )
            self.cl_code, self.cl_stats = _merge_rows(self.cl_code, self.cl_stats, flat, rows)
        self.n_frames += 1
        self.sum_x += x
        self.sum_xx += x * x
        rec = FrameRecord(
            path=prep.path,
            time=prep.time,
            exposure=prep.exposure,
            iso=prep.iso,
            x=x,
            scene=view.scene,
            noise_a=float(noise_a),
            noise_b=float(noise_b),
            outliers=int(sum(prep.counts)),
            overflow=overflow,
            kind=prep.kind,
            temperature=prep.temperature,
            level=prep.level,
        )
        self.frames.append(rec)
        return rec

    def _thumb(self, plane: np.ndarray) -> tuple[np.ndarray, float, int, np.ndarray]:
        """Block means of every 4th photosite of every 4th row, and the noise of a block mean.

        8 x 8 samples (32 x 32 photosites) per block on sensors big enough for
        16 blocks a side; smaller blocks on small frames, so that the view and
        blank-frame tests still see the scene's layout.  The noise is measured,
        not modelled: the same blocks sampled two photosites further down and
        right (the same colour) differ from these by noise alone, plus what
        little of the scene's finest texture the block means keep.

        Returns
        -------
        thumb : (h, w) ndarray of float32
        sigma : float
            Robust standard deviation of one block mean's noise (DN).
        per_block : int
            Photosites averaged in one block.
        other : (h', w') ndarray of float32
            The same blocks sampled two photosites further down and right.
        """
        sub = plane[::4, ::4]
        if min(sub.shape) >= 128:
            a, b = _kernels.thumbnail(plane), _kernels.thumbnail(plane[2:, 2:])
            f = 8
        else:
            f = max(1, min(sub.shape) // 16)

            def blocks(s: np.ndarray) -> np.ndarray:
                h, w = (s.shape[0] // f) * f, (s.shape[1] // f) * f
                return s[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)

            a, b = blocks(sub), blocks(plane[2::4, 2::4])
        h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
        d = a[:h, :w].astype(np.float64) - b[:h, :w]
        sigma = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2.0) if d.size else 0.0
        return a, sigma, f * f, b

    def _zero_cut_noise(self, thumb: np.ndarray, sigma_block: float, per_block: int) -> float | None:
        """One photosite's noise (DN, measured on the thumbnail blocks) where a frame's noise is cut at
        zero, else None.

        Cut at zero: black level 0 and the frame's median block within 3 of
        those sigmas of it, as in a lens-cap dark reading 0 in about half its
        photosites; the noise fit, made on the residuals' lower quartile, then
        sees next to no noise.  Never in developed images: their block noise
        overstates a pixel's (demosaicing and compression correlate it over
        pixels): the JPEGs of generated darks 18 DN above zero had their
        noise variance raised 3.5 times, and cut within one sigma only, the
        banded scenario's JPEGs lost a hot cluster's member of 80 DN/s and a
        blinking photosite, with no false flag saved there or on an
        independent series' JPEG darks.
        """
        base = float(np.mean(self.black))
        if base > 0 or thumb.size == 0 or self.source is SourceKind.IMAGE:
            return None
        med = max(float(np.median(thumb.astype(np.float64) - base)), 0.0)
        one = sigma_block * math.sqrt(per_block)
        return one if med < 3.0 * one else None

    def _frame_kind(
        self,
        thumb: np.ndarray,
        sigma_block: float,
        per_block: int,
        noise_a: float,
        noise_b: float,
        other: np.ndarray | None = None,
    ) -> str:
        """``dark``, ``flat`` or ``photo``: is there a scene in this frame at all?

        A scene has detail at the scale of a few blocks (edges, texture); a
        lens-cap dark or a flat field has only noise and smooth gradients
        (vignetting, amplifier glow).  Detail is each block's distance from
        the median of its 3 x 3 blocks; the frame is blank when 90 % of the
        blocks are within :attr:`DetectionParams.blank_noise` sigmas of a
        block mean's noise plus 1 % of the level.  Measured on an independent
        series: lens-cap darks 1.4-2.3 DN at the 90th percentile, photos
        (dim ones included) 110-1340 DN.  A blank frame is a dark when 99 %
        of its blocks sit below :attr:`DetectionParams.dark_level` of the
        range, a flat field when its blocks lie within half its level.  A
        frame that is not, but is blank outside a glow lit from its border
        (an amplifier's, :func:`~rawmap.accumulate.views.border_glow`, at
        most :attr:`DetectionParams.glow_share` of the blocks), is judged
        again without the glow: a dark if it then passes.
        """
        base = float(np.mean(self.black))  # zeros for developed images
        level = thumb.astype(np.float64) - base
        if level.shape[0] < 3 or level.shape[1] < 3:
            return "photo"
        detail = np.abs(level - median3x3(level))
        med = max(float(np.median(level)), 0.0)
        measured = sigma_block
        # two estimates of a block mean's noise, each inflated by texture of its own scale: the
        # measured one (block-scale texture) and the noise fit's (photosite-scale texture,
        # var(4v - sum4) = 20 sigma^2); the smaller is the better, except where the photosites'
        # noise is cut at zero (black level 0, a dark reading 0 in most photosites): the fit,
        # made on the residuals' lower quartile, then sees next to no noise (0.12-0.16 DN
        # against a measured 1.0 in generated 12-bit darks, which were taken for photos)
        model = math.sqrt(max(noise_a + noise_b * med, 0.0) / 20.0 / per_block)
        if self._zero_cut_noise(thumb, measured, per_block) is None:
            sigma_block = min(sigma_block, model)
        bar = self.params.blank_noise * sigma_block + 0.01 * med
        second = None if other is None else other.astype(np.float64) - base
        kind = self._blank_kind(level, detail, second, bar, measured, med)
        if kind == "dark":
            return kind
        # an amplifier's glow, lit from the border and fading away from it, is no scene: a lens-cap
        # dark with a glowing corner was taken for a photo (its bright blocks made all the detail).
        # Where the rest of the frame is blank, it is judged again without the glow
        lit = level > med + bar
        if not lit.any() or lit.mean() > self.params.glow_share or float(np.quantile(detail[~lit], 0.9)) > bar:
            return kind
        # a radial glow's blocks fall to exp(-1.4 x block / e-fold) of their brightest neighbour's level
        # (measured, e-folds of 10-30 photosites in blocks of 16): none steeper than glow_scale
        side = 4.0 * math.sqrt(per_block)  # photosites: every 4th of every 4th row sampled
        glow = border_glow(
            level, med + bar, bar, self.params.glow_share, min_ratio=math.exp(-1.4 * side / self.params.glow_scale)
        )
        if glow is None:
            return kind
        return "dark" if self._blank_kind(level, detail, second, bar, measured, med, glow) == "dark" else kind

    def _blank_kind(
        self,
        level: np.ndarray,
        detail: np.ndarray,
        second: np.ndarray | None,
        bar: float,
        measured: float,
        med: float,
        leave_out: np.ndarray | None = None,
    ) -> str:
        """The tests of :meth:`_frame_kind` on a frame's blocks (above black), without those of ``leave_out``
        (their detail counted as none)."""
        if leave_out is not None:
            detail = np.where(leave_out, 0.0, detail)
        busy = float(np.quantile(detail, 0.9))
        if busy > bar:
            return "photo"
        # a dim scene (the darkest frame of a bracket) can hide its few edges below that bound;
        # but its detail is the same in the blocks sampled two photosites apart, where noise
        # (and a dark's hot photosites, which sit in one sampling only) is not
        # (not in developed images: demosaicing and compression correlate their noise over pixels, and
        # each 8 x 8 block's quantised mean is shared by both samplings: the JPEGs of an independent
        # series' lens-cap darks correlated 0.65-0.89, those of raw darks -0.01 to 0.01)
        image = self.source is SourceKind.IMAGE
        if second is not None and not image:
            bound = max(0.25, self.params.scene_corr / math.sqrt(level.size))
            if _detail_correlation(level, second, leave_out) >= bound:
                return "photo"
        lo, hi = np.quantile(level if leave_out is None else level[~leave_out], [0.01, 0.99]).tolist()
        dark_level = self.params.dark_level_image if image else self.params.dark_level
        if hi <= dark_level * (self.white - float(np.mean(self.black))):
            # nor are a dim scene's few edges (a facade at dusk), standing out the same way in both
            # samplings while the even walls drown their correlation; a flat field's dust shadows
            # do that too, so only where the frame would otherwise be a dark
            edges = (
                0
                if (second is None or image)
                else _edges_in_both(level, second, measured, self.params.scene_edges, leave_out)
            )
            return "photo" if edges >= 3 else "dark"
        # a flat field: smooth (vignetting) and lit evenly (its blocks within about half its level); in a
        # developed image also with next to no detail for its level (the sampling tests do not apply
        # there, and a bright photo's noise of 9 DN a block made its edges "blank")
        even = hi - lo <= 0.5 * med
        if image:
            even &= busy <= self.params.flat_detail_image * med
        return "flat" if even else "photo"

    def _signature(self, thumb: np.ndarray) -> np.ndarray:
        """At most 32 x 48 block means of the thumbnail, NaN where a block holds clipped photosites."""
        th, tw = thumb.shape
        fy, fx = max(1, -(-th // 32)), max(1, -(-tw // 48))
        h, w = (th // fy) * fy, (tw // fx) * fx
        t = thumb[:h, :w].astype(np.float64)
        base = float(np.mean(self.black))  # zeros for developed images
        hot = t >= base + 0.9 * (self.clip - base)
        sig = t.reshape(h // fy, fy, w // fx, fx).mean(axis=(1, 3))
        sig[hot.reshape(h // fy, fy, w // fx, fx).any(axis=(1, 3))] = np.nan
        return sig

    def _view_for(self, prep: PreparedFrame) -> _OpenView:
        """The open view ``prep`` joins (see :meth:`Views.join`); a new view gets the next scene number."""
        sig = self._signature(prep.thumb)
        base = float(np.mean(self.black))
        weight = np.maximum(np.where(np.isnan(sig), self.clip - base, sig - base), 0.0)
        view, new = self.views.join(sig, weight, prep.kind == "dark", self.n_scenes + 1)
        if new:
            self.n_scenes += 1
        return view

    def view_shares(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray | None:
        """The largest share of each photosite's summed signal that one view holds (see :meth:`Views.shares`)."""
        return self.views.shares(rows, cols, self.shape)

    def closed(self) -> Accumulator:
        """This state with every open view counted, leaving ``self`` as it is.

        Classification needs the open views' outliers counted; continuing the
        series later needs them still open (a view's later frames must join
        it, not count again).  Without open views this is ``self``; otherwise
        a shallow copy with its own scene counts, sparse records and views.
        """
        if not self.views.open:
            return self
        c = copy.copy(self)
        c.frames = list(self.frames)  # closing records each view's count in its frames' records
        c.s_hi = self.s_hi.copy()
        c.s_lo = self.s_lo.copy()
        c.views = self.views.copy()
        c.close_scene()
        return c

    def close_scene(self) -> None:
        """Close every open view: turn their frames' outliers into per-view counts."""
        for scene in list(self.views.open):
            self._close_view(scene)

    def _close_view(self, scene: int) -> None:
        """Count the outliers of one open view: once each, where seen in enough of its frames."""
        view = self.views.close(scene)
        need = max(1, math.ceil(self.params.scene_share * view.frames))
        if view.pending_lines:
            codes, c = view.pending_lines[0]
            # a lean counts where seen in enough of the view's frames, and in more of them than an
            # edge's lean was at that photosite (developed images, see _kernels._line_edge)
            edge = codes < 0
            ok = ~edge & (c >= need)
            if edge.any():
                e_codes, e_c = -codes[edge] - 1, c[edge]  # descending: codes ascend
                e_codes, e_c = e_codes[::-1], e_c[::-1]
                pos = np.minimum(np.searchsorted(e_codes, codes), e_codes.size - 1)
                ok &= c > np.where(e_codes[pos] == codes, e_c[pos], 0)
            self._add_lines(codes[ok], np.ones(int(ok.sum()), np.uint32))
        counted = 0
        if view.pending:
            found, found_n = view.pending[0]
            confirmed = []
            for sign, counts in ((1, self.s_hi), (-1, self.s_lo)):
                sel = found > 0 if sign > 0 else found < 0
                # codes are sorted: bright ones ascend, dark ones (negative) descend
                u = (found[sel] - 1) if sign > 0 else (-found[sel] - 1)[::-1]
                u = u[(found_n[sel] if sign > 0 else found_n[sel][::-1]) >= need]
                if u.size == 0:
                    continue
                counts.ravel()[u] += 1
                confirmed.append(u)
            if confirmed:
                both = confirmed[0]
                if len(confirmed) == 2:
                    both = _merge_sorted(confirmed[0], np.zeros(confirmed[0].size), confirmed[1], 0.0, np.add)[0]
                counted = int(both.size)
                if not math.isnan(view.time):
                    self._note_first_seen(both, view.time)
        # the view's chance rate for the classification (see rawmap.detect._chance_need), in its
        # frames' records: from the newest back until all of its frames are found
        left = view.frames
        for i in range(len(self.frames) - 1, -1, -1):
            if left <= 0:
                break
            if self.frames[i].scene == scene:
                self.frames[i] = replace(self.frames[i], view_outliers=counted)
                left -= 1

    def _add_lines(self, codes: np.ndarray, counts: np.ndarray) -> None:
        """Add per-code scene counts into the sparse line counters."""
        self.ln_code, self.ln_count = _merge_sorted(
            self.ln_code, self.ln_count, codes.astype(np.int64), counts.astype(np.uint32), np.add
        )

    def _note_first_seen(self, index: np.ndarray, t: float | np.ndarray) -> None:
        """Keep the earliest known time per photosite (NaN = unknown)."""
        times = np.broadcast_to(np.asarray(t, np.float64), index.shape)
        self.fs_index, self.fs_time = _merge_sorted(self.fs_index, self.fs_time, index.astype(np.int64), times, np.fmin)

    def _ensure_capacity(self, n_frames: int) -> None:
        """Promote integer sums to wider types before they could overflow."""
        if self.s_r.dtype == np.int32 and n_frames * 4 * max(self.white, 1) >= np.iinfo(np.int32).max:
            self.s_r = self.s_r.astype(np.int64)
        if self.s_v.dtype == np.uint32 and n_frames * max(self.white, 1) >= np.iinfo(np.uint32).max:
            self.s_v = self.s_v.astype(np.uint64)
        for name in ("n_invalid", "s_hi", "s_lo"):  # frame / scene counts: 1 byte up to 254 frames
            counts = getattr(self, name)
            if n_frames >= np.iinfo(counts.dtype).max:
                setattr(self, name, counts.astype(np.uint16 if n_frames < np.iinfo(np.uint16).max else np.uint32))

    # ----------------------------------------------------------------- reading
    def valid_counts(self, index=...) -> np.ndarray:
        """Frames that entered the sums of each photosite (ndarray of int32).

        Parameters
        ----------
        index : optional
            Any numpy index into the (H, W) grid, e.g. ``(rows, cols)``; the
            whole grid when omitted.
        """
        return np.int32(self.n_frames) - self.n_invalid[index].astype(np.int32)

    def unclipped(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(N, 6) float64: the frames in which each photosite clipped while its neighbours did not (:attr:`CLIP_STATS`).

        Zeros for photosites never recorded so; subtracting them from the
        frames' sums (``n``, ``sum_x``, ``sum_xx``; ``sum_xxf`` is the sum
        of ``x^2`` times :func:`dark_current_factor` of the frame's
        temperature) and the photosite's (``s_r``, ``s_xr``) leaves the
        frames in which it was not clipped.
        """
        flat = np.asarray(rows, np.int64) * self.shape[1] + np.asarray(cols, np.int64)
        out = np.zeros((flat.size, len(self.CLIP_STATS)), np.float64)
        pos, hit = _find_sorted(self.cl_code, flat)
        out[hit] = self.cl_stats[pos[hit]]
        return out

    def first_seen(self, rows: np.ndarray, cols: np.ndarray) -> list[_dt.datetime | None]:
        """Capture time at which each given photosite first showed as an outlier."""
        flat = np.asarray(rows, np.int64) * self.shape[1] + np.asarray(cols, np.int64)
        pos, hit = _find_sorted(self.fs_index, flat)
        if not hit.any():
            return [None] * flat.size
        t = np.where(hit, self.fs_time[pos], np.nan)
        # few distinct times (one per scene): build each datetime once
        when = {s: _EPOCH + _dt.timedelta(seconds=s) for s in np.unique(t[~np.isnan(t)]).tolist()}
        return [None if math.isnan(s) else when[s] for s in t.tolist()]

    # ------------------------------------------------------------------- merge
    def _compatible(self, other: Accumulator) -> None:
        if other.shape != self.shape or other.camera != self.camera or other.source is not self.source:
            raise FrameMismatchError(
                None,
                f"cannot merge statistics of {other.camera.label} {other.shape} into {self.camera.label} {self.shape}",
                "merge only states of the same body",
            )
        if (self.cfa is None) != (other.cfa is None) or (
            self.cfa is not None and other.cfa is not None and not np.array_equal(self.cfa, other.cfa)
        ):
            raise FrameMismatchError(None, "cannot merge states with different CFA patterns", "")

    def merge(self, other: Accumulator) -> Accumulator:
        """Add ``other``'s frames into this state (in place) and return self."""
        self._compatible(other)
        self.close_scene()
        other.close_scene()
        self._ensure_capacity(self.n_frames + other.n_frames)
        for name in ("n_invalid", "s_v", "s_r", "s_xr", "s_xi", "s_xxi", "s_zz", "s_hi", "s_lo"):
            mine = getattr(self, name)
            theirs = getattr(other, name)
            if theirs.dtype.itemsize > mine.dtype.itemsize:
                mine = mine.astype(theirs.dtype)
                setattr(self, name, mine)
            np.add(mine, theirs, out=mine, casting="unsafe")
        np.minimum(self.vmin, other.vmin, out=self.vmin)
        np.maximum(self.vmax, other.vmax, out=self.vmax)
        if other.fs_index.size:
            self._note_first_seen(other.fs_index, other.fs_time)
        self._add_lines(other.ln_code, other.ln_count)
        if other.n_frames and other.channels != self.channels:
            self.channels = other.channels if not self.n_frames else 0
        self.cl_code, self.cl_stats = _merge_rows(self.cl_code, self.cl_stats, other.cl_code, other.cl_stats)
        # the other's scenes are numbered after this one's
        self.frames.extend(replace(f, scene=f.scene + self.n_scenes) for f in other.frames)
        self.views.add_renumbered(other.views, self.n_scenes)
        self.n_frames += other.n_frames
        self.n_scenes += other.n_scenes
        self.sum_x += other.sum_x
        self.sum_xx += other.sum_xx
        return self

    def __iadd__(self, other: Accumulator) -> Accumulator:
        return self.merge(other)

    # ------------------------------------------------------------- save / load
    def to_bytes(self) -> bytes:
        """The state file's bytes: version 2, the sums packed losslessly (see :mod:`rawmap.accumulate.state`)."""
        return state_bytes(self)

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the state file atomically (never replacing one unless ``overwrite``)."""
        return atomic_write_bytes(path, self.to_bytes(), overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path) -> Accumulator:
        """Read a state written by :meth:`save`, every part checked and bounded before it is used.

        The metadata (``meta.json``, at most :data:`rawmap.accumulate.MAX_STATE_META_BYTES`) is
        parsed as strict JSON and each field checked for type and range: a
        sensor of at least 4 x 4 and at most
        :data:`rawmap.defectmap.MAX_PHOTOSITES` photosites, a CFA of colour
        indices 0-3, frame records and open views of the right types.  Each
        array's header (a version 2 packed member's header and plane table,
        or a version 1 file's ``.npy`` header) is then checked against what
        the metadata implies (dtype among those the sums take, shape (H, W)
        for the sums, at most one entry per photosite for the sparse records)
        and its member's declared size against that header, before its data
        is read: a header claiming a huge array or a deflate bomb is refused
        unread.
        Sparse indices must be sorted, unique and on the sensor; pickled
        arrays are never read.

        Raises
        ------
        MapFormatError
            Missing, not a state file, of another version, or damaged: one
            line naming ``path`` and what is wrong.
        """
        return load_state(cls, path)


def _levels(plane: np.ndarray, black2: np.ndarray) -> tuple[float, ...]:
    """A frame's brightness at the four positions of the 2 x 2 pattern (:attr:`FrameRecord.level`).

    Parameters
    ----------
    plane : (H, W) ndarray of uint16
    black2 : (2, 2) ndarray
        Black level at each position.

    Returns
    -------
    tuple of 4 float
        Median of about 20,000 photosites at each position (every
        ``step``-th of every ``step``-th row, ``step`` even), above its
        black level (DN, at least 0): 1.3 ms on 24 MP.
    """
    h, w = plane.shape
    step = max(2, int(math.sqrt(h * w / 20_000)) // 2 * 2)
    out = []
    for dy in (0, 1):
        for dx in (0, 1):
            sub = plane[dy::step, dx::step]
            med = float(np.median(sub)) if sub.size else float(black2[dy, dx])
            out.append(max(med - float(black2[dy, dx]), 0.0))
    return tuple(out)
