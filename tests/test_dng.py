"""Round trips of rawmap.dng.write_dng through LibRaw (rawpy) and dcraw."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import subprocess

import numpy as np
import pytest
import rawpy
from peers import require_peer, run_peer

from rawmap._ljpeg import encode_lossless_jpeg
from rawmap.dng import write_dng
from rawmap.fileio import OutputExistsError
from rawmap.frame import CameraId

CAM = CameraId("Rawmap", "Test Body", "SN-0042")
RGGB = np.array([[0, 1], [1, 2]])


def _read(path):
    with rawpy.imread(str(path)) as r:
        return {
            "visible": r.raw_image_visible.copy(),
            "full": r.raw_image.copy(),
            "pattern": r.raw_pattern.copy(),
            "black": list(r.black_level_per_channel),
            "white": int(r.white_level),
            "iso": float(r.other.iso_speed),
            "shutter": float(r.other.shutter_speed),
            "timestamp": r.other.timestamp,
            "margins": (int(r.sizes.top_margin), int(r.sizes.left_margin)),
            "flip": int(r.sizes.flip),
        }


def _expected_black(black_pos: np.ndarray, pattern: np.ndarray) -> list[int]:
    """Per LibRaw colour index, the black written at the pattern position carrying it."""
    out = [None] * 4
    for y in range(2):
        for x in range(2):
            out[int(pattern[y, x])] = int(black_pos[y, x])
    return out


@pytest.mark.parametrize("cfa", [[[0, 1], [1, 2]], [[1, 0], [2, 1]], [[2, 1], [1, 0]], [[1, 2], [0, 1]]])
def test_round_trip_no_border(tmp_path, cfa):
    rng = np.random.default_rng(3)
    m = rng.integers(0, 16384, size=(40, 60), dtype=np.uint16)
    t = dt.datetime(2025, 3, 14, 21, 5, 30)
    p = write_dng(
        tmp_path / "a.dng",
        m,
        cfa=np.array(cfa),
        black=512,
        white=16383,
        camera=CAM,
        exposure=1 / 4000,
        iso=400,
        time=t,
    )
    r = _read(p)
    np.testing.assert_array_equal(r["visible"], m)
    assert r["margins"] == (0, 0)
    # LibRaw numbers the second green 3; otherwise the pattern is the one written
    np.testing.assert_array_equal(np.where(r["pattern"] == 3, 1, r["pattern"]), np.array(cfa))
    assert r["black"] == [512, 512, 512, 512]
    assert r["white"] == 16383
    assert r["iso"] == 400
    assert r["shutter"] == pytest.approx(1 / 4000, rel=1e-6)
    assert r["timestamp"] == t


def test_round_trip_with_active_area_border(tmp_path):
    rng = np.random.default_rng(4)
    m = rng.integers(600, 15000, size=(50, 70), dtype=np.uint16)
    full = rng.integers(500, 530, size=(50 + 8 + 2, 70 + 12 + 4), dtype=np.uint16)
    p = write_dng(
        tmp_path / "b.dng",
        m,
        cfa=RGGB,
        black=512,
        white=15000,
        camera=CAM,
        exposure=30.0,
        iso=3200,
        full_frame=full,
        margins=(8, 12),
        orientation=6,
    )
    r = _read(p)
    np.testing.assert_array_equal(r["visible"], m)
    assert r["margins"] == (8, 12)
    expected_full = full.copy()
    expected_full[8:58, 12:82] = m
    np.testing.assert_array_equal(r["full"], expected_full)
    assert r["shutter"] == pytest.approx(30.0)
    assert r["iso"] == 3200
    assert r["white"] == 15000
    assert r["flip"] == 6


def test_per_channel_black_and_second_green(tmp_path):
    m = np.full((24, 30), 2000, dtype=np.uint16)
    cfa = np.array([[0, 1], [3, 2]])
    black = np.array([510, 511, 512, 513])
    p = write_dng(tmp_path / "c.dng", m, cfa=cfa, black=black, white=16383, camera=CAM)
    r = _read(p)
    np.testing.assert_array_equal(r["pattern"], cfa)
    assert r["black"] == [510, 511, 512, 513]


@pytest.mark.parametrize("cfa", [[[1, 0], [2, 1]], [[2, 1], [1, 0]]])
def test_per_position_black_other_patterns(tmp_path, cfa):
    cfa = np.array(cfa)
    black = np.array([500, 510, 520, 530])  # index 3 unused: both greens get 510
    m = np.full((24, 26), 3000, dtype=np.uint16)
    r = _read(write_dng(tmp_path / "d.dng", m, cfa=cfa, black=black, white=16000, camera=CAM))
    assert r["black"] == _expected_black(black[cfa], r["pattern"])


def test_odd_size_frame(tmp_path):
    rng = np.random.default_rng(5)
    m = rng.integers(0, 4096, size=(31, 47), dtype=np.uint16)
    r = _read(write_dng(tmp_path / "odd.dng", m, cfa=RGGB, black=64, white=4095, camera=CAM))
    np.testing.assert_array_equal(r["visible"], m)
    full = np.full((31 + 4, 47 + 6), 60, dtype=np.uint16)
    r = _read(
        write_dng(tmp_path / "odd2.dng", m, cfa=RGGB, black=64, white=4095, camera=CAM, full_frame=full, margins=(2, 4))
    )
    np.testing.assert_array_equal(r["visible"], m)
    assert r["margins"] == (2, 4)


def test_serial_and_tags(tmp_path):
    import tifffile

    m = np.zeros((24, 24), dtype=np.uint16)
    opcodes = b"\x00\x00\x00\x00"  # an empty opcode list: count 0
    p = write_dng(
        tmp_path / "s.dng",
        m,
        cfa=RGGB,
        black=0,
        white=1023,
        camera=CAM,
        as_shot_neutral=[0.5, 1.0, 0.7],
        opcodes=opcodes,
    )
    with tifffile.TiffFile(p) as tf:
        tags = tf.pages[0].tags
        assert tags[271].value == "Rawmap"
        assert tags[272].value == "Test Body"
        assert tags[50708].value == "Rawmap Test Body"
        assert tags[50735].value == "SN-0042"
        assert tags[34665].value["BodySerialNumber"] == "SN-0042"
        assert bytes(tags[51008].value) == opcodes
        assert tags[262].value == 32803
    with rawpy.imread(str(p)) as r:
        wb = list(r.camera_whitebalance)[:3]
    assert wb == pytest.approx([2.0, 1.0, 1 / 0.7], rel=1e-4)


def test_no_serial_tag_when_empty(tmp_path):
    import tifffile

    p = write_dng(
        tmp_path / "n.dng",
        np.zeros((24, 24), np.uint16),
        cfa=RGGB,
        black=0,
        white=255,
        camera=CameraId("Make", "Model"),
    )
    with tifffile.TiffFile(p) as tf:
        assert 50735 not in tf.pages[0].tags


def test_temperature_in_exif(tmp_path):
    import tifffile

    m = np.zeros((24, 24), np.uint16)
    p = write_dng(tmp_path / "t.dng", m, cfa=RGGB, black=0, white=255, camera=CAM, temperature=-5.5)
    with tifffile.TiffFile(p) as tf:
        assert tf.pages[0].tags[34665].value["Temperature"] == (-11, 2)
    q = write_dng(tmp_path / "u.dng", m, cfa=RGGB, black=0, white=255, camera=CAM)
    with tifffile.TiffFile(q) as tf:
        assert "Temperature" not in tf.pages[0].tags[34665].value
    with pytest.raises(ValueError, match="temperature"):
        write_dng(tmp_path / "v.dng", m, cfa=RGGB, black=0, white=255, camera=CAM, temperature=float("nan"))
    assert not (tmp_path / "v.dng").exists()


def test_refuses_to_overwrite(tmp_path):
    m = np.zeros((24, 24), np.uint16)
    p = write_dng(tmp_path / "o.dng", m, cfa=RGGB, black=0, white=255, camera=CAM)
    before = p.read_bytes()
    with pytest.raises(OutputExistsError):
        write_dng(p, m + 1, cfa=RGGB, black=0, white=255, camera=CAM)
    assert p.read_bytes() == before
    write_dng(p, m + 1, cfa=RGGB, black=0, white=255, camera=CAM, overwrite=True)
    assert _read(p)["visible"][0, 0] == 1
    assert [x.name for x in tmp_path.iterdir()] == ["o.dng"]  # no temporary left behind


def test_invalid_input(tmp_path):
    m = np.zeros((24, 24), np.uint16)
    kw = dict(cfa=RGGB, black=0, white=255, camera=CAM)
    with pytest.raises(TypeError, match="mosaic"):
        write_dng(tmp_path / "x.dng", m.astype(np.float32), **kw)
    with pytest.raises(ValueError, match="cfa"):
        write_dng(tmp_path / "x.dng", m, **{**kw, "cfa": np.array([[0, 1], [1, 1]])})
    with pytest.raises(ValueError, match="black"):
        write_dng(tmp_path / "x.dng", m, **{**kw, "black": [1, 2, 3]})
    with pytest.raises(ValueError, match="margins"):
        write_dng(tmp_path / "x.dng", m, margins=(2, 2), **kw)
    with pytest.raises(ValueError, match="even"):
        write_dng(tmp_path / "x.dng", m, full_frame=np.zeros((28, 28), np.uint16), margins=(1, 2), **kw)
    with pytest.raises(ValueError, match="does not fit"):
        write_dng(tmp_path / "x.dng", m, full_frame=np.zeros((25, 25), np.uint16), margins=(2, 2), **kw)
    with pytest.raises(ValueError, match="22x22"):
        write_dng(tmp_path / "x.dng", np.zeros((21, 40), np.uint16), **kw)
    with pytest.raises(ValueError, match="white"):
        write_dng(tmp_path / "x.dng", m, **{**kw, "black": 300})
    assert not (tmp_path / "x.dng").exists()


@pytest.mark.peers
@pytest.mark.skipif(shutil.which("dcraw") is None, reason="dcraw not installed")
def test_dcraw_identifies(tmp_path):
    m = np.full((22, 30), 1000, dtype=np.uint16)
    p = write_dng(
        tmp_path / "dc.dng",
        m,
        cfa=RGGB,
        black=512,
        white=16383,
        camera=CAM,
        exposure=1 / 250,
        iso=200,
        full_frame=np.full((26, 36), 510, np.uint16),
        margins=(2, 4),
    )
    out = subprocess.run(["dcraw", "-i", "-v", str(p)], capture_output=True, text=True, check=True).stdout
    assert "Camera: Rawmap Test Body" in out
    assert "ISO speed: 200" in out
    assert "Image size:    30 x 22" in out
    assert "Filter pattern: RG/GB" in out


def _compressed_cases():
    """(name, mosaic) pairs that exercise the lossless JPEG coder's corners."""
    rng = np.random.default_rng(7)
    smooth = (np.add.outer(np.arange(40), np.arange(62)) * 37 % 4000 + 200).astype(np.uint16)
    extremes = rng.integers(0, 65536, size=(30, 40), dtype=np.uint16)
    extremes[0, :6] = [0, 65535, 0, 65535, 32768, 0]  # differences of -32768 and 32767 (category 16)
    extremes[1:, 0] = 65535 * (np.arange(29) % 2)  # first column predicted from above
    return [
        ("noise-14bit", rng.integers(0, 16384, size=(40, 60), dtype=np.uint16)),
        ("odd-width-12bit", rng.integers(0, 4096, size=(31, 47), dtype=np.uint16)),
        ("16bit-extremes", extremes),
        ("constant-zero", np.zeros((24, 24), np.uint16)),
        ("two-bit", rng.integers(0, 4, size=(25, 52), dtype=np.uint16)),
        ("smooth", smooth),
    ]


