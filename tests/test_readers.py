"""Tests of rawmap.readers: the registry of reader backends, its records, and the seam a new backend plugs into.

What each backend reads (and refuses) is tested through the public API in
tests/test_reader.py; here: that every backend is complete, that the
registry routes each kind of file to the backend that owns it, that a new
backend needs nothing but its record in the registry, and that the records
the backends return agree with :class:`~rawmap.frame.Frame`.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from rawmap import reader, readers
from rawmap.errors import UnreadableFileError, UnsupportedFileError
from rawmap.frame import CameraId, Frame, SourceKind
from rawmap.metadata import read_metadata
from rawmap.readers import BACKENDS, Backend, Probe, backend_for
from rawmap.readers.base import PIXEL_FIELDS, FileInfo, check_file
from rawmap.readers.images import _ROTATION_NAMES, _TO_SENSOR, TO_STORED

SAMPLES = Path(__file__).parents[1].parent / "shared" / "samples"
needs_samples = pytest.mark.skipif(not (SAMPLES / "raw").is_dir(), reason=f"real camera samples not found at {SAMPLES}")

HOOKS = ("claims", "identify", "read_info", "read_frame")


@pytest.mark.parametrize("backend", BACKENDS, ids=[b.name for b in BACKENDS])
def test_every_backend_has_every_hook(backend):
    assert isinstance(backend, Backend)
    for hook in HOOKS:
        assert callable(getattr(backend, hook)), f"{backend.name}: {hook} is not callable"
    assert backend.extensions and all(e == e.lower() and "." not in e for e in backend.extensions)


def test_registry_names_are_unique_and_libraw_is_the_last_resort(tmp_path):
    names = [b.name for b in BACKENDS]
    assert len(set(names)) == len(names)
    assert names[-1] == "libraw"
    junk = tmp_path / "notes.xyz"
    junk.write_text("hello")
    assert backend_for(Probe(junk, read_metadata(junk))).name == "libraw"  # refused there, with what it looks like


def _probe(path: Path, mosaic=None) -> Probe:
    return Probe(path, check_file(path), mosaic)


def test_each_kind_of_file_goes_to_its_backend(tmp_path):
    gray = np.arange(8 * 12, dtype=np.uint16).reshape(8, 12)
    tif = tmp_path / "dark.tif"
    tifffile.imwrite(tif, gray)
    png = tmp_path / "day.png"
    Image.fromarray(np.zeros((8, 12, 3), np.uint8)).save(png)
    pgm = tmp_path / "dark.pgm"
    pgm.write_bytes(b"P5 12 8 255\n" + bytes(96))
    spec = reader.MosaicSpec("RGGB")
    assert backend_for(_probe(tif)).name == "images"
    assert backend_for(_probe(png)).name == "images"
    assert backend_for(_probe(tif, spec)).name == "mosaic"
    assert backend_for(_probe(pgm, spec)).name == "mosaic"
    assert backend_for(_probe(pgm)).name == "libraw"  # no spec: a PGM is no photo (refused by LibRaw)
    frame = reader.read_frame(tif, mosaic=spec)
    assert frame.source is SourceKind.RAW and frame.cfa_string == "RGGB" and np.array_equal(frame.mosaic, gray)


@needs_samples
def test_raw_file_goes_to_libraw_even_with_a_mosaic_spec():
    nef = SAMPLES / "raw" / "nikon-d1.NEF"
    assert backend_for(_probe(nef)).name == "libraw"
    assert backend_for(_probe(nef, reader.MosaicSpec("mono"))).name == "libraw"


def _npy_backend() -> Backend:
    """A backend for ``.npy`` files holding a 2-D uint16 mosaic: what a new reader (FITS, say) adds."""

    def info(probe: Probe) -> tuple[FileInfo, np.ndarray]:
        data = np.load(probe.path)
        h, w = data.shape
        return FileInfo(
            path=probe.path,
            format="NPY",
            source=SourceKind.RAW,
            camera=CameraId("Lab", "Bench"),
            shape=(h, w),
            channels=1,
            dtype="uint16",
            cfa=reader.CFA_PATTERNS["GRBG"],
            black=np.full(4, 64.0),
            white=4095,
            exposure=2.0,
            iso=100.0,
            time=None,
            full_shape=(h, w),
        ), data

    return Backend(
        name="npy",
        extensions=frozenset({"npy"}),
        claims=lambda probe: probe.ext == "npy",
        identify=lambda probe: (info(probe)[0].camera, SourceKind.RAW),
        read_info=lambda probe: info(probe)[0],
        read_frame=lambda probe, out, share: info(probe)[0].to_frame(info(probe)[1]),
    )


def test_a_new_backend_is_one_registry_entry(tmp_path, monkeypatch):
    path = tmp_path / "dark_001.npy"
    mosaic = np.random.default_rng(7).integers(0, 4096, size=(6, 10), dtype=np.uint16)
    np.save(path, mosaic)
    assert not reader.is_candidate(path)
    with pytest.raises(UnreadableFileError, match="is not a camera RAW file"):
        reader.read_frame(path)  # before: LibRaw's business, and LibRaw does not read it
    monkeypatch.setattr(readers, "BACKENDS", (_npy_backend(), *BACKENDS))
    assert reader.is_candidate(path) and reader.is_candidate(tmp_path / "x.CR2")
    assert reader.identify(path) == (CameraId("Lab", "Bench"), SourceKind.RAW)
    assert reader.read_info(path).shape == (6, 10)
    frame = reader.read_frame(path)
    assert frame.format == "NPY" and frame.cfa_string == "GRBG" and frame.white == 4095
    assert np.array_equal(frame.mosaic, mosaic)
    tiny = tmp_path / "tiny.npy"
    np.save(tiny, mosaic[:3])
    with pytest.raises(UnsupportedFileError, match="only 3x10 pixels"):  # the registry's checks apply to it too
        reader.read_frame(tiny)


def test_fileinfo_carries_every_frame_field():
    info_fields = {f.name: f for f in dataclasses.fields(FileInfo)}
    info_types = typing.get_type_hints(FileInfo)
    frame_types = typing.get_type_hints(Frame)
    for f in dataclasses.fields(Frame):
        if f.name == "mosaic":
            continue
        assert f.name in info_fields, f"Frame.{f.name} has no FileInfo field"
        assert info_types[f.name] == frame_types[f.name], f.name
    assert set(info_fields) - {f.name for f in dataclasses.fields(Frame)} == set(PIXEL_FIELDS)


def test_to_frame_copies_facts_and_keeps_orientation(tmp_path):
    info = FileInfo(
        path=tmp_path / "a.NEF",
        format="NEF",
        source=SourceKind.RAW,
        camera=CameraId("Nikon", "D1", "7"),
        shape=(4, 6),
        channels=1,
        dtype="uint16",
        cfa=np.array([[2, 3], [1, 0]], np.uint8),
        black=np.array([1.0, 2, 3, 4]),
        white=4095,
        exposure=0.5,
        iso=200.0,
        time=None,
        margins=(2, 4),
        full_shape=(8, 12),
        orientation=6,
        extra={"flip": 5},
    )
    mosaic = np.zeros((4, 6), np.uint16)
    frame = info.to_frame(mosaic)
    assert frame.mosaic is mosaic and frame.shape == info.shape
    assert frame.cfa_string == info.cfa_string == "BGGR"
    assert frame.margins == (2, 4) and frame.full_shape == (8, 12) and frame.camera == info.camera
    assert frame.extra == {"flip": 5, "orientation": 6}
    frame.black[0] = 99  # a copy: the record stays as read
    frame.cfa[0, 0] = 1
    assert info.black[0] == 1.0 and info.cfa[0, 0] == 2 and info.extra == {"flip": 5}


@pytest.mark.parametrize("orientation", sorted(_TO_SENSOR))
def test_to_stored_undoes_what_the_reader_undid(orientation):
    stored = np.arange(3 * 5 * 2).reshape(3, 5, 2)
    sensor = _TO_SENSOR[orientation](stored)
    assert np.array_equal(TO_STORED[_ROTATION_NAMES[orientation]](sensor), stored)
    assert set(TO_STORED) == {""} | set(_ROTATION_NAMES.values())


def test_reading_on_many_threads_leaves_the_warning_filters_as_they_were(tmp_path):
    """Readers silence their libraries' warnings with ``warnings.catch_warnings``, which saves and
    restores the process's one list of filters: threads inside it at once could leave an "ignore" in
    place for good (a FITS series read on two threads once silenced every later warning of a run)."""
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    pytest.importorskip("astropy")
    from astropy.io import fits
    from PIL import Image

    from rawmap.reader import read_frame

    paths = []
    for i in range(6):
        fp = tmp_path / f"d{i}.fits"
        fits.PrimaryHDU(np.full((40, 60), 100 + i, np.uint16)).writeto(fp)
        jp = tmp_path / f"j{i}.jpg"
        Image.new("RGB", (60, 40), (i, 2 * i, 3 * i)).save(jp)
        paths += [fp, jp]
    before = list(warnings.filters)
    with ThreadPoolExecutor(4) as pool:
        for _ in range(20):
            list(pool.map(read_frame, paths))
    assert warnings.filters == before
