"""rawmap.series_state: a --state file continued run after run, and the maps it may replace."""

from __future__ import annotations

import numpy as np
import pytest

from rawmap.mapping import map_files
from rawmap.series_state import SeriesState, file_digest


def test_a_missing_state_starts_empty(tmp_path):
    st = SeriesState.open(tmp_path / "new.rawstate")
    assert st.accumulator is None and st.states() is None
    assert not st.counted() and st.outputs == {} and st.keys == {}
    assert not st.wrote(tmp_path / "m.json")


def test_continuation_counts_what_is_stored_and_records_its_map(small_series, tmp_path):
    path, target = tmp_path / "body.rawstate", tmp_path / "m.json"
    first, second = small_series.files[:4], small_series.files[4:7]
    st = SeriesState.open(path)
    run = map_files(first, states=st.states(), counted=st.counted())
    update = st.save(run, targets=[target])
    assert (update.path, update.written, update.frames, update.shape) == (path, True, 4, (120, 160))
    assert update.camera == run.maps[0].camera
    assert not st.wrote(target)  # recorded, but not written yet
    run.maps[0].defect_map.save(target)

    st = SeriesState.open(path)
    assert st.accumulator is not None and st.accumulator.n_frames == 4
    counted = st.counted()
    assert set(counted.keys.values()) == {str(p) for p in first}
    assert counted.paths == {p.resolve() for p in first}
    assert st.wrote(target)  # still the map it wrote
    [(key, acc)] = st.states().items()
    assert key == (acc.camera, acc.source, (120, 160))

    # continued with 3 new photos and the 4 old ones: the old ones are left out, the sums are those of all 7
    run = map_files(first + second, states=st.states(), counted=st.counted())
    assert len(run.maps[0].files) == 3
    assert st.save(run, targets=[target]).frames == 7
    whole = map_files(first + second).maps[0].accumulator
    np.testing.assert_array_equal(SeriesState.open(path).accumulator.s_v, whole.s_v)


def test_a_map_changed_since_is_no_longer_the_states_own(small_series, tmp_path):
    path, target = tmp_path / "body.rawstate", tmp_path / "m.json"
    st = SeriesState.open(path)
    run = map_files(small_series.files[:3], states=st.states(), counted=st.counted())
    st.save(run, targets=[target])
    run.maps[0].defect_map.save(target)
    assert SeriesState.open(path).wrote(target)
    target.write_text(target.read_text() + " ")
    assert file_digest(target) is not None and not SeriesState.open(path).wrote(target)
    assert file_digest(tmp_path / "missing.json") is None


def test_a_run_without_the_states_body_leaves_it_unchanged(small_series, other_series, tmp_path):
    path = tmp_path / "body.rawstate"
    st = SeriesState.open(path)
    st.save(map_files(small_series.files[:3]))
    before = path.read_bytes()
    st = SeriesState.open(path)
    update = st.save(map_files(other_series.files[:3]))
    assert not update.written and update.frames == 3 and update.shape == (120, 160)
    assert path.read_bytes() == before


def test_a_new_state_keeps_one_body_only(small_series, other_series, tmp_path):
    run = map_files(small_series.files[:3] + other_series.files[:3])
    assert len(run.maps) == 2
    st = SeriesState.open(tmp_path / "s.rawstate")
    with pytest.raises(ValueError, match="one body and sensor size; the run made 2 maps"):
        st.save(run)
    assert not (tmp_path / "s.rawstate").exists()
