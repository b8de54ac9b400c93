"""A bounded, seeded fuzz campaign (``tests/fuzzing.py``) and what it first found, as plain tests.

The full campaign (1,000 mutants and more) is ``tests/benchmarks/bench_fuzz.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import fuzzing
import numpy as np
import pytest
import tifffile
from conftest import SHARED_SAMPLES
from typer.testing import CliRunner

from rawmap.cli import app
from rawmap.reader import read_frame

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- the harness itself


def test_set_tiff_tag_edits_what_tifffile_reads(small_series, tmp_path):
    data = bytearray(small_series.files[0].read_bytes())
    assert fuzzing.set_tiff_tag(data, 50717, [8]) == 1
    assert fuzzing.set_tiff_tag(data, 50829, [0, 0, 24260, 28769]) == 1
    path = tmp_path / "edited.dng"
    path.write_bytes(data)
    with tifffile.TiffFile(path) as tf:
        tags = tf.pages[0].tags
        assert tags["WhiteLevel"].value == 8
        assert tuple(tags["ActiveArea"].value) == (0, 0, 24260, 28769)
        assert tags["ImageWidth"].value == 172  # nothing else changed
    with pytest.raises(KeyError):
        fuzzing.set_tiff_tag(data, 999, [1])


def test_mutants_are_seeded_and_variants_read_the_same(small_series, tmp_path):
    data = small_series.files[0].read_bytes()
    a = [fuzzing.mutate(data, np.random.default_rng(4)) for _ in range(1)]
    b = [fuzzing.mutate(data, np.random.default_rng(4)) for _ in range(1)]
    assert a == b and a[0][0] != data
    rng = np.random.default_rng(9)
    kinds = {fuzzing.mutate(data, rng)[1].split(":")[0] for _ in range(200)}
    assert kinds == set(fuzzing.OPERATORS)
    copy = tmp_path / "copy.dng"
    copy.write_bytes(fuzzing.variant(data, 0))
    assert copy.read_bytes() != data
    np.testing.assert_array_equal(read_frame(copy).mosaic, read_frame(small_series.files[0]).mosaic)


def test_outcome_judges_tracebacks_stray_lines_and_hangs():
    clean = fuzzing.Outcome(["info", "x"], 1, "", "Error: x: is truncated (copy it again)\n")
    assert not clean.bad
    libraw = fuzzing.Outcome(
        ["info", "x"], 1, "", "x: data corrupted at 1560433\nError: x: its image data is corrupt\n"
    )
    assert libraw.stray == ["x: data corrupted at 1560433"] and libraw.bad
    trace = fuzzing.Outcome(["repair", "x"], 1, "", "Traceback (most recent call last):\nValueError: white\n")
    assert trace.traceback and trace.bad
    assert fuzzing.Outcome(["map", "x"], None).hang
    raw = fuzzing.Outcome(["info", "x"], 1, "", "Error: x: made by \x1b[31mEvil\n")
    assert raw.long_errors and raw.bad


# --------------------------------------------------------------------------- a bounded campaign


def test_fuzz_subset_has_no_traceback_hang_or_stray_output(tmp_path):
    """20 seeded mutants of simulated DNGs and three real samples, through info, map (first, last) and repair."""
    samples = tmp_path / "samples"
    samples.mkdir()
    for name in ("kodak-dc50.KDC", "canon-d30-a.CRW", "blackmagic-pocket4k.dng"):
        src = SHARED_SAMPLES / "raw" / name
        if src.exists():
            os.symlink(src, samples / name)
    env = dict(os.environ, RAWMAP_LIBRARY=str(tmp_path / "library"))
    with fuzzing.CliWorker(ROOT, timeout=60.0, warm=ROOT / "fixtures" / "example", env=env) as worker:
        bases = fuzzing.make_bases(worker, tmp_path / "work", samples, seed=3)
        report = fuzzing.campaign(worker, bases, 20, seed=13, work=tmp_path / "work")
    assert report.mutants == 20 and report.runs == 80
    assert report.tracebacks == 0, report.text()
    assert report.hangs == 0 and report.crashes == 0, report.text()
    assert report.stray == 0 and report.long_errors == 0, report.text()
    codes = {code for (_what, code) in report.codes}
    assert codes == {0, 1}, report.text()  # some mutants still read, some are refused: the runs really ran


# --------------------------------------------------------------------------- what the campaign found


def test_repair_batch_continues_past_a_file_with_impossible_levels(small_series, tmp_path):
    """A WhiteLevel of 1 stopped the whole batch with a ValueError from the DNG writer."""
    bad = tmp_path / "in" / "bad.dng"
    bad.parent.mkdir()
    data = bytearray(small_series.files[0].read_bytes())
    fuzzing.set_tiff_tag(data, 50717, [1])
    bad.write_bytes(data)
    runner = CliRunner()
    m = tmp_path / "m.json"
    made = runner.invoke(app, ["map", *map(str, small_series.files), "-o", str(m), "-q"], prog_name="rawmap")
    assert made.exit_code == 0, made.output
    out = tmp_path / "out"
    got = runner.invoke(
        app, ["repair", str(bad), str(small_series.files[1]), "--map", str(m), "-o", str(out), "-q"], prog_name="rawmap"
    )
    assert got.exception is None or isinstance(got.exception, SystemExit), got.exception
    assert got.exit_code == 1
    errors = [line for line in got.output.splitlines() if line.startswith("Error: ")]
    assert errors == [
        f"Error: {bad}: has impossible levels (black 512, white 1): the white level must lie above the black "
        "level and at most at 65535; its header is damaged (copy it again from the camera card or a backup)"
    ]
    assert "Repaired 1 of 2 photos" in got.output
    assert sorted(p.name for p in out.iterdir()) == [small_series.files[1].stem + ".dng"]
