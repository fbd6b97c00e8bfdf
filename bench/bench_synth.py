"""Synthesis speed of the named model configs: does the generator keep up with a video call?

For each of `paper`, `base` and `fast` at the default 12x16 heatmap -> 96x128 image it measures

* on the CPU, single-stream synthesis through `SynthesisEngine.render` at batch 1, exactly
  what the synthesis node does per frame: a Celsius heatmap is checked, normalised, run through
  the generator's thermal branch and painting (the appearance's projection is cached per code)
  and converted to uint8 RGB. Reported as fps (from the median latency) and p50/p99 latency,
  with torch's default thread count and with one thread (what the node gets when it leaves the
  other cores to the driver, ROS and the call application);
* on the CPU, batched throughput (batch 8 and 32, images/s), what offline rendering of a
  dataset gets;
* parameter counts of G, D and E and GFLOP per generator forward, counted over the Conv2d and
  Linear layers with forward hooks (1 multiply-add = 2 FLOP; element-wise ops are not counted);
* on the CPU, for `fast` and `base` at batch 1, whether bfloat16 autocast, TorchScript (trace;
  + freeze; + optimize_for_inference), torch.compile (inductor, default mode; and with inductor's
  weight freezing) or ONNX Runtime (TorchScript-based exporter; only when onnxruntime is
  installed, it is no dependency) beat eager PyTorch, from Celsius heatmap to uint8 RGB. The
  variants run interleaved in rounds so that a noisy neighbour slows them all alike, each reports
  its largest difference from eager's image and its set-up time (build and first call: tracing,
  compilation, export), and a variant that fails reports why;
* for `fast`, the cost of the node's smooth-video option: heatmaps arrive at the Lepton's 8.7 Hz
  and the node's own per-frame function (`engine.streams.paint_heatmap`) paints one frame per input
  (`output_rate_hz` 0) or 30 a second from the interpolated timeline (`HeatmapTimeline` and
  `OutputClock`, as the node's worker drives them). Reported as achieved output fps and CPU
  cores busy (process CPU time, all threads, over wall time), with torch's default thread count
  and, on the CPU, with one thread; ROS transport is not included;
* on a CUDA GPU, when there is one (`gpu`; otherwise it says why not): single-stream latency
  through `render` at batch 1 in fp32 and bf16, and bf16 batched throughput of heatmaps already on
  the GPU at growing batches until one runs out of memory, the generator and the uint8 conversion
  alone and with the copy of the images to the host, with `cudnn.benchmark` on and
  `torch.cuda.synchronize` around each timed call;
* next to the speed, the quality of a trained model of each config: FID and MAE as `thermal-synth
  evaluate` wrote them into the model directory's metrics.json (the packaged default model, and
  any `--model DIR`), never recomputed here: an evaluation takes minutes.

Weights are random: the speed of a network does not depend on its weight values. The load
averages before and after are in the report: on a shared machine, a load above the core count
means the numbers are low.

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from bench.common import machine_info, spread, tail
from thermal_synth.common.json_files import check_format, read_json
from thermal_synth.engine.inference import SynthesisEngine, select_precision, to_uint8
from thermal_synth.engine.interpolation import HeatmapTimeline
from thermal_synth.engine.pacing import OutputClock
from thermal_synth.engine.streams import paint_heatmap
from thermal_synth.evaluation.report import METRICS_FILE
from thermal_synth.evaluation.run import FORMAT_NAME as EVALUATION_FORMAT
from thermal_synth.evaluation.run import FORMAT_VERSION as EVALUATION_VERSION
from thermal_synth.model.bank import LatentBank, LatentCode
from thermal_synth.model.config import NAMED_CONFIGS, ModelConfig, ModelConfigError, config_name
from thermal_synth.model.files import (
    DEFAULT_MODEL,
    MODEL_JSON,
    ModelBundle,
    ModelFileError,
    TrainingRecord,
    read_description,
)
from thermal_synth.model.networks import Generator, SpadeSRModel
from thermal_synth.model.recipe import Preprocessing

WEIGHTS_NOTE = "random init; speed does not depend on weight values"
TARGET_FPS = {"fast": 60.0, "fast_wide_thermal": 60.0, "base": 8.7}
"""Single-stream targets on the development machine's CPU (2 cores), from issue 8: `fast` and the
packaged default model's `fast_wide_thermal` must paint twice a 30 fps webcam's rate (room for the
rest of a call), `base` keep up with the Lepton's 8.7 Hz. `paper` has none: it is the reference."""
GPU_TARGET_IMAGES_PER_S = {"base": 20_000.0}
"""Batched bf16 throughput of `base` on an H100-class GPU (issue 8): one GPU painting for many calls."""
NO_GPU = "no CUDA GPU on this machine"
CODE = "bench"
BATCHES = (8, 32)
GPU_BATCHES = (256, 1024, 4096)
"""Grown until one runs out of memory: the largest batch that fits is where throughput peaks."""
GPU_PRECISIONS = ("fp32", "bf16")
BACKEND_CONFIGS = ("fast", "base")
BACKENDS = (
    "eager",
    "eager_bf16",
    "torchscript",
    "torchscript_frozen",
    "torchscript_optimized",
    "torch_compile",
    "torch_compile_frozen",
    "onnxruntime",
)
MAX_METRICS_BYTES = 1 << 20
QUALITY_NOTE = (
    "FID and MAE as `thermal-synth evaluate` wrote them into the model directory's metrics.json "
    "(not recomputed here); configs without an evaluated trained model have none"
)
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


