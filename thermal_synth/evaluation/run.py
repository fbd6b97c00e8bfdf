"""One evaluation of a trained model on one split of a shard dataset, and its output directory.

`measure` computes everything in memory (the numbers and the pictures' pixels); `evaluate`
also writes report.md, metrics.json and the PNGs. Both take the model and dataset by path, so
the trainer, the release script and the command line evaluate the same way.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from thermal_msgs.privacy import GRID_TRANSFORMS
from thermal_synth.appearances.sessions import bank_from_sessions
from thermal_synth.common.output_dirs import check_output_dir, staged_directory
from thermal_synth.dataset.pairs import DatasetMismatchError, PairTensors, load_pairs
from thermal_synth.dataset.shards import SPLITS, SessionRecord, ShardReader, appearance_name
from thermal_synth.engine.inference import (
    DEVICE_AUTO,
    blend_codes,
    check_precision,
    paint_codes,
    select_device,
    select_precision,
    to_tensor_images,
    to_uint8,
)
from thermal_synth.evaluation.fid import InceptionFeatures, frechet_distance
from thermal_synth.evaluation.metrics import (
    BLEND_FRACTIONS,
    NO_MASKS_REASON,
    TARGETS,
    Disentanglement,
    Evaluation,
    ProductPath,
    ProductPathFrames,
    appearance_retention,
    evenly_spread,
    finite_or_none,
    mean_person_colour,
    product_path_metrics,
    stranger_colour_kept,
    target_met,
)
from thermal_synth.evaluation.report import write_report
from thermal_synth.evaluation.silhouettes import cross_fold_backgrounds, iou, segment_with, usable
from thermal_synth.model.files import ModelBundle, load_trained_model

FORMAT_NAME = "thermal_synth.evaluation"
FORMAT_VERSION = 1
MAX_GRID_CODES = 4
MAX_GRID_HEATMAPS = 6
FID_KEYS = ("fid", "fid_reconstruction", "fid_product")
SILHOUETTE_KEYS = ("silhouette_iou", "silhouette_iou_product", "silhouette_iou_ceiling")
PRIOR_SAMPLE_CODES = "z ~ N(0, I)"
SPATIAL_SAMPLE_CODES = "z = the code of another session's photo"
"""What G(h, z) paints: a spatial-code model has no prior to draw codes from."""
MAX_STRANGER_SESSIONS = 50
"""Sessions whose codes are each painted in every one's pose: 2,450 paintings of ordered pairs."""
MAX_PRODUCT_PATH_SESSIONS = 4
PRODUCT_PATH_FRAMES = 5
"""Frames of a session the product-path figure shows beside its photo."""


class EvaluationError(ValueError):
    """An evaluation that cannot run as asked; the message says why."""


@dataclass(frozen=True)
class EvalConfig:
    split: str = "test"
    """Not train by default: the paper's FID on training images says how well the GAN memorised."""
    max_samples: int = 1000
    batch_size: int = 32
    device: str = DEVICE_AUTO
    precision: str = "fp32"
    """What G paints in, as the synthesis node's `precision` (auto: bf16 where the device has it
    natively). fp32 by default, so a model's numbers do not depend on the machine."""
    seed: int = 0
    """Seeds the z of the random samples, so two evaluations of one model give the same FID."""
    fid: bool = True
    transforms: Mapping[str, Any] = field(default_factory=dict)
    """Driver parameters among GRID_TRANSFORMS: paint heatmaps made as the driver publishes them with
    these, on the model's own recipe, instead of the dataset's: what a model trained without them
    gives when a user turns them on."""

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise EvaluationError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        for name in ("max_samples", "batch_size"):
            if getattr(self, name) < 1:
                raise EvaluationError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise EvaluationError(f"seed must be >= 0, got {self.seed}")
        unknown = set(self.transforms) - set(GRID_TRANSFORMS)
        if unknown:
            raise EvaluationError(
                f"unknown transforms {sorted(unknown)}; known: {', '.join(GRID_TRANSFORMS)}"
            )
        try:
            check_precision(self.precision)
        except ValueError as error:
            raise EvaluationError(str(error)) from None


def session_label(session: SessionRecord) -> str:
    """Who and where, for a caption: recorded session names are long and unique, not telling."""
    return f"{session.identity}, {session.scene}"


