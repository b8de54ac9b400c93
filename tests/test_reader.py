"""Tests of rawmap.reader and rawmap.metadata on real camera files and planted images."""

from __future__ import annotations

import datetime as dt
import os
import struct
import time as _time
from pathlib import Path

import numpy as np
import pytest
import rawpy
import tifffile
from PIL import Image, ImageOps, TiffImagePlugin

from rawmap import reader
from rawmap.errors import InputError, NotBayerError, UnreadableFileError, UnsupportedFileError
from rawmap.frame import CameraId, Frame, SourceKind
from rawmap.metadata import Metadata, parse_exif, read_metadata, sniff
from rawmap.reader import FileInfo, is_candidate, read_frame, read_info

SAMPLES = Path(__file__).parents[1].parent / "shared" / "samples"
needs_samples = pytest.mark.skipif(
    not (SAMPLES / "raw").is_dir(),
    reason=f"real camera samples not found at {SAMPLES} (they live outside the repository, in ../shared/samples)",
)

# Figures from ../shared/samples/README.md (geometry, pattern, levels) and what the
# files' own headers say (identity, exposure, ISO, time).
RAW_SAMPLES = {
    "blackmagic-pocket4k.dng": dict(
        camera=CameraId("Blackmagic", "Blackmagic Pocket Cinema Camera 4K", "f6845270-68de-40e7-9688-2492e35e94c0"),
        shape=(2176, 4128),
        margins=(0, 0),
        full_shape=(2176, 4128),
        cfa="RGGB",
        black=[512] * 4,
        white=65535,
        exposure=0.0,
        iso=0.0,
        time=None,
        format="DNG",
    ),
    "canon-550d-magiclantern.dng": dict(
        camera=CameraId("Canon", "Canon EOS Kiss X4", ""),
        shape=(1156, 1734),
        margins=(26, 152),
        full_shape=(1182, 1888),
        cfa="RGGB",
        black=[2056] * 4,
        white=15000,
        exposure=0.0,
        iso=0.0,
        time=None,
        format="DNG",
    ),
    "nikon-d1.NEF": dict(
        camera=CameraId("NIKON CORPORATION", "NIKON D1", ""),
        shape=(1324, 2012),
        margins=(0, 0),
        full_shape=(1324, 2012),
        cfa="BGGR",
        black=[0] * 4,
        white=4095,
        exposure=0.004,
        iso=200.0,
        time=dt.datetime(2000, 11, 19, 13, 1, 50),
        format="NEF",
    ),
    "canon-d30-a.CRW": dict(
        camera=CameraId("Canon", "Canon EOS D30", "171048961"),
        shape=(1448, 2176),
        margins=(6, 48),
        full_shape=(1456, 2224),
        cfa="RGGB",
        black=[126] * 4,
        white=4095,
        exposure=0.004957,
        iso=100.0,
        time=dt.datetime(2002, 11, 24, 15, 11, 22),
        format="CRW",
    ),
    "canon-d30-b.CRW": dict(
        camera=CameraId("Canon", "Canon EOS D30", "305465770"),
        shape=(1448, 2176),
        margins=(6, 48),
        full_shape=(1456, 2224),
        cfa="RGGB",
        black=[127, 128, 128, 128],
        white=4095,
        exposure=4.967,
        iso=100.0,
        time=dt.datetime(2018, 1, 1, 13, 3, 32),
        format="CRW",
    ),
    "kodak-dc50.KDC": dict(
        camera=CameraId("Eastman Kodak Company", "Kodak Digital Science DC50 Zoom Camera", ""),
        shape=(512, 768),
        margins=(0, 0),
        full_shape=(512, 768),
        cfa="GRBG",
        black=[0] * 4,
        white=16383,
        exposure=0.00435,
        iso=84.0,
        time=dt.datetime(1997, 4, 23, 8, 0, 47),
        format="KDC",
    ),
}

REJECTS = {
    "canon-6d-linear.dng": (NotBayerError, "linear (already demosaiced) DNG"),
    "kodak-c330-yrgb.raw": (NotBayerError, "full colour at every pixel"),
    "nikon-coolscan-scanner.nef": (NotBayerError, "film scanner"),
    "gopro-fusion.GPR": (UnsupportedFileError, "VC-5"),
}


def assert_one_line(err: InputError, path: Path, fragment: str) -> None:
    msg = str(err)
    assert msg.startswith(str(path) + ": ")
    assert fragment in msg
    assert "\n" not in msg and "Traceback" not in msg
    assert err.path == path


# --------------------------------------------------------------------------- real RAW files


@pytest.fixture(scope="module")
def frames() -> dict[str, Frame]:
    if not (SAMPLES / "raw").is_dir():
        pytest.skip(f"real camera samples not found at {SAMPLES}")
    return {name: read_frame(SAMPLES / "raw" / name) for name in RAW_SAMPLES}


@needs_samples
@pytest.mark.parametrize("name", sorted(RAW_SAMPLES))
def test_raw_sample(frames, name):
    want = RAW_SAMPLES[name]
    f = frames[name]
    assert f.path == SAMPLES / "raw" / name
    assert f.source is SourceKind.RAW
    assert f.format == want["format"]
    assert f.camera == want["camera"]
    assert f.mosaic.shape == want["shape"] == f.shape
    assert f.mosaic.dtype == np.uint16 and f.mosaic.flags.c_contiguous and f.mosaic.flags.owndata
    assert f.margins == want["margins"]
    assert f.full_shape == want["full_shape"]
    assert f.cfa is not None and f.cfa.shape == (2, 2) and f.cfa.dtype == np.uint8
    assert f.cfa_string == want["cfa"]
    assert f.black.dtype == np.float64 and f.black.tolist() == want["black"]
    assert f.white == want["white"]
    assert f.exposure == pytest.approx(want["exposure"], rel=1e-3)
    assert f.iso == want["iso"]
    assert f.time == want["time"]


@needs_samples
@pytest.mark.parametrize("name", sorted(RAW_SAMPLES))
def test_visible_shape_from_the_header_is_the_decoded_shape(frames, name):
    assert reader.visible_shape(SAMPLES / "raw" / name) == frames[name].mosaic.shape


def test_visible_shape_is_none_for_what_libraw_does_not_open(tmp_path):
    jpeg = tmp_path / "a.jpg"
    Image.new("RGB", (16, 12)).save(jpeg)
    (tmp_path / "empty.dng").write_bytes(b"")
    assert reader.visible_shape(jpeg) is None
    assert reader.visible_shape(tmp_path / "empty.dng") is None
    assert reader.visible_shape(tmp_path / "missing.dng") is None


