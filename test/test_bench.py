"""The benchmark scripts still run and report sane numbers (speed itself is reported, not asserted)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from model_fixtures import TINY_CONFIG

import bench.__main__ as bench_main
from bench import (
    bench_driver,
    bench_e2e,
    bench_flood,
    bench_recorder,
    bench_sim,
    bench_synth,
    bench_training,
    bench_vospi,
)
from bench.__main__ import (
    NO_GPU_CELL,
    NO_TRAINED_MODEL,
    backends_table,
    gpu_table,
    synth_table,
    synth_tables,
    table,
)
from thermal_synth.engine.inference import select_precision
from thermal_synth.model.config import NAMED_CONFIGS
from thermal_synth.model.files import DEFAULT_MODEL, MODEL_JSON
from thermal_synth.recording.bags import STORAGES
from thermal_synth.training.settings import load_settings

PERFORMANCE_PAGE = Path(__file__).resolve().parents[1] / "docs" / "performance.md"


def test_vospi_benchmark_assembles_every_frame_it_times():
    report = bench_vospi.run(frames=2, repeats=2)
    assert [r["check_crc"] for r in report["results"]] == [True, False]
    assert all(r["packets_per_s"]["median"] > 0 for r in report["results"])


@pytest.mark.parametrize("telemetry", list(bench_vospi.TelemetryMode))
def test_vospi_fault_injection_emits_no_torn_or_damaged_frame_and_every_intact_one(telemetry):
    report = bench_vospi.fault_injection(faults=80, seed=3, telemetry=telemetry)
    assert report["faults"] == dict.fromkeys(bench_vospi.FAULT_KINDS, 20)
    assert (report["torn_frames_emitted"], report["destroyed_frames_emitted"]) == (0, 0)
    assert report["resyncs"] == report["assembler"]["crc_errors"] == 20
    clean, discarded = report["clean_frames"], report["frames_with_injected_discards"]
    assert clean["sent"] == 80
    assert clean["missed"] == discarded["missed"] == 0
    assert clean["recovered"] + clean["lost_in_resync_idle"] == 80
    assert clean["lost_in_resync_idle"] <= report["resyncs"]
    assert discarded["recovered"] + discarded["lost_in_resync_idle"] == discarded["sent"] == 20


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
    assert 0 <= result["heatmaps_never_painted"] <= result["heatmaps_in_window"]
    assert result["heatmaps_in_window"] >= result["frames_with_a_heatmap_stamp"] - 1
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
    with_jitter = {**measured, "jitter": bench_e2e.output_jitter(measured_frames())}
    by_rate = {f"output_rate_hz_{rate:g}": with_jitter for rate in bench_e2e.OUTPUT_RATES_HZ}
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
    assert len(rows) == 2 + 9 + 2 * 6 + len(STORAGES) + 2
    assert all(row.count("|") == 3 for row in rows)


def measured_frames() -> list[tuple[int, int]]:
    """(stamp, receipt) ns of a 30 Hz output: steady but for one frame shown twice, two swapped
    and one received 5 ms late."""
    period = 33_333_333
    stamps = [i * period for i in range(10)]
    stamps[5] = stamps[4]
    stamps[7], stamps[8] = stamps[8], stamps[7]
    receipts = [i * period + 100_000_000 for i in range(10)]
    receipts[3] += 5_000_000
    return list(zip(stamps, receipts, strict=True))


def test_output_jitter_counts_repeated_and_backward_stamps():
    jitter = bench_e2e.output_jitter(measured_frames())
    assert jitter["duplicated_stamps"] == 1
    assert jitter["stamps_out_of_order"] == 1
    assert jitter["receipt_interval_ms"]["std"] > 1.0  # the one late frame
    steady = [(i * 33_333_333, i * 33_333_333 + 10**8) for i in range(10)]
    assert bench_e2e.output_jitter(steady) == {
        "receipt_interval_ms": {"mean": 33.33, "std": 0.0},
        "stamp_interval_std_ms": 0.0,
        "duplicated_stamps": 0,
        "stamps_out_of_order": 0,
    }


PACKAGED = bench_synth.evaluated_quality(DEFAULT_MODEL)["config"]
"""The named config of the packaged default model: its row carries the model's evaluation."""


@pytest.fixture(scope="module")
def quick_synth_report() -> dict:
    backends = ("eager", "eager_bf16", "torchscript_frozen", "torch_compile", "onnxruntime")
    return bench_synth.run(
        (PACKAGED,), quick=True, batches=(2,), backend_configs=("fast",), backends=backends
    )


