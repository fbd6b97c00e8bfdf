"""Synthesis speed of the named model configs: does the generator keep up with a video call?

For each of `paper`, `base` and `fast` at the default 12x16 heatmap -> 96x128 image it measures

* single-stream synthesis through `SynthesisEngine.render` at batch 1, exactly what the
  synthesis node does per frame: a Celsius heatmap is checked, normalised, run through the
  generator's thermal branch and painting (the appearance's projection is cached per code) and
  converted to uint8 RGB. Reported as fps (from the median latency) and p50/p99 latency, with
  torch's default thread count and, on the CPU, with one thread (what the node gets when it
  leaves the other cores to the driver, ROS and the call application);
* batched throughput (batch 8 and 32, images/s), what offline rendering of a dataset gets;
* parameter counts of G, D and E and GFLOP per generator forward, counted over the Conv2d and
  Linear layers with forward hooks (1 multiply-add = 2 FLOP; element-wise ops are not counted);
* on the CPU, for `fast` and `base` at batch 1, whether TorchScript (trace; + freeze;
  + optimize_for_inference) or ONNX Runtime (TorchScript-based exporter; only when onnxruntime
  is installed, it is no dependency) beat eager PyTorch, from Celsius heatmap to uint8 RGB. The
  variants run interleaved in rounds so that a noisy neighbour slows them all alike, and each
  reports its largest difference from eager's image; a variant that fails reports why;
* for `fast`, the cost of the node's smooth-video option: heatmaps arrive at the Lepton's 8.7 Hz
  and the node's own per-frame function (`synth_node.paint_heatmap`) paints one frame per input
  (`output_rate_hz` 0) or 30 a second from the interpolated timeline (`HeatmapTimeline` and
  `OutputClock`, as the node's worker drives them). Reported as achieved output fps and CPU
  cores busy (process CPU time, all threads, over wall time), with torch's default thread count
  and, on the CPU, with one thread; ROS transport is not included.

Weights are random: the speed of a network does not depend on its weight values. Every
measurement runs on the CPU, and also on the GPU when there is one (with `torch.cuda.synchronize`
around each timed call). The load averages before and after are in the report: on a shared
machine, a load above the core count means the numbers are low.

Run: `python -m bench synth` (updates bench/results.json) or `python -m bench.bench_synth`.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import math
import os
import statistics
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor, nn

from bench.common import machine_info, spread, tail
from thermal_synth.inference import SynthesisEngine, to_uint8
from thermal_synth.interpolation import HeatmapTimeline
from thermal_synth.model.bank import LatentBank, LatentCode
from thermal_synth.model.config import NAMED_CONFIGS, ModelConfig
from thermal_synth.model.files import ModelBundle, TrainingRecord
from thermal_synth.model.networks import Generator, SpadeSRModel
from thermal_synth.model.recipe import Preprocessing
from thermal_synth.pacing import OutputClock
from thermal_synth.synth_node import paint_heatmap

WEIGHTS_NOTE = "random init; speed does not depend on weight values"
TARGET_FPS = {"fast": 30.0, "base": 8.7}
"""Single-stream targets on the development machine's CPU (2 cores): `fast` must keep up with a
30 fps webcam pipeline, `base` with the Lepton's 8.7 Hz. `paper` has none: it is the reference."""
CODE = "bench"
BATCHES = (8, 32)
BACKEND_CONFIGS = ("fast", "base")
HEATMAP_RANGE_C = (18.0, 36.0)
"""Room to skin temperature: the fixed normalisation clips nothing, as with a real scene."""
OUTPUT_RATE_CONFIGS = ("fast",)
LEPTON_RATE_HZ = 8.7
OUTPUT_RATES_HZ = (0.0, 30.0)
"""The node's default (one frame per thermal frame) and the smooth-video rate a call expects."""
OUTPUT_RATE_SECONDS = 8.0
QUICK_OUTPUT_RATE_SECONDS = 1.0