@needs_samples
@pytest.mark.parametrize("name", sorted(RAW_SAMPLES))
def test_read_info_matches_read_frame(frames, name):
    f = frames[name]
    info = read_info(SAMPLES / "raw" / name)
    assert isinstance(info, FileInfo)
    assert (info.camera, info.shape, info.margins, info.full_shape, info.format) == (
        f.camera,
        f.shape,
        f.margins,
        f.full_shape,
        f.format,
    )
    assert info.cfa_string == f.cfa_string and info.black.tolist() == f.black.tolist()
    assert (info.white, info.exposure, info.iso, info.time) == (f.white, f.exposure, f.iso, f.time)
    assert (info.channels, info.dtype, info.source) == (1, "uint16", SourceKind.RAW)


@needs_samples
def test_mosaic_is_libraw_visible_area():
    path = SAMPLES / "raw" / "canon-d30-a.CRW"
    with rawpy.imread(str(path)) as raw:
        want = raw.raw_image_visible.copy()
    np.testing.assert_array_equal(read_frame(path).mosaic, want)


@needs_samples
def test_mosaic_into_a_given_buffer():
    # a file with margins: the visible area is a strided view of LibRaw's buffer
    path = SAMPLES / "raw" / "canon-d30-a.CRW"
    want = read_frame(path).mosaic
    buf = np.full(want.shape, 7, np.uint16)
    frame = read_frame(path, out=buf)
    assert frame.mosaic is buf
    np.testing.assert_array_equal(buf, want)
    # a buffer of another shape or type is left alone: the frame gets a new array
    for other in (np.zeros((want.shape[0], want.shape[1] - 2), np.uint16), np.zeros(want.shape, np.int32)):
        got = read_frame(path, out=other).mosaic
        assert got is not other and not other.any()
        np.testing.assert_array_equal(got, want)


@needs_samples
def test_shared_mosaic_is_libraw_buffer_when_contiguous():
    import gc

    path = SAMPLES / "raw" / "nikon-d1.NEF"  # no margins: the visible area is LibRaw's whole buffer
    want = read_frame(path).mosaic
    shared = read_frame(path, share=True).mosaic
    assert shared.base is not None and shared.flags.c_contiguous
    gc.collect()  # the frame is gone; the view alone keeps LibRaw's buffer alive
    np.testing.assert_array_equal(shared, want)
    # with left/right margins the visible area is not one block: a copy, as without share
    crw = SAMPLES / "raw" / "canon-d30-a.CRW"
    copy = read_frame(crw, share=True).mosaic
    assert copy.base is None
    np.testing.assert_array_equal(copy, read_frame(crw).mosaic)


@needs_samples
@pytest.mark.parametrize("name", sorted(RAW_SAMPLES))
def test_extras_come_from_the_same_decode(frames, name):
    """``read_frame(extras=True)``: the same frame plus LibRaw's full frame, colour, white balance and
    preview, as a separate rawpy open reports them; a plain read keeps none of it."""
    from rawmap.readers.libraw import RawExtras

    path = SAMPLES / "raw" / name
    frame = read_frame(path, extras=True)
    plain = frames[name]
    assert "libraw" not in plain.extra
    np.testing.assert_array_equal(frame.mosaic, plain.mosaic)
    kept = frame.extra["libraw"]
    assert isinstance(kept, RawExtras)
    with rawpy.imread(str(path)) as raw:
        full = raw.raw_image.copy()
        reported = np.asarray(raw.rgb_xyz_matrix)[:3]
        if reported.any() or name.endswith(".dng"):
            np.testing.assert_array_equal(kept.rgb_xyz_matrix, reported)
        else:  # none reported, yet LibRaw converts the KDC's colours: the matrix its conversion implies
            assert kept.rgb_xyz_matrix.any()
        np.testing.assert_array_equal(kept.camera_whitebalance, np.asarray(raw.camera_whitebalance)[:3])
        assert kept.flip == raw.sizes.flip
    if full.shape == plain.shape:
        assert kept.full_frame is None
    else:
        np.testing.assert_array_equal(kept.full_frame, full)
        top, left = plain.margins
        np.testing.assert_array_equal(full[top : top + plain.shape[0], left : left + plain.shape[1]], plain.mosaic)
    assert kept.metadata.make == plain.camera.make or not kept.metadata.make


def test_extras_of_images_are_ignored(tmp_path):
    jpeg = tmp_path / "a.jpg"
    Image.new("RGB", (64, 48)).save(jpeg)
    assert "libraw" not in read_frame(jpeg, extras=True).extra


@needs_samples
def test_epoch_timestamp_is_unknown_in_any_time_zone(monkeypatch):
    # LibRaw has no time for this file (time_t 0), which rawpy shows in local time.
    monkeypatch.setenv("TZ", "America/New_York")
    _time.tzset()
    try:
        assert read_info(SAMPLES / "raw" / "canon-550d-magiclantern.dng").time is None
    finally:
        monkeypatch.undo()
        _time.tzset()


@needs_samples
@pytest.mark.parametrize("name", sorted(REJECTS))
def test_reject_sample(name):
    cls, fragment = REJECTS[name]
    path = SAMPLES / "reject" / name
    with pytest.raises(cls) as exc:
        read_frame(path)
    assert_one_line(exc.value, path, fragment)
    with pytest.raises(cls):
        read_info(path)


@needs_samples
@pytest.mark.parametrize("name", sorted(RAW_SAMPLES))
@pytest.mark.parametrize("fraction", [0.5, 0.98])
def test_truncated_raw_is_refused(tmp_path, name, fraction):
    data = (SAMPLES / "raw" / name).read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(UnreadableFileError) as exc:
        read_frame(path)
    assert_one_line(exc.value, path, "truncated")


@needs_samples
def test_libraw_names_fallback():
    if reader._libraw_c() is None:
        pytest.skip("LibRaw's C library is not usable through ctypes here")
    assert reader._libraw_names(SAMPLES / "reject" / "kodak-c330-yrgb.raw") == ("Kodak", "C330")
    assert reader._libraw_names(SAMPLES / "raw" / "canon-d30-a.CRW") == ("Canon", "EOS D30")


# --------------------------------------------------------------------------- bad files


def test_missing_file(tmp_path):
    path = tmp_path / "nope.NEF"
    with pytest.raises(UnreadableFileError) as exc:
        read_frame(path)
    assert_one_line(exc.value, path, "no such file")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.NEF"
    path.write_bytes(b"")
    with pytest.raises(UnreadableFileError) as exc:
        read_frame(path)
    assert_one_line(exc.value, path, "empty")


def test_folder(tmp_path):
    path = tmp_path / "DCIM.NEF"
    path.mkdir()
    with pytest.raises(UnreadableFileError) as exc:
        read_info(path)
    assert_one_line(exc.value, path, "folder")


@pytest.mark.parametrize("name", ["notes.NEF", "notes.jpg", "notes.tif"])
def test_text_file_with_photo_extension(tmp_path, name):
    path = tmp_path / name
    path.write_text("this is not a photo\n" * 20)
    with pytest.raises(UnreadableFileError) as exc:
        read_frame(path)
    assert_one_line(exc.value, path, "text file")