def test_synth_benchmark_reports_speed_size_and_backends_for_a_config(quick_synth_report):
    report = quick_synth_report
    assert report["weights"] == bench_synth.WEIGHTS_NOTE
    assert report["image_size"] == [96, 128]
    packaged = report["configs"][PACKAGED]
    assert all(count > 0 for count in packaged["params"].values())
    gflop = packaged["gflop"]
    assert 0 < gflop["projection"] < gflop["per_frame"] < gflop["full_forward"]
    cpu = packaged["per_device"]["cpu"]
    assert cpu["single_stream"]["fps_median"] > 0
    assert 0 < cpu["single_stream"]["latency_ms"]["p50"] <= cpu["single_stream"]["latency_ms"]["p99"]
    assert [b["batch"] for b in cpu["batched"]] == [2]
    assert cpu["batched"][0]["images_per_s"]["median"] > 0
    assert isinstance(cpu["meets_target"], bool)
    assert cpu["node_precision"] == select_precision("auto", torch.device("cpu"))
    if cpu["node_precision"] == "fp32":
        assert "single_stream_node_precision" not in cpu, "fp32 is measured once"
    else:
        assert cpu["single_stream_node_precision"]["fps_median"] > 0
    as_the_node_paints = cpu.get("single_stream_node_precision", cpu["single_stream"])
    assert cpu["meets_target"] == (as_the_node_paints["fps_median"] >= bench_synth.TARGET_FPS[PACKAGED])
    if torch.get_num_threads() > 1:
        assert cpu["single_stream_one_thread"]["fps_median"] > 0
    variants = report["cpu_backends"]["configs"]["fast"]["variants"]
    assert set(variants) == {"eager", "eager_bf16", "torchscript_frozen", "torch_compile", "onnxruntime"}
    assert variants["eager"]["speedup_vs_eager"] == 1.0
    for name, variant in variants.items():
        # A variant either ran (and paints what eager paints, bf16 to its rounding) or says why it could not.
        if "error" in variant:
            assert variant["error"], name
        else:
            assert variant["fps_median"] > 0, name
            assert variant["setup_s"] >= 0, name
            assert variant["max_abs_diff_vs_eager"] < (0.05 if name == "eager_bf16" else 1e-3), name


def test_every_named_config_has_a_timing_plan():
    """`python -m bench synth` times every named config by default; one without a plan would fail."""
    assert set(bench_synth.PLANS) == set(NAMED_CONFIGS)


