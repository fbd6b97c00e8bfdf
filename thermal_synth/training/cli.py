"""`thermal-synth train`: a shard dataset in, a model directory the node can load out.

Settings come from `config/train_<name>.yaml` (`--config`), any of them overridable by a flag.
The run directory (default `<out>.run`) holds the logs, sample grids, curves and checkpoints;
`--resume` continues the run it holds exactly, `--max-minutes` stops it with a checkpoint.
Multi-GPU: `torchrun --nproc-per-node N -m thermal_synth.cli train ...`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from pathlib import Path

from thermal_synth.common.cli_args import EXIT_INTERRUPTED, number, use_one_line_errors
from thermal_synth.common.json_files import read_json, write_text_atomic
from thermal_synth.dataset.pairs import DatasetMismatchError
from thermal_synth.dataset.shards import ShardFormatError, ShardReader
from thermal_synth.engine.inference import emulates_bf16, select_device, select_precision
from thermal_synth.model.config import ModelConfigError
from thermal_synth.model.files import ModelFileError
from thermal_synth.training.checkpoints import CheckpointError, list_checkpoints
from thermal_synth.training.run import (
    CHECKPOINTS_DIRECTORY,
    RunDirectoryError,
    Schedule,
    TrainingDiverged,
    TrainingOutcome,
    TrainingPlan,
    train_model,
)
from thermal_synth.training.settings import (
    RESUMABLE_CHANGES,
    SettingsError,
    TrainSettings,
    add_setting_flags,
    available_settings,
    load_settings,
    settings_from_mapping,
    with_flags,
)

PROG = "thermal-synth train"
SETTINGS_FILE = "settings.json"
EVALUATION_DIRECTORY = "eval"
EXIT_DIVERGED = 3


def add_parser(commands, name: str, help: str) -> None:
    parser = commands.add_parser(
        name,
        help=help,
        description=(
            "Train the generator and discriminator (GAN phase), then the inversion encoder with the "
            "generator frozen, and write a model directory with a latent bank of the training "
            "appearances. Settings: --config names config/train_<name>.yaml "
            f"({', '.join(available_settings())}) or a YAML path; every setting has a flag."
        ),
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="dataset directory (thermal-synth sim/dataset)"
    )
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument("--config", default="fast", help="settings: a name under config/ or a YAML file")
    parser.add_argument("--run-dir", type=Path, help="logs, samples, checkpoints (default: OUT.run)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir exactly")
    parser.add_argument(
        "--init-from",
        type=Path,
        metavar="RUN_CHECKPOINT_OR_MODEL",
        help="start a new run from another run's last checkpoint (fine-tuning with other settings), "
        "or from a trained model directory's generator and encoder ('default': the packaged model)",
    )
    parser.add_argument(
        "--max-minutes", type=number, default=math.inf, help="stop with a checkpoint after this long"
    )
    add_setting_flags(parser)
    parser.set_defaults(run=run)
    use_one_line_errors(parser)


def run_directory(args: argparse.Namespace) -> Path:
    return args.run_dir or args.out.with_name(args.out.name + ".run")


def resolve_settings(args: argparse.Namespace, directory: Path) -> TrainSettings:
    """The file's settings with the flags applied; a resumed run starts from the run's own."""
    if not args.resume:
        return with_flags(load_settings(args.config), args)
    path = directory / SETTINGS_FILE
    saved = settings_from_mapping(
        read_json(path, SettingsError, missing="missing (not a run directory?)"), str(path)
    )
    settings = with_flags(saved, args)
    forbidden = sorted(set(settings.changes_from(saved)) - RESUMABLE_CHANGES)
    if forbidden:
        raise SettingsError(
            f"a resumed run cannot change {forbidden} (they change what is computed); "
            f"it may change {sorted(RESUMABLE_CHANGES)}"
        )
    return settings


def make_plan(settings: TrainSettings, heatmap_size: tuple[int, int], max_minutes: float) -> TrainingPlan:
    precision = select_precision(settings.precision, select_device(settings.device))
    return TrainingPlan(
        model=settings.model_config(heatmap_size),
        gan_steps=settings.gan_steps,
        inversion_steps=settings.inversion_steps,
        recipe=settings.recipe,
        reconstruction_steps=settings.reconstruction_steps,
        train=settings.train_config(precision),
        normalisation=settings.normalisation_recipe(),
        device=settings.device,
        distillation=settings.distillation(),
        schedule=Schedule(
            log_every=settings.log_every,
            sample_every=settings.sample_every,
            checkpoint_every=settings.checkpoint_every,
            keep_checkpoints=settings.keep_checkpoints,
            max_seconds=max_minutes * 60.0,
        ),
    )


def run(args: argparse.Namespace) -> int:
    directory = run_directory(args)
    try:
        if not args.max_minutes > 0:
            raise ValueError(f"--max-minutes must be > 0, got {args.max_minutes}")
        settings = resolve_settings(args, directory)
        heatmap_size = ShardReader(args.data, verify=False).recipe.output_size
        plan = make_plan(settings, heatmap_size, args.max_minutes)
        if _main_process():
            device = select_device(plan.device)
            print(f"{PROG}: training in {plan.train.precision} on {device.type}")
            if plan.train.precision == "bf16" and emulates_bf16(device):
                print(
                    f"{PROG}: warning: this CPU has no native bf16 (AMX or AVX512-BF16), so bf16 steps "
                    "run slower than fp32 here; pass --precision fp32",
                    file=sys.stderr,
                )
            if not args.resume and directory.exists() and any(directory.iterdir()):
                raise RunDirectoryError(
                    f"run directory {directory} is not empty; pass --resume to continue it or --run-dir"
                )
            directory.mkdir(parents=True, exist_ok=True)
            write_text_atomic(directory / SETTINGS_FILE, json.dumps(settings.to_json(), indent=2) + "\n")
        outcome = train_model(
            args.data, args.out, plan, run_directory=directory, resume=args.resume, init_from=args.init_from
        )
    except TrainingDiverged as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_DIVERGED
    except (
        ShardFormatError,
        DatasetMismatchError,
        ModelConfigError,
        ModelFileError,
        CheckpointError,
        SettingsError,
        ValueError,
        FileExistsError,
    ) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no model was written. {_resume_hint(directory, args)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not _main_process():
        return 0
    print(_summary(outcome, args, directory))
    if outcome.bundle is not None and settings.eval_samples > 0:
        return _evaluate(args, settings, directory)
    return 0


def _evaluate(args: argparse.Namespace, settings: TrainSettings, directory: Path) -> int:
    """The held-out evaluation every model directory carries (metrics.json beside the weights)."""
    from thermal_synth.evaluation.fid import FidUnavailable
    from thermal_synth.evaluation.report import METRICS_FILE, format_summary
    from thermal_synth.evaluation.run import EvalConfig, EvaluationError, evaluate

    if not ShardReader(args.data, verify=False).shard_entries("test"):
        print("no held-out (test) split in the dataset: the model carries no metrics.json")
        return 0
    report = directory / EVALUATION_DIRECTORY
    if report.exists():
        shutil.rmtree(report)
    config = EvalConfig(max_samples=settings.eval_samples, device=settings.device, seed=settings.seed)
    try:
        metrics = evaluate(args.out, args.data, report, config, progress=True)
    except (EvaluationError, FidUnavailable, DatasetMismatchError) as error:
        print(f"{PROG}: error: the model was written, but its evaluation failed: {error}", file=sys.stderr)
        return 1
    shutil.copyfile(report / METRICS_FILE, args.out / METRICS_FILE)
    print(format_summary(metrics, report))
    return 0


def _main_process() -> bool:
    """Under torchrun only rank 0 checks and writes the run directory and reports."""
    return os.environ.get("RANK", "0") == "0"


def _resume_hint(directory: Path, args: argparse.Namespace) -> str:
    checkpoints = list_checkpoints(directory / CHECKPOINTS_DIRECTORY)
    if not checkpoints:
        return "No checkpoint was written yet."
    return (
        f"The last checkpoint is step {checkpoints[-1].step}; continue with: "
        f"thermal-synth train --data {args.data} --out {args.out} --run-dir {directory} --resume"
    )


def _summary(outcome: TrainingOutcome, args: argparse.Namespace, directory: Path) -> str:
    if outcome.bundle is None:
        return f"paused at step {outcome.step} (--max-minutes). {_resume_hint(directory, args)}"
    bundle = outcome.bundle
    distillation = bundle.training.details.get("distillation")
    teacher = f" distilled from {distillation['teacher']}," if distillation else ""
    return (
        f"wrote {args.out}: config {args.config},{teacher} {bundle.training.steps_text()}, "
        f"{len(bundle.bank)} appearances: "
        f"{bundle.bank.describe_names()}; logs, samples and checkpoints in {directory}"
    )
