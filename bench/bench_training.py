"""Training speed of `SpadeSRTrainer` on the CPU: how far can a laptop get without a GPU?

The `fast` recipe exactly as `config/train_fast.yaml` sets it (losses, R1 interval, EMA,
fixed normalisation), at batch 16 instead of the GPU's 64, with 2 torch threads: the steps a
CPU-only user would run. Batches come from a small simulated dataset (`thermal-synth sim`)
generated in a temporary directory, loaded as `train_model` loads it. The first steps of each
phase set up kernels and allocator pools and are not timed; the timed steps are split into
blocks, each block one iterations-per-second sample, so the report has a median and a spread.

Run: `python -m bench training` (updates bench/results.json) or `python -m bench.bench_training`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from bench.bench_synth import torch_threads
from bench.common import machine_info, spread
from thermal_synth.dataset.pairs import PairTensors, load_pairs
from thermal_synth.dataset.shards import ShardReader
from thermal_synth.model.config import ModelConfig
from thermal_synth.model.recipe import Preprocessing
from thermal_synth.sim.simulate import SimConfig, generate
from thermal_synth.training.settings import load_settings
from thermal_synth.training.trainer import SpadeSRTrainer, TrainConfig

SETTINGS = "fast"
BATCH_SIZE = 16
TORCH_THREADS = 2
DATASET_PAIRS = 96


@dataclass(frozen=True)
class Plan:
    """Sized for about two minutes: a `fast` GAN step at batch 16 takes ~6 s on the 2-core
    development machine, an inversion step about as long."""

    warmup: int
    blocks: int
    steps_per_block: int


GAN_PLAN = Plan(warmup=2, blocks=4, steps_per_block=3)
INVERSION_PLAN = Plan(warmup=1, blocks=3, steps_per_block=2)
QUICK_PLAN = Plan(warmup=1, blocks=1, steps_per_block=2)


def simulated_dataset(directory: Path) -> ShardReader:
    """Short sessions, as the tests' dataset has: many people and poses in few pairs."""
    generate(SimConfig(pairs=DATASET_PAIRS, seed=0, frames_per_session=12), directory, progress=False)
    return ShardReader(directory)


def steps_per_second(step: Callable[..., dict[str, float]], pairs: PairTensors, plan: Plan) -> dict:
    """Each timed block draws fresh random batches, as the training loop does."""
    order = torch.Generator().manual_seed(0)

    def one_step() -> None:
        indices = torch.randint(len(pairs), (BATCH_SIZE,), generator=order)
        step(*pairs.batch(indices, "cpu"))

    for _ in range(plan.warmup):
        one_step()
    samples = []
    for _ in range(plan.blocks):
        start = time.perf_counter()
        for _ in range(plan.steps_per_block):
            one_step()
        samples.append(plan.steps_per_block / (time.perf_counter() - start))
    return {
        "warmup_steps": plan.warmup,
        "steps_per_block": plan.steps_per_block,
        "it_per_s": spread(samples, 3),
    }


def run(model: ModelConfig | None = None, *, quick: bool = False) -> dict:
    """`model` replaces the `fast` networks (the tests pass their tiny model); `quick` times two
    steps per phase, which checks the script but measures nothing."""
    settings = load_settings(SETTINGS)
    train_config: TrainConfig = replace(settings.train_config("fp32"), batch_size=BATCH_SIZE)
    started = time.perf_counter()
    with torch_threads(TORCH_THREADS), tempfile.TemporaryDirectory(prefix="bench-training-") as scratch:
        reader = simulated_dataset(Path(scratch) / "dataset")
        preprocessing = Preprocessing(reader.recipe, settings.normalisation_recipe())
        pairs = load_pairs(reader, "train", preprocessing)
        model = model or settings.model_config(reader.recipe.output_size)
        trainer = SpadeSRTrainer(model, preprocessing, train_config, "cpu")
        gan = steps_per_second(trainer.gan_step, pairs, QUICK_PLAN if quick else GAN_PLAN)
        inversion = steps_per_second(trainer.inversion_step, pairs, QUICK_PLAN if quick else INVERSION_PLAN)
    return {
        "benchmark": "training",
        "settings": f"config/train_{SETTINGS}.yaml",
        "model": model.to_json(),
        "quick": quick,
        "device": "cpu",
        "torch_threads": TORCH_THREADS,
        "batch_size": BATCH_SIZE,
        "r1_interval": train_config.r1_interval,
        "image_size": list(pairs.images.shape[-2:]),
        "training_pairs": len(pairs),
        "note": f"batch {BATCH_SIZE} instead of the file's {settings.batch_size}, fp32; one iteration = "
        "one D step (with R1 every r1_interval) and one G (gan) or encoder (inversion) step; "
        "warm-up steps not timed",
        "gan": gan,
        "inversion": inversion,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two steps per phase: checks the script")
    args = parser.parse_args(argv)
    print(json.dumps({"machine": machine_info(), **run(quick=args.quick)}, indent=2))


if __name__ == "__main__":
    main()