FAST_PLAN = Plan(single=150, warmup=10, batch_repeats=5, backend_iterations=120)
"""Every variant of `fast` has its cost within a few per cent of it."""
PLANS = {
    "paper": Plan(single=20, warmup=3, batch_repeats=1, batch_warmup=0),
    "base": Plan(single=100, warmup=10, batch_repeats=4, backend_iterations=60),
    "fast": FAST_PLAN,
    "fast_whole_frame": FAST_PLAN,
    "fast_photo_warp": FAST_PLAN,
    "fast_wide_thermal": FAST_PLAN,
    "fast_wide_thermal_whole_frame": FAST_PLAN,
}
GPU_PLAN = Plan(single=200, warmup=20, batch_repeats=10, batch_warmup=3)
QUICK_PLAN = Plan(single=3, warmup=1, batch_repeats=1, backend_iterations=3)


def random_bundle(config: ModelConfig, seed: int = 0) -> ModelBundle:
    """A model of `config` with random weights and a one-code bank, never written to disk."""
    torch.manual_seed(seed)
    networks = SpadeSRModel(config).eval()
    bank = LatentBank.for_model(config)
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


def measure_cpu(config_name: str, plan: Plan, batches: Iterable[int]) -> dict:
    """fp32 throughout; single-stream also in the precision the synthesis node picks on this CPU
    (`precision: auto`), which is what a user's call paints in and so what the target is held to."""
    bundle = random_bundle(NAMED_CONFIGS[config_name])
    engine = SynthesisEngine(bundle, "cpu")
    node_precision = select_precision("auto", engine.device)
    result = {
        "device": device_name(engine.device),
        "single_stream": single_stream(engine, plan),
        "batched": [batched(engine, batch, plan) for batch in batches],
        "node_precision": node_precision,
    }
    as_the_node_paints = result["single_stream"]
    if node_precision != "fp32":
        as_the_node_paints = single_stream(SynthesisEngine(bundle, "cpu", precision=node_precision), plan)
        result["single_stream_node_precision"] = as_the_node_paints
    target = TARGET_FPS.get(config_name)
    if target is not None:
        result["meets_target"] = as_the_node_paints["fps_median"] >= target
    if torch.get_num_threads() > 1:
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


