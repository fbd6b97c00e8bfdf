"""Simulated-rig generator throughput on one core: how long does a training set take to make?

Measured twice: rendering alone (the renderer's cost) and the whole `thermal-synth sim` pipeline
(render, align RGB and masks, privacy-downsample, write and checksum shards), so the cost of
the dataset side is the difference. One core, because that is what a dataset job gets per worker
when it is split across processes, and because the result then does not depend on how many
cores a machine has. Shards go to a temporary directory, usually in the page cache: disk speed
is not part of the number.

Run: `python -m bench.bench_sim`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2

from bench.common import machine_info, spread
from thermal_synth.sim.simulate import SimConfig, generate, plan_splits, render_pairs

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def one_core() -> Iterator[int]:
    """Pins this process to its first allowed CPU and asks every thread pool for one thread.

    The affinity is what really enforces one core: numpy's BLAS pool was sized when numpy was
    imported, before these environment variables could matter, but all its threads now share the
    one CPU. Everything is restored afterwards, so `python -m bench` runs the other benchmarks
    unchanged.
    """
    allowed = os.sched_getaffinity(0)
    core = min(allowed)
    saved_env = {name: os.environ.get(name) for name in THREAD_ENV_VARS}
    saved_cv_threads = cv2.getNumThreads()
    os.sched_setaffinity(0, {core})
    os.environ.update(dict.fromkeys(THREAD_ENV_VARS, "1"))
    cv2.setNumThreads(1)
    try:
        yield core
    finally:
        cv2.setNumThreads(saved_cv_threads)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        os.sched_setaffinity(0, allowed)


def time_render(config: SimConfig) -> float:
    plan = plan_splits(config)
    start = time.perf_counter()
    for _ in render_pairs(plan, config):
        pass
    return time.perf_counter() - start


def time_generate(config: SimConfig) -> tuple[float, int]:
    """Seconds for the whole pipeline and the bytes of shards it wrote."""
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as scratch:
        start = time.perf_counter()
        manifest = generate(config, Path(scratch) / "dataset", progress=False).manifest
        elapsed = time.perf_counter() - start
    written = sum(entry["bytes"] for shards in manifest["shards"].values() for entry in shards)
    return elapsed, written


def run(pairs: int = 480, repeats: int = 5) -> dict:
    """`thermal-synth sim` defaults: 480 pairs are 10 sessions of 48 frames, so the per-session setup
    (backdrops rendered once per room) weighs in as it does in a real run."""
    config = SimConfig(pairs=pairs, seed=0)
    with one_core() as core:
        time_render(config)  # warm caches and lazy imports before anything is timed
        render_times = [time_render(config) for _ in range(repeats)]
        generated = [time_generate(config) for _ in range(repeats)]
    generate_times = [seconds for seconds, _ in generated]
    return {
        "benchmark": "sim_generator",
        "pairs_per_repeat": pairs,
        "cpu": core,
        "render_pairs_per_s": spread([pairs / t for t in render_times]),
        "render_and_write_pairs_per_s": spread([pairs / t for t in generate_times]),
        "dataset_side_ms_per_pair": round(
            1000 * (statistics.median(generate_times) - statistics.median(render_times)) / pairs, 2
        ),
        "shard_bytes_per_pair": round(generated[0][1] / pairs),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=480, help="pairs rendered per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    report = {"machine": machine_info(), **run(args.pairs, args.repeats)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
