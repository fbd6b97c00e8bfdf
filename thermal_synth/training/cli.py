"""`thermal-synth train`: a shard dataset in, a model directory the node can load out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from thermal_synth.cli_args import (
    EXIT_INTERRUPTED,
    non_negative_int,
    number,
    positive_int,
    use_one_line_errors,
)
from thermal_synth.model.config import NAMED_CONFIGS, ModelConfigError, named_config
from thermal_synth.model.files import ModelFileError
from thermal_synth.model.recipe import NORMALISATION_MODES, Normalisation
from thermal_synth.shards import ShardFormatError, ShardReader
from thermal_synth.training.data import DatasetMismatchError
from thermal_synth.training.run import TrainingPlan, train_model
from thermal_synth.training.trainer import TrainConfig

PROG = "thermal-synth train"


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "train",
        help="train a SPADE-SR model on a shard dataset",
        description=(
            "Train the generator and discriminator (GAN phase), then the inversion encoder with the "
            "generator frozen, and write a model directory with a latent bank of the training "
            "appearances."
        ),
    )
    parser.add_argument("--data", type=Path, required=True, help="dataset directory (thermal-synth sim)")
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument("--config", choices=sorted(NAMED_CONFIGS), default="fast", help="model size")
    parser.add_argument("--gan-steps", type=positive_int, default=2000, help="GAN phase steps")
    parser.add_argument("--inversion-steps", type=non_negative_int, default=500, help="encoder phase steps")
    parser.add_argument("--batch-size", type=positive_int, default=TrainConfig.batch_size)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda or cuda:N")
    parser.add_argument(
        "--normalisation",
        choices=NORMALISATION_MODES,
        default=Normalisation.mode,
        help="fixed: absolute Celsius range (radiometric sensors); frame: per-frame min-max",
    )
    parser.add_argument("--low-c", type=number, default=Normalisation.low_c, help="fixed range bottom")
    parser.add_argument("--high-c", type=number, default=Normalisation.high_c, help="fixed range top")
    parser.set_defaults(run=run)
    use_one_line_errors(parser)


def run(args: argparse.Namespace) -> int:
    try:
        heatmap_size = ShardReader(args.data, verify=False).recipe.output_size
        plan = TrainingPlan(
            model=named_config(args.config, heatmap_size),
            gan_steps=args.gan_steps,
            inversion_steps=args.inversion_steps,
            train=TrainConfig(batch_size=args.batch_size, seed=args.seed),
            normalisation=Normalisation(args.normalisation, args.low_c, args.high_c),
            device=args.device,
        )
        bundle = train_model(args.data, args.out, plan)
    except (ShardFormatError, DatasetMismatchError, ModelConfigError, ModelFileError, ValueError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no model was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(
        f"wrote {args.out}: config {args.config}, {bundle.training.gan_steps} GAN + "
        f"{bundle.training.inversion_steps} inversion steps, {len(bundle.bank)} appearances: "
        f"{bundle.bank.describe_names()}"
    )
    return 0