@dataclass(frozen=True)
class Plan:
    """How many timed calls a config gets, sized so that the whole run takes about two minutes on
    two cores: `paper` paints a batch of 32 in ~20 s there, so it gets one batched call per size
    and no batched warm-up on the CPU (a first call's set-up is lost in 20 s)."""

    single: int
    warmup: int
    batch_repeats: int
    batch_warmup: int = 1
    backend_iterations: int = 0


PLANS = {
    "paper": Plan(single=20, warmup=3, batch_repeats=1, batch_warmup=0),
    "base": Plan(single=100, warmup=10, batch_repeats=4, backend_iterations=60),
    "fast": Plan(single=150, warmup=10, batch_repeats=5, backend_iterations=120),
}
QUICK_PLAN = Plan(single=3, warmup=1, batch_repeats=1, backend_iterations=3)


def random_bundle(config: ModelConfig, seed: int = 0) -> ModelBundle:
    """A model of `config` with random weights and a one-code bank, never written to disk."""
    torch.manual_seed(seed)
    networks = SpadeSRModel(config).eval()
    bank = LatentBank(config.z_dim)
    z = np.random.default_rng(seed).standard_normal(config.z_dim).astype(np.float32)
    bank.add(LatentCode(CODE, z))
    return ModelBundle(config, Preprocessing(), TrainingRecord(), networks, bank)


def celsius_heatmaps(n: int, size: tuple[int, int], seed: int = 1) -> np.ndarray:
    low, high = HEATMAP_RANGE_C
    return np.random.default_rng(seed).uniform(low, high, size=(n, *size)).astype(np.float32)


