"""`python -m bench` (or `make bench`): every benchmark, one JSON report, tables for the README.

`python -m bench synth e2e` (any of vospi, vospi_faults, driver, sim, synth, e2e, flood, recorder,
training, streams) runs only those and updates their sections of an existing report, keeping the others.
`--model DIR` (repeatable) puts a trained model's evaluation next to its config's synthesis speed.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from bench import (
    bench_driver,
    bench_e2e,
    bench_flood,
    bench_recorder,
    bench_sim,
    bench_streams,
    bench_synth,
    bench_training,
    bench_vospi,
)
from bench.common import machine_info

DEFAULT_OUT = Path(__file__).with_name("results.json")
BENCHES: dict[str, Callable[[argparse.Namespace], dict]] = {
    "vospi": lambda args: bench_vospi.run(),
    "vospi_faults": lambda args: bench_vospi.fault_injection(),
    "driver": lambda args: bench_driver.run(seconds=args.seconds or 10.0),
    "sim": lambda args: bench_sim.run(),
    "synth": lambda args: bench_synth.run(models=args.models),
    "e2e": lambda args: bench_e2e.run(args.seconds or bench_e2e.WINDOW_S),
    "flood": lambda args: bench_flood.run(args.seconds or bench_flood.WINDOW_S),
    "recorder": lambda args: bench_recorder.run(),
    "training": lambda args: bench_training.run(),
    "streams": lambda args: bench_streams.run(args.seconds or bench_streams.WINDOW_S),
}
E2E_TARGET_P99_MS = 40.0
"""The issue's end-to-end target at the Lepton's 8.7 Hz on the 2-core development machine."""
JITTER_TARGET_STD_MS = 3.0
"""The interpolated 30 Hz output's interval between frames may vary by this much (one std)."""
TABLE_SECTIONS = ("vospi", "driver", "sim", "e2e", "recorder", "training")