def measure(
    model: str | Path | None,
    data: Path,
    config: EvalConfig = EvalConfig(),
    *,
    features: InceptionFeatures | None = None,
    progress: bool = False,
) -> Evaluation:
    """Evaluates `model` (empty: the packaged default) on `config.split` of the dataset `data`."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    data = Path(data)
    if not data.is_dir():
        raise EvaluationError(f"{data}: no such dataset directory")
    reader = ShardReader(data)
    bundle = load_trained_model(model)
    published = replace(bundle.preprocessing.heatmap, **config.transforms) if config.transforms else None
    pairs = load_pairs(reader, config.split, bundle.preprocessing, published, config.seed)
    if tuple(pairs.images.shape[-2:]) != bundle.config.image_size:
        raise DatasetMismatchError(
            f"{data}: images are {tuple(pairs.images.shape[-2:])}, "
            f"the model paints {bundle.config.image_size}"
        )
    if len(pairs) == 0:
        raise EvaluationError(f"{data}: the {config.split} split is empty; choose another with --split")
    rows = evenly_spread(len(pairs), config.max_samples)
    if config.fid and len(rows) < 2:
        raise EvaluationError(
            f"{data}: FID needs at least 2 samples, the {config.split} split gives {len(rows)} "
            "(raise --max-samples, choose another --split, or pass --no-fid)"
        )
    has_masks = "person_mask" in reader.fields
    raw = reader.load_split(config.split, ["rgb", "person_mask"] if has_masks else ["rgb"])
    disentanglement_inputs = _grid_inputs(bundle, pairs, reader)
    device = select_device(config.device)
    precision = select_precision(config.precision, device)
    if config.fid and features is None:
        features = InceptionFeatures(device, config.batch_size)  # before the work: missing weights fail fast
    bundle.networks.to(device).eval()
    timings["load_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    reconstructions, samples, sample_mae = _generate(
        bundle, pairs, rows, config, device=device, precision=precision, progress=progress
    )
    disentanglement = _paint_grid(
        bundle, pairs, raw, disentanglement_inputs, device=device, precision=precision
    )
    timings["generate_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    product_path, product_frames, painted = _product_path(
        bundle, pairs, raw, reader.sessions, config, device=device, precision=precision, progress=progress
    )
    unavailable: dict[str, str] = {}
    strangers = _strangers(bundle, pairs, raw, unavailable, device=device, precision=precision)
    timings["product_path_s"] = time.perf_counter() - clock
    product = _product_for_rows(pairs.sessions, rows, painted, reconstructions)
    real = raw["rgb"][rows]
    labels = [session_label(reader.sessions[s]) for s in pairs.sessions[rows]]
    evaluation = Evaluation(
        {}, real, reconstructions, samples, sample_mae, labels, disentanglement, product_frames, product
    )

    clock = time.perf_counter()
    fids = _fids(evaluation, features, progress=progress) if config.fid and features is not None else {}
    timings["fid_s"] = time.perf_counter() - clock

    clock = time.perf_counter()
    if not config.fid:
        for key in FID_KEYS:
            unavailable[key] = "skipped (--no-fid)"
    silhouettes = {key: None for key in SILHOUETTE_KEYS} | {"silhouette_samples": 0}
    if has_masks:
        silhouettes.update(_silhouettes(evaluation, raw, pairs.sessions, rows, unavailable))
    else:
        for key in SILHOUETTE_KEYS:
            unavailable[key] = (
                "the dataset has no person_mask field (only simulated or hand-labelled datasets do)"
            )
    timings["silhouettes_s"] = time.perf_counter() - clock
    timings["total_s"] = sum(timings.values())
    unavailable |= {f"product_path.{name}": reason for name, reason in product_path.unavailable.items()}

    metrics = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "model": str(Path(bundle.directory).resolve()),
        "dataset": str(data.resolve()),
        "split": config.split,
        "split_size": len(pairs),
        "n_samples": len(rows),
        "seed": config.seed,
        "published": None if published is None else published.to_json(),
        "device": str(device),
        "precision": precision,
        "model_training": {
            "gan_steps": bundle.training.gan_steps,
            "inversion_steps": bundle.training.inversion_steps,
            "dataset": bundle.training.dataset,
            "details": {
                key: bundle.training.details[key]
                for key in ("recipe", "reconstruction_steps", "adversarial_steps")
                if key in bundle.training.details
            },
        },
        "mae": finite_or_none(float(sample_mae.mean())),
        "fid": fids.get("fid"),
        "fid_reconstruction": fids.get("fid_reconstruction"),
        "fid_product": fids.get("fid_product"),
        "sample_codes": SPATIAL_SAMPLE_CODES if bundle.config.spatial_code else PRIOR_SAMPLE_CODES,
        **silhouettes,
        **_appearance_metrics(disentanglement, has_masks, unavailable),
        **strangers,
        "product_path": product_path.values(),
        "unavailable": unavailable,
        "timings_s": {name: round(seconds, 3) for name, seconds in timings.items()},
    }
    metrics["targets"] = {
        name: {"bound": f"{operator} {bound}", "met": target_met(name, metrics[name])}
        for name, (operator, bound) in TARGETS.items()
    }
    evaluation.metrics = metrics
    return evaluation


def evaluate(
    model: str | Path | None,
    data: Path,
    out: Path,
    config: EvalConfig = EvalConfig(),
    *,
    features: InceptionFeatures | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """`measure`, then report.md, metrics.json and the PNGs in `out` (which appears whole or not
    at all); returns the metrics."""
    check_output_dir(out)
    evaluation = measure(model, data, config, features=features, progress=progress)
    with staged_directory(out) as staging:
        write_report(evaluation, staging)
    return evaluation.metrics


@torch.inference_mode()
def _generate(
    bundle: ModelBundle,
    pairs: PairTensors,
    rows: np.ndarray,
    config: EvalConfig,
    *,
    device: torch.device,
    precision: str,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """G(h, I(x)), G(h, z) and the per-frame MAE on [0, 1] of the first against x.

    The codes z are drawn on the CPU in one go, so the samples do not depend on the batch size
    or the device. A spatial-code model has no prior to draw from: its z is the code of another
    session's photo, so the samples are bank entries painted in a stranger's pose.
    """
    generator, encoder = bundle.networks.generator, bundle.networks.encoder
    if bundle.config.spatial_code:
        codes = _foreign_photo_codes(encoder, pairs, rows, device)
    else:
        codes = torch.randn(
            len(rows), bundle.config.z_dim, generator=torch.Generator().manual_seed(config.seed)
        )
    reconstructions, samples, errors = [], [], []
    starts = range(0, len(rows), config.batch_size)
    for start in tqdm(starts, desc="generate", unit="batch", disable=not progress):
        batch = torch.from_numpy(rows[start : start + config.batch_size])
        images, heatmaps, _ = pairs.batch(batch, device)
        reconstructed = paint_codes(generator, encoder(images), heatmaps, precision)
        errors.append(((reconstructed - images).abs().mean((1, 2, 3)) / 2.0).double().cpu().numpy())
        reconstructions.append(to_uint8(reconstructed))
        batch_codes = codes[start : start + config.batch_size].to(device)
        samples.append(to_uint8(paint_codes(generator, batch_codes, heatmaps, precision)))
    return np.concatenate(reconstructions), np.concatenate(samples), np.concatenate(errors)


def session_photo_rows(sessions: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The product path's photos: each session's first row of the split (in session order), and
    for each of `rows` the position of its session among them."""
    session_ids, photo_rows = np.unique(sessions, return_index=True)
    return photo_rows, np.searchsorted(session_ids, sessions[rows])