def test_synth_benchmark_refuses_unknown_backends():
    engine = bench_synth.SynthesisEngine(bench_synth.random_bundle(TINY_CONFIG), "cpu")
    with pytest.raises(ValueError, match="unknown backends \\['tensorrt'\\]"):
        bench_synth.backend_variants(engine, ("eager", "tensorrt"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_the_report_says_so_and_the_table_says_not_measured(quick_synth_report):
    gpu = quick_synth_report["gpu"]
    assert gpu == {
        "available": False,
        "reason": bench_synth.NO_GPU,
        "targets_images_per_s": bench_synth.GPU_TARGET_IMAGES_PER_S,
    }
    rows = gpu_table({"configs": {"fast": {}, "base": {}}, "gpu": gpu}).splitlines()
    assert rows[2:] == [f"| base | — | — | — | ≥ 20,000 images/s bf16 batched: {NO_GPU_CELL} |"]


class FakeOutOfMemory(Exception):
    pass


def test_batches_grow_until_one_runs_out_of_memory():
    measured = []

    def measure(batch: int) -> dict:
        if batch > 512:
            raise FakeOutOfMemory("CUDA out of memory. Tried to allocate 9.00 GiB")
        measured.append(batch)
        return {"batch": batch, "images_per_s": {"median": float(batch)}}

    results = bench_synth.grow_batches((256, 512, 1024, 4096), measure, FakeOutOfMemory)
    assert measured == [256, 512]
    assert results[-1] == {
        "batch": 1024,
        "out_of_memory": "FakeOutOfMemory: CUDA out of memory. Tried to allocate 9.00 GiB",
    }
    assert len(results) == 3


def test_errors_other_than_running_out_of_memory_end_the_benchmark():
    def measure(batch: int) -> dict:
        raise RuntimeError("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED")

    with pytest.raises(RuntimeError, match="CUDNN_STATUS"):
        bench_synth.grow_batches((1,), measure, FakeOutOfMemory)


def test_throughput_verdict_takes_the_best_batch_that_fit():
    fitted = [
        {"batch": 256, "images_per_s": {"median": 15_000.0}},
        {"batch": 1024, "images_per_s": {"median": 21_000.0}},
        {"batch": 4096, "out_of_memory": "..."},
    ]
    assert bench_synth.throughput_verdict(fitted, 20_000.0) == {
        "best_images_per_s": 21_000.0,
        "target_images_per_s": 20_000.0,
        "meets_target": True,
    }
    assert bench_synth.throughput_verdict(fitted[:1], 20_000.0)["meets_target"] is False
    assert bench_synth.throughput_verdict(fitted[2:], 20_000.0)["meets_target"] is False
    assert bench_synth.throughput_verdict(fitted, None)["meets_target"] is None


def test_the_gpu_measurement_runs_its_code_on_the_cpu():
    """Everything of the GPU section but the CUDA calls, on the CPU: its numbers go nowhere."""
    result = bench_synth.measure_on_device("fast", "cpu", bench_synth.QUICK_PLAN, (2, 4))
    assert set(result["single_stream"]) == {"fp32", "bf16"}
    assert all(single["fps_median"] > 0 for single in result["single_stream"].values())
    assert [entry["batch"] for entry in result["batched_bf16"]] == [2, 4]
    for entry in result["batched_bf16"]:
        assert entry["images_per_s"]["median"] > 0
        assert entry["images_per_s_to_host"]["median"] > 0
    assert result["best_images_per_s"] == max(e["images_per_s"]["median"] for e in result["batched_bf16"])
    assert result["meets_target"] is None  # `fast` has no GPU target
    shaped = {
        "configs": {"fast": {}},
        "gpu": {
            "available": True,
            "device": "test on the CPU",
            "targets_images_per_s": {},
            "configs": {"fast": result},
        },
    }
    row = gpu_table(shaped).splitlines()[2]
    assert row.startswith("| fast | ")
    assert row.endswith(" | — |")


def test_synth_flop_count_matches_a_hand_count():
    conv = torch.nn.Conv2d(4, 8, 3, padding=1)
    linear = torch.nn.Linear(5, 6)
    model = torch.nn.Sequential(conv, torch.nn.Flatten(), torch.nn.LazyLinear(6))
    macs = bench_synth.count_macs(model, lambda: model(torch.zeros(1, 4, 2, 3)))
    assert macs == 8 * 2 * 3 * 4 * 9 + 6 * 8 * 2 * 3
    assert bench_synth.count_macs(linear, lambda: linear(torch.zeros(2, 5))) == 2 * 6 * 5


def test_readme_synth_tables_have_a_row_per_config(quick_synth_report):
    report = quick_synth_report
    rows = synth_table(report).splitlines()
    assert len(rows) == 2 + 1
    assert all(row.count("|") == 12 for row in rows)
    quality = report["configs"][PACKAGED]["quality"]
    assert quality is not None
    assert quality["model"].endswith("models/default")
    assert f"| {quality['fid']:.1f} | {quality['mae']:.4f} |" in rows[2]
    backend_rows = backends_table(report).splitlines()
    assert len(backend_rows) == 2 + 1
    assert backend_rows[2].startswith("| fast |")
    for rendered in synth_tables(report):
        lines = rendered.splitlines()
        assert len({line.count("|") for line in lines}) == 1, rendered


def test_configs_without_a_trained_model_say_so(quick_synth_report):
    report = json.loads(json.dumps(quick_synth_report))
    report["configs"][PACKAGED]["quality"] = None
    assert f"| {NO_TRAINED_MODEL} | {NO_TRAINED_MODEL} |" in synth_table(report)


def test_performance_page_shows_the_tables_of_the_committed_report():
    """Every table docs/performance.md shows is what `python -m bench` prints for the committed
    bench/results.json, to the character."""
    report = json.loads(bench_main.DEFAULT_OUT.read_text())
    page = PERFORMANCE_PAGE.read_text()
    for rendered in (
        table(report),
        *synth_tables(report["synth"]),
        *bench_main.streams_tables(report["streams"]),
    ):
        assert rendered in page, f"docs/performance.md lacks this table of bench/results.json:\n{rendered}"


def copy_evaluation(directory: Path) -> Path:
    """The packaged default model's description and evaluation (its weights are not read)."""
    directory.mkdir()
    for name in (MODEL_JSON, bench_synth.METRICS_FILE):
        shutil.copy(DEFAULT_MODEL / name, directory / name)
    return directory


@pytest.fixture
def evaluated_model(tmp_path: Path) -> Path:
    return copy_evaluation(tmp_path / "model")


def test_quality_comes_from_the_model_directorys_evaluation(evaluated_model: Path):
    quality = bench_synth.evaluated_quality(evaluated_model)
    metrics = json.loads((evaluated_model / bench_synth.METRICS_FILE).read_text())
    assert quality["config"] == PACKAGED
    assert quality["fid"] == metrics["fid"]
    assert quality["mae"] == metrics["mae"]
    assert (quality["dataset"], quality["split"], quality["n_samples"]) == (
        metrics["dataset"],
        metrics["split"],
        metrics["n_samples"],
    )
    no_default = evaluated_model.parent / "none"
    assert bench_synth.quality_by_config([], no_default) == {}
    assert bench_synth.quality_by_config([evaluated_model], no_default) == {PACKAGED: quality}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda metrics: metrics.update(fid="399"), "'fid' must be int or float or null"),
        (lambda metrics: metrics.update(n_samples=True), "'n_samples' must be int"),
        (lambda metrics: metrics.update(mae=-0.1), "'mae' must be finite and not negative"),
        (lambda metrics: metrics.pop("split"), "'split' must be str"),
        (lambda metrics: metrics.update(format="thermal_synth.model"), "format is 'thermal_synth.model'"),
        (lambda metrics: metrics.update(model_training=[]), "'model_training' must be an object"),
    ],
)
def test_quality_refuses_a_malformed_evaluation(evaluated_model: Path, change, message: str):
    path = evaluated_model / bench_synth.METRICS_FILE
    metrics = json.loads(path.read_text())
    change(metrics)
    path.write_text(json.dumps(metrics))
    with pytest.raises(bench_synth.QualityFileError, match=message):
        bench_synth.evaluated_quality(evaluated_model)