def test_garbage_after_tiff_header_is_not_silently_read(tmp_path):
    path = tmp_path / "broken.NEF"
    path.write_bytes(b"MM\x00\x2a\x00\x00\x00\x08" + bytes(range(256)) * 8)
    assert read_metadata(path).damaged
    with pytest.raises(UnreadableFileError) as exc:
        read_frame(path)
    assert_one_line(exc.value, path, "header is damaged")


# --------------------------------------------------------------------------- DNG round trip


def test_dng_round_trip(tmp_path):
    from rawmap.dng import write_dng

    rng = np.random.default_rng(7)
    full = rng.integers(0, 4000, size=(40, 64), dtype=np.uint16)
    visible = rng.integers(500, 16000, size=(32, 48), dtype=np.uint16)
    cam = CameraId("Canon", "Canon EOS 5D Mark II", "1234567890")
    when = dt.datetime(2021, 7, 8, 9, 10, 11)
    path = write_dng(
        tmp_path / "x.dng",
        visible,
        cfa=np.array([[1, 0], [2, 3]]),
        black=[510, 511, 512, 513],
        white=15000,
        camera=cam,
        exposure=1 / 125,
        iso=800,
        time=when,
        full_frame=full,
        margins=(4, 8),
    )
    f = read_frame(path)
    np.testing.assert_array_equal(f.mosaic, visible)
    assert f.camera == cam
    assert f.cfa_string == "GRBG" and f.margins == (4, 8) and f.full_shape == (40, 64)
    assert f.black.tolist() == [510, 511, 512, 513] and f.white == 15000
    assert f.exposure == pytest.approx(1 / 125) and f.iso == 800 and f.time == when


# --------------------------------------------------------------------------- images


def _exif(orientation: int | None = None, **shot) -> Image.Exif:
    ex = Image.Exif()
    ex[0x010F] = "Canon"
    ex[0x0110] = "Canon EOS 5D Mark IV"
    if orientation is not None:
        ex[0x0112] = orientation
    sub = ex.get_ifd(0x8769)
    sub[0x9003] = shot.get("time", "2024:05:06 07:08:09")
    sub[0x829A] = TiffImagePlugin.IFDRational(1, 250)
    sub[0x8827] = 400
    sub[0xA431] = "012345678901"
    return ex