@pytest.mark.parametrize(("name", "m"), _compressed_cases(), ids=[n for n, _ in _compressed_cases()])
def test_lossless_jpeg_round_trip_in_libraw(tmp_path, name, m):
    p = write_dng(tmp_path / f"{name}.dng", m, cfa=RGGB, black=0, white=65535, camera=CAM, compress=True)
    r = _read(p)
    np.testing.assert_array_equal(r["visible"], m)
    import tifffile

    with tifffile.TiffFile(p) as tf:
        assert tf.pages[0].tags[259].value == 7
        jpeg = p.read_bytes()[tf.pages[0].tags[273].value[0] :][:4]
    assert jpeg == b"\xff\xd8\xff\xc3"  # SOI, then SOF3: lossless


def test_lossless_jpeg_with_border_is_smaller_and_identical(tmp_path):
    rng = np.random.default_rng(8)
    yy, xx = np.mgrid[0:200, 0:300]
    m = (2000 + 300 * np.sin(yy / 40.0) * np.cos(xx / 50.0) + rng.normal(0, 2, (200, 300))).astype(np.uint16)
    full = rng.integers(500, 530, size=(204, 310), dtype=np.uint16)
    kw = dict(cfa=RGGB, black=512, white=4095, camera=CAM, full_frame=full, margins=(2, 6), iso=800)
    plain = write_dng(tmp_path / "plain.dng", m, **kw)
    packed = write_dng(tmp_path / "packed.dng", m, compress=True, **kw)
    a, b = _read(plain), _read(packed)
    np.testing.assert_array_equal(b["full"], a["full"])
    np.testing.assert_array_equal(b["visible"], m)
    assert b["margins"] == (2, 6) and b["iso"] == 800
    assert packed.stat().st_size < 0.45 * plain.stat().st_size  # ~6 bits a photosite instead of 16