def _product_for_rows(
    sessions: np.ndarray, rows: np.ndarray, painted: np.ndarray, reconstructions: np.ndarray
) -> np.ndarray:
    """G(h, I(photo)) for the evaluated rows, taken from the product path's paintings of the whole
    split (`painted`, every row but the photos, in order); a photo row paints from its own code,
    which is its reconstruction G(h, I(x))."""
    photo_rows, _ = session_photo_rows(sessions, rows)
    painted_rows = np.setdiff1d(np.arange(len(sessions)), photo_rows)
    is_photo = np.isin(rows, photo_rows)
    position = np.minimum(np.searchsorted(painted_rows, rows), len(painted_rows) - 1)
    return np.where(is_photo[:, None, None, None], reconstructions, painted[position])


def _foreign_photo_codes(
    encoder: torch.nn.Module, pairs: PairTensors, rows: np.ndarray, device: torch.device
) -> torch.Tensor:
    """For each row, the code of the first frame of the next session in the split (cyclically)."""
    photo_rows, position = session_photo_rows(pairs.sessions, rows)
    photos = pairs.images[torch.from_numpy(photo_rows[(position + 1) % len(photo_rows)])]
    return torch.cat([encoder(photos[start : start + 64].to(device)) for start in range(0, len(photos), 64)])


