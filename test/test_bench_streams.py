"""The multi-stream benchmark runs the real node with several streams and measures what it claims."""

from __future__ import annotations

import pytest

from bench import bench_streams

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def quick_report() -> dict:
    return bench_streams.run(quick=True)


def test_batched_and_one_by_one_passes_are_timed_per_stream_count(quick_report):
    (engine,) = quick_report["forward_passes"].values()
    rows = engine["rows"]
    assert [row["streams"] for row in rows] == [1, 2]
    for row in rows:
        assert row["batched_pass_ms"]["median"] > 0
        assert row["batched_frames_per_s"] == pytest.approx(
            row["streams"] / row["batched_pass_ms"]["median"] * 1e3, rel=0.01
        )
    assert engine["most_streams_at_8_7_hz"] == max(
        (row["streams"] for row in rows if row["keeps_8_7_hz"]), default=0
    )


def test_the_node_paints_every_participants_stream_through_ros(quick_report):
    (result,) = quick_report["ros"]["results"]
    assert result["streams"] == 1
    assert result["heatmaps_sent"] >= 10, "8.7 Hz for 2 s"
    assert result["frames_painted"] >= result["heatmaps_sent"] // 2
    assert 0 < result["stamp_to_receipt_ms"]["p50"] <= result["stamp_to_receipt_ms"]["max"] < 5_000
    assert float(result["frames_per_forward_pass"]) >= 1.0


def test_most_streams_counts_only_stream_counts_painted_within_one_lepton_period():
    rows = [
        {"streams": 1, "keeps_8_7_hz": True},
        {"streams": 4, "keeps_8_7_hz": True},
        {"streams": 16, "keeps_8_7_hz": False},
    ]
    assert bench_streams.most_streams_at_lepton_rate(rows) == 4
    assert bench_streams.most_streams_at_lepton_rate([{"streams": 1, "keeps_8_7_hz": False}]) == 0