def backend_variants(
    engine: SynthesisEngine, names: Iterable[str] = BACKENDS
) -> tuple[dict[str, Callable[[np.ndarray], Tensor]], dict[str, float], dict[str, str]]:
    """Batch-1 frame functions (Celsius heatmap -> float image; the caller adds the uint8
    conversion) for eager and every named variant that builds, each one's set-up seconds (build
    and first call, where tracing and compilation happen), and why the others did not build."""
    projected = engine.projection(CODE)
    path = FramePath(engine).eval()
    memory_format = engine.memory_format

    def as_input(heatmap_celsius: np.ndarray) -> Tensor:
        return torch.from_numpy(engine.prepare(heatmap_celsius)).contiguous(memory_format=memory_format)

    def on_path(
        module: Callable[[Tensor, Tensor], Tensor], bf16: bool = False
    ) -> Callable[[np.ndarray], Tensor]:
        def frame(heatmap_celsius: np.ndarray) -> Tensor:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
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
        "eager_bf16": lambda: on_path(path, bf16=True),
        "torchscript": lambda: on_path(traced()),
        "torchscript_frozen": lambda: on_path(traced(freeze=True)),
        "torchscript_optimized": lambda: on_path(traced(freeze=True, optimize=True)),
        # Compilation happens on the first call, which the set-up time includes.
        "torch_compile": lambda: on_path(torch.compile(path)),
        "torch_compile_frozen": lambda: on_path(torch.compile(path, options={"freezing": True})),
        "onnxruntime": lambda: onnxruntime_variant(engine, path, example, projected),
    }
    unknown = set(names) - set(builders)
    if unknown:
        raise ValueError(f"unknown backends {sorted(unknown)}; choose from {', '.join(builders)}")
    variants: dict[str, Callable[[np.ndarray], Tensor]] = {}
    setup_s: dict[str, float] = {}
    failures: dict[str, str] = {}
    for name in ("eager", *(name for name in builders if name in names and name != "eager")):
        started = time.perf_counter()
        try:
            variant = builders[name]()
            variant(celsius_heatmaps(1, engine.heatmap_size))
            setup_s[name] = round(time.perf_counter() - started, 2)
            for _ in range(2):  # warm-up: TorchScript's profiling executor optimises (and can fail) now
                variant(celsius_heatmaps(1, engine.heatmap_size))
        except Exception as error:  # a variant that fails is a result, not a crash of the benchmark
            if name == "eager":
                raise
            failures[name] = one_line(error)
        else:
            variants[name] = variant
    return variants, setup_s, failures


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


def compare_backends(
    config_name: str, iterations: int, names: Iterable[str] = BACKENDS, rounds: int = 5
) -> dict:
    """Batch-1 CPU fps of eager vs bf16, TorchScript, torch.compile and ONNX Runtime, all from
    Celsius to uint8 RGB."""
    engine = SynthesisEngine(random_bundle(NAMED_CONFIGS[config_name]), "cpu")
    variants, setup_s, failures = backend_variants(engine, names)
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
            "setup_s": setup_s[name],
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
        "path": "engine.streams.paint_heatmap per output frame; output_rate_hz > 0 adds HeatmapTimeline "
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


def grow_batches(
    batches: Iterable[int],
    measure: Callable[[int], dict],
    out_of_memory: type[Exception] = torch.OutOfMemoryError,
) -> list[dict]:
    """`measure(batch)` for each batch in turn; the first that runs out of memory is recorded as
    such and ends the growth (a larger one would too)."""
    results = []
    for batch in batches:
        try:
            results.append(measure(batch))
        except out_of_memory as error:
            results.append({"batch": batch, "out_of_memory": one_line(error)})
            break
    return results


def device_batched(engine: SynthesisEngine, batch: int, plan: Plan) -> dict:
    """Images/s of `batch` normalised heatmaps already on the engine's device: the generator and
    the uint8 conversion alone, and with the copy of the images to the host."""
    sync = synchronizer(engine.device)
    heatmaps = celsius_heatmaps(batch, engine.heatmap_size, seed=batch)
    on_device = torch.from_numpy(engine.prepare(heatmaps)).to(engine.device)
    projected = engine.projection(CODE)
    calls = {
        "images_per_s": lambda: engine.paint_on_device(on_device, projected),
        "images_per_s_to_host": lambda: engine.paint_on_device(on_device, projected).cpu(),
    }
    result: dict = {"batch": batch}
    for key, call in calls.items():
        time_calls(call, plan.batch_warmup, sync)
        result[key] = spread([batch * 1e3 / t for t in time_calls(call, plan.batch_repeats, sync)])
    return result


def throughput_verdict(batched_results: list[dict], target: float | None) -> dict:
    """The best median images/s on the device over the batches that fit, and whether it meets
    `target` (None where the config has no target)."""
    rates = [entry["images_per_s"]["median"] for entry in batched_results if "images_per_s" in entry]
    best = max(rates, default=None)
    met = None if target is None else best is not None and best >= target
    return {"best_images_per_s": best, "target_images_per_s": target, "meets_target": met}