def _rgb(h=40, w=60, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_jpeg_rgb_with_exif(tmp_path):
    path = tmp_path / "IMG_0001.JPG"
    Image.fromarray(_rgb()).save(path, exif=_exif(orientation=6), quality=95)
    f = read_frame(path)
    assert f.source is SourceKind.IMAGE and f.format == "JPEG" and f.cfa is None and f.cfa_string == ""
    assert f.mosaic.shape == (40, 60, 3) and f.mosaic.dtype == np.uint8  # landscape: stored = sensor
    assert f.white == 255 and f.black.tolist() == [0, 0, 0, 0]
    assert f.camera == CameraId("Canon", "Canon EOS 5D Mark IV", "012345678901")
    assert f.exposure == pytest.approx(1 / 250) and f.iso == 400
    assert f.time == dt.datetime(2024, 5, 6, 7, 8, 9)
    assert f.extra["orientation"] == 6 and f.extra["rotation"] == ""
    info = read_info(path)
    assert (info.shape, info.channels, info.dtype, info.camera) == ((40, 60), 3, "uint8", f.camera)


def test_jpeg_grayscale(tmp_path):
    path = tmp_path / "gray.jpg"
    Image.fromarray(_rgb()).convert("L").save(path)
    f = read_frame(path)
    assert f.mosaic.shape == (40, 60, 1) and f.mosaic.dtype == np.uint8
    assert f.camera == CameraId("", "", "") and f.time is None and f.exposure == 0 and f.iso == 0


@pytest.mark.parametrize("planar", [False, True])
def test_tiff_16bit_rgb_is_exact(tmp_path, planar):
    rgb = np.random.default_rng(3).integers(0, 65536, size=(30, 50, 3), dtype=np.uint16)
    path = tmp_path / "scan.tif"
    if planar:
        tifffile.imwrite(path, np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    else:
        tifffile.imwrite(path, rgb, photometric="rgb", compression="zlib")
    f = read_frame(path)
    assert f.format == "TIFF" and f.white == 65535
    np.testing.assert_array_equal(f.mosaic, rgb)


def test_tiff_16bit_gray_with_make(tmp_path):
    g = np.random.default_rng(4).integers(0, 65536, size=(30, 50), dtype=np.uint16)
    path = tmp_path / "g.tiff"
    tifffile.imwrite(path, g, extratags=[(271, "s", 0, "NIKON CORPORATION", True), (272, "s", 0, "NIKON D850", True)])
    f = read_frame(path)
    np.testing.assert_array_equal(f.mosaic[..., 0], g)
    assert f.mosaic.shape == (30, 50, 1) and f.camera == CameraId("NIKON CORPORATION", "NIKON D850", "")


def test_tiff_lzw_through_pillow(tmp_path):
    g = np.random.default_rng(5).integers(0, 65536, size=(20, 30), dtype=np.uint16)
    path = tmp_path / "lzw.tif"
    Image.fromarray(g).save(path, compression="tiff_lzw")
    np.testing.assert_array_equal(read_frame(path).mosaic[..., 0], g)


def test_png_16bit_gray_and_rgba(tmp_path):
    g = np.random.default_rng(6).integers(0, 65536, size=(20, 30), dtype=np.uint16)
    Image.fromarray(g).save(tmp_path / "g.png")
    f = read_frame(tmp_path / "g.png")
    assert f.format == "PNG" and f.mosaic.dtype == np.uint16 and f.white == 65535
    np.testing.assert_array_equal(f.mosaic[..., 0], g)
    rgba = np.dstack([_rgb(20, 30), np.full((20, 30), 255, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_frame(tmp_path / "a.png").mosaic, rgba[..., :3])


def _png16_rgb(path: Path, arr: np.ndarray) -> None:
    """A 16-bit RGB PNG (Pillow cannot write one)."""
    import zlib

    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda p: Image.fromarray(_rgb()).convert("P").save(p.with_suffix(".png")), "palette"),
        (lambda p: Image.fromarray(_rgb()).convert("CMYK").save(p.with_suffix(".jpg")), "CMYK"),
        (lambda p: Image.fromarray(_rgb()).convert("1").save(p.with_suffix(".png")), "black-and-white"),
        (lambda p: _png16_rgb(p.with_suffix(".png"), np.zeros((4, 5, 3), np.uint16)), "16-bit RGB PNG"),
        (lambda p: tifffile.imwrite(p.with_suffix(".tif"), np.zeros((4, 5), np.float32)), "float32"),
    ],
)
def test_images_refused_clearly(tmp_path, make, fragment):
    make(tmp_path / "x")
    (path,) = tmp_path.iterdir()
    with pytest.raises(UnsupportedFileError) as exc:
        read_frame(path)
    assert_one_line(exc.value, path, fragment)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_image_is_refused(tmp_path, suffix):
    full = tmp_path / ("full" + suffix)
    Image.fromarray(_rgb(200, 300)).save(full)
    data = full.read_bytes()
    path = tmp_path / ("cut" + suffix)
    path.write_bytes(data[: len(data) // 2])
    read_info(path)  # the header alone is intact
    with pytest.raises(UnreadableFileError) as exc:
        read_frame(path)
    assert_one_line(exc.value, path, "")


# EXIF orientation -> Pillow's transpose that displays the stored pixels (Pillow is the oracle).
PIL_DISPLAY = {
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_landscape_image_is_kept_as_stored(tmp_path, orientation):
    sensor = _rgb(24, 36)
    path = tmp_path / "cam.png"
    Image.fromarray(sensor).save(path, exif=_exif(orientation=orientation))
    f = read_frame(path)
    np.testing.assert_array_equal(f.mosaic, sensor)
    assert f.extra["rotation"] == "" and f.extra["orientation"] == orientation


@pytest.mark.parametrize("orientation", [5, 6, 7, 8])
def test_rotated_pixels_with_stale_tag_are_turned_back(tmp_path, orientation):
    sensor = _rgb(24, 36)
    shown = Image.fromarray(sensor).transpose(PIL_DISPLAY[orientation])
    assert shown.size == (24, 36)  # portrait now
    path = tmp_path / "turned.png"
    shown.save(path, exif=_exif(orientation=orientation))  # pixels turned, tag left as it was
    f = read_frame(path)
    np.testing.assert_array_equal(f.mosaic, sensor)
    assert f.extra["rotation"] != ""
    assert read_info(path).shape == (24, 36)


@pytest.mark.parametrize("tag", [None, 1])
def test_rotated_pixels_with_reset_tag_assume_a_clockwise_turn(tmp_path, tag):
    sensor = _rgb(24, 36)
    shown = Image.fromarray(sensor).transpose(PIL_DISPLAY[reader.PORTRAIT_GUESS])
    path = tmp_path / "turned.png"
    shown.save(path, exif=_exif(orientation=tag))
    f = read_frame(path)
    np.testing.assert_array_equal(f.mosaic, sensor)
    assert f.extra["rotation"] == "rotate 90 ccw"


def test_exif_transpose_then_save_round_trip(tmp_path):
    # What photo software does: apply the tag to the pixels, drop the tag.
    sensor = _rgb(30, 40)
    cam = tmp_path / "cam.jpg"
    Image.fromarray(sensor).save(cam, exif=_exif(orientation=6), quality=100, subsampling=0)
    with Image.open(cam) as im:
        shown = ImageOps.exif_transpose(im)
    out = tmp_path / "exported.jpg"
    shown.save(out, quality=100, subsampling=0)
    a, b = read_frame(cam).mosaic.astype(int), read_frame(out).mosaic.astype(int)
    assert a.shape == b.shape == (30, 40, 3)
    assert np.abs(a - b).mean() < 3  # same pixels, up to JPEG re-encoding


# --------------------------------------------------------------------------- is_candidate


@pytest.mark.parametrize(
    "name, ok",
    [
        ("DSC_0001.NEF", True),
        ("img.cr2", True),
        ("IMG_1.CR3", True),
        ("a.dng", True),
        ("x.ARW", True),
        ("p.RW2", True),
        ("o.orf", True),
        ("k.KDC", True),
        ("c.CRW", True),
        ("f.raf", True),
        ("g.GPR", True),
        ("a.jpg", True),
        ("a.JPEG", True),
        ("a.tif", True),
        ("a.TIFF", True),
        ("a.png", True),
        ("._IMG_0001.CR2", False),
        (".hidden.jpg", False),
        ("notes.txt", False),
        ("NEF", False),
        ("movie.mp4", False),
        ("map.json", False),
        ("x.xmp", False),
    ],
)
def test_is_candidate(name, ok):
    assert is_candidate(Path("some/folder") / name) is ok
    assert is_candidate(str(name)) is ok


# --------------------------------------------------------------------------- refusal branches without files


@pytest.mark.parametrize(
    "pattern, desc, colors, fragment",
    [
        (np.zeros((6, 6), np.uint8), b"RGBG", 3, "X-Trans"),
        (np.zeros((1, 1), np.uint8), b"RGBG", 3, "monochrome"),
        (np.array([[0, 1], [2, 3]], np.uint8), b"GMCY", 4, "4-colour"),
        (np.array([[0, 1], [3, 2]], np.uint8), b"RGBE", 4, "4-colour"),
        (np.zeros((16, 16), np.uint8), b"RGBG", 3, "16x16"),
        (NotImplementedError("filters: 5"), b"RGBG", 3, "no usable colour filter"),
    ],
)
def test_not_bayer_branches(pattern, desc, colors, fragment):
    class Fake:
        raw_type = rawpy.RawType.Flat
        color_desc = desc
        num_colors = colors

        @property
        def raw_pattern(self):
            if isinstance(pattern, Exception):
                raise pattern
            return pattern

    path = Path("x.RAF")
    meta = Metadata(container="tiff", make="FUJIFILM", model="X-T3")
    with pytest.raises(NotBayerError) as exc:
        reader._check_bayer(path, Fake(), meta, "RAF")
    assert_one_line(exc.value, path, fragment)


# --------------------------------------------------------------------------- metadata


@needs_samples
@pytest.mark.parametrize("name", sorted(RAW_SAMPLES))
def test_metadata_identity_of_samples(name):
    m = read_metadata(SAMPLES / "raw" / name)
    want = RAW_SAMPLES[name]["camera"]
    assert (m.make, m.model, m.serial) == (want.make, want.model, want.serial)
    assert m.truncated_at == 0 and m.file_size == (SAMPLES / "raw" / name).stat().st_size
    assert m.container == ("ciff" if name.endswith(".CRW") else "tiff")


@needs_samples
@pytest.mark.parametrize(
    ("name", "fnumber", "focal", "lens", "owner"),
    [
        ("nikon-d1.NEF", 7.6, 20.0, "20mm f/2.8", ""),  # Nikon maker note 0x0084
        ("canon-d30-a.CRW", None, None, "100mm", "Marc-Andre Keune"),  # CIFF camera settings, OwnerName
        ("canon-d30-b.CRW", None, None, "16-35mm", "Peter Wemmert/Kameratrollet"),
        ("kodak-dc50.KDC", 6.2, 37.0, "", ""),  # TIFF/EP: in IFD0
        ("canon-550d-magiclantern.dng", 0.0, 0.0, "", ""),  # stated as 0: unknown
    ],
)
def test_metadata_lens_aperture_focal_owner(name, fnumber, focal, lens, owner):
    m = read_metadata(SAMPLES / "raw" / name)
    assert (m.fnumber, m.focal_length, m.lens, m.owner) == (fnumber, focal, lens, owner)
    if lens:
        assert m.lens_spec is not None and m.lens_spec[0] == float(lens.split("-")[0].split("mm")[0])
    colour = dict(m.dng_colour)
    if name.endswith(".dng"):  # the DNG's colour calibration, for repair to copy
        assert colour[50721] == pytest.approx(
            (0.6461, -0.1164, -0.0857, -0.3825, 1.1597, 0.2534, -0.0416, 0.154, 0.6039)
        )
    else:
        assert colour == {}
    # the white balance as shot in a Nikon maker note (WB_RBLevels, 0x000C; exiftool reads the same)
    assert m.wb_levels == ((1.9765625, 1.2890625) if name == "nikon-d1.NEF" else None)


@needs_samples
def test_metadata_of_rejects():
    m = read_metadata(SAMPLES / "reject" / "canon-6d-linear.dng")
    assert (m.make, m.model, m.serial) == ("Canon", "Canon EOS 6D", "033024001432")
    assert m.time == dt.datetime(2019, 6, 6, 7, 29, 51) and m.iso == 1000
    assert m.photometric == 34892
    assert read_metadata(SAMPLES / "reject" / "gopro-fusion.GPR").compression == 9
    assert read_metadata(SAMPLES / "reject" / "kodak-c330-yrgb.raw").container == ""


def test_sniff():
    assert sniff(b"II*\x00\x08\x00\x00\x00") == "tiff"
    assert sniff(b"MM\x00*\x00\x00\x00\x08") == "tiff"
    assert sniff(b"IIRO\x08\x00\x00\x00") == "tiff"  # Olympus ORF
    assert sniff(b"IIU\x00\x18\x00\x00\x00") == "tiff"  # Panasonic RW2
    assert sniff(b"II\x1a\x00\x00\x00HEAPCCDR\x02\x00") == "ciff"
    assert sniff(b"\x00\x00\x00\x18ftypcrx ") == "bmff"
    assert sniff(b"FUJIFILMCCD-RAW ") == "raf"
    assert sniff(b"\xff\xd8\xff\xe1") == "jpeg"
    assert sniff(b"\x89PNG\r\n\x1a\n") == "png"
    assert sniff(b"") == sniff(b"hello world") == ""


def test_parse_exif_of_pillow_block():
    m = parse_exif(_exif(orientation=8).tobytes())
    assert (m.make, m.model, m.serial, m.orientation) == ("Canon", "Canon EOS 5D Mark IV", "012345678901", 8)
    assert m.exposure == pytest.approx(0.004) and m.iso == 400 and m.time == dt.datetime(2024, 5, 6, 7, 8, 9)
    for junk in (b"", b"garbage", b"MM\x00*\x00\x00\x00\x08\xff\xff"):
        m = parse_exif(junk)
        assert (m.make, m.model, m.serial, m.time, m.exposure, m.orientation) == ("", "", "", None, None, 0)


@pytest.mark.parametrize(
    "raw, want",
    [
        ("2024:05:06 07:08:09", dt.datetime(2024, 5, 6, 7, 8, 9)),
        ("2021.01.11 11.18.19", dt.datetime(2021, 1, 11, 11, 18, 19)),  # Nikon Scan's separators
        ("0000:00:00 00:00:00", None),
        ("    :  :     :  :  ", None),
    ],
)
def test_capture_time_formats(tmp_path, raw, want):
    path = tmp_path / "t.jpg"
    Image.new("RGB", (8, 6)).save(path, exif=_exif(time=raw))
    assert read_metadata(path).time == want


def _with_maker_note(make: str, model: str, note: bytes) -> Image.Exif:
    ex = Image.Exif()
    ex[0x010F], ex[0x0110] = make, model
    ex.get_ifd(0x8769)[0x927C] = note
    return ex


def test_canon_maker_note_serial(tmp_path):
    # A bare IFD in the file's byte order (Pillow writes big-endian): SerialNumber 0x000C, LONG.
    note = struct.pack(">HHHII", 1, 0x000C, 4, 1, 1234567) + b"\0\0\0\0"
    path = tmp_path / "canon.jpg"
    Image.new("RGB", (8, 6)).save(path, exif=_with_maker_note("Canon", "Canon EOS 350D DIGITAL", note))
    assert read_frame(path).camera == CameraId("Canon", "Canon EOS 350D DIGITAL", "1234567")


def test_nikon_maker_note_serial(tmp_path):
    inner = Image.Exif()
    inner[0x001D] = "3001234"
    note = b"Nikon\x00\x02\x10\x00\x00" + inner.tobytes()[6:]  # type 3: own TIFF header
    path = tmp_path / "nikon.jpg"
    Image.new("RGB", (8, 6)).save(path, exif=_with_maker_note("NIKON CORPORATION", "NIKON D700", note))
    assert read_frame(path).camera == CameraId("NIKON CORPORATION", "NIKON D700", "3001234")


def test_broken_maker_note_is_ignored(tmp_path):
    path = tmp_path / "odd.jpg"
    Image.new("RGB", (8, 6)).save(path, exif=_with_maker_note("Canon", "Canon EOS 40D", b"\xff\xff" + b"\x00" * 30))
    assert read_frame(path).camera == CameraId("Canon", "Canon EOS 40D", "")


def _ciff(make: bytes, model: bytes, serial: int, secs: int, endian: str = "<") -> bytes:
    """A minimal CRW: the records in a sub-heap, the serial stored inside its directory entry."""
    e = endian
    mm = make + b"\0" + model + b"\0"
    stamp = struct.pack(e + "III", secs, 0, 0)
    sub_data = mm + stamp
    sub_dir = struct.pack(e + "H", 3)
    sub_dir += struct.pack(e + "HII", 0x080A, len(mm), 0)
    sub_dir += struct.pack(e + "HII", 0x180E, len(stamp), len(mm))
    sub_dir += struct.pack(e + "H", 0x4000 | 0x180B) + struct.pack(e + "II", serial, 0)
    sub = sub_data + sub_dir + struct.pack(e + "I", len(sub_data))
    root_dir = struct.pack(e + "H", 1) + struct.pack(e + "HII", 0x300A, len(sub), 0)
    root = sub + root_dir + struct.pack(e + "I", len(sub))
    order = b"II" if e == "<" else b"MM"
    header = order + struct.pack(e + "I", 26) + b"HEAPCCDR" + struct.pack(e + "I", 0x10002) + b"\0" * 8
    return header + root


@pytest.mark.parametrize("endian", ["<", ">"])
def test_ciff_parser(tmp_path, endian):
    path = tmp_path / "x.CRW"
    path.write_bytes(_ciff(b"Canon", b"Canon EOS 10D", 560123456, 1_000_000_000, endian))
    m = read_metadata(path)
    assert (m.container, m.make, m.model, m.serial) == ("ciff", "Canon", "Canon EOS 10D", "560123456")
    assert m.time == dt.datetime(2001, 9, 9, 1, 46, 40) and m.truncated_at == 0
    cut = tmp_path / "cut.CRW"
    cut.write_bytes(path.read_bytes()[:-7])
    assert read_metadata(cut).damaged
    with pytest.raises(UnreadableFileError) as exc:
        read_frame(cut)
    assert_one_line(exc.value, cut, "truncated or damaged")


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def test_cr3_parser(tmp_path):
    ifd0 = Image.Exif()
    ifd0[0x010F], ifd0[0x0110] = "Canon", "Canon EOS R5"
    exif = Image.Exif()
    exif[0x829A] = TiffImagePlugin.IFDRational(1, 60)
    exif[0x8827] = 3200
    exif[0x9003] = "2022:02:03 04:05:06"
    note = Image.Exif()
    note[0x000C] = 98765432
    cmt = b"".join(_box(k, v.tobytes()[6:]) for k, v in ((b"CMT1", ifd0), (b"CMT2", exif), (b"CMT3", note)))
    uuid = _box(b"uuid", bytes.fromhex("85c0b687820f11e08111f4ce462b6a48") + cmt)
    data = _box(b"ftyp", b"crx \x00\x00\x00\x01crx isom") + _box(b"moov", uuid) + _box(b"mdat", b"\0" * 64)
    path = tmp_path / "x.CR3"
    path.write_bytes(data)
    m = read_metadata(path)
    assert (m.container, m.make, m.model, m.serial) == ("bmff", "Canon", "Canon EOS R5", "98765432")
    assert m.exposure == pytest.approx(1 / 60) and m.iso == 3200 and m.time == dt.datetime(2022, 2, 3, 4, 5, 6)


def test_raf_embedded_jpeg_exif(tmp_path):
    jpeg = tmp_path / "e.jpg"
    Image.new("RGB", (16, 8)).save(jpeg, exif=_exif())
    body = jpeg.read_bytes()
    head = b"FUJIFILMCCD-RAW 0201FF383501".ljust(84, b"\0") + struct.pack(">II", 108, len(body))
    path = tmp_path / "x.RAF"
    path.write_bytes(head.ljust(108, b"\0") + body)
    m = read_metadata(path)
    assert (m.container, m.make, m.model, m.serial) == ("raf", "Canon", "Canon EOS 5D Mark IV", "012345678901")


def test_tiff_truncation_detected_in_header(tmp_path):
    g = np.zeros((64, 64), np.uint16)
    path = tmp_path / "x.tif"
    tifffile.imwrite(path, g)
    data = path.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[:4000])
    m = read_metadata(cut)
    assert m.truncated_at >= 64 * 64 * 2 > m.file_size
    with pytest.raises(UnreadableFileError, match="truncated"):
        read_info(cut)


@needs_samples
@pytest.mark.parametrize("name", sorted(RAW_SAMPLES))
def test_metadata_reads_headers_only(monkeypatch, name):
    from rawmap import metadata

    blocks: set[int] = set()
    original = metadata._FileView._block

    def spy(self, i):
        blocks.add(i)
        return original(self, i)

    monkeypatch.setattr(metadata._FileView, "_block", spy)
    read_metadata(SAMPLES / "raw" / name)
    assert 1 <= len(blocks) <= 2  # 64 KiB each, of files of 0.1-4 MB


def test_file_view_slices_like_bytes(tmp_path):
    from rawmap.metadata import _FileView

    data = np.random.default_rng(8).integers(0, 256, size=3 * 65536 + 123, dtype=np.uint8).tobytes()
    path = tmp_path / "blob"
    path.write_bytes(data)
    with open(path, "rb") as fh:
        view = _FileView(fh, len(data))
        assert len(view) == len(data)
        for a, b in [
            (0, 8),
            (65530, 65542),
            (65536, 65536 + 70000),
            (len(data) - 5, len(data) + 10),
            (10, 5),
            (-4, None),
        ]:
            assert view[a:b] == data[a:b]
        assert view[65536] == data[65536] and view[-1] == data[-1]
        with pytest.raises(IndexError):
            view[len(data)]


@needs_samples
@pytest.mark.parametrize("name", sorted(RAW_SAMPLES))
def test_identify_from_header_matches_full_read(name):
    """identify() reads no pixels, yet names the same body and kind as read_info()."""
    from rawmap.reader import identify

    path = SAMPLES / "raw" / name
    info = reader.read_info(path)
    assert identify(path) == (info.camera, info.source)


def test_identify_refuses_what_the_header_shows(tmp_path):
    from rawmap.reader import identify

    empty = tmp_path / "empty.NEF"
    empty.write_bytes(b"")
    with pytest.raises(UnreadableFileError, match="empty.NEF"):
        identify(empty)


# --------------------------------------------------------------------------- raw mosaics in image files (--cfa)


def _mosaic_values(shape=(24, 32), top=4095, seed=3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, top + 1, shape).astype(np.uint16)


def _png(path: Path, a: np.ndarray, *, sbit: int | None = None, **save) -> Path:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    if sbit is not None:
        info.add(b"sBIT", bytes([sbit]))
    Image.fromarray(a).save(path, pnginfo=info, **save)
    return path


@pytest.mark.parametrize("cfa", ["RGGB", "BGGR", "GRBG", "GBRG"])
def test_mosaic_tiff8_is_a_raw_frame_of_the_given_pattern(tmp_path, cfa):
    a = _mosaic_values(top=255).astype(np.uint8)
    path = tmp_path / "dark.tif"
    tifffile.imwrite(path, a, photometric="minisblack")
    spec = reader.MosaicSpec(cfa, black=6, exposure=2.5, iso=400)
    frame = read_frame(path, mosaic=spec)
    assert frame.source is SourceKind.RAW and frame.format == "TIFF"
    assert frame.mosaic.dtype == np.uint16 and frame.mosaic.shape == (24, 32)
    assert np.array_equal(frame.mosaic, a)  # the values as stored: no scaling, no rotation
    assert frame.cfa_string == cfa and not frame.is_mono
    assert frame.white == 255 and frame.black.tolist() == [6.0] * 4
    assert (frame.exposure, frame.iso) == (2.5, 400)
    assert frame.camera == CameraId("", f"{cfa} sensor 32x24")  # unnamed: pattern and size (W x H)
    assert frame.extra["dtype"] == "uint8"
    # without a spec the same file is a developed image, as before
    assert read_frame(path).source is SourceKind.IMAGE


def test_mosaic_mono_has_raw_semantics_and_no_pattern(tmp_path):
    a = _mosaic_values(top=65535)
    path = tmp_path / "mono.png"
    _png(path, a)
    frame = read_frame(path, mosaic=reader.MosaicSpec("mono"))
    assert frame.source is SourceKind.RAW and frame.cfa is None and frame.is_mono
    assert frame.cfa_string == "" and frame.white == 65535
    assert np.array_equal(frame.mosaic, a)


def test_mosaic_portrait_file_is_not_turned(tmp_path):
    a = _mosaic_values((40, 24), top=255).astype(np.uint8)
    path = _png(tmp_path / "tall.png", a)
    assert read_frame(path).shape == (24, 40)  # a developed portrait image is turned back to landscape
    assert np.array_equal(read_frame(path, mosaic=reader.MosaicSpec("RGGB")).mosaic, a)


def test_mosaic_png_sbit_gives_the_white_level(tmp_path):
    a = _mosaic_values()  # 12-bit data
    scaled = _png(tmp_path / "scaled.png", a << 4, sbit=12)  # as the PNG specification has it
    unscaled = _png(tmp_path / "unscaled.png", a, sbit=12)  # 12-bit values stored as they are
    plain = _png(tmp_path / "plain.png", a)
    spec = reader.MosaicSpec("GRBG")
    for path, shift in ((scaled, 4), (unscaled, 0)):
        frame = read_frame(path, mosaic=spec)
        assert frame.white == 4095 and frame.extra["shift"] == shift
        assert np.array_equal(frame.mosaic, a)
    assert read_info(scaled, mosaic=spec).white == 4095
    assert read_frame(plain, mosaic=spec).white == 65535


def test_mosaic_tiff_max_sample_value_gives_the_white_level(tmp_path):
    a = _mosaic_values()
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, a, photometric="minisblack", extratags=[(281, "H", 1, 4095, False)])
    assert read_info(path, mosaic=reader.MosaicSpec("RGGB")).white == 4095


def test_mosaic_pgm_keeps_its_values(tmp_path):
    a = _mosaic_values()
    path = tmp_path / "dark.pgm"
    path.write_bytes(b"P5\n# from a camera SDK\n32 24\n4095\n" + a.astype(">u2").tobytes())
    frame = read_frame(path, mosaic=reader.MosaicSpec("BGGR"))
    assert frame.format == "PGM" and frame.white == 4095
    assert np.array_equal(frame.mosaic, a)  # Pillow would have rescaled them to 0..65535
    eight = tmp_path / "dark8.pgm"
    eight.write_bytes(b"P5 32 24 255\n" + a.astype(np.uint8).tobytes())
    assert np.array_equal(read_frame(eight, mosaic=reader.MosaicSpec("mono")).mosaic, a.astype(np.uint8))
    assert is_candidate(path, mosaic=True) and not is_candidate(path)


def test_mosaic_pgm_truncated_is_refused(tmp_path):
    path = tmp_path / "cut.pgm"
    path.write_bytes(b"P5\n32 24\n4095\n" + bytes(100))
    with pytest.raises(UnreadableFileError, match="truncated"):
        read_frame(path, mosaic=reader.MosaicSpec("RGGB"))


def test_mosaic_file_values_win_over_the_defaults(tmp_path):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x829A] = 0.5  # ExposureTime
    exif.get_ifd(0x8769)[0x8827] = 800  # ISOSpeedRatings
    path = _png(tmp_path / "shot.png", _mosaic_values(), exif=exif.tobytes())
    info = read_info(path, mosaic=reader.MosaicSpec("RGGB", exposure=30.0, iso=100))
    assert (info.exposure, info.iso) == (0.5, 800)


def test_mosaic_camera_given_by_the_user(tmp_path):
    path = _png(tmp_path / "a.png", _mosaic_values())
    cam = CameraId("ZWO", "ASI294MM Pro", "1A2B")
    assert reader.identify(path, mosaic=reader.MosaicSpec("mono", camera=cam)) == (cam, SourceKind.RAW)
    assert reader.identify(path) == (CameraId("", "", ""), SourceKind.IMAGE)


@pytest.mark.parametrize("what", ["rgb", "jpeg"])
def test_mosaic_refuses_colour_and_lossy_files(tmp_path, what):
    if what == "rgb":
        path = tmp_path / "colour.png"
        Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(path)
    else:
        path = tmp_path / "gray.jpg"
        Image.fromarray(np.zeros((24, 32), np.uint8)).save(path)
    with pytest.raises(NotBayerError) as err:
        read_frame(path, mosaic=reader.MosaicSpec("RGGB"))
    msg = str(err.value)
    assert str(path) in msg and "without --cfa" in msg and "\n" not in msg
    with pytest.raises(NotBayerError):
        reader.identify(path, mosaic=reader.MosaicSpec("RGGB"))


def test_mosaic_black_must_be_below_white(tmp_path):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, np.zeros((24, 32), np.uint8))
    with pytest.raises(InputError, match="--black below 255"):
        read_frame(path, mosaic=reader.MosaicSpec("RGGB", black=255))


