"""A whole training run from a shard dataset to a model directory (the loop around the trainer).

With a run directory the loop also logs metrics, draws sample grids and plots, and writes
checkpoints that resume exactly: the same weights as a run that was never interrupted. That is
what lets a model train in pieces on a GPU lent for 25 minutes at a time.

    RUN/metrics.jsonl, metrics.csv, curves.png    the losses, it/s and their curves
    RUN/samples/<phase>_<step>.png                 fixed heatmaps x fixed codes, EMA generator
    RUN/checkpoints/step_<step>/                   see checkpoints.py
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from thermal_synth.appearances.sessions import bank_from_sessions
from thermal_synth.common.json_files import file_sha256
from thermal_synth.dataset.pairs import DatasetMismatchError, PairTensors, load_pairs
from thermal_synth.dataset.shards import MANIFEST_NAME, ShardReader
from thermal_synth.engine.inference import DEVICE_AUTO
from thermal_synth.model.bank import LatentBank
from thermal_synth.model.config import ModelConfig, without_room
from thermal_synth.model.files import (
    DEFAULT_MODEL,
    MODEL_JSON,
    PACKAGED_MODEL_NAME,
    WEIGHTS_FILE,
    ModelBundle,
    load_trained_model,
    save_model,
)
from thermal_synth.model.recipe import Normalisation, Preprocessing
from thermal_synth.training.checkpoints import (
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from thermal_synth.training.cpu_recipe import CpuRecipeTrainer, PairBatch, ReferenceSampler
from thermal_synth.training.distillation import DistillationConfig, Teacher
from thermal_synth.training.distributed import Workers, start_workers, stop_workers
from thermal_synth.training.run_log import LossWindow, RunLog
from thermal_synth.training.samples import SampleInputs, write_sample_grid
from thermal_synth.training.trainer import SpadeSRTrainer, TrainConfig

CHECKPOINTS_DIRECTORY = "checkpoints"
NOT_IN_FINGERPRINT = ("precision", "compile")
"""Settings a resumed run may change without computing something else than the run it continues."""


@dataclass(frozen=True)
class Schedule:
    log_every: int = 10
    sample_every: int = 250
    checkpoint_every: int = 250
    keep_checkpoints: int = 3
    max_seconds: float = math.inf
    """Stop with a checkpoint once this much time has passed (a GPU lent for 25 minutes)."""


@dataclass(frozen=True)
class TrainingPlan:
    model: ModelConfig
    gan_steps: int
    inversion_steps: int
    train: TrainConfig = field(default_factory=TrainConfig)
    recipe: str = "gan"
    """gan: SpadeSRTrainer's GAN + inversion phases; cpu: CpuRecipeTrainer's reconstruction +
    adversarial phases (`gan_steps` of them)."""
    reconstruction_steps: int = 0
    normalisation: Normalisation = field(default_factory=Normalisation)
    device: str = DEVICE_AUTO
    schedule: Schedule = field(default_factory=Schedule)
    distillation: DistillationConfig | None = None
    """None: ordinary training; else the student learns from a teacher model (distillation.py)."""

    def fingerprint(self) -> dict[str, Any]:
        """What must match for a checkpoint to continue this run (step counts may grow).

        The distillation section exists only when distilling, so checkpoints of ordinary runs
        written before distillation existed still resume."""
        train = _train_fingerprint(self.train)
        normalisation = asdict(self.normalisation)
        fingerprint = {"model": self.model.to_json(), "train": train, "normalisation": normalisation}
        if self.recipe != "gan":
            fingerprint["recipe"] = {"name": self.recipe}
        if self.distillation is not None:
            fingerprint["distillation"] = self.distillation.fingerprint()
        return fingerprint


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the message names the step and the last good checkpoint."""


class RunDirectoryError(ValueError):
    """A run directory that cannot start or resume this run; the message says why."""


@dataclass
class TrainingOutcome:
    step: int
    bundle: ModelBundle | None = None
    """None when the run paused (time budget) before its last step."""
    checkpoint: Path | None = None