def test_quality_refuses_non_json_unnamed_configs_and_two_models_of_a_config(
    evaluated_model: Path, tmp_path: Path
):
    (evaluated_model / bench_synth.METRICS_FILE).write_text("fid = 3")
    with pytest.raises(bench_synth.QualityFileError, match="not valid JSON"):
        bench_synth.evaluated_quality(evaluated_model)
    (evaluated_model / bench_synth.METRICS_FILE).unlink()
    with pytest.raises(bench_synth.QualityFileError, match="missing; run `thermal-synth evaluate`"):
        bench_synth.evaluated_quality(evaluated_model)
    description = json.loads((evaluated_model / MODEL_JSON).read_text())
    description["config"] = TINY_CONFIG.to_json()
    (evaluated_model / MODEL_JSON).write_text(json.dumps(description))
    with pytest.raises(bench_synth.QualityFileError, match="its config is none of paper, base, fast"):
        bench_synth.evaluated_quality(evaluated_model)
    second = copy_evaluation(tmp_path / "second")
    with pytest.raises(bench_synth.QualityFileError, match="pass one model per config"):
        bench_synth.quality_by_config([second, DEFAULT_MODEL])


def test_running_one_bench_keeps_the_other_sections_of_the_report(quick_synth_report, tmp_path, monkeypatch):
    out = tmp_path / "results.json"
    out.write_text(json.dumps({"machine": {}, "vospi": {"kept": True}}))
    monkeypatch.setitem(bench_main.BENCHES, "synth", lambda args: quick_synth_report)
    bench_main.main(["synth", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["vospi"] == {"kept": True}
    assert report["synth"]["configs"][PACKAGED]["per_device"]["cpu"]["single_stream"]["fps_median"] > 0
    assert report["machine"]["torch_threads"] >= 1
    with pytest.raises(SystemExit):
        bench_main.main(["nope", "--out", str(out)])


def test_model_directories_reach_the_synth_benchmark(quick_synth_report, tmp_path, monkeypatch, capsys):
    passed = []
    model = copy_evaluation(tmp_path / "model")
    monkeypatch.setattr(bench_synth, "run", lambda models: passed.append(models) or quick_synth_report)
    bench_main.main(["synth", "--model", str(model), "--out", str(tmp_path / "results.json")])
    assert passed == [[model]]
    printed = capsys.readouterr().out
    assert all(rendered in printed for rendered in synth_tables(quick_synth_report))
    with pytest.raises(SystemExit):
        bench_main.main(["synth", "--model", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.json")])
    assert "no such model directory" in capsys.readouterr().err
    assert len(passed) == 1


def test_flood_benchmark_compares_the_flooded_node_with_its_own_engine():
    report = bench_flood.run(quick=True)
    node, engine = report["node"], report["engine_single_stream"]
    assert node["node_alive_after"]
    assert node["heatmaps_published"] > 2 * node["frames_painted"] > 0, "the flood outpaces the painting"
    assert engine["fps"] > 0
    assert report["node_to_engine_fps"] == round(node["fps"] / engine["fps"], 2)