@pytest.mark.parametrize("kwargs", [dict(cfa="RGB"), dict(cfa="RGGB", black=-1), dict(cfa="mono", exposure=-1.0)])
def test_mosaic_spec_invalid(kwargs):
    with pytest.raises(ValueError):
        reader.MosaicSpec(**kwargs)


def test_mosaic_spec_leaves_raw_files_alone(small_series):
    dng = small_series.files[0]
    plain = read_frame(dng)
    with_spec = read_frame(dng, mosaic=reader.MosaicSpec("mono", exposure=99.0))
    assert with_spec.cfa_string == plain.cfa_string == "RGGB"
    assert with_spec.exposure == plain.exposure and np.array_equal(with_spec.mosaic, plain.mosaic)


# --------------------------------------------------------------------------- damaged headers: sizes and levels

from fuzzing import raw_ifd, set_tiff_tag  # noqa: E402  (tests/fuzzing.py: edits TIFF tags in place)


def _edited(src: Path, dst: Path, edits: dict[int, list[int]], *, ifd: int | None = None) -> Path:
    data = bytearray(src.read_bytes())
    for tag, values in edits.items():
        set_tiff_tag(data, tag, values, ifd=ifd)
    dst.write_bytes(data)
    return dst


@pytest.mark.parametrize(
    "edits, fragment",
    [
        (
            {256: [28769], 257: [24260], 50829: [0, 0, 24260, 28769]},
            "a 24260x28769 sensor (698 million photosites), more than any camera has",
        ),
        ({256: [28769], 257: [24260]}, "a 120x160 sensor in a 24260x28769 frame"),  # the active area still small
        ({256: [8000], 257: [6000], 50829: [0, 0, 6000, 8000], 50720: [8000, 6000]}, "far too many for a file of"),
    ],
)
def test_header_claiming_an_impossible_sensor_is_refused(tmp_path, small_series, edits, fragment):
    path = _edited(small_series.files[0], tmp_path / "bad.dng", edits)
    assert reader.visible_shape(path) is None  # nothing is ever sized from it
    for read in (read_info, read_frame):
        with pytest.raises(UnreadableFileError) as exc:
            read(path)
        assert_one_line(exc.value, path, fragment)
        assert "the header is damaged" in str(exc.value)