def measure_on_device(config_name: str, device: str, plan: Plan, batches: Iterable[int]) -> dict:
    """Single-stream latency in fp32 and bf16 and bf16 batched throughput of one config; runs on
    any device (the tests run it on the CPU), the benchmark runs it on the GPU."""
    bundle = random_bundle(NAMED_CONFIGS[config_name])
    engines = {
        precision: SynthesisEngine(bundle, device, precision=precision) for precision in GPU_PRECISIONS
    }
    bf16 = engines["bf16"]
    batched_bf16 = grow_batches(batches, lambda batch: device_batched(bf16, batch, plan))
    if bf16.device.type == "cuda":
        torch.cuda.empty_cache()  # what a batch that ran out of memory left cached
    return {
        "single_stream": {precision: single_stream(engine, plan) for precision, engine in engines.items()},
        "batched_bf16": batched_bf16,
        **throughput_verdict(batched_bf16, GPU_TARGET_IMAGES_PER_S.get(config_name)),
    }


def gpu_report(configs: Iterable[str], plan: Plan = GPU_PLAN, batches: Iterable[int] = GPU_BATCHES) -> dict:
    """The GPU section: measured when there is a CUDA GPU, otherwise why not, with the targets."""
    targets = dict(GPU_TARGET_IMAGES_PER_S)
    if not torch.cuda.is_available():
        return {"available": False, "reason": NO_GPU, "targets_images_per_s": targets}
    batches = tuple(batches)
    with torch.backends.cudnn.flags(enabled=True, benchmark=True):
        measured = {name: measure_on_device(name, "cuda", plan, batches) for name in configs}
    return {
        "available": True,
        "device": torch.cuda.get_device_name(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "cudnn_benchmark": True,
        "path": "single_stream: SynthesisEngine.render at batch 1 (Celsius on the host to uint8 RGB on "
        "the host); batched_bf16: paint_on_device on heatmaps already on the GPU (generator + uint8 "
        "conversion), images_per_s_to_host adds the copy of the images to the host",
        "targets_images_per_s": targets,
        "configs": measured,
    }


class QualityFileError(ValueError):
    """A model directory whose evaluation cannot go into the table; the message names the file."""


def _field(metrics: dict, key: str, kinds: tuple[type, ...], path: Path, *, optional: bool = False) -> Any:
    """metrics[key], checked: metrics.json comes from whoever handed us the model directory."""
    value = metrics.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, kinds) or isinstance(value, bool):
        expected = " or ".join(kind.__name__ for kind in kinds)
        raise QualityFileError(
            f"{path}: {key!r} must be {expected}{' or null' if optional else ''}, got {value!r}"
        )
    if isinstance(value, int | float) and not (math.isfinite(value) and value >= 0):
        raise QualityFileError(f"{path}: {key!r} must be finite and not negative, got {value!r}")
    return value


def evaluated_quality(directory: Path) -> dict:
    """The named config of a trained model and the FID and MAE its metrics.json holds, with
    the model, dataset, split and sample count they were measured on."""
    try:
        config = ModelConfig.from_json(read_description(directory).get("config"))
    except ModelFileError as error:
        raise QualityFileError(str(error)) from None
    except ModelConfigError as error:
        raise QualityFileError(f"{directory / MODEL_JSON}: {error}") from None
    name = config_name(config)
    if name is None:
        raise QualityFileError(
            f"{directory}: its config is none of {', '.join(NAMED_CONFIGS)}, and the synthesis table "
            "has a row per named config"
        )
    path = directory / METRICS_FILE
    metrics = check_format(
        read_json(
            path,
            QualityFileError,
            missing="missing; run `thermal-synth evaluate` on the model first",
            max_bytes=MAX_METRICS_BYTES,
        ),
        EVALUATION_FORMAT,
        EVALUATION_VERSION,
        path,
        QualityFileError,
    )
    training = metrics.get("model_training")
    if not isinstance(training, dict):
        raise QualityFileError(f"{path}: 'model_training' must be an object, got {training!r}")
    number = (int, float)
    return {
        "config": name,
        "model": shown_path(directory),
        "evaluated_model": _field(metrics, "model", (str,), path),
        "gan_steps": _field(training, "gan_steps", (int,), path),
        "dataset": _field(metrics, "dataset", (str,), path),
        "split": _field(metrics, "split", (str,), path),
        "n_samples": _field(metrics, "n_samples", (int,), path),
        "split_size": _field(metrics, "split_size", (int,), path),
        "fid": _field(metrics, "fid", number, path, optional=True),
        "mae": _field(metrics, "mae", number, path, optional=True),
    }


