"""rawmap.distributed: mapping on Dask workers gives the map and the sums of a local run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from rawmap.accumulate import Accumulator
from rawmap.distributed import (
    FOLDED,
    SeriesDescription,
    _chunks,
    fold_chunk,
    parse_address,
    prepare_chunk,
    require_distributed,
)
from rawmap.errors import MissingExtraError
from rawmap.mapping import collect_inputs, map_files
from rawmap.testing import write_scenario

try:
    import distributed
except ImportError:  # the test extra has it; without it only the missing-extra error is tested
    distributed = None
needs_dask = pytest.mark.skipif(distributed is None, reason="dask[distributed] is not installed")

SUMS = Accumulator._ARRAYS


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> list[Path]:
    """12 frames of a mixed series (brackets, a burst, darks: views across chunk boundaries) and 6 of a smaller size."""
    root = tmp_path_factory.mktemp("fleet")
    write_scenario(root / "a", "mixed", seed=3, shape=(64, 96), n_frames=12)
    write_scenario(root / "b", "brackets", seed=4, shape=(48, 64), n_frames=8)
    files, _ = collect_inputs([root])
    return [p.resolve() for p in files]


@pytest.fixture(scope="module")
def cluster():
    assert distributed is not None
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
        ) as lc,
        distributed.Client(lc) as client,
    ):
        yield client


def _map_json(body) -> dict:
    d = json.loads(body.defect_map.to_json())
    d.pop("created", None)
    return d


def _assert_same_run(a, b) -> None:
    assert [m.slug for m in a.maps] == [m.slug for m in b.maps]
    assert sorted((s.path, s.reason, s.kind) for s in a.skipped) == sorted(
        (s.path, s.reason, s.kind) for s in b.skipped
    )
    for x, y in zip(a.maps, b.maps):
        assert x.files == y.files and x.content == y.content
        ax, ay = x.accumulator, y.accumulator
        for name in SUMS:  # bit for bit, the float sums too
            assert np.array_equal(getattr(ax, name), getattr(ay, name)), name
            assert getattr(ax, name).dtype == getattr(ay, name).dtype, name
        assert (ax.n_frames, ax.n_scenes, ax.sum_x, ax.sum_xx) == (ay.n_frames, ay.n_scenes, ay.sum_x, ay.sum_xx)
        assert [f.to_dict() for f in ax.frames] == [f.to_dict() for f in ay.frames]
        assert [f.scene for f in ax.frames] == [f.scene for f in ay.frames]  # the views of a local run
        assert np.array_equal(ax.fs_index, ay.fs_index) and np.array_equal(ax.fs_time, ay.fs_time)
        assert np.array_equal(ax.ln_code, ay.ln_code) and np.array_equal(ax.ln_count, ay.ln_count)
        assert _map_json(x) == _map_json(y)


def test_parse_address():
    assert parse_address("local:3") == 3
    assert parse_address("tcp://10.0.0.5:8786") is None
    assert parse_address("scheduler:8786") is None
    for bad in ("local:0", "local:x", "local", ""):
        with pytest.raises(ValueError):
            parse_address(bad)


def test_chunks_are_contiguous_and_cover_everything():
    for n, most in [(1, 4), (12, 4), (13, 4), (100, 50), (7, 100)]:
        cuts = _chunks(n, most)
        assert cuts[0][0] == 0 and cuts[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:]))
        assert all(0 < b - a <= most for a, b in cuts)
    assert _chunks(13, 4) == [(0, 3), (3, 6), (6, 10), (10, 13)]


def test_missing_extra_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'rawmap\[dask\]'"):
        require_distributed()


@needs_dask
def test_dask_run_equals_local_run(series, cluster):
    from rawmap.distributed import DaskEngine

    local = map_files(series)
    engine = DaskEngine(cluster, chunk_frames=4)  # the 12-frame series in 3 chunks, the 8-frame one in 2
    seen: list[Path] = []
    run = map_files(series, engine=engine, progress=lambda done, total, p: seen.append(p))
    assert engine.chunks_done == 5
    assert len(run.maps) == 2
    _assert_same_run(run, local)
    assert sorted(seen) == sorted(series)  # progress on the client, every file once


@needs_dask
def test_dask_run_continues_stored_statistics(series, cluster, tmp_path):
    """With a stored state (--state, --save): the workers measure against it, the result is the local one."""
    from rawmap.distributed import DaskEngine

    first, rest = series[:6], series[6:12]
    base = map_files(first).maps[0].accumulator
    key = (base.camera, base.source, base.shape)
    local = map_files(rest, states={key: Accumulator.load(_saved(base, tmp_path / "l.rawstate"))})
    run = map_files(
        rest,
        states={key: Accumulator.load(_saved(base, tmp_path / "d.rawstate"))},
        engine=DaskEngine(cluster, chunk_frames=4),
    )
    _assert_same_run(run, local)


def _saved(acc: Accumulator, path: Path) -> Path:
    acc.save(path)
    return path


def test_a_chunk_run_twice_is_counted_once(series):
    """A retried task (a lost worker) returns the same result, and the next chunk starts from one of them.

    The client takes each chunk's sums (it does not add them): a result
    taken twice leaves the state as taken once.
    """
    paths = series[:8]
    part1 = prepare_chunk(paths[:4], None, None, None)
    first = fold_chunk(part1, None, 8)
    again = fold_chunk(part1, None, 8)  # a retry, from the same inputs
    assert first.description is not None and again.description is not None
    assert first.sums is not None and again.sums is not None
    for name in FOLDED:
        assert np.array_equal(first.sums[name], again.sums[name]), name
    part2 = prepare_chunk(paths[4:], first.description, None, None)
    second = fold_chunk(part2, again, 8)
    serial = fold_chunk(prepare_chunk(paths, first.description, None, None), None, 8)
    assert second.sums is not None and serial.sums is not None
    for name in FOLDED:  # the float sums too: the frames reach each photosite in the same order
        assert np.array_equal(second.sums[name], serial.sums[name]), name
        assert second.sums[name].dtype == serial.sums[name].dtype
    assert [f.path for f in first.frames + second.frames] == [f.path for f in serial.frames]  # type: ignore[union-attr]
    # the inputs are left as they were (a task may run again from them)
    assert all(f.plane is not None for f in part1.frames)  # type: ignore[union-attr]
    # and the description is the one a local run makes from the series' first frame
    local = map_files(paths).maps[0].accumulator
    assert SeriesDescription.of_accumulator(local).same_as(first.description)


@needs_dask
def test_cli_map_dask_local(series, tmp_path):
    from typer.testing import CliRunner

    from rawmap.cli import app

    folder = str(Path(os.path.commonpath(series)) / "a")  # one body: one map file
    r = CliRunner().invoke(app, ["map", folder, "-o", str(tmp_path / "local.json"), "-q"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(
        app, ["map", folder, "-o", str(tmp_path / "dask.json"), "-q", "--dask", "local:2", "--dask-chunk", "4"]
    )
    assert r.exit_code == 0, r.output
    a = json.loads((tmp_path / "local.json").read_text())
    b = json.loads((tmp_path / "dask.json").read_text())
    a.pop("created"), b.pop("created")
    assert a == b and a["defects"]
    r = CliRunner().invoke(app, ["map", folder, "-o", str(tmp_path / "x.json"), "--dask", "local:zero"])
    assert r.exit_code == 2 and "local:N" in r.output


@needs_dask
def test_checkpoints_fall_between_chunks(series, cluster):
    """--state / --save checkpoints: the statistics hold exactly the files listed (the sums of a local run over them)."""
    from rawmap.distributed import DaskEngine

    body = [p for p in series if "/a/" in p.as_posix()]
    seen: list[tuple[list[Path], int, np.ndarray]] = []

    def checkpoint(cp) -> None:
        seen.append((list(cp.files), cp.accumulator.n_frames, cp.accumulator.s_v.copy()))

    map_files(body, engine=DaskEngine(cluster, chunk_frames=4), checkpoint=checkpoint, checkpoint_every=4)
    assert len(seen) == 2  # after the first and the second of three chunks
    for files, n_frames, s_v in seen:
        assert len(files) == n_frames and n_frames in (4, 8)
        assert np.array_equal(s_v, map_files(files).maps[0].accumulator.s_v)


def test_cli_without_the_extra_says_how_to_install(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from rawmap.cli import app

    monkeypatch.setitem(sys.modules, "distributed", None)
    r = CliRunner().invoke(app, ["map", str(tmp_path), "-o", str(tmp_path / "m.json"), "--dask", "local:2"])
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [
        "Error: mapping on Dask needs dask.distributed, which is not installed: pip install 'rawmap[dask]'"
    ]


@needs_dask
def test_a_lost_worker_is_redone_and_counted_once(series, cluster):
    """A worker restarted in the middle of a run: Dask recomputes what it held, the map is the local one."""
    from rawmap.distributed import DaskEngine

    local = map_files(series)
    restarted: list[str] = []

    def progress(done: int, total: int, path: Path) -> None:
        if done == 6 and not restarted:  # a chunk taken, the others on the workers or still to run
            restarted.append(next(iter(cluster.scheduler_info()["workers"])))
            cluster.restart_workers(restarted, timeout=60)

    run = map_files(series, engine=DaskEngine(cluster, chunk_frames=3, ahead=8), progress=progress)
    assert restarted
    _assert_same_run(run, local)