@needs_samples
@pytest.mark.parametrize("name", ["nikon-d1.NEF", "kodak-dc50.KDC", "blackmagic-pocket4k.dng"])
def test_real_file_with_a_huge_sensor_in_its_header_is_refused_at_once(tmp_path, name):
    src = SAMPLES / "raw" / name
    data = bytearray(src.read_bytes())
    ifd = raw_ifd(data)
    path = _edited(src, tmp_path / name, {256: [28769], 257: [24260]}, ifd=ifd)
    assert reader.visible_shape(path) is None
    t0 = _time.perf_counter()
    with pytest.raises(UnreadableFileError) as exc:
        read_info(path)
    assert _time.perf_counter() - t0 < 2.0  # refused before LibRaw allocates 1.4 GB for the frame
    assert_one_line(exc.value, path, "24260x28769 frame" if name.endswith("KDC") else "a 24260x28769 sensor")


@pytest.mark.parametrize(
    "edits, fragment",
    [
        ({50717: [1]}, "impossible levels (black 512, white 1)"),
        ({50717: [8]}, "impossible levels (black 512, white 8)"),
        ({50714: [65000]}, "impossible levels (black 65000, white 16383)"),
        ({50717: [8], 50714: [0]}, "impossible white level 8: 100% of its photosites lie above it"),
    ],
)
def test_impossible_levels_are_refused(tmp_path, small_series, edits, fragment):
    path = _edited(small_series.files[0], tmp_path / "levels.dng", edits)
    for read in (read_info, read_frame):
        with pytest.raises(UnreadableFileError) as exc:
            read(path)
        assert_one_line(exc.value, path, fragment)