def shown_path(directory: Path) -> str:
    """Relative to the working directory where it lies inside it: the report is committed."""
    resolved = directory.resolve()
    return str(resolved.relative_to(Path.cwd())) if resolved.is_relative_to(Path.cwd()) else str(resolved)


def quality_by_config(models: Sequence[Path], default_model: Path = DEFAULT_MODEL) -> dict[str, dict]:
    """FID and MAE per named config: from each model passed, and from the packaged default model
    (once evaluated) for its config unless a model passed has that config."""
    by_config: dict[str, dict] = {}
    for directory in models:
        quality = evaluated_quality(Path(directory))
        if quality["config"] in by_config:
            raise QualityFileError(
                f"{directory} and {by_config[quality['config']]['model']} are both `{quality['config']}` "
                "models; pass one model per config"
            )
        by_config[quality["config"]] = quality
    if (default_model / METRICS_FILE).is_file():
        default = evaluated_quality(default_model)
        by_config.setdefault(default["config"], default)
    return by_config


def add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        dest="models",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="a trained, evaluated model directory whose FID and MAE go next to its config's speed "
        "(repeatable; the packaged default model is always read)",
    )


def run(
    configs: Iterable[str] = tuple(NAMED_CONFIGS),
    *,
    quick: bool = False,
    batches: Iterable[int] = BATCHES,
    backend_configs: Iterable[str] = BACKEND_CONFIGS,
    backends: Iterable[str] = BACKENDS,
    output_rate_configs: Iterable[str] = OUTPUT_RATE_CONFIGS,
    gpu_batches: Iterable[int] = GPU_BATCHES,
    models: Sequence[Path] = (),
    default_model: Path = DEFAULT_MODEL,
) -> dict:
    """`quick` runs every part a few times only (for the smoke test); the numbers are then noise."""
    started = time.perf_counter()
    configs, batches, backends = tuple(configs), tuple(batches), tuple(backends)
    quality = quality_by_config(models, default_model)  # first: a bad model file fails in a second
    default = NAMED_CONFIGS["paper"]
    report: dict = {
        "benchmark": "synthesis",
        "weights": WEIGHTS_NOTE,
        "heatmap_size": list(default.heatmap_size),
        "image_size": list(default.image_size),
        "path": "SynthesisEngine.render: Celsius heatmap -> prepare -> thermal_features + paint "
        "(projection cached per code, channels-last, inference_mode) -> uint8 RGB",
        "gflop_counts": "Conv2d + Linear multiply-adds x 2 per image; element-wise ops not counted",
        "quality_note": QUALITY_NOTE,
        "torch_threads": torch.get_num_threads(),
        "devices": [device_name(torch.device(d)) for d in available_devices()],
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
            "quality": quality.get(name),
            "per_device": {"cpu": measure_cpu(name, plan, batches)},
        }
    report["cpu_backends"] = {
        "batch": 1,
        "torch_threads": torch.get_num_threads(),
        "setup_s_note": "build + first call: tracing, compilation (inductor caches on disk: a repeat "
        "run may compile faster) or export",
        "configs": {
            name: compare_backends(name, (QUICK_PLAN if quick else PLANS[name]).backend_iterations, backends)
            for name in backend_configs
        },
    }
    report["gpu"] = gpu_report(configs, QUICK_PLAN if quick else GPU_PLAN, gpu_batches)
    report["output_rate"] = output_rates(output_rate_configs, quick=quick)
    report["load_average_after"] = [round(load, 2) for load in os.getloadavg()]
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", choices=sorted(NAMED_CONFIGS), default=list(NAMED_CONFIGS))
    parser.add_argument("--quick", action="store_true", help="a few calls each: checks the script, not speed")
    add_model_option(parser)
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
            models=args.models,
        ),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