def train_model(
    data: Path,
    out: Path,
    plan: TrainingPlan,
    *,
    run_directory: Path | None = None,
    resume: bool = False,
    init_from: Path | None = None,
    progress: bool = True,
) -> TrainingOutcome:
    """`init_from`: a run directory (its last checkpoint) or one checkpoint directory whose
    networks, optimisers and step counts a *new* run starts from, with settings of its own
    (fine-tuning: the same model config and heatmap normalisation, other losses or data)."""
    if resume and init_from is not None:
        raise RunDirectoryError("--resume continues a run; --init-from starts a new one: pass one of them")
    workers, device = start_workers(plan.device)
    try:
        run = _Run(Path(data), Path(out), plan, workers=workers, device=device, run_directory=run_directory)
        if init_from is not None:
            run.initialise_from(Path(init_from))
        return run.train(resume, progress)
    finally:
        stop_workers(workers)


class _Run:
    def __init__(
        self,
        data: Path,
        out: Path,
        plan: TrainingPlan,
        *,
        workers: Workers,
        device: torch.device,
        run_directory: Path | None,
    ) -> None:
        self.data, self.out, self.plan, self.workers = data, out, plan, workers
        self.reader = ShardReader(data)
        if self.reader.recipe.output_size != plan.model.heatmap_size:
            raise DatasetMismatchError(
                f"{data}: heatmaps are {self.reader.recipe.output_size}, "
                f"the model config takes {plan.model.heatmap_size}"
            )
        self.preprocessing = Preprocessing(self.reader.recipe, plan.normalisation)
        self.teacher = (
            None
            if plan.distillation is None
            else Teacher.load(plan.distillation, plan.model, self.preprocessing, device)
        )
        self.pairs = load_pairs(self.reader, "train", self.preprocessing)
        if len(self.pairs) == 0:
            raise DatasetMismatchError(f"{data}: the train split is empty")
        if plan.train.batch_size % workers.world_size:
            raise ValueError(
                f"batch_size {plan.train.batch_size} does not split over {workers.world_size} processes"
            )
        self.batch_size = min(plan.train.batch_size // workers.world_size, len(self.pairs))
        if self.batch_size < 2:
            raise ValueError(
                f"each training process needs a batch of at least 2 pairs (BatchNorm), got "
                f"{self.batch_size} (batch_size {plan.train.batch_size}, {workers.world_size} "
                f"processes, {len(self.pairs)} training pairs)"
            )
        if plan.recipe == "cpu":
            if workers.world_size > 1:
                raise ValueError("the cpu recipe runs in one process (it is the recipe for no GPU)")
            self.trainer: SpadeSRTrainer | CpuRecipeTrainer = CpuRecipeTrainer(
                plan.model, self.preprocessing, plan.train, device
            )
            self.references = ReferenceSampler(
                self.pairs, plan.train.reference_candidates, plan.train.swap_fraction
            )
        else:
            self.trainer = SpadeSRTrainer(
                plan.model,
                self.preprocessing,
                plan.train,
                device,
                rank=workers.rank,
                gradient_sync=workers.average_gradients,
                teacher=self.teacher,
            )
        self.order = torch.Generator().manual_seed(plan.train.seed + 7919 * workers.rank)
        self.dataset_sha256 = file_sha256(self.reader.directory / MANIFEST_NAME)
        self.directory = run_directory
        self.log = RunLog(run_directory) if run_directory is not None else None
        self.last_checkpoint: Path | None = None
        self.initialised_from: dict[str, Any] | None = None
        self.samples = SampleInputs.pick(self._sample_source(), plan.model, plan.train.seed)
        self.started = time.monotonic()

    @property
    def step(self) -> int:
        return self.trainer.gan_steps + self.trainer.inversion_steps + self._reconstruction_steps

    @property
    def _reconstruction_steps(self) -> int:
        return getattr(self.trainer, "reconstruction_steps", 0)

    @property
    def total_steps(self) -> int:
        return self.plan.reconstruction_steps + self.plan.gan_steps + self.plan.inversion_steps

    def _phases(self) -> tuple[tuple[str, int, int, Callable[[Tensor], dict[str, float]]], ...]:
        trainer, plan, device = self.trainer, self.plan, self.trainer.device
        if isinstance(trainer, CpuRecipeTrainer):

            def sampled(step: Callable[[PairBatch], dict[str, float]]) -> Callable[[Tensor], dict]:
                return lambda indices: step(self.references.batch(indices, self.order, device))

            return (
                ("reconstruction", trainer.reconstruction_steps, plan.reconstruction_steps,
                 sampled(trainer.reconstruction_step)),
                ("adversarial", trainer.gan_steps, plan.gan_steps, sampled(trainer.adversarial_step)),
            )  # fmt: skip

        def paired(step: Callable[..., dict[str, float]]) -> Callable[[Tensor], dict[str, float]]:
            return lambda indices: step(*self.pairs.batch(indices, device))

        return (
            ("gan", trainer.gan_steps, plan.gan_steps, paired(trainer.gan_step)),
            ("inversion", trainer.inversion_steps, plan.inversion_steps, paired(trainer.inversion_step)),
        )

    @property
    def checkpoints(self) -> Path | None:
        return None if self.directory is None else self.directory / CHECKPOINTS_DIRECTORY

    def train(self, resume: bool, progress: bool) -> TrainingOutcome:
        self._prepare_directory(resume)
        self.started = time.monotonic()
        show = progress and self.workers.is_main
        for phase, done, total, step_function in self._phases():
            with tqdm(
                total=total, initial=min(done, total), desc=phase, unit="step", disable=not show
            ) as bar:
                if not self._run_phase(phase, done, total, step_function, bar):
                    return TrainingOutcome(self.step, checkpoint=self.last_checkpoint)
        return TrainingOutcome(self.step, self._finish(), self.last_checkpoint)

    def _run_phase(
        self,
        phase: str,
        done: int,
        total: int,
        step_function: Callable[[Tensor], dict[str, float]],
        bar: tqdm,
    ) -> bool:
        """Steps `done + 1 .. total` of a phase; False when the time budget ran out first."""
        schedule = self.plan.schedule
        interval_start, interval_steps, window = time.monotonic(), 0, LossWindow()
        for phase_step in range(done + 1, total + 1):
            indices = torch.randint(len(self.pairs), (self.batch_size,), generator=self.order)
            losses = step_function(indices)
            self._check_finite(phase, losses)
            window.add(losses)
            bar.update()
            interval_steps += 1
            if phase_step % schedule.log_every == 0 or phase_step == total:
                rate = interval_steps / max(time.monotonic() - interval_start, 1e-9)
                means = window.take()
                bar.set_postfix({k: f"{v:.3f}" for k, v in means.items()}, refresh=False)
                self._log(phase, phase_step, means, rate, time.monotonic() - self.started)
                interval_start, interval_steps = time.monotonic(), 0
            if (
                self.log is not None
                and self.workers.is_main
                and (phase_step % schedule.sample_every == 0 or phase_step == total)
            ):
                write_sample_grid(self.directory, phase, self.step, self.trainer.ema, self.samples)
            elapsed = time.monotonic() - self.started
            time_up = not self.workers.all_agree(elapsed < schedule.max_seconds)
            if phase_step % schedule.checkpoint_every == 0 or phase_step == total or time_up:
                self._checkpoint()
            if time_up and self.step < self.total_steps:
                return False
        return True

    def _sample_source(self) -> PairTensors:
        test = load_pairs(self.reader, "test", self.preprocessing)
        return test if len(test) else self.pairs

    def _prepare_directory(self, resume: bool) -> None:
        if self.directory is None:
            if resume:
                raise RunDirectoryError("resuming needs the run directory that holds the checkpoints")
            return
        existing = list_checkpoints(self.checkpoints)
        if resume:
            if not existing:
                raise RunDirectoryError(f"{self.directory}: no checkpoint to resume from")
            self._restore(existing[-1].directory)
            if self.workers.is_main:
                self.log.truncate_after(self.step)
            return
        if existing:
            raise RunDirectoryError(
                f"{self.directory} already holds checkpoints (last: step {existing[-1].step}); "
                "pass --resume to continue that run or choose another --run-dir"
            )
        if self.workers.is_main:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.log.truncate_after(-1)

    def _identity(self) -> dict[str, Any]:
        identity = {
            "plan": self.plan.fingerprint(),
            "dataset_sha256": self.dataset_sha256,
            "world_size": self.workers.world_size,
        }
        if self.teacher is not None:
            identity["teacher_sha256"] = self.teacher.weights_sha256
        return identity

    def _restore(self, directory: Path) -> None:
        state = load_checkpoint(directory)
        identity = _with_newer_defaults(state.get("identity") if isinstance(state, dict) else None)
        if identity != self._identity():
            raise CheckpointError(f"{directory}: {_identity_difference(identity, self._identity())}")
        try:
            self.trainer.load_state_dict(state["trainer"])
            self.trainer.generator_rng.set_state(state["rng"]["generator"][self.workers.rank])
            self.order.set_state(state["rng"]["order"][self.workers.rank])
        except (KeyError, IndexError, TypeError, RuntimeError, ValueError) as error:
            raise CheckpointError(f"{directory}: does not fit this run ({error})") from None
        self.last_checkpoint = directory

    def initialise_from(self, source: Path) -> None:
        """Networks, optimiser moments and step counts from another run's checkpoint; learning
        rates, losses and random generators (batches, noise) are this run's own. A trained model
        directory gives its generator and encoder only (all it holds)."""
        if str(source) == PACKAGED_MODEL_NAME and not source.exists():
            source = DEFAULT_MODEL
        if (source / MODEL_JSON).is_file():
            self._initialise_from_model(source)
            return
        found = list_checkpoints(source / CHECKPOINTS_DIRECTORY) or list_checkpoints(source)
        directory = found[-1].directory if found else source
        state = load_checkpoint(directory)
        plan = (state.get("identity") or {}).get("plan") or {}
        wanted = self.plan.fingerprint()
        differing = [key for key in ("model", "normalisation", "recipe") if plan.get(key) != wanted.get(key)]
        if differing:
            raise CheckpointError(
                f"{directory}: cannot start this run: its {' and '.join(differing)} differ from this run's"
            )
        try:
            self.trainer.adopt_state_dict(state["trainer"])
        except (KeyError, TypeError, RuntimeError, ValueError) as error:
            raise CheckpointError(f"{directory}: does not fit this run ({error})") from None
        self.initialised_from = {"checkpoint": str(directory), "step": self.step}

    def _initialise_from_model(self, directory: Path) -> None:
        """Fine-tuning a shipped model, e.g. on a user's own recordings or on heatmaps the driver
        publishes with other privacy settings: its grid and normalisation must be this run's, the
        transforms on that grid may differ (that is what such a run teaches it)."""
        bundle = load_trained_model(directory)
        if bundle.config not in (self.plan.model, without_room(self.plan.model)):
            raise CheckpointError(
                f"{directory}: cannot start this run: its model config differs from this run's"
            )
        if bundle.preprocessing.normalisation != self.plan.normalisation:
            raise CheckpointError(
                f"{directory}: cannot start this run: its heatmap normalisation differs from this run's"
            )
        if bundle.preprocessing.heatmap.grid != self.preprocessing.heatmap.grid:
            raise CheckpointError(
                f"{directory}: cannot start this run: the model reads {bundle.preprocessing.heatmap.label} "
                f"heatmaps, the dataset holds {self.preprocessing.heatmap.label} (another grid or blur)"
            )
        self.trainer.adopt_painter(bundle.networks)
        self.initialised_from = {
            "model": str(directory),
            "weights_sha256": file_sha256(directory / WEIGHTS_FILE),
            "heatmaps": bundle.preprocessing.heatmap.label,
        }

    def _checkpoint(self) -> None:
        if self.checkpoints is None:
            return
        self.workers.check_in_sync(self.trainer.networks)
        generator_states = self.workers.gather(self.trainer.generator_rng.get_state())
        order_states = self.workers.gather(self.order.get_state())
        if self.workers.is_main:
            state = {
                "identity": self._identity(),
                "trainer": self.trainer.state_dict(),
                "rng": {"generator": generator_states, "order": order_states},
            }
            self.last_checkpoint = save_checkpoint(
                self.checkpoints, self.step, state, keep=self.plan.schedule.keep_checkpoints
            )
            self.log.plot()
        self.workers.barrier()

    def _check_finite(self, phase: str, losses: dict[str, float]) -> None:
        bad = {name: value for name, value in losses.items() if not math.isfinite(value)}
        if self.workers.all_agree(not bad):
            return
        if self.last_checkpoint:
            last = f"the last good checkpoint is kept at {self.last_checkpoint}"
        else:
            last = "no checkpoint was written before it"
        raise TrainingDiverged(
            f"{phase} step {self.step}: non-finite losses {bad or '(on another process)'}; {last}. "
            "Lower the learning rates or raise r1_weight, then start again or --resume"
        )

    def _log(
        self, phase: str, phase_step: int, losses: dict[str, float], rate: float, elapsed: float
    ) -> None:
        if self.log is None or not self.workers.is_main:
            return
        record = {
            "step": self.step,
            "phase": phase,
            "phase_step": phase_step,
            "elapsed_s": round(elapsed, 3),
            "steps_per_s": round(rate, 4),
            **losses,
        }
        self.log.append(record)

    def _finish(self) -> ModelBundle | None:
        if not self.workers.is_main:
            return None
        details: dict[str, Any] = {"dataset_sha256": self.dataset_sha256, "train": asdict(self.plan.train)}
        if self.initialised_from is not None:
            details["initialised_from"] = self.initialised_from
        if self.teacher is not None:
            details["distillation"] = self.teacher.record()
        bundle = self.trainer.bundle(
            LatentBank.for_model(self.plan.model), dataset=str(self.data), details=details
        )
        bundle.bank = self._bank(bundle)
        save_model(self.out, bundle)
        if self.log is not None:
            self.log.plot()
        return bundle

    def _bank(self, bundle: ModelBundle) -> LatentBank:
        """The appearances the model ships with: the training sessions' codes, or the teacher's bank.

        A distilled student is taught to paint, for the same z, what the teacher paints, so the
        teacher's codes stand for the same appearances in the student; they come from an encoder
        that is at least as good, and they keep what a user did to that bank (codes added from
        their own photos with `thermal-synth codes add`, names they chose), which codes re-made
        from the training sessions with the student's own encoder would lose.
        """
        if self.teacher is not None:
            return self.teacher.bank
        return bank_from_sessions(bundle, self.pairs, self.reader.sessions)


def _with_newer_defaults(identity: Any) -> Any:
    """A checkpoint's identity with the training settings added since it was written at their
    defaults: a setting is added with a default that computes what the code did before it."""
    plan = identity.get("plan") if isinstance(identity, dict) else None
    if not isinstance(plan, dict) or not isinstance(plan.get("train"), dict):
        return identity
    return identity | {"plan": plan | {"train": _train_fingerprint(TrainConfig()) | plan["train"]}}


def _train_fingerprint(train: TrainConfig) -> dict[str, Any]:
    return {k: v for k, v in asdict(train).items() if k not in NOT_IN_FINGERPRINT}


def _identity_difference(found: Any, expected: dict[str, Any]) -> str:
    if not isinstance(found, dict):
        return "not a checkpoint of a training run"
    if found.get("dataset_sha256") != expected["dataset_sha256"]:
        return "was written for another dataset (manifest checksum differs)"
    found_teacher, teacher = found.get("teacher_sha256"), expected.get("teacher_sha256")
    if found_teacher != teacher:
        if teacher is None:
            return "was distilled from a teacher, this run has none"
        if found_teacher is None:
            return "was written without a teacher, this run distils from one"
        return "was distilled from another teacher (the teacher's weights sha256 differs)"
    if found.get("world_size") != expected["world_size"]:
        return f"was written by {found.get('world_size')} processes, this run has {expected['world_size']}"
    plan, wanted = found.get("plan") or {}, expected["plan"]
    differing = [
        f"{section}.{key}"
        for section in wanted
        for key in set(wanted[section]) | set(plan.get(section) or {})
        if (plan.get(section) or {}).get(key) != wanted[section].get(key)
    ]
    return f"was written with other settings: {', '.join(sorted(differing)) or 'unknown'}"