def test_frame_of_a_few_pixels_is_refused(tmp_path):
    path = tmp_path / "icon.png"
    Image.fromarray(np.zeros((3, 40), np.uint8)).save(path)
    with pytest.raises(UnsupportedFileError) as exc:
        read_info(path)
    assert_one_line(exc.value, path, "is only 3x40 pixels; rawmap needs at least 4x4")


# --------------------------------------------------------------------------- LibRaw's own messages


@needs_samples
@pytest.mark.parametrize("name", ["blackmagic-pocket4k.dng", "canon-d30-a.CRW"])
def test_libraw_prints_nothing_on_stderr(tmp_path, capfd, name):
    # 4 KiB of the compressed image data overwritten: LibRaw prints "<file>: data corrupted at N"
    # with C stdio before it returns its error
    data = bytearray((SAMPLES / "raw" / name).read_bytes())
    mid = len(data) // 2
    data[mid : mid + 4096] = bytes(range(256)) * 16
    path = tmp_path / name
    path.write_bytes(data)
    capfd.readouterr()
    with pytest.raises(UnreadableFileError) as exc:
        read_frame(path)
    assert_one_line(exc.value, path, "its image data is corrupt (LibRaw: data error)")
    out, err = capfd.readouterr()
    assert err == "" and out == ""
    with reader.quiet_decoders(), reader.quiet_decoders():  # reentrant, and stderr works again after it
        pass
    os.write(2, b"still here\n")
    assert capfd.readouterr().err == "still here\n"