@torch.inference_mode()
def _product_path(
    bundle: ModelBundle,
    pairs: PairTensors,
    raw: dict[str, np.ndarray],
    sessions: Sequence[SessionRecord],
    config: EvalConfig,
    *,
    device: torch.device,
    precision: str,
    progress: bool,
) -> tuple[ProductPath, ProductPathFrames, np.ndarray]:
    """What a user gets: each session's first frame of the split is their photo, turned into a code
    by the inversion encoder as `thermal-synth codes add` does (`SynthesisEngine.encode`: the
    encoder on the uint8 photo, in fp32), and every other frame of the session is painted from its
    heatmap with that code as the synthesis node paints it (`paint_codes`).

    Every frame of the split, not the --max-samples subset: flicker needs consecutive frames, and
    one painting per frame costs a fraction of the Inception pass.
    """
    generator, encoder = bundle.networks.generator, bundle.networks.encoder
    photo_rows, photo_of_row = session_photo_rows(pairs.sessions, np.arange(len(pairs)))
    session_ids = pairs.sessions[photo_rows]
    painted_rows = np.setdiff1d(np.arange(len(pairs)), photo_rows)  # sorted: the split's order
    photo_of = photo_of_row[painted_rows]
    photos = raw["rgb"][photo_rows]
    codes = torch.cat(
        [
            encoder(to_tensor_images(photos[start : start + config.batch_size], device))
            for start in range(0, len(photos), config.batch_size)
        ]
    )
    painted = np.empty((len(painted_rows), *photos.shape[1:]), np.uint8)
    starts = range(0, len(painted_rows), config.batch_size)
    for start in tqdm(starts, desc="product path", unit="batch", disable=not progress):
        batch = slice(start, start + config.batch_size)
        heatmaps = pairs.heatmaps[torch.from_numpy(painted_rows[batch])].to(device)
        batch_codes = codes[torch.from_numpy(photo_of[batch]).to(device)]
        painted[batch] = to_uint8(paint_codes(generator, batch_codes, heatmaps, precision))
    masks = raw.get("person_mask")
    metrics = product_path_metrics(
        photos,
        raw["rgb"][painted_rows],
        painted,
        photo_of,
        masks=None if masks is None else masks[painted_rows],
        photo_masks=None if masks is None else masks[photo_rows],
    )
    with_frames = np.unique(photo_of)
    shown = with_frames[evenly_spread(len(with_frames), MAX_PRODUCT_PATH_SESSIONS)]
    positions, real, painted_shown = [], [], []
    for session in shown:
        frames = np.flatnonzero(photo_of == session)
        chosen = evenly_spread(len(frames), PRODUCT_PATH_FRAMES)
        positions.append(chosen + 1)
        real.append(raw["rgb"][painted_rows[frames[chosen]]])
        painted_shown.append(painted[frames[chosen]])
    labels = [session_label(sessions[session_ids[session]]) for session in shown]
    return metrics, ProductPathFrames(labels, photos[shown], positions, real, painted_shown), painted


