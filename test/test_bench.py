"""The benchmark scripts still run and report sane numbers (speed itself is reported, not asserted)."""

from __future__ import annotations

import json

import pytest
import torch
from model_fixtures import TINY_CONFIG

import bench.__main__ as bench_main
from bench import bench_driver, bench_e2e, bench_recorder, bench_sim, bench_synth, bench_training, bench_vospi
from bench.__main__ import backends_table, synth_table, table
from thermal_synth.bags import STORAGES
from thermal_synth.training.settings import load_settings


def test_vospi_benchmark_assembles_every_frame_it_times():
    report = bench_vospi.run(frames=2, repeats=2)
    assert [r["check_crc"] for r in report["results"]] == [True, False]
    assert all(r["packets_per_s"]["median"] > 0 for r in report["results"])


def test_sim_benchmark_reports_render_and_write_rates():
    report = bench_sim.run(pairs=12, repeats=1)
    assert report["render_pairs_per_s"]["median"] > 0
    assert report["render_and_write_pairs_per_s"]["median"] > 0
    assert report["shard_bytes_per_pair"] > 120 * 160 * 2


def test_driver_per_frame_cost_is_measured_on_a_rig_frame():
    cost = bench_driver.per_frame_cost_us(repeats=2)
    assert cost["n"] == 2
    assert 0 < cost["median"] < 100_000


@pytest.fixture(scope="module")
def quick_e2e_report() -> dict:
    return bench_e2e.run(quick=True)


@pytest.fixture(scope="module")
def quick_training_report() -> dict:
    return bench_training.run(TINY_CONFIG, quick=True)


def test_e2e_benchmark_times_real_nodes_from_heatmap_stamp_to_painted_frame(quick_e2e_report):
    result = quick_e2e_report["processes"]["output_rate_hz_0"]
    assert result["frames"] > 0
    assert 0 < result["frames_with_a_heatmap_stamp"] <= result["frames"]
    assert result["synth_fps"] > 0
    latency = result["stamp_to_receipt_ms"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]


def test_recorder_benchmark_writes_rig_pairs_in_every_storage():
    report = bench_recorder.run(pairs=10, repeats=2)
    assert report["bytes_per_pair"] > 120 * 160 * 2 + 240 * 320 * 3
    assert set(report["storages"]) == set(STORAGES)
    for storage in report["storages"].values():
        assert storage["pairs_per_s"]["n"] == 2
        assert storage["pairs_per_s"]["median"] > 0


def test_training_benchmark_times_both_phases_with_the_fast_recipe(quick_training_report):
    report = quick_training_report
    assert report["batch_size"] == bench_training.BATCH_SIZE
    assert report["r1_interval"] == load_settings("fast").r1_interval
    assert report["training_pairs"] > 0
    for phase in ("gan", "inversion"):
        assert report[phase]["it_per_s"]["median"] > 0


def test_readme_table_has_a_row_per_measurement(quick_e2e_report, quick_training_report):
    measured = quick_e2e_report["processes"]["output_rate_hz_0"]
    by_rate = {f"output_rate_hz_{rate:g}": measured for rate in bench_e2e.OUTPUT_RATES_HZ}
    report = {
        "vospi": bench_vospi.run(frames=2, repeats=1),
        "driver": {
            "per_frame_cost_us": bench_driver.per_frame_cost_us(repeats=1),
            "ros_sim_8_7_hz": {
                "achieved_rate_hz": 8.7,
                "interarrival_ms": {"p50": 115.0, "p99": 116.0},
                "stamp_to_receipt_ms": {"p50": 1.0, "p99": 2.0},
            },
        },
        "sim": bench_sim.run(pairs=12, repeats=1),
        "e2e": {"processes": by_rate, "single_process": by_rate},
        "recorder": bench_recorder.run(pairs=4, repeats=1),
        "training": quick_training_report,
    }
    rows = table(report).splitlines()
    assert len(rows) == 2 + 9 + 2 * 3 + len(STORAGES) + 2
    assert all(row.count("|") == 3 for row in rows)


@pytest.fixture(scope="module")
def quick_synth_report() -> dict:
    return bench_synth.run(("fast",), quick=True, batches=(2,), backend_configs=("fast",))


def test_synth_benchmark_reports_speed_size_and_backends_for_a_config(quick_synth_report):
    report = quick_synth_report
    assert report["weights"] == bench_synth.WEIGHTS_NOTE
    assert report["image_size"] == [96, 128]
    fast = report["configs"]["fast"]
    assert all(count > 0 for count in fast["params"].values())
    assert 0 < fast["gflop"]["projection"] < fast["gflop"]["per_frame"] < fast["gflop"]["full_forward"]
    cpu = fast["per_device"]["cpu"]
    assert cpu["single_stream"]["fps_median"] > 0
    assert 0 < cpu["single_stream"]["latency_ms"]["p50"] <= cpu["single_stream"]["latency_ms"]["p99"]
    assert [b["batch"] for b in cpu["batched"]] == [2]
    assert cpu["batched"][0]["images_per_s"]["median"] > 0
    assert isinstance(cpu["meets_target"], bool)
    if torch.get_num_threads() > 1:
        assert cpu["single_stream_one_thread"]["fps_median"] > 0
    variants = report["cpu_backends"]["configs"]["fast"]["variants"]
    assert variants["eager"]["speedup_vs_eager"] == 1.0
    for name, variant in variants.items():
        # A variant either ran (and paints what eager paints) or says why it could not.
        if "error" in variant:
            assert variant["error"], name
        else:
            assert variant["fps_median"] > 0, name
            assert variant["max_abs_diff_vs_eager"] < 1e-3, name


def test_synth_flop_count_matches_a_hand_count():
    conv = torch.nn.Conv2d(4, 8, 3, padding=1)
    linear = torch.nn.Linear(5, 6)
    model = torch.nn.Sequential(conv, torch.nn.Flatten(), torch.nn.LazyLinear(6))
    macs = bench_synth.count_macs(model, lambda: model(torch.zeros(1, 4, 2, 3)))
    assert macs == 8 * 2 * 3 * 4 * 9 + 6 * 8 * 2 * 3
    assert bench_synth.count_macs(linear, lambda: linear(torch.zeros(2, 5))) == 2 * 6 * 5


def test_readme_synth_tables_have_a_row_per_config_and_device(quick_synth_report):
    report = quick_synth_report
    rows = synth_table(report).splitlines()
    assert len(rows) == 2 + 1
    assert all(row.count("|") == 8 for row in rows)
    backend_rows = backends_table(report).splitlines()
    assert len(backend_rows) == 2 + 1
    assert backend_rows[2].startswith("| fast |")


def test_running_one_bench_keeps_the_other_sections_of_the_report(quick_synth_report, tmp_path, monkeypatch):
    out = tmp_path / "results.json"
    out.write_text(json.dumps({"machine": {}, "vospi": {"kept": True}}))
    monkeypatch.setitem(bench_main.BENCHES, "synth", lambda args: quick_synth_report)
    bench_main.main(["synth", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["vospi"] == {"kept": True}
    assert report["synth"]["configs"]["fast"]["per_device"]["cpu"]["single_stream"]["fps_median"] > 0
    assert report["machine"]["torch_threads"] >= 1
    with pytest.raises(SystemExit):
        bench_main.main(["nope", "--out", str(out)])