def test_text_file_named_as_raw_is_not_called_truncated(tmp_path):
    path = tmp_path / "holiday.NEF"
    path.write_text("hello world this is text\n")  # short: LibRaw fails with an I/O error on it
    with pytest.raises(UnreadableFileError) as exc:
        read_info(path)
    assert_one_line(exc.value, path, "is not a camera RAW file: no RAW signature LibRaw")
    assert "text file" in str(exc.value) and "truncated" not in str(exc.value)


@pytest.mark.parametrize("mosaic", [None, reader.MosaicSpec("RGGB")])
def test_tiff_claiming_a_huge_image_is_refused_before_reading_it(tmp_path, mosaic):
    path = tmp_path / "dark.tif"
    tifffile.imwrite(path, np.zeros((64, 96), np.uint16))
    data = bytearray(path.read_bytes())
    for tag in (256, 257, 278):
        set_tiff_tag(data, tag, [60000])
    path.write_bytes(data)
    for read in (read_info, read_frame):  # read_frame allocated 6.7 GB for it
        with pytest.raises(UnreadableFileError) as exc:
            read(path, mosaic=mosaic)
        assert_one_line(
            exc.value, path, "its header claims a 60000x60000 image (3,600 million pixels), more than rawmap reads"
        )


def _rgb16_tiff(path: Path) -> bytearray:
    rng = np.random.default_rng(7)
    tifffile.imwrite(path, rng.integers(0, 65535, (72, 96, 3), dtype=np.uint16), photometric="rgb")
    return bytearray(path.read_bytes())


def test_tiff_with_an_empty_bits_per_sample_is_refused_in_one_line(tmp_path):
    from fuzzing import tiff_entries

    path = tmp_path / "img.tif"
    data = _rgb16_tiff(path)
    entry = next(e for e in tiff_entries(data) if e.tag == 258)
    struct.pack_into(entry.endian + "I", data, entry.offset + 4, 0)  # tifffile raised IndexError on it
    path.write_bytes(data)
    for read in (read_info, read_frame):
        with pytest.raises(UnreadableFileError) as exc:
            read(path)
        assert_one_line(exc.value, path, "is corrupt or not an image")


def test_image_readers_print_nothing_on_stderr(tmp_path, capfd):
    path = tmp_path / "img.tif"
    data = _rgb16_tiff(path)
    set_tiff_tag(data, 277, [65535])  # Pillow logged "More samples per pixel than can be decoded: 65535"
    path.write_bytes(data)
    capfd.readouterr()
    read_info(path)  # the header alone passes (as for a truncated image, only decoding tells)
    with pytest.raises(UnreadableFileError) as exc:
        read_frame(path)
    assert_one_line(exc.value, path, "is corrupt or not an image")
    assert capfd.readouterr().err == ""


def test_a_stated_temperature_reaches_the_frame_and_the_state(tmp_path):
    """EXIF Temperature of a DNG and CCD-TEMP of a FITS dark become ``Frame.temperature``, the
    accumulator's frame records keep it through a saved state, and ``rawmap info`` shows it."""
    from rawmap.accumulate import Accumulator
    from rawmap.dng import write_dng
    from rawmap.frame import CameraId
    from rawmap.metadata import read_metadata
    from rawmap.report import info_lines

    rng = np.random.default_rng(0)
    cam = CameraId("Rawmap", "Temp", "T1")
    paths = []
    for i, t in enumerate((-12.5, 31.0, None)):
        m = (600 + rng.normal(0, 5, (40, 60))).astype(np.uint16)
        kw = {} if t is None else {"temperature": t}
        paths.append(
            write_dng(
                tmp_path / f"d{i}.dng",
                m,
                cfa=np.array([[0, 1], [1, 2]]),
                black=512,
                white=16383,
                camera=cam,
                exposure=1.0,
                iso=100,
                **kw,
            )
        )
    assert [read_metadata(p).temperature for p in paths] == [-12.5, 31.0, None]
    frames = [read_frame(p) for p in paths]
    assert [f.temperature for f in frames] == [-12.5, 31.0, None]
    assert any("temperature -12.5 °C" in line for line in info_lines(read_info(paths[0])))
    acc = Accumulator.from_frame(frames[0])
    for f in frames:
        acc.update(f)
    acc.save(tmp_path / "s.rawstate")
    back = Accumulator.load(tmp_path / "s.rawstate")
    assert [r.temperature for r in back.frames] == [-12.5, 31.0, None]