@torch.inference_mode()
def _strangers(
    bundle: ModelBundle,
    pairs: PairTensors,
    raw: dict[str, np.ndarray],
    unavailable: dict[str, str],
    *,
    device: torch.device,
    precision: str,
) -> dict[str, Any]:
    """The photo code of each of up to MAX_STRANGER_SESSIONS sessions painted in the middle frame of
    each of them, as `codes add` and the synthesis node would (`stranger_colour_kept`)."""
    if "person_mask" not in raw:
        unavailable["appearance_kept_on_strangers"] = NO_MASKS_REASON
        return {"appearance_kept_on_strangers": None, "appearance_stranger_pairs": 0}
    masks = raw["person_mask"]
    photo_rows, _ = session_photo_rows(pairs.sessions, np.arange(len(pairs)))
    photo_rows = photo_rows[evenly_spread(len(photo_rows), MAX_STRANGER_SESSIONS)]
    poses = []
    for row in photo_rows:
        rows = np.flatnonzero(pairs.sessions == pairs.sessions[row])
        poses.append(rows[len(rows) // 2])
    heatmaps = pairs.heatmaps[torch.tensor(poses)].to(device)
    codes = bundle.networks.encoder(to_tensor_images(raw["rgb"][photo_rows], device))
    painted_colours = np.empty((len(codes), len(poses), 3))
    for code_index, code in enumerate(codes):
        painted = to_uint8(
            paint_codes(bundle.networks.generator, code.expand(len(poses), -1), heatmaps, precision)
        )
        for pose_index, pose in enumerate(poses):
            painted_colours[code_index, pose_index] = mean_person_colour(painted[[pose_index]], masks[[pose]])
    photo_colours = np.stack([mean_person_colour(raw["rgb"][[row]], masks[[row]]) for row in photo_rows])
    kept, counted = stranger_colour_kept(photo_colours, painted_colours)
    if kept is None:
        unavailable["appearance_kept_on_strangers"] = (
            f"no two of the split's {len(photo_rows)} session photos differ in the person's colour"
        )
    return {"appearance_kept_on_strangers": kept, "appearance_stranger_pairs": counted}


def _fids(evaluation: Evaluation, features: InceptionFeatures, *, progress: bool) -> dict[str, float | None]:
    sets = {
        "real": evaluation.real,
        "samples": evaluation.samples,
        "reconstructions": evaluation.reconstructions,
        "product": evaluation.product,
    }
    computed = {}
    bar = tqdm(
        total=sum(len(images) for images in sets.values()),
        desc="inception",
        unit="image",
        disable=not progress,
    )
    with bar:
        for name, images in sets.items():
            chunks = []
            for start in range(0, len(images), features.batch_size):
                chunks.append(features(images[start : start + features.batch_size]))
                bar.update(len(chunks[-1]))
            computed[name] = np.concatenate(chunks)
    return {
        "fid": finite_or_none(frechet_distance(computed["real"], computed["samples"])),
        "fid_reconstruction": finite_or_none(frechet_distance(computed["real"], computed["reconstructions"])),
        "fid_product": finite_or_none(frechet_distance(computed["real"], computed["product"])),
    }


def _silhouettes(
    evaluation: Evaluation,
    raw: dict[str, np.ndarray],
    sessions: np.ndarray,
    rows: np.ndarray,
    unavailable: dict[str, str],
) -> dict[str, Any]:
    backgrounds = cross_fold_backgrounds(raw["rgb"], raw["person_mask"], sessions)
    evaluation.true_masks = raw["person_mask"][rows]
    evaluation.real_masks = segment_with(backgrounds, rows, evaluation.real)
    evaluation.generated_masks = segment_with(backgrounds, rows, evaluation.reconstructions)
    product_masks = segment_with(backgrounds, rows, evaluation.product)
    evaluation.silhouette_rows = np.flatnonzero(usable(backgrounds, rows))
    kept = evaluation.silhouette_rows
    if kept.size == 0:
        for key in SILHOUETTE_KEYS:
            unavailable[key] = (
                "no session has two folds of frames showing enough of the empty room to estimate it"
            )
        return {}
    truth = evaluation.true_masks[kept]
    return {
        "silhouette_iou": finite_or_none(float(iou(evaluation.generated_masks[kept], truth).mean())),
        "silhouette_iou_product": finite_or_none(float(iou(product_masks[kept], truth).mean())),
        "silhouette_iou_ceiling": finite_or_none(float(iou(evaluation.real_masks[kept], truth).mean())),
        "silhouette_samples": int(kept.size),
    }


@dataclass
class _GridInputs:
    code_names: list[str]
    codes: np.ndarray
    code_rows: list[np.ndarray]
    """Per code: all split rows of its appearance (for the source colour and frame)."""
    heatmap_rows: np.ndarray
    heatmap_labels: list[str]


def _grid_inputs(bundle: ModelBundle, pairs: PairTensors, reader: ShardReader) -> _GridInputs:
    """The split's appearances (one mean encoder code each, as the trainer's bank makes them) and
    one middle frame of each of up to MAX_GRID_HEATMAPS sessions. Runs on the CPU, before the
    networks move to the evaluation device, because the bank is built from CPU tensors."""
    bank = bank_from_sessions(bundle, pairs, reader.sessions)
    names = bank.names()
    chosen = [names[i] for i in evenly_spread(len(names), MAX_GRID_CODES)]
    appearance_of = np.array([appearance_name(session) for session in reader.sessions])
    code_rows = [np.flatnonzero(appearance_of[pairs.sessions] == name) for name in chosen]
    present = np.unique(pairs.sessions)
    heatmap_sessions = present[evenly_spread(len(present), MAX_GRID_HEATMAPS)]
    heatmap_rows = []
    for session in heatmap_sessions:
        session_rows = np.flatnonzero(pairs.sessions == session)
        heatmap_rows.append(session_rows[len(session_rows) // 2])
    labels = [session_label(reader.sessions[s]) for s in heatmap_sessions]
    codes = np.stack([bank.get(name).z for name in chosen]).astype(np.float32)
    return _GridInputs(chosen, codes, code_rows, np.array(heatmap_rows, np.int64), labels)


@torch.inference_mode()
def _paint_grid(
    bundle: ModelBundle,
    pairs: PairTensors,
    raw: dict[str, np.ndarray],
    inputs: _GridInputs,
    *,
    device: torch.device,
    precision: str,
) -> Disentanglement:
    generator = bundle.networks.generator
    heatmaps = pairs.heatmaps[torch.from_numpy(inputs.heatmap_rows)].to(device)
    codes = torch.from_numpy(inputs.codes).to(device)
    cells = np.stack(
        [
            to_uint8(paint_codes(generator, code.expand(len(heatmaps), -1), heatmaps, precision))
            for code in codes
        ]
    )
    retention = None
    if "person_mask" in raw:
        masks = raw["person_mask"]
        sources = np.stack([mean_person_colour(raw["rgb"][rows], masks[rows]) for rows in inputs.code_rows])
        cell_colours = np.stack(
            [
                [
                    mean_person_colour(cell[None], masks[row][None])
                    for cell, row in zip(row_cells, inputs.heatmap_rows, strict=True)
                ]
                for row_cells in cells
            ]
        )
        retention = appearance_retention(cell_colours, sources)
    code_frames = np.stack([raw["rgb"][rows[len(rows) // 2]] for rows in inputs.code_rows])
    return Disentanglement(
        inputs.code_names,
        code_frames,
        inputs.heatmap_labels,
        raw["rgb"][inputs.heatmap_rows],
        cells,
        retention,
        _paint_blends(bundle, inputs.codes, heatmaps[:1], precision),
    )


def _paint_blends(
    bundle: ModelBundle, codes: np.ndarray, heatmap: torch.Tensor, precision: str
) -> np.ndarray:
    """(pairs, fractions, H, W, 3): code 2i blended into code 2i + 1 as the node blends on a switch
    (`blend_codes`), each painted with one heatmap. Every step must paint a plausible person."""
    spherical = not bundle.config.spatial_code
    strips = []
    for start, end in zip(codes[0::2], codes[1::2], strict=False):
        blended = np.stack([blend_codes(start, end, f, spherical=spherical) for f in BLEND_FRACTIONS])
        batch = torch.from_numpy(blended.astype(np.float32)).to(heatmap.device)
        strips.append(
            to_uint8(
                paint_codes(
                    bundle.networks.generator, batch, heatmap.expand(len(batch), -1, -1, -1), precision
                )
            )
        )
    return (
        np.stack(strips)
        if strips
        else np.zeros((0, len(BLEND_FRACTIONS), *bundle.config.image_size, 3), np.uint8)
    )


def _appearance_metrics(
    grid: Disentanglement, has_masks: bool, unavailable: dict[str, str]
) -> dict[str, Any]:
    retention = grid.retention
    values = {
        "appearance_codes": len(grid.code_names),
        "appearance_heatmaps": len(grid.heatmap_labels),
        "appearance_distance": None if retention is None else retention.own_distance(),
        "appearance_distance_other": None if retention is None else retention.other_distance(),
        "appearance_retention": None if retention is None else retention.retention(),
        "appearance_retention_chance": 1.0 / len(grid.code_names) if len(grid.code_names) >= 2 else None,
    }
    if not has_masks:
        for name in ("appearance_distance", "appearance_distance_other", "appearance_retention"):
            unavailable[name] = NO_MASKS_REASON
    elif len(grid.code_names) < 2:
        reason = f"the split has {len(grid.code_names)} appearance(s); comparing needs at least 2"
        for name in ("appearance_distance_other", "appearance_retention"):
            unavailable[name] = reason
    return values