def table(report: dict) -> str:
    vospi = {r["check_crc"]: r for r in report["vospi"]["results"]}
    driver = report["driver"]
    sim = report["sim"]
    ros = driver["ros_sim_8_7_hz"]
    e2e, training = report["e2e"], report["training"]
    recorder = report["recorder"]["storages"]
    rows = [
        ("VoSPI assembly, CRC on (packets/s)", f"{vospi[True]['packets_per_s']['median']:,.0f}"),
        ("VoSPI assembly, CRC off (packets/s)", f"{vospi[False]['packets_per_s']['median']:,.0f}"),
        (
            "CPU share of VoSPI assembly at the Lepton's rate",
            f"{vospi[True]['cpu_share_at_lepton_rate']:.2%}",
        ),
        ("privacy downsampling + Image per frame (µs)", f"{driver['per_frame_cost_us']['median']}"),
        ("driver rate, sim at 8.7 Hz through ROS (Hz)", f"{ros['achieved_rate_hz']}"),
        (
            "inter-arrival p50 / p99 (ms)",
            f"{ros['interarrival_ms']['p50']} / {ros['interarrival_ms']['p99']}",
        ),
        (
            "stamp to receipt p50 / p99 (ms)",
            f"{ros['stamp_to_receipt_ms']['p50']} / {ros['stamp_to_receipt_ms']['p99']}",
        ),
        ("simulated rig, render only, one core (pairs/s)", f"{sim['render_pairs_per_s']['median']}"),
        (
            "simulated rig, render + shards, one core (pairs/s)",
            f"{sim['render_and_write_pairs_per_s']['median']}",
        ),
        *(
            row
            for mode, how in (("processes", "a process per node"), ("single_process", "one process"))
            for row in e2e_rows(e2e[mode], how)
        ),
        *(
            (f"pair bag writing, {storage} (pairs/s)", f"{recorder[storage]['pairs_per_s']['median']:,.0f}")
            for storage in recorder
        ),
        *(
            (
                f"training `fast`, batch {training['batch_size']}, CPU, {phase} phase (it/s)",
                f"{training[phase]['it_per_s']['median']:.3f}",
            )
            for phase in ("gan", "inversion")
        ),
    ]
    return "\n".join(
        ["| measurement | result |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]
    )


def e2e_rows(by_rate: dict, how: str) -> list[tuple[str, str]]:
    """Latency at output_rate_hz 0 (frames matched to their heatmap) and the rate at 0 and 30."""
    exact, smooth = by_rate["output_rate_hz_0"], by_rate["output_rate_hz_30"]
    latency = exact["stamp_to_receipt_ms"]
    smooth_latency, jitter = smooth["stamp_to_receipt_ms"], smooth["jitter"]
    return [
        (
            f"conference graph, {how}: heatmap stamp to synth/image receipt p50 / p99 / max (ms)",
            f"{latency['p50']} / {latency['p99']} / {latency['max']}",
        ),
        (
            f"conference graph, {how}: heatmaps never painted, output_rate_hz 0",
            f"{exact['heatmaps_never_painted']} of {exact['heatmaps_in_window']}",
        ),
        (
            f"conference graph, {how}: target p99 ≤ {E2E_TARGET_P99_MS:g} ms with no heatmap unpainted",
            "met"
            if latency["p99"] <= E2E_TARGET_P99_MS and exact["heatmaps_never_painted"] == 0
            else "NOT met",
        ),
        (
            f"conference graph, {how}: synth/image fps, output_rate_hz 0 / 30",
            f"{exact['synth_fps']} / {smooth['synth_fps']}",
        ),
        (
            f"conference graph, {how}: output_rate_hz 30 stamp to receipt p50 / p99 (ms), "
            "~115 ms playback delay included",
            f"{smooth_latency['p50']} / {smooth_latency['p99']}",
        ),
        (
            f"conference graph, {how}: output_rate_hz 30 interval between frames, mean ± std (ms); "
            f"target std ≤ {JITTER_TARGET_STD_MS:g} ms; repeated / backward stamps",
            f"{jitter['receipt_interval_ms']['mean']} ± {jitter['receipt_interval_ms']['std']}; "
            f"{'met' if jitter['receipt_interval_ms']['std'] <= JITTER_TARGET_STD_MS else 'NOT met'}; "
            f"{jitter['duplicated_stamps']} / {jitter['stamps_out_of_order']}",
        ),
    ]


NO_TRAINED_MODEL = "no trained model"
NO_GPU_CELL = "not measured: no GPU available on the development machine"


def synth_table(synth: dict) -> str:
    """One row per config: CPU speed next to the quality of the config's trained model."""
    rows = []
    for name, config in synth["configs"].items():
        params = config["params"]
        params_m = " / ".join(
            f"{params[network] / 1e6:.2f}" for network in ("generator", "discriminator", "encoder")
        )
        result = config["per_device"]["cpu"]
        single = result["single_stream"]
        node_single = result.get("single_stream_node_precision")
        one_thread = result.get("single_stream_one_thread")
        batched = {entry["batch"]: entry["images_per_s"]["median"] for entry in result["batched"]}
        target = config["target_fps"]
        verdict = (
            "—" if target is None else f"≥ {target:g} fps: {'met' if result['meets_target'] else 'NOT met'}"
        )
        rows.append(
            (
                name,
                params_m,
                f"{config['gflop']['per_frame']:.2f}",
                f"{single['fps_median']:.1f}",
                f"{node_single['fps_median']:.1f} ({result['node_precision']})" if node_single else "fp32",
                f"{one_thread['fps_median']:.1f}" if one_thread else "—",
                f"{single['latency_ms']['p99']:.1f}",
                " / ".join(f"{batched[batch]:.1f}" if batch in batched else "—" for batch in (8, 32)),
                *quality_cells(config.get("quality")),
                verdict,
            )
        )
    header = (
        "| config | params G / D / E (M) | GFLOP per frame | single-stream fps | as the node paints "
        "| 1 thread fps | p99 latency (ms) | batch 8 / 32 (images/s) | FID | MAE | target on this CPU |"
    )
    return "\n".join([header, "|---" * 11 + "|", *("| " + " | ".join(row) + " |" for row in rows)])


def quality_cells(quality: dict | None) -> tuple[str, str]:
    """FID and MAE of the config's trained model, or why there are none."""
    if quality is None:
        return NO_TRAINED_MODEL, NO_TRAINED_MODEL
    fid, mae = quality["fid"], quality["mae"]
    return ("n/a" if fid is None else f"{fid:.1f}", "n/a" if mae is None else f"{mae:.4f}")


def gpu_table(synth: dict) -> str:
    """The GPU rows: single-stream fps, bf16 batched throughput and its target, or that no GPU was there."""
    gpu = synth["gpu"]
    targets = gpu["targets_images_per_s"]
    header = (
        f"| config ({gpu['device'] if gpu['available'] else 'GPU'}) | single-stream fps fp32 / bf16 "
        "| p99 latency bf16 (ms) | bf16 batched images/s: on the GPU / to the host (batch) | target |"
    )
    rows = []
    for name in synth["configs"]:
        target = targets.get(name)
        goal = "—" if target is None else f"≥ {target:,.0f} images/s bf16 batched"
        if not gpu["available"]:
            if target is not None:
                rows.append((name, "—", "—", "—", f"{goal}: {NO_GPU_CELL}"))
            continue
        result = gpu["configs"][name]
        single = result["single_stream"]
        fitting = [entry for entry in result["batched_bf16"] if "images_per_s" in entry]
        best = max(fitting, key=lambda entry: entry["images_per_s"]["median"], default=None)
        rows.append(
            (
                name,
                f"{single['fp32']['fps_median']:.1f} / {single['bf16']['fps_median']:.1f}",
                f"{single['bf16']['latency_ms']['p99']:.2f}",
                "out of memory"
                if best is None
                else f"{best['images_per_s']['median']:,.0f} / {best['images_per_s_to_host']['median']:,.0f} "
                f"({best['batch']})",
                goal if target is None else f"{goal}: {'met' if result['meets_target'] else 'NOT met'}",
            )
        )
    return "\n".join([header, "|---" * 5 + "|", *("| " + " | ".join(row) + " |" for row in rows)])


def backends_table(synth: dict) -> str:
    """Batch-1 CPU fps per inference runtime, with the speed-up over eager PyTorch."""
    backends = synth["cpu_backends"]["configs"]
    names = list(dict.fromkeys(name for config in backends.values() for name in config["variants"]))
    rows = []
    for config_name, config in backends.items():
        cells = []
        for name in names:
            variant = config["variants"].get(name, {"error": "not run"})
            if "error" in variant:
                cells.append("fails")
            else:
                cells.append(f"{variant['fps_median']:.1f} (x{variant['speedup_vs_eager']:.2f})")
        rows.append(f"| {config_name} | " + " | ".join(cells) + " |")
    header = "| config (batch 1, CPU fps) | " + " | ".join(names) + " |"
    return "\n".join([header, "|---|" + "---|" * len(names), *rows])


def output_rate_table(synth: dict) -> str:
    """What the node's render path achieves and costs at each `output_rate_hz`, per thread setting."""
    output_rate = synth["output_rate"]
    runs = {"rates": f"{output_rate['torch_threads']} torch threads", "rates_one_thread": "1 torch thread"}
    rows = []
    for name, config in output_rate["configs"].items():
        for device, result in config["per_device"].items():
            for key, threads in runs.items():
                for rate in result.get(key, []):
                    hz = rate["output_rate_hz"]
                    rows.append(
                        (
                            f"{name}, {device}, {threads}",
                            "0 (default)" if hz == 0 else f"{hz:g}",
                            f"{rate['achieved_output_fps']:.1f}",
                            f"{rate['cpu_cores']:.2f}",
                            f"{rate['cpu_ms_per_output_frame']:.1f}",
                        )
                    )
    header = "| config, device | `output_rate_hz` | output fps | CPU (cores) | CPU per output frame (ms) |"
    return "\n".join([header, "|---" * 5 + "|", *("| " + " | ".join(row) + " |" for row in rows)])


def streams_tables(streams: dict) -> list[str]:
    """Forward passes per stream count and device, then the node serving N participants through ROS."""
    passes = [
        "| model, device | streams | one forward pass (ms) | frames/s batched | frames/s one by one | "
        "within one 8.7 Hz period |",
        "|---|---|---|---|---|---|",
    ]
    for name, engine in streams["forward_passes"].items():
        for row in engine["rows"]:
            passes.append(
                f"| {name} | {row['streams']} | {row['batched_pass_ms']['median']} | "
                f"{row['batched_frames_per_s']} | {row['one_by_one_frames_per_s']} | "
                f"{'yes' if row['keeps_8_7_hz'] else 'no'} |"
            )
    ros = [
        "| participants at 8.7 Hz | painted fps, all / slowest stream | heatmaps never painted | "
        "stamp to receipt p50 / p99 (ms) | frames per forward pass |",
        "|---|---|---|---|---|",
    ]
    for result in streams["ros"]["results"]:
        latency = result["stamp_to_receipt_ms"]
        ros.append(
            f"| {result['streams']} | {result['painted_fps_all']} / {result['painted_fps_slowest_stream']} | "
            f"{result['never_painted_share']:.1%} | {latency['p50']} / {latency['p99']} | "
            f"{result['frames_per_forward_pass']} |"
        )
    return ["\n".join(passes), "\n".join(ros)]


def synth_tables(synth: dict) -> list[str]:
    """The README's synthesis tables, in the order it shows them."""
    return [synth_table(synth), gpu_table(synth), backends_table(synth), output_rate_table(synth)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "benches", nargs="*", metavar="BENCH", help=f"run only these, of {', '.join(BENCHES)} (default: all)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default {DEFAULT_OUT})")
    parser.add_argument(
        "--seconds",
        type=float,
        help="ROS measurement length (driver 10 s, e2e 60 s, streams 10 s per stream count by default)",
    )
    bench_synth.add_model_option(parser)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.benches) - set(BENCHES))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    selected = [name for name in BENCHES if name in args.benches] or list(BENCHES)
    if "synth" in selected:
        try:  # before any benchmark runs: a bad model directory should not cost minutes first
            bench_synth.quality_by_config(args.models)
        except bench_synth.QualityFileError as error:
            parser.error(str(error))
    report = {}
    if len(selected) < len(BENCHES) and args.out.is_file():
        report = json.loads(args.out.read_text())
    report["machine"] = machine_info()
    for name in selected:
        report[name] = BENCHES[name](args)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if set(TABLE_SECTIONS) & set(selected) and all(k in report for k in TABLE_SECTIONS):
        print(table(report))
    if "synth" in selected:
        print("\n" + "\n\n".join(synth_tables(report["synth"])))
    if "streams" in selected:
        print("\n" + "\n\n".join(streams_tables(report["streams"])))
    print(f"\nfull report: {args.out}")


if __name__ == "__main__":
    main()