def test_lossless_jpeg_encoder_invalid_input():
    with pytest.raises(TypeError, match="uint16"):
        encode_lossless_jpeg(np.zeros((4, 4), np.int32))
    with pytest.raises(ValueError, match="precision"):
        encode_lossless_jpeg(np.full((4, 4), 300, np.uint16), precision=8)
    with pytest.raises(ValueError, match="65535"):
        encode_lossless_jpeg(np.zeros((1, 2 * 65536), np.uint16))  # 65536 samples per component


@pytest.mark.peers
def test_lossless_jpeg_decoded_by_dcraw(tmp_path):
    import tifffile

    exe = require_peer("dcraw")
    for name, m in _compressed_cases():
        p = write_dng(tmp_path / f"{name}.dng", m, cfa=RGGB, black=0, white=65535, camera=CAM, compress=True)
        out = run_peer([exe, "-D", "-4", "-T", "-c", p], stdout_binary=True)
        assert not out.stderr, out.stderr
        np.testing.assert_array_equal(tifffile.imread(io.BytesIO(out.stdout)), m, err_msg=name)


@pytest.mark.peers
def test_exiftool_validates_compressed_dng(tmp_path):
    exe = require_peer("exiftool")
    m = _compressed_cases()[0][1]
    p = write_dng(tmp_path / "v.dng", m, cfa=RGGB, black=0, white=16383, camera=CAM, compress=True, iso=100)
    out = run_peer([exe, "-validate", "-warning", "-a", "-Compression", p]).stdout
    assert "Validate                        : OK" in out
    assert "JPEG" in out  # Compression: JPEG (lossless for a CFA image)


