"""The privacy audit: what trained attackers learn from the published thermal stream.

The paper's privacy argument (Table II) is that an off-the-shelf person detector, fine-tuned on
thermal images, finds people at 160x120 but never at 16x12 or 8x5. That measures how far a
heatmap is from the detector's training data, not what the heatmap reveals. The privacy
literature's attacker records the stream and trains on it; the audit does exactly that, for the
raw frame and for heatmaps of several privacy settings (among them the driver's defaults), for
three questions:

- detection: is someone in front of the sensor? Trained on the `train` sessions, each frame
  paired with the same instant re-rendered without the person; tested on unseen sessions.
- re-identification: who is it? Closed set, across sessions: the attacker has recordings of
  every person from other sessions, and is tested on a session it never saw. Two attackers, one
  per frame and one on the mean of the session's last frames; the row reports the stronger.
- reconstruction: what does the camera image look like? Trained on thermal/RGB pairs of the
  `train` sessions, tested on unseen ones, against the mean training image as the guess that
  uses no thermal at all.

Each number comes with its chance level, so a table row reads "the attacker gets this much more
than guessing". Attackers are lower bounds on what leaks: a better attacker can only do better.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from thermal_synth.common.output_dirs import check_output_dir, staged_directory
from thermal_synth.engine.inference import select_device
from thermal_synth.privacy_audit.attackers import (
    TrainSettings,
    foreground_input,
    predict,
    reconstruct,
    thermal_input,
    train_classifier,
    train_reconstructor,
)
from thermal_synth.privacy_audit.data import (
    DEFAULT_VIEWS,
    AuditData,
    AuditDataError,
    AuditedView,
    attacker_view,
    empty_rooms,
    load_audit_data,
    render_empty_scenes,
    session_windows,
)

if TYPE_CHECKING:
    from thermal_synth.evaluation.fid import InceptionFeatures

FORMAT_NAME = "thermal_synth.privacy_audit"
FORMAT_VERSION = 2
"""2: rows are privacy settings (with the driver's default as `default`), re-identification reports
the temporal attacker and the strongest of both."""
TRAIN_SPLITS = ("train",)
UNSEEN_SPLITS = ("test", "heldout")
CLASSIFIER_BATCH = 64
RECONSTRUCTOR_BATCH = 32
SHEET_EXAMPLES = 6
NOISE_STREAM = 7919
Z_95 = 1.959964


@dataclass(frozen=True)
class AuditConfig:
    views: tuple[AuditedView, ...] = DEFAULT_VIEWS
    steps: int = 300
    """Adam steps per attacker (and per re-identification fold)."""
    temporal_frames: int = 6
    """Consecutive frames the temporal re-identifier averages (under a second of stream)."""
    temporal_steps_factor: int = 2
    """The temporal re-identifier trains this many times `steps`: it has more input to learn from."""
    seed: int = 0
    device: str = "auto"
    max_samples: int = 2000
    """At most this many dataset frames per training and per test set: a uniform random subset."""
    fid: bool = True
    fid_samples: int = 128
    """Frames per FID set (real, mean image, one per resolution). Inception costs 0.1-0.2 s a
    frame on a CPU; FID from few samples is biased upwards, so the values compare within one
    table, not with the paper's 9.6."""
    reid_folds: int = 3
    """Re-identification rotates which session of each person is the unseen one, up to this often."""
    min_heldout_identities: int = 3
    """Re-identify among the held-out identities only when at least this many have two sessions."""

    def __post_init__(self) -> None:
        if not self.views:
            raise ValueError("at least one view is needed")
        labels = [view.label for view in self.views]
        if len(set(labels)) != len(labels):
            raise ValueError(f"view labels must be unique, got {labels}")
        for name in (
            "steps",
            "temporal_frames",
            "temporal_steps_factor",
            "max_samples",
            "reid_folds",
            "min_heldout_identities",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.fid_samples < 2:
            raise ValueError(
                f"fid_samples must be >= 2 (a covariance needs two samples), got {self.fid_samples}"
            )
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["views"] = {view.label: view.to_json() for view in self.views}
        return values


@dataclass
class Context:
    """What every attack needs: the data, the run's settings and a place to report progress."""

    data: AuditData
    config: AuditConfig
    device: str
    log: Callable[[str], None]
    rng: np.random.Generator
    started: float
    sheet: dict[str, Any] = field(default_factory=dict)
    """Reconstruction examples for the contact sheet (not part of audit.json)."""
    noise: np.random.Generator = field(init=False)
    """Draws the published noise of settings with `noise_c`, apart from `rng`, so that adding a
    noisy setting leaves the samples every other row draws unchanged."""

    def __post_init__(self) -> None:
        self.noise = np.random.default_rng([self.config.seed, NOISE_STREAM])

    def settings(self, batch_size: int, salt: int, steps: int | None = None) -> TrainSettings:
        return TrainSettings(
            self.config.steps if steps is None else steps,
            batch_size,
            seed=self.config.seed * 1000 + salt,
            device=self.device,
        )

    def view(self, thermal: np.ndarray, view: AuditedView) -> np.ndarray:
        return attacker_view(thermal, view, self.noise)

    def elapsed_s(self) -> float:
        return round(time.monotonic() - self.started, 1)

    def draw(self, indices: np.ndarray, limit: int | None = None) -> np.ndarray:
        """At most `limit` (default max_samples) of `indices`: a uniform random subset, in order."""
        limit = self.config.max_samples if limit is None else limit
        if len(indices) <= limit:
            return indices
        return np.sort(self.rng.choice(indices, size=limit, replace=False))


def run_audit(
    data_dir: Path, out_dir: Path, config: AuditConfig = AuditConfig(), *, progress: bool = True
) -> dict[str, Any]:
    """Trains and tests every attacker, writes audit.md/json/png and reconstructions.png into
    `out_dir` (all or nothing) and returns what audit.json holds."""
    from thermal_synth.privacy_audit import report

    context = open_context(data_dir, out_dir, config, progress)
    features = _inception(context.device) if config.fid else None
    attacks = {
        "detection": _detection(context),
        "reidentification": _reidentification(context),
        "reconstruction": _reconstruction(context, features),
    }
    if all(attack["status"] == "skipped" for attack in attacks.values()):
        reasons = "; ".join(f"{name}: {attack['reason']}" for name, attack in attacks.items())
        raise AuditDataError(f"nothing can be audited on {data_dir} ({reasons})")
    result = {
        **result_header(context, config, data_dir, FORMAT_NAME, FORMAT_VERSION),
        "threat_model": report.THREAT_MODEL,
        "views": [view.label for view in config.views],
        "attacks": attacks,
        "wall_time_s": context.elapsed_s(),
    }
    with staged_directory(out_dir) as staging:
        report.write_outputs(staging, result, context.sheet)
    context.log(f"wrote {out_dir}")
    return result


def result_header(
    context: Context, config: AuditConfig, data_dir: Path, format_name: str, version: int
) -> dict[str, Any]:
    """What every audit output (plain or sweep) says first: its format and what it audited."""
    return {
        "format": format_name,
        "version": version,
        "dataset": str(data_dir),
        "frames": len(context.data.session),
        "sessions": len(context.data.sessions),
        "config": config.to_json(),
        "device": context.device,
    }


def open_context(
    data_dir: Path, out_dir: Path, config: AuditConfig, progress: bool, name: str = "privacy-audit"
) -> Context:
    """Checks `out_dir` before the minutes of loading and training, then loads the dataset; the
    log lines carry the seconds since this call, for the audit and the sweep alike."""
    check_output_dir(out_dir)
    device = str(select_device(config.device))
    started = time.monotonic()

    def log(message: str) -> None:
        if progress:
            print(f"{name} [{time.monotonic() - started:5.0f} s] {message}", file=sys.stderr, flush=True)

    data = load_audit_data(data_dir)
    log(f"loaded {len(data.session)} frames from {len(data.sessions)} sessions")
    return Context(data, config, device, log, np.random.default_rng(config.seed), started)


def _inception(device: str) -> InceptionFeatures:
    """Loaded before any training, so missing FID weights fail in a second, not after minutes."""
    from thermal_synth.evaluation.fid import FidUnavailable, InceptionFeatures

    try:
        return InceptionFeatures(device)
    except FidUnavailable as exc:
        raise AuditDataError(f"{exc}; or run the audit with --no-fid") from None


def _skipped(reason: str) -> dict[str, Any]:
    return {"status": "skipped", "reason": reason}


def _session_count(data: AuditData, indices: np.ndarray) -> int:
    return len(np.unique(data.session[indices]))


def _detection(context: Context) -> dict[str, Any]:
    data = context.data
    train, test = context.draw(data.in_splits(TRAIN_SPLITS)), context.draw(data.in_splits(UNSEEN_SPLITS))
    if len(train) == 0 or len(test) == 0:
        return _skipped("needs frames in the train split and in test or heldout")
    context.log(f"detection: rendering {len(train) + len(test)} empty-scene frames")
    empty_train, empty_test = render_empty_scenes(data, train), render_empty_scenes(data, test)
    labels_train = np.r_[np.ones(len(train)), np.zeros(len(train))].astype(np.int64)
    labels_test = np.r_[np.ones(len(test)), np.zeros(len(test))].astype(np.int64)
    results = {}
    for index, view in enumerate(context.config.views):
        clock = time.monotonic()
        inputs = thermal_input(
            np.concatenate([context.view(data.thermal[train], view), context.view(empty_train, view)])
        )
        model = train_classifier(inputs, labels_train, 2, context.settings(CLASSIFIER_BATCH, 100 + index))
        tests = thermal_input(
            np.concatenate([context.view(data.thermal[test], view), context.view(empty_test, view)])
        )
        predicted = predict(model, tests, context.device).argmax(1).numpy()
        accuracy = float(np.mean(predicted == labels_test))
        results[view.label] = {
            "accuracy": accuracy,
            "chance": 0.5,
            "missed_people": float(np.mean(predicted[: len(test)] == 0)),
            "false_alarms": float(np.mean(predicted[len(test) :] == 1)),
            "train_samples": len(labels_train),
            "test_samples": len(labels_test),
            "seconds": round(time.monotonic() - clock, 1),
        }
        context.log(f"detection {view.label}: accuracy {accuracy:.3f} (chance 0.5)")
    return {
        "status": "ok",
        "train_sessions": _session_count(data, train),
        "test_sessions": _session_count(data, test),
        "results": results,
    }


@dataclass(frozen=True)
class ReidPlan:
    identities: tuple[str, ...]
    population: str
    folds: tuple[tuple[int, ...], ...]
    """Per fold, the session indices tested (one per identity that has a session left to test)."""
    sessions: tuple[int, ...]
    """Every session of the population."""


def plan_reidentification(data: AuditData, config: AuditConfig, rng: np.random.Generator) -> ReidPlan | str:
    """Which people and which sessions, or the reason there are too few of them.

    The held-out identities (never in the synthesis model's training data) are preferred when
    enough of them have two sessions; otherwise everyone with two sessions takes part."""
    by_identity: dict[str, list[int]] = {}
    for index, record in enumerate(data.sessions):
        if np.any(data.session == index):
            by_identity.setdefault(record.identity, []).append(index)
    repeated = {name: s for name, s in by_identity.items() if len(s) >= 2}
    heldout = {name: s for name, s in repeated.items() if all(data.sessions[i].split == "heldout" for i in s)}
    if len(heldout) >= config.min_heldout_identities:
        chosen, population = heldout, f"the {len(heldout)} held-out identities (never in train or test)"
    elif len(repeated) >= 2:
        chosen = repeated
        population = (
            f"all {len(repeated)} identities with two or more sessions (only {len(heldout)} held-out "
            f"identities have two sessions; {config.min_heldout_identities} are needed to use them alone)"
        )
    else:
        return (
            f"needs at least 2 people with 2 or more sessions each; the dataset has {len(repeated)} "
            f"(sessions per person: {', '.join(f'{n} {len(s)}' for n, s in sorted(by_identity.items()))})"
        )
    identities = tuple(sorted(chosen))
    orders = {name: [int(s) for s in rng.permutation(chosen[name])] for name in identities}
    fold_count = min(config.reid_folds, max(len(s) for s in chosen.values()))
    folds = tuple(tuple(orders[n][f] for n in identities if f < len(orders[n])) for f in range(fold_count))
    return ReidPlan(identities, population, folds, tuple(sorted(s for n in identities for s in chosen[n])))


@dataclass(frozen=True)
class ReidSetup:
    """What every view's re-identification shares: who, which folds, and each session's empty room."""

    plan: ReidPlan
    labels: np.ndarray
    """Per dataset sample, the index of its person in `plan.identities`."""
    rooms: np.ndarray
    folds: tuple[tuple[np.ndarray, np.ndarray], ...]
    """(train rows, test rows) per fold."""

    def summary(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "identities": list(self.plan.identities),
            "population": self.plan.population,
            "folds": len(self.plan.folds),
            "sessions": len(self.plan.sessions),
        }


def setup_reidentification(context: Context) -> ReidSetup | str:
    """The plan, labels, folds and empty rooms, or the reason re-identification cannot run."""
    data = context.data
    plan = plan_reidentification(data, context.config, context.rng)
    if isinstance(plan, str):
        context.log(f"re-identification skipped: {plan}")
        return plan
    folds = tuple(
        (
            context.draw(
                np.flatnonzero(np.isin(data.session, plan.sessions) & ~np.isin(data.session, tested))
            ),
            context.draw(np.flatnonzero(np.isin(data.session, tested))),
        )
        for tested in plan.folds
    )
    labels = np.searchsorted(np.asarray(plan.identities), data.identities())
    return ReidSetup(plan, labels, empty_rooms(data), folds)


def _reidentification(context: Context) -> dict[str, Any]:
    """Both re-identifiers per view; the strongest of them is the row's lower bound on what leaks."""
    setup = setup_reidentification(context)
    if isinstance(setup, str):
        return _skipped(setup)
    results = {
        view.label: reidentify(context, setup, view, index) for index, view in enumerate(context.config.views)
    }
    return {**setup.summary(), "temporal_frames": context.config.temporal_frames, "results": results}


REID_ATTACKERS = ("single-frame", "temporal")


def reidentify(context: Context, setup: ReidSetup, view: AuditedView, index: int) -> dict[str, Any]:
    """The single-frame attacker and the temporal one (the mean of the session's last frames,
    trained longer) on the same folds, through the same training code.

    The temporal attacker averages rather than stacking the frames as channels: a person sits
    still for a second, so the mean keeps their shape while noise drawn fresh per frame shrinks
    by sqrt(K). Stacked as channels (tried first) it scored below the single-frame attacker on
    most settings of the 2000-pair sweep.

    Every frame of the view is rendered once (noise is drawn once per frame, as on the wire), so
    both attackers and every window share the frames an eavesdropper would have recorded."""
    clock = time.monotonic()
    data, config, folds, labels = context.data, context.config, setup.folds, setup.labels
    classes = len(setup.plan.identities)
    windows = {
        fold: (
            session_windows(data, train, config.temporal_frames),
            session_windows(data, test, config.temporal_frames),
        )
        for fold, (train, test) in enumerate(folds)
    }
    needed = np.unique(np.concatenate([w.ravel() for pair in windows.values() for w in pair]))
    position = np.full(len(data.session), -1)
    position[needed] = np.arange(len(needed))
    frames = context.view(data.thermal[needed], view)
    room_views = context.view(setup.rooms, view)

    def inputs(rows: np.ndarray) -> torch.Tensor:
        """(N,) rows -> one frame each; (N, K) windows -> the mean of each window; minus the room."""
        seen = frames[position[rows]]
        if rows.ndim == 2:
            seen, rows = seen.mean(axis=1), rows[:, -1]
        return foreground_input(seen, room_views[data.session[rows]])

    scores = {name: _Votes() for name in REID_ATTACKERS}
    for fold, (train, test) in enumerate(folds):
        train_windows, test_windows = windows[fold]
        for number, (name, train_rows, test_rows, steps) in enumerate(
            [
                ("single-frame", train, test, config.steps),
                ("temporal", train_windows, test_windows, config.steps * config.temporal_steps_factor),
            ]
        ):
            model = train_classifier(
                inputs(train_rows),
                labels[train],
                classes,
                context.settings(CLASSIFIER_BATCH, 200 + 1000 * number + 10 * index + fold, steps),
            )
            predicted = predict(model, inputs(test_rows), context.device).argmax(1).numpy()
            scores[name].add(predicted, labels[test], data.session[test], classes)
    single, temporal = (scores[name].summary() for name in REID_ATTACKERS)
    strongest = max(REID_ATTACKERS, key=lambda name: scores[name].accuracy())
    entry = {
        **single,
        "chance": 1.0 / classes,
        "temporal": {
            **temporal,
            "frames": config.temporal_frames,
            "steps": config.steps * config.temporal_steps_factor,
        },
        "strongest": {"accuracy": scores[strongest].accuracy(), "attacker": strongest},
        "train_samples": max(len(train) for train, _ in folds),
        "test_samples": sum(len(test) for _, test in folds),
        "seconds": round(time.monotonic() - clock, 1),
    }
    context.log(
        f"re-identification {view.label}: single-frame {entry['accuracy']:.3f}, temporal "
        f"{temporal['accuracy']:.3f} (chance {entry['chance']:.3f}), "
        f"{entry['sessions_correct']}/{entry['sessions_tested']} sessions by majority vote"
    )
    return entry


@dataclass
class _Votes:
    """Frame hits and per-session majority votes of one attacker over the folds."""

    correct_frames: int = 0
    tested_frames: int = 0
    sessions: list[bool] = field(default_factory=list)

    def add(self, predicted: np.ndarray, truth: np.ndarray, sessions: np.ndarray, classes: int) -> None:
        self.correct_frames += int(np.sum(predicted == truth))
        self.tested_frames += len(truth)
        for session in np.unique(sessions):
            in_session = sessions == session
            votes = np.bincount(predicted[in_session], minlength=classes)
            self.sessions.append(bool(votes.argmax() == truth[in_session][0]))

    def accuracy(self) -> float:
        return self.correct_frames / self.tested_frames

    def summary(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy(),
            "sessions_correct": int(sum(self.sessions)),
            "sessions_tested": len(self.sessions),
            "session_accuracy_ci95": wilson_interval(sum(self.sessions), len(self.sessions)),
        }


def wilson_interval(successes: int, trials: int) -> list[float]:
    """95 % interval for a proportion: the session is the independent unit, not the frame."""
    if trials == 0:
        return [0.0, 1.0]
    p = successes / trials
    denominator = 1 + Z_95**2 / trials
    centre = (p + Z_95**2 / (2 * trials)) / denominator
    half = Z_95 * math.sqrt(p * (1 - p) / trials + Z_95**2 / (4 * trials**2)) / denominator
    return [max(0.0, centre - half), min(1.0, centre + half)]


def _reconstruction(context: Context, features: InceptionFeatures | None) -> dict[str, Any]:
    data = context.data
    train, test = context.draw(data.in_splits(TRAIN_SPLITS)), context.draw(data.in_splits(UNSEEN_SPLITS))
    if len(train) == 0 or len(test) == 0:
        return _skipped("needs frames in the train split and in test or heldout")
    real = data.rgb[test]
    mean_image = data.rgb[train].mean(axis=0, dtype=np.float64) / 255.0
    baseline = {
        "mae": float(np.mean([np.abs(frame / 255.0 - mean_image).mean() for frame in real])),
        "fid": None,
    }
    fid_rows = context.draw(np.arange(len(test)), context.config.fid_samples)
    real_features = None
    if features is not None and len(fid_rows) >= 2:
        real_features = features(real[fid_rows])
        constant = features(np.round(mean_image * 255.0).astype(np.uint8)[None])
        baseline["fid"] = _frechet(np.repeat(constant, len(fid_rows), axis=0), real_features)
    examples = _sheet_examples(data, test, context.rng)
    context.sheet.update(
        real=real[examples],
        captions=[_describe(data, test[i]) for i in examples],
        reconstructions={},
        views={},
    )
    results = {}
    for index, view in enumerate(context.config.views):
        clock = time.monotonic()
        model = train_reconstructor(
            thermal_input(context.view(data.thermal[train], view)),
            data.rgb[train],
            context.settings(RECONSTRUCTOR_BATCH, 300 + index),
        )
        views = context.view(data.thermal[test], view)
        images, mae = reconstruct(model, thermal_input(views), real, context.device)
        entry = {
            "mae": mae,
            "fid": _frechet(features(images[fid_rows]), real_features) if real_features is not None else None,
            "train_samples": len(train),
            "test_samples": len(test),
            "fid_samples": len(fid_rows) if real_features is not None else 0,
            "seconds": round(time.monotonic() - clock, 1),
        }
        results[view.label] = entry
        context.sheet["reconstructions"][view.label] = images[examples]
        context.sheet["views"][view.label] = views[examples]
        fid_text = f", FID {entry['fid']:.1f}" if entry["fid"] is not None else ""
        context.log(
            f"reconstruction {view.label}: MAE {entry['mae']:.4f} "
            f"(mean image {baseline['mae']:.4f}){fid_text}"
        )
    return {
        "status": "ok",
        "train_sessions": _session_count(data, train),
        "test_sessions": _session_count(data, test),
        "baseline": baseline,
        "results": results,
    }


def _frechet(features_a: np.ndarray, features_b: np.ndarray) -> float:
    from thermal_synth.evaluation.fid import frechet_distance

    return frechet_distance(features_a, features_b)


def _describe(data: AuditData, index: int) -> str:
    record = data.sessions[data.session[index]]
    return f"{record.identity}, {record.scene}"


def _sheet_examples(data: AuditData, test: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Positions in `test` of a few frames, each from a different session where there are enough."""
    sessions = np.unique(data.session[test])
    chosen = rng.permutation(sessions)[:SHEET_EXAMPLES]
    picks = [int(rng.choice(np.flatnonzero(data.session[test] == s))) for s in chosen]
    remaining = np.setdiff1d(np.arange(len(test)), picks)
    extra = rng.permutation(remaining)[: max(0, SHEET_EXAMPLES - len(picks))]
    return np.sort(np.r_[picks, extra].astype(np.int64))
