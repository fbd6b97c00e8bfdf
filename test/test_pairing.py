import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thermal_synth.recording.pairing import NS_PER_S, PairingConfig, PairMatcher

MS = 1_000_000
THERMAL_PERIOD_NS = round(NS_PER_S / 8.7)
RGB_PERIOD_NS = round(NS_PER_S / 30)


def feed(matcher, events):
    """events: (arrival_ns, kind, stamp_ns) in any order; fed in arrival order."""
    pairs = []
    for _arrival, kind, stamp in sorted(events):
        add = matcher.add_thermal if kind == "thermal" else matcher.add_rgb
        pairs += add(stamp, f"{kind}@{stamp}")
    return pairs + matcher.finish()


def test_identical_stamps_pair_every_frame():
    matcher = PairMatcher()
    events = [(t * 10, "thermal", t * THERMAL_PERIOD_NS) for t in range(20)]
    events += [(t * 10 + 1, "rgb", t * THERMAL_PERIOD_NS) for t in range(20)]
    pairs = feed(matcher, events)
    assert [p.stamp_ns for p in pairs] == [t * THERMAL_PERIOD_NS for t in range(20)]
    assert all(p.rgb == f"rgb@{p.stamp_ns}" and p.skew_s == 0 for p in pairs)
    assert matcher.counts.thermal_unmatched == 0


def test_nearest_rgb_wins_over_first_within_slop():
    """A 40 ms-off frame arrives first; the 2 ms-off one arriving later must be chosen."""
    matcher = PairMatcher(PairingConfig(slop_s=0.05))
    assert matcher.add_rgb(960 * MS, "early") == []
    assert matcher.add_thermal(1000 * MS, "t") == []
    assert matcher.add_rgb(1002 * MS, "close") == []
    pairs = matcher.add_rgb(1060 * MS, "after")
    assert [(p.thermal, p.rgb) for p in pairs] == [("t", "close")]
    assert pairs[0].skew_s == pytest.approx(0.002)


def test_thermal_without_rgb_within_slop_is_counted_never_paired():
    matcher = PairMatcher(PairingConfig(slop_s=0.05))
    matcher.add_rgb(0, "rgb0")
    matcher.add_thermal(500 * MS, "lonely")
    pairs = matcher.add_rgb(1000 * MS, "rgb1") + matcher.finish()
    assert pairs == []
    assert matcher.counts.thermal_unmatched == 1
    assert matcher.counts.rgb_unused == 2


def test_an_rgb_frame_is_never_used_twice():
    matcher = PairMatcher(PairingConfig(slop_s=0.1))
    matcher.add_rgb(1000 * MS, "only")
    matcher.add_thermal(990 * MS, "a")
    matcher.add_thermal(1010 * MS, "b")
    pairs = matcher.add_rgb(1200 * MS, "late") + matcher.finish()
    assert [(p.thermal, p.rgb) for p in pairs] == [("a", "only")]
    assert matcher.counts.thermal_unmatched == 1


def test_stalled_rgb_stream_keeps_memory_bounded():
    matcher = PairMatcher(PairingConfig(max_pending_thermal=4))
    for frame in range(50):
        matcher.add_thermal(frame * THERMAL_PERIOD_NS, frame)
        assert matcher.pending <= 4
    assert matcher.counts.thermal_unmatched == 46


def test_rgb_history_is_bounded_without_thermal():
    matcher = PairMatcher(PairingConfig(rgb_history_s=1.0))
    for frame in range(300):
        matcher.add_rgb(frame * RGB_PERIOD_NS, frame)
    assert len(matcher._rgb) <= 31
    assert matcher.counts.rgb_unused >= 269


def test_config_rejects_bad_slop():
    with pytest.raises(ValueError, match="slop_s"):
        PairingConfig(slop_s=0)


@settings(max_examples=150, deadline=None)
@given(
    thermal_offset_ms=st.integers(0, 33),
    rgb_jitter=st.lists(st.integers(-8, 8), min_size=90, max_size=90),
    rgb_drops=st.sets(st.integers(0, 89), max_size=30),
    thermal_latency_ms=st.integers(0, 60),
    rgb_latency_ms=st.integers(0, 60),
)
def test_pairs_are_nearest_within_slop_whatever_the_arrival_order(
    thermal_offset_ms, rgb_jitter, rgb_drops, thermal_latency_ms, rgb_latency_ms
):
    slop_ns = 50 * MS
    thermal = [thermal_offset_ms * MS + k * THERMAL_PERIOD_NS for k in range(26)]
    rgb = [k * RGB_PERIOD_NS + rgb_jitter[k] * MS for k in range(90) if k not in rgb_drops]
    events = [(t + thermal_latency_ms * MS, "thermal", t) for t in thermal]
    events += [(r + rgb_latency_ms * MS, "rgb", r) for r in rgb]
    matcher = PairMatcher(PairingConfig(slop_s=0.05))
    pairs = feed(matcher, events)

    assert matcher.counts.pairs + matcher.counts.thermal_unmatched == len(thermal)
    assert (matcher.counts.thermal_frames, matcher.counts.rgb_frames) == (len(thermal), len(rgb))
    assert len({p.rgb_stamp_ns for p in pairs}) == len(pairs)
    for pair in pairs:
        nearest = min(rgb, key=lambda r, t=pair.stamp_ns: abs(r - t))
        assert abs(pair.rgb_stamp_ns - pair.stamp_ns) == abs(nearest - pair.stamp_ns) <= slop_ns
    paired = {p.stamp_ns for p in pairs}
    for stamp in thermal:
        if stamp not in paired:
            assert all(abs(r - stamp) > slop_ns for r in rgb)
