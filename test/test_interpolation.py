"""The heatmap timeline and output clock behind the synthesis node's smooth video, without ROS."""

from __future__ import annotations

import numpy as np
import pytest

from thermal_synth.engine.interpolation import MAX_BLEND_GAP_S, HeatmapTimeline
from thermal_synth.engine.pacing import OutputClock

PERIOD_NS = 125_000_000
"""1/8 s: close to the Lepton's 115 ms, and exact in binary so blend fractions come out exact."""
PERIOD_S = PERIOD_NS / 1e9
START_S = 100.0


def cold() -> np.ndarray:
    return np.full((12, 16), 20.0, np.float32)


def warm() -> np.ndarray:
    """Differs from `cold` everywhere and by different amounts, so a blend shows in every pixel."""
    return 21.0 + np.arange(12 * 16, dtype=np.float32).reshape(12, 16) / 8


def timeline_of_two() -> HeatmapTimeline:
    """`cold` at stamp 0, then `warm` one period later, each arriving when it was stamped."""
    timeline = HeatmapTimeline()
    timeline.push(0, cold(), START_S)
    timeline.push(PERIOD_NS, warm(), START_S + PERIOD_S)
    return timeline


def test_the_blend_is_exact_at_both_ends_and_halfway():
    timeline = timeline_of_two()
    newest_arrival = START_S + PERIOD_S

    start = timeline.sample(newest_arrival)
    assert (start.stamp_ns, start.fraction, start.interpolated) == (0, 0.0, False)
    np.testing.assert_array_equal(start.heatmap, cold())

    halfway = timeline.sample(newest_arrival + PERIOD_S / 2)
    assert (halfway.stamp_ns, halfway.fraction, halfway.interpolated) == (PERIOD_NS // 2, 0.5, True)
    np.testing.assert_array_equal(halfway.heatmap, (cold() + warm()) / 2)
    assert halfway.heatmap.dtype == np.float32

    end = timeline.sample(newest_arrival + PERIOD_S)
    assert (end.stamp_ns, end.fraction, end.interpolated) == (PERIOD_NS, 1.0, False)
    np.testing.assert_array_equal(end.heatmap, warm())


def test_the_first_frame_plays_at_once_and_then_waits_for_a_partner():
    timeline = HeatmapTimeline()
    assert timeline.sample(START_S) is None
    timeline.push(7, warm(), START_S)
    first = timeline.sample(START_S)
    assert first.stamp_ns == 7
    np.testing.assert_array_equal(first.heatmap, warm())
    assert timeline.sample(START_S + 5.0) is None, "a lone frame must not be played twice"


def test_no_sample_repeats_a_stamp_the_playhead_has_already_played():
    timeline = timeline_of_two()
    newest_arrival = START_S + PERIOD_S
    assert timeline.sample(newest_arrival + 0.05) is not None
    assert timeline.sample(newest_arrival + 0.05) is None, "same instant, same playhead"
    assert timeline.sample(newest_arrival + PERIOD_S).stamp_ns == PERIOD_NS
    for late_s in (0.01, 0.1, 1.0):
        assert timeline.sample(newest_arrival + PERIOD_S + late_s) is None, "the next frame is late"


def test_the_playhead_runs_one_period_behind_and_never_backwards():
    """30 Hz samples of an 8.7 Hz stream whose frames arrive with jitter, some early, some late."""
    rng = np.random.default_rng(4)
    timeline = HeatmapTimeline()
    period_ns = round(1e9 / 8.7)
    pushes = [(k * period_ns, START_S + k * period_ns / 1e9 + rng.uniform(-0.03, 0.03)) for k in range(40)]
    played: list[int] = []
    frame_index = 0
    for tick in range(int(40 * 30 / 8.7)):
        now_s = START_S + tick / 30
        while frame_index < len(pushes) and pushes[frame_index][1] <= now_s:
            stamp_ns, arrival_s = pushes[frame_index]
            timeline.push(stamp_ns, np.full((12, 16), float(frame_index), np.float32), arrival_s)
            frame_index += 1
        frame = timeline.sample(now_s)
        if frame is None:
            continue
        played.append(frame.stamp_ns)
        newest_stamp = pushes[frame_index - 1][0]
        assert newest_stamp - period_ns <= frame.stamp_ns <= newest_stamp
        # A blended heatmap holds exactly the temperature of its point in time (frame k is k degrees).
        np.testing.assert_allclose(frame.heatmap, frame.stamp_ns / period_ns, rtol=1e-5)
    assert np.all(np.diff(played) > 0)
    assert len(played) > 3 * len(pushes), "about 30/8.7 frames per input frame"


def test_a_gap_longer_than_the_limit_is_cut_not_blended():
    timeline = HeatmapTimeline()
    timeline.push(0, cold(), START_S)
    assert timeline.sample(START_S).stamp_ns == 0
    gap_ns = round(1.5 * MAX_BLEND_GAP_S * 1e9)
    resumed_s = START_S + 1.5 * MAX_BLEND_GAP_S
    timeline.push(gap_ns, warm(), resumed_s)
    frame = timeline.sample(resumed_s + 0.01)
    assert (frame.stamp_ns, frame.interpolated) == (gap_ns, False)
    np.testing.assert_array_equal(frame.heatmap, warm())
    assert timeline.sample(resumed_s + 0.5) is None

    timeline.push(gap_ns + PERIOD_NS, cold(), resumed_s + PERIOD_S)
    after = timeline.sample(resumed_s + 1.5 * PERIOD_S)
    assert after.interpolated, "frames after the gap blend again"
    assert gap_ns < after.stamp_ns < gap_ns + PERIOD_NS


def test_a_gap_within_the_limit_is_blended():
    timeline = HeatmapTimeline(max_gap_s=1.0)
    timeline.push(0, cold(), START_S)
    timeline.push(900_000_000, warm(), START_S + 0.9)
    assert timeline.sample(START_S + 1.35).fraction == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("stamp_ns", "shape"),
    [(2 * PERIOD_NS, (24, 32)), (PERIOD_NS // 2, (12, 16))],
    ids=["new shape", "stamp went back"],
)
def test_a_new_shape_or_a_stamp_going_back_restarts_from_the_new_frame(stamp_ns, shape):
    timeline = timeline_of_two()
    timeline.sample(START_S + 2 * PERIOD_S)
    restart = np.full(shape, 30.0, np.float32)
    assert timeline.push(stamp_ns, restart, START_S + 2 * PERIOD_S)
    frame = timeline.sample(START_S + 2 * PERIOD_S + 0.01)
    assert (frame.stamp_ns, frame.interpolated) == (stamp_ns, False)
    np.testing.assert_array_equal(frame.heatmap, restart)


def test_a_resent_frame_changes_nothing():
    timeline = timeline_of_two()
    assert not timeline.push(PERIOD_NS, cold(), START_S + PERIOD_S + 0.05)
    halfway = timeline.sample(START_S + 1.5 * PERIOD_S)
    np.testing.assert_array_equal(halfway.heatmap, (cold() + warm()) / 2)


def test_the_timeline_keeps_its_own_copy_of_each_heatmap():
    timeline = HeatmapTimeline()
    heatmap = cold()
    timeline.push(0, heatmap, START_S)
    heatmap[:] = 99.0
    np.testing.assert_array_equal(timeline.sample(START_S).heatmap, cold())


def test_the_output_clock_ticks_on_its_grid_and_skips_ticks_a_slow_render_overran():
    clock = OutputClock(rate_hz=10.0, start_s=5.0)
    assert clock.wait_s(4.9) == pytest.approx(0.1)
    assert clock.wait_s(5.0) == 0.0
    clock.advance(5.02)
    assert clock.next_tick_s == pytest.approx(5.1)
    clock.advance(5.35)
    assert clock.next_tick_s == pytest.approx(5.4), "5.2 and 5.3 were overrun: skipped, not queued"
    assert clock.wait_s(5.35) == pytest.approx(0.05)