def test_shot_data_lens_owner_and_preview(tmp_path):
    """What repair carries over from the original, as LibRaw reads it back."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((12, 16, 3), (200, 120, 40), np.uint8)).save(buf, "JPEG")
    jpeg = buf.getvalue()
    m = np.full((24, 30), 900, np.uint16)
    kw = dict(cfa=RGGB, black=0, white=4095, camera=CAM, compress=True)
    p = write_dng(
        tmp_path / "shot.dng",
        m,
        aperture=5.6,
        focal_length=31.0,
        lens="16-35mm f/2.8",
        lens_spec=(16, 35, 2.8, 0),
        owner="Ana Lopez",
        preview=jpeg,
        **kw,
    )
    with rawpy.imread(str(p)) as r:
        assert r.other.aperture == pytest.approx(5.6, rel=1e-6)
        assert r.other.focal_length == pytest.approx(31.0)
        assert r.other.artist == "Ana Lopez"
        assert r.lens.model == "16-35mm f/2.8"
        assert (r.lens.min_focal, r.lens.max_focal) == (16.0, 35.0)
        thumb = r.extract_thumb()
        assert thumb.format == rawpy.ThumbFormat.JPEG
        assert bytes(thumb.data).endswith(jpeg[2:])  # stored as is; LibRaw puts an EXIF segment after SOI
    import tifffile

    with tifffile.TiffFile(p) as tf:
        exif = tf.pages[0].tags[34665].value
        assert exif["CameraOwnerName"] == "Ana Lopez"
        assert tuple(exif["LensSpecification"]) == (16, 1, 35, 1, 14, 5, 0, 0)  # 0/0: unknown
        assert tf.pages[0].tags[305].value.startswith("rawmap ")  # Software
    rgb = (np.arange(16 * 20 * 3) % 251).astype(np.uint8).reshape(16, 20, 3)  # LibRaw skips tiny previews (5x7)
    q = write_dng(tmp_path / "bitmap.dng", m, preview=rgb, **kw)
    with rawpy.imread(str(q)) as r:
        thumb = r.extract_thumb()
        assert thumb.format == rawpy.ThumbFormat.BITMAP
        np.testing.assert_array_equal(thumb.data, rgb)
        assert r.other.aperture == 0 and r.other.artist == "" and r.lens.model == ""


def test_shot_data_invalid_input(tmp_path):
    m = np.zeros((24, 24), np.uint16)
    kw = dict(cfa=RGGB, black=0, white=255, camera=CAM)
    with pytest.raises(ValueError, match="aperture"):
        write_dng(tmp_path / "x.dng", m, aperture=-2.8, **kw)
    with pytest.raises(ValueError, match="focal_length"):
        write_dng(tmp_path / "x.dng", m, focal_length=float("inf"), **kw)
    with pytest.raises(ValueError, match="lens_spec"):
        write_dng(tmp_path / "x.dng", m, lens_spec=(0, 35, 2.8, 4), **kw)
    with pytest.raises(ValueError, match="JPEG"):
        write_dng(tmp_path / "x.dng", m, preview=b"not a jpeg", **kw)
    with pytest.raises(TypeError, match="preview"):
        write_dng(tmp_path / "x.dng", m, preview=np.zeros((4, 4), np.uint8), **kw)
    assert not (tmp_path / "x.dng").exists()


def test_colour_tags_of_a_source_dng(tmp_path):
    import tifffile

    cm1 = [0.9495, -0.455, 0.0283, -0.357, 1.3227, 0.195, -0.0463, 0.1549, 0.735]
    cm2 = [0.688, -0.2475, -0.0487, -0.3926, 1.2011, 0.1579, -0.0892, 0.2006, 0.5815]
    tags = {50721: cm1, 50722: cm2, 50778: [17], 50779: [21], 50730: [2.65412], 50727: [1, 1, 1]}
    m = np.full((24, 24), 900, np.uint16)
    p = write_dng(tmp_path / "c.dng", m, cfa=RGGB, black=0, white=4095, camera=CAM, colour_tags=tags)
    with tifffile.TiffFile(p) as tf:
        t = tf.pages[0].tags
        got = np.array(t[50721].value, dtype=np.float64).reshape(-1, 2)
        np.testing.assert_allclose(got[:, 0] / got[:, 1], cm1, atol=1e-5)
        assert t[50778].value == 17 and t[50779].value == 21  # illuminant A, then D65
        be = t[50730].value
        assert be[0] / be[1] == pytest.approx(2.65412, abs=1e-5)
    with pytest.raises(ValueError, match="ColorMatrix2"):
        write_dng(tmp_path / "x.dng", m, cfa=RGGB, black=0, white=4095, camera=CAM, colour_tags={50722: [1, 2]})
    with pytest.raises(ValueError, match="colour tags"):
        write_dng(tmp_path / "x.dng", m, cfa=RGGB, black=0, white=4095, camera=CAM, colour_tags={271: [1]})


def test_linearization_table(tmp_path):
    """Stored values through a LinearizationTable: LibRaw and dcraw report the linear ones."""
    import tifffile

    table = (np.arange(1024, dtype=np.int64) ** 2 // 16).astype(np.int64)  # 0 .. 65408, non-linear
    rng = np.random.default_rng(9)
    stored = rng.integers(0, 1024, size=(30, 40), dtype=np.uint16)
    full = rng.integers(0, 40, size=(34, 44), dtype=np.uint16)
    kw = dict(cfa=RGGB, black=0, white=65535, camera=CAM, full_frame=full, margins=(2, 2), linearization=table)
    p = write_dng(tmp_path / "lin.dng", stored, compress=True, **kw)
    r = _read(p)
    np.testing.assert_array_equal(r["visible"], table[stored])
    expected_full = full.copy()
    expected_full[2:32, 2:42] = stored
    np.testing.assert_array_equal(r["full"], table[expected_full])
    with tifffile.TiffFile(p) as tf:
        assert tf.pages[0].tags[50712].value == tuple(int(v) for v in table)
    with pytest.raises(ValueError, match="below 1024"):
        write_dng(tmp_path / "x.dng", stored + 1024, **kw)
    with pytest.raises(ValueError, match="linearization"):
        write_dng(tmp_path / "x.dng", stored, **{**kw, "linearization": np.array([0.5, 1.0])})


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_rgb_tiff_round_trips_pixels_and_tags(dtype):
    import tifffile

    from rawmap.dng import rgb_tiff_bytes

    rgb = np.random.default_rng(5).integers(0, np.iinfo(dtype).max, (40, 56, 3)).astype(dtype)
    cam = CameraId("Make Co", "Model 1", "S123")
    when = dt.datetime(2024, 5, 6, 7, 8, 9)
    data = rgb_tiff_bytes(rgb, camera=cam, exposure=0.004, iso=800, time=when, aperture=5.6, icc_profile=b"icc!")
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages[0]
        np.testing.assert_array_equal(page.asarray(), rgb)
        tags = {t.name: t.value for t in page.tags.values()}
    assert (tags["Make"], tags["Model"], tags["DateTime"]) == ("Make Co", "Model 1", "2024:05:06 07:08:09")
    assert tags["InterColorProfile"] == b"icc!"
    exif = tags["ExifTag"]
    assert exif["ExposureTime"] == (1, 250) and exif["ISOSpeedRatings"] == 800 and exif["FNumber"] == (28, 5)
    assert exif["BodySerialNumber"] == "S123" and "FocalLength" not in exif  # unknown: left out


def test_rgb_tiff_refuses_what_is_not_rgb():
    from rawmap.dng import rgb_tiff_bytes

    for bad in (np.zeros((4, 4), np.uint16), np.zeros((4, 4, 4), np.uint16), np.zeros((4, 4, 3), np.float32)):
        with pytest.raises(ValueError, match=r"\(H, W, 3\) array of uint8 or uint16"):
            rgb_tiff_bytes(bad, camera=CameraId("a", "b"))
