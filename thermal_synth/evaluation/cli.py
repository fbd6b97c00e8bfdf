"""`thermal-synth eval`: a trained model and a shard dataset in, a report directory out."""

from __future__ import annotations

import argparse
from pathlib import Path

from thermal_synth.common.cli_args import (
    add_transform_arguments,
    asked_transforms,
    non_negative_int,
    positive_int,
    run_writing_command,
    use_one_line_errors,
)
from thermal_synth.common.output_dirs import OutputDirError
from thermal_synth.dataset.pairs import DatasetMismatchError
from thermal_synth.dataset.shards import SPLITS, ShardFormatError
from thermal_synth.engine.inference import DEVICE_AUTO, PRECISION_AUTO, PRECISIONS
from thermal_synth.evaluation.fid import FidUnavailable
from thermal_synth.evaluation.report import format_summary
from thermal_synth.evaluation.run import EvalConfig, evaluate
from thermal_synth.model.files import ModelFileError

PROG = "thermal-synth eval"


def add_parser(commands, name: str, help: str) -> None:
    parser = commands.add_parser(
        name,
        help=help,
        description=(
            "Measure a trained model on one split of a shard dataset: FID of random samples and of "
            "reconstructions against the real frames, reconstruction MAE, silhouette IoU against "
            "the true person masks, how well a code keeps its appearance across poses, and the "
            "product path: each session painted from a code of its first frame, against pasting that "
            "photo. Writes report.md, metrics.json and figures into a new directory."
        ),
    )
    parser.add_argument("--model", default="", help="model directory (default: the packaged default model)")
    parser.add_argument("--data", type=Path, required=True, help="shard dataset directory")
    parser.add_argument("--out", type=Path, required=True, help="report directory (absent or empty)")
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default=EvalConfig.split,
        help="split to evaluate on (the paper's FID used train; test is the honest default)",
    )
    parser.add_argument(
        "--max-samples",
        type=positive_int,
        default=EvalConfig.max_samples,
        help="evaluate at most this many pairs, evenly spread over the split",
    )
    parser.add_argument("--batch-size", type=positive_int, default=EvalConfig.batch_size)
    parser.add_argument("--device", default=DEVICE_AUTO, help="auto (GPU if present), cpu, cuda or cuda:N")
    parser.add_argument(
        "--precision",
        choices=(PRECISION_AUTO, *PRECISIONS),
        default=EvalConfig.precision,
        help="what the generator paints in, as the synthesis node's precision parameter "
        f"(default {EvalConfig.precision}; the node's default, auto, is bf16 where the device has it)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=EvalConfig.seed, help="seed of the random z")
    parser.add_argument(
        "--no-fid", action="store_true", help="skip FID (the Inception pass costs ~0.2 s per image on a CPU)"
    )
    add_transform_arguments(
        parser,
        "published transforms",
        "paint heatmaps made as the driver publishes them with these parameters (docs/privacy.md), "
        "on the model's grid, instead of the dataset's; an option not given keeps the model's value",
        None,
    )
    parser.set_defaults(run=run)
    use_one_line_errors(parser)


def run(args: argparse.Namespace) -> int:
    def evaluate_as_asked() -> dict:
        config = EvalConfig(
            split=args.split,
            max_samples=args.max_samples,
            batch_size=args.batch_size,
            device=args.device,
            precision=args.precision,
            seed=args.seed,
            fid=not args.no_fid,
            transforms=asked_transforms(args),
        )
        return evaluate(args.model, args.data, args.out, config, progress=True)

    usage_errors = (
        ShardFormatError,
        DatasetMismatchError,
        ModelFileError,
        OutputDirError,
        FidUnavailable,
        ValueError,
    )
    metrics = run_writing_command(PROG, evaluate_as_asked, usage_errors)
    if isinstance(metrics, int):
        return metrics
    print(format_summary(metrics, args.out))
    return 0