def parameter_counts(networks: SpadeSRModel) -> dict:
    def count(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    return {
        "generator": count(networks.generator),
        "discriminator": count(networks.discriminator),
        "encoder": count(networks.encoder),
    }


def count_macs(module: nn.Module, run: Callable[[], object]) -> int:
    """Multiply-adds of the Conv2d and Linear layers of `module` during `run()`, per batch."""
    total = 0

    def on_forward(layer: nn.Module, _inputs: tuple, output: Tensor) -> None:
        nonlocal total
        if isinstance(layer, nn.Conv2d):
            kernel = layer.kernel_size[0] * layer.kernel_size[1]
            total += output.numel() * (layer.in_channels // layer.groups) * kernel
        else:
            total += output.numel() * layer.in_features

    handles = [
        layer.register_forward_hook(on_forward)
        for layer in module.modules()
        if isinstance(layer, nn.Conv2d | nn.Linear)
    ]
    try:
        with torch.inference_mode():
            run()
    finally:
        for handle in handles:
            handle.remove()
    return total


def generator_gflop(config: ModelConfig) -> dict:
    """GFLOP per image: per frame (thermal branch + painting), projection (once per code), and both."""
    generator = Generator(config).eval()
    z = torch.zeros(1, config.z_dim)
    heatmap = torch.zeros(1, 1, *config.heatmap_size)
    projected = generator.project(z).detach()
    per_frame = count_macs(generator, lambda: generator.paint(projected, generator.thermal_features(heatmap)))
    full = count_macs(generator, lambda: generator(z, heatmap))
    return {
        "per_frame": round(2 * per_frame / 1e9, 3),
        "projection": round(2 * (full - per_frame) / 1e9, 4),
        "full_forward": round(2 * full / 1e9, 3),
    }


def synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def time_calls(call: Callable[[], object], iterations: int, sync: Callable[[], None]) -> list[float]:
    """Milliseconds of each of `iterations` calls, the device synchronised around each."""
    samples = []
    for _ in range(iterations):
        sync()
        start = time.perf_counter()
        call()
        sync()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def frame_by_frame(render: Callable[[np.ndarray], object], size: tuple[int, int]) -> Callable[[], None]:
    """A call that renders the next of 16 different (1, rows, cols) Celsius heatmaps, round and round."""
    frames = celsius_heatmaps(16, size)
    position = itertools.count()

    def one_frame() -> None:
        at = next(position) % len(frames)
        render(frames[at : at + 1])

    return one_frame


def single_stream(engine: SynthesisEngine, plan: Plan) -> dict:
    sync = synchronizer(engine.device)
    one_frame = frame_by_frame(lambda heatmap: engine.render(heatmap, CODE), engine.heatmap_size)
    time_calls(one_frame, plan.warmup, sync)
    latencies = time_calls(one_frame, plan.single, sync)
    return {
        "iterations": plan.single,
        "warmup": plan.warmup,
        "fps_median": round(1e3 / statistics.median(latencies), 1),
        "fps_mean": round(1e3 * len(latencies) / sum(latencies), 1),
        "latency_ms": tail(latencies),
    }


def batched(engine: SynthesisEngine, batch: int, plan: Plan) -> dict:
    sync = synchronizer(engine.device)
    heatmaps = celsius_heatmaps(batch, engine.heatmap_size, seed=batch)
    warmup = plan.batch_warmup if engine.device.type == "cpu" else max(1, plan.batch_warmup)
    time_calls(lambda: engine.render(heatmaps, CODE), warmup, sync)
    times_ms = time_calls(lambda: engine.render(heatmaps, CODE), plan.batch_repeats, sync)
    return {"batch": batch, "images_per_s": spread([batch * 1e3 / t for t in times_ms])}


def measure_device(config_name: str, device: str, plan: Plan, batches: Iterable[int]) -> dict:
    engine = SynthesisEngine(random_bundle(NAMED_CONFIGS[config_name]), device)
    result = {
        "device": device_name(engine.device),
        "single_stream": single_stream(engine, plan),
        "batched": [batched(engine, batch, plan) for batch in batches],
    }
    target = TARGET_FPS.get(config_name)
    if engine.device.type == "cpu" and target is not None:
        result["meets_target"] = result["single_stream"]["fps_median"] >= target
    if engine.device.type == "cpu" and torch.get_num_threads() > 1:
        # What the node gets when it leaves the other cores to the driver, ROS and the call app.
        with torch_threads(1):
            result["single_stream_one_thread"] = single_stream(
                engine, replace(plan, single=-(-plan.single // 2))
            )
    return result


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    saved = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


class FramePath(nn.Module):
    """What runs per frame, as one module: (normalised heatmap, cached projection) -> image in [-1, 1]."""

    def __init__(self, engine: SynthesisEngine) -> None:
        super().__init__()
        self.generator = engine.generator

    def forward(self, heatmap: Tensor, projected: Tensor) -> Tensor:
        return self.generator.paint(projected, self.generator.thermal_features(heatmap))


def backend_variants(engine: SynthesisEngine) -> tuple[dict[str, Callable[[np.ndarray], Tensor]], dict]:
    """Batch-1 frame functions (Celsius heatmap -> float image; the caller adds the uint8
    conversion) for eager and every variant that builds, plus why the others did not."""
    projected = engine.projection(CODE)
    path = FramePath(engine).eval()
    memory_format = engine.memory_format

    def as_input(heatmap_celsius: np.ndarray) -> Tensor:
        return torch.from_numpy(engine.prepare(heatmap_celsius)).contiguous(memory_format=memory_format)

    def on_path(module: Callable[[Tensor, Tensor], Tensor]) -> Callable[[np.ndarray], Tensor]:
        def frame(heatmap_celsius: np.ndarray) -> Tensor:
            with torch.inference_mode():
                return module(as_input(heatmap_celsius), projected)

        return frame

    example = as_input(celsius_heatmaps(1, engine.heatmap_size))

    def traced(freeze: bool = False, optimize: bool = False) -> torch.jit.ScriptModule:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript is deprecated in favour of torch.compile
            module = torch.jit.trace(path, (example, projected))
            if freeze:
                module = torch.jit.freeze(module)
            return torch.jit.optimize_for_inference(module) if optimize else module

    builders: dict[str, Callable[[], Callable[[np.ndarray], Tensor]]] = {
        "eager": lambda: on_path(path),
        "torchscript": lambda: on_path(traced()),
        "torchscript_frozen": lambda: on_path(traced(freeze=True)),
        "torchscript_optimized": lambda: on_path(traced(freeze=True, optimize=True)),
        "onnxruntime": lambda: onnxruntime_variant(engine, path, example, projected),
    }
    variants: dict[str, Callable[[np.ndarray], Tensor]] = {}
    failures: dict[str, str] = {}
    for name, build in builders.items():
        try:
            variant = build()
            for _ in range(3):  # warm-up; some variants only fail when first run
                variant(celsius_heatmaps(1, engine.heatmap_size))
        except Exception as error:  # a variant that fails is a result, not a crash of the benchmark
            if name == "eager":
                raise
            failures[name] = one_line(error)
        else:
            variants[name] = variant
    return variants, failures


def one_line(error: Exception, limit: int = 300) -> str:
    """An error as one line: TorchScript's errors put the real cause on their last line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [""]
    text = lines[-1]
    name = type(error).__name__
    if not text.startswith(f"{name}:"):
        text = f"{name}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def onnxruntime_variant(
    engine: SynthesisEngine, path: nn.Module, example: Tensor, projected: Tensor
) -> Callable[[np.ndarray], Tensor]:
    try:
        import onnxruntime
    except ImportError:
        raise RuntimeError("onnxruntime is not installed (pip install onnxruntime onnx)") from None
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated, not gone
        torch.onnx.export(
            path,
            (example.contiguous(), projected.contiguous()),
            buffer,
            dynamo=False,
            input_names=["heatmap", "projected"],
            output_names=["image"],
        )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    projected_numpy = projected.contiguous().cpu().numpy()

    def run_session(heatmap_celsius: np.ndarray) -> Tensor:
        inputs = {"heatmap": engine.prepare(heatmap_celsius), "projected": projected_numpy}
        return torch.from_numpy(session.run(None, inputs)[0])

    run_session.onnxruntime_version = onnxruntime.__version__  # type: ignore[attr-defined]
    return run_session


def compare_backends(config_name: str, iterations: int, rounds: int = 5) -> dict:
    """Batch-1 CPU fps of eager vs TorchScript vs ONNX Runtime, all from Celsius to uint8 RGB."""
    engine = SynthesisEngine(random_bundle(NAMED_CONFIGS[config_name]), "cpu")
    variants, failures = backend_variants(engine)
    frames = celsius_heatmaps(16, engine.heatmap_size)
    reference = variants["eager"](frames[:1]).float()
    latencies: dict[str, list[float]] = {name: [] for name in variants}
    per_round = max(1, iterations // rounds)
    calls = {
        name: frame_by_frame(lambda heatmap, variant=variant: to_uint8(variant(heatmap)), engine.heatmap_size)
        for name, variant in variants.items()
    }
    for _ in range(rounds):
        for name, frame in calls.items():
            latencies[name] += time_calls(frame, per_round, lambda: None)
    eager_median = statistics.median(latencies["eager"])
    results: dict = {}
    for name, samples in latencies.items():
        median = statistics.median(samples)
        entry = {
            "fps_median": round(1e3 / median, 1),
            "latency_ms": tail(samples),
            "speedup_vs_eager": round(eager_median / median, 2),
            "max_abs_diff_vs_eager": float(
                f"{float((variants[name](frames[:1]).float() - reference).abs().max()):.2g}"
            ),
        }
        version = getattr(variants[name], "onnxruntime_version", None)
        if version:
            entry["onnxruntime"] = version
        results[name] = entry
    for name, reason in failures.items():
        results[name] = {"error": reason}
    return {"iterations_per_variant": per_round * rounds, "rounds": rounds, "variants": results}


@dataclass
class PlaybackCount:
    output_frames: int = 0
    interpolated_frames: int = 0
    input_frames: int = 0


def play_one_per_input(
    render: Callable[[np.ndarray], None], frames: np.ndarray, seconds: float
) -> PlaybackCount:
    """`output_rate_hz` 0: the newest heatmap the sensor has delivered is painted once, as the
    node's mailbox hands it over; the worker sleeps until the next one is due."""
    count = PlaybackCount()
    start = time.monotonic()
    painted = -1
    while (now := time.monotonic()) < start + seconds:
        newest = math.floor((now - start) * LEPTON_RATE_HZ)
        if newest == painted:
            time.sleep(start + (newest + 1) / LEPTON_RATE_HZ - now)
            continue
        render(frames[newest % len(frames)])
        painted = newest
        count.output_frames += 1
        count.input_frames = newest + 1
    return count


def play_interpolated(
    render: Callable[[np.ndarray], None], frames: np.ndarray, seconds: float, rate_hz: float
) -> PlaybackCount:
    """`output_rate_hz` > 0: on each tick of the output clock the newest delivered heatmap joins the
    timeline (arriving when it was due) and the playhead's heatmap is painted, as in the node."""
    count = PlaybackCount()
    start = time.monotonic()
    timeline = HeatmapTimeline()
    clock = OutputClock(rate_hz, start)
    period_ns = round(1e9 / LEPTON_RATE_HZ)
    while time.monotonic() < start + seconds:
        time.sleep(clock.wait_s(time.monotonic()))
        now = time.monotonic()
        newest = math.floor((now - start) * LEPTON_RATE_HZ)
        if newest >= count.input_frames:
            timeline.push(newest * period_ns, frames[newest % len(frames)], start + newest / LEPTON_RATE_HZ)
            count.input_frames = newest + 1
        frame = timeline.sample(now)
        if frame is not None:
            render(frame.heatmap)
            count.output_frames += 1
            if frame.interpolated:
                count.interpolated_frames += 1
        clock.advance(time.monotonic())
    return count


def output_rate_cost(engine: SynthesisEngine, rate_hz: float, seconds: float) -> dict:
    """Achieved output fps and CPU cores busy while the node's render path follows an 8.7 Hz sensor."""
    projected = engine.projection(CODE)
    sync = synchronizer(engine.device)
    frames = celsius_heatmaps(16, engine.heatmap_size)

    def render(heatmap: np.ndarray) -> None:
        paint_heatmap(engine, heatmap, projected, None)
        sync()

    for heatmap in frames[:5]:  # warm-up: the first calls set up kernels and caches
        render(heatmap)
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    if rate_hz:
        count = play_interpolated(render, frames, seconds, rate_hz)
    else:
        count = play_one_per_input(render, frames, seconds)
    wall_s, cpu_s = time.perf_counter() - wall_start, time.process_time() - cpu_start
    return {
        "output_rate_hz": rate_hz,
        "seconds": round(wall_s, 2),
        "input_frames": count.input_frames,
        "output_frames": count.output_frames,
        "interpolated_frames": count.interpolated_frames,
        "achieved_output_fps": round(count.output_frames / wall_s, 2),
        "cpu_cores": round(cpu_s / wall_s, 3),
        "cpu_ms_per_output_frame": round(cpu_s * 1e3 / max(1, count.output_frames), 2),
    }


def output_rate_costs(config_name: str, device: str, seconds: float) -> dict:
    engine = SynthesisEngine(random_bundle(NAMED_CONFIGS[config_name]), device)
    result = {
        "device": device_name(engine.device),
        "rates": [output_rate_cost(engine, rate, seconds) for rate in OUTPUT_RATES_HZ],
    }
    if engine.device.type == "cpu" and torch.get_num_threads() > 1:
        # Spare cores also go to the driver, ROS and the call app: what one thread costs and keeps up with.
        with torch_threads(1):
            result["rates_one_thread"] = [output_rate_cost(engine, rate, seconds) for rate in OUTPUT_RATES_HZ]
    return result


def output_rates(
    configs: Iterable[str] = OUTPUT_RATE_CONFIGS, devices: Iterable[str] | None = None, *, quick: bool = False
) -> dict:
    seconds = QUICK_OUTPUT_RATE_SECONDS if quick else OUTPUT_RATE_SECONDS
    devices = available_devices() if devices is None else tuple(devices)
    return {
        "input_rate_hz": LEPTON_RATE_HZ,
        "path": "synth_node.paint_heatmap per output frame; output_rate_hz > 0 adds HeatmapTimeline "
        "blending on an OutputClock; no ROS transport",
        "cpu_cores_note": "process CPU time (all threads) / wall time; 1.0 = one core fully busy",
        "torch_threads": torch.get_num_threads(),
        "configs": {
            name: {"per_device": {device: output_rate_costs(name, device, seconds) for device in devices}}
            for name in configs
        },
    }


def available_devices() -> tuple[str, ...]:
    return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)


def run(
    configs: Iterable[str] = tuple(NAMED_CONFIGS),
    *,
    quick: bool = False,
    batches: Iterable[int] = BATCHES,
    backend_configs: Iterable[str] = BACKEND_CONFIGS,
    output_rate_configs: Iterable[str] = OUTPUT_RATE_CONFIGS,
    devices: Iterable[str] | None = None,
) -> dict:
    """`quick` runs every part a few times only (for the smoke test); the numbers are then noise."""
    started = time.perf_counter()
    batches = tuple(batches)
    devices = available_devices() if devices is None else tuple(devices)
    default = NAMED_CONFIGS["paper"]
    report: dict = {
        "benchmark": "synthesis",
        "weights": WEIGHTS_NOTE,
        "heatmap_size": list(default.heatmap_size),
        "image_size": list(default.image_size),
        "path": "SynthesisEngine.render: Celsius heatmap -> prepare -> thermal_features + paint "
        "(projection cached per code, channels-last, inference_mode) -> uint8 RGB",
        "gflop_counts": "Conv2d + Linear multiply-adds x 2 per image; element-wise ops not counted",
        "torch_threads": torch.get_num_threads(),
        "devices": [device_name(torch.device(d)) for d in devices],
        "quick": quick,
        "load_average_note": "1/5/15-minute load averages; above the core count, others shared the CPU",
        "targets_fps": dict(TARGET_FPS),
        "load_average_before": [round(load, 2) for load in os.getloadavg()],
        "configs": {},
    }
    for name in configs:
        plan = QUICK_PLAN if quick else PLANS[name]
        networks = SpadeSRModel(NAMED_CONFIGS[name])
        report["configs"][name] = {
            "params": parameter_counts(networks),
            "gflop": generator_gflop(NAMED_CONFIGS[name]),
            "target_fps": TARGET_FPS.get(name),
            "per_device": {device: measure_device(name, device, plan, batches) for device in devices},
        }
    report["cpu_backends"] = {
        "batch": 1,
        "torch_threads": torch.get_num_threads(),
        "configs": {
            name: compare_backends(name, (QUICK_PLAN if quick else PLANS[name]).backend_iterations)
            for name in backend_configs
        },
    }
    report["output_rate"] = output_rates(output_rate_configs, devices, quick=quick)
    report["load_average_after"] = [round(load, 2) for load in os.getloadavg()]
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", choices=sorted(NAMED_CONFIGS), default=list(NAMED_CONFIGS))
    parser.add_argument("--quick", action="store_true", help="a few calls each: checks the script, not speed")
    parser.add_argument(
        "--output-rate-only",
        action="store_true",
        help="only the output_rate_hz 0 vs 30 cost of the node's render path (about 40 s)",
    )
    args = parser.parse_args(argv)
    if args.output_rate_only:
        measurement = {
            "load_average_before": [round(load, 2) for load in os.getloadavg()],
            "output_rate": output_rates(quick=args.quick),
            "load_average_after": [round(load, 2) for load in os.getloadavg()],
        }
        print(json.dumps({"machine": machine_info(), **measurement}, indent=2))
        return
    backend_configs = [name for name in BACKEND_CONFIGS if name in args.configs]
    output_rate_configs = [name for name in OUTPUT_RATE_CONFIGS if name in args.configs]
    report = {
        "machine": machine_info(),
        **run(
            args.configs,
            quick=args.quick,
            backend_configs=backend_configs,
            output_rate_configs=output_rate_configs,
        ),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
