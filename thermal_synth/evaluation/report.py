"""The evaluation's output: a one-page Markdown report with its figures, and the stdout summary."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thermal_synth.common.contact_sheet import encode_jpeg, encode_png
from thermal_synth.common.json_files import write_text_atomic
from thermal_synth.evaluation.figures import (
    blends_sheet,
    disentanglement_sheet,
    product_path_sheet,
    samples_sheet,
    silhouettes_sheet,
)
from thermal_synth.evaluation.metrics import TARGETS, Evaluation
from thermal_synth.model.files import TrainingRecord

REPORT_FILE = "report.md"
METRICS_FILE = "metrics.json"
FIGURES = {
    "samples.png": samples_sheet,
    "disentanglement.png": disentanglement_sheet,
    "blends.png": blends_sheet,
    "silhouettes.png": silhouettes_sheet,
    "product_path.jpg": product_path_sheet,
}
ENCODERS = {".png": encode_png, ".jpg": encode_jpeg}
PRODUCT_PATH_PREFIX = "product_path."
"""Of the `unavailable` keys about the product path, which the report notes in its own section."""


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    decimals: int


ROWS = (
    Row("fid", "FID, G(h, z) vs real", 2),
    Row("fid_reconstruction", "FID, G(h, I(x)) vs real", 2),
    Row("fid_product", "FID, G(h, I(photo)) vs real (product path)", 2),
    Row("mae", "reconstruction MAE on [0, 1]", 4),
    Row("silhouette_iou", "silhouette IoU, G(h, I(x))", 3),
    Row("silhouette_iou_product", "silhouette IoU, G(h, I(photo)) (product path)", 3),
    Row("silhouette_iou_ceiling", "silhouette IoU, real frames (ceiling)", 3),
    Row("appearance_distance", "appearance distance to own source", 3),
    Row("appearance_distance_other", "appearance distance to other sources", 3),
    Row("appearance_retention", "appearance retention", 2),
    Row("appearance_kept_on_strangers", "appearance kept on strangers (pairs of sessions, chance 0.5)", 3),
)


def number_text(value: float | None, decimals: int) -> str:
    return "n/a" if value is None else f"{value:.{decimals}f}"


def value_text(metrics: Mapping[str, Any], row: Row) -> str:
    value = metrics.get(row.key)
    if value is None:
        return "n/a"
    text = number_text(value, row.decimals)
    if row.key == "appearance_retention" and metrics.get("appearance_retention_chance") is not None:
        text += f" (chance {metrics['appearance_retention_chance']:.2f})"
    return text


def target_texts(metrics: Mapping[str, Any], key: str) -> tuple[str, str]:
    """("<= 9.6", "yes"/"no"/"n/a") for a metric with a target, ("", "") otherwise."""
    if key not in TARGETS:
        return "", ""
    operator, bound = TARGETS[key]
    met = metrics["targets"][key]["met"]
    return f"{operator} {bound}", "n/a" if met is None else ("yes" if met else "no")


def steps_text(training: Mapping[str, Any]) -> str:
    return TrainingRecord.from_json(training).steps_text()


def format_summary(metrics: Mapping[str, Any], out: Path) -> str:
    """The table `thermal-synth eval` prints: what was measured, each number, its target."""
    training = metrics["model_training"]
    lines = [
        f"wrote {out}: {metrics['n_samples']} of {metrics['split_size']} {metrics['split']} pairs of "
        f"{metrics['dataset']}, model {metrics['model']} ({steps_text(training)}), "
        f"painted in {metrics['precision']} on "
        f"{metrics['device']}, {metrics['timings_s']['total_s']:.1f} s",
    ]
    width = max(len(row.label) for row in ROWS)
    lines.append(f"{'metric':<{width}}  {'value':>18}  {'target':>8}  met")
    for row in ROWS:
        target, met = target_texts(metrics, row.key)
        lines.append(f"{row.label:<{width}}  {value_text(metrics, row):>18}  {target:>8}  {met}".rstrip())
    lines.append(product_path_summary(metrics["product_path"]))
    return "\n".join(lines)


def product_path_summary(section: Mapping[str, Any]) -> str:
    """One line: the model against pasting the photo, in the numbers a user would notice."""
    return (
        f"product path ({section['frames']} frames of {section['sessions']} sessions painted from each "
        f"session's first frame): MAE {number_text(section['product_mae'], 4)} (still photo "
        f"{number_text(section['still_photo_mae'], 4)}), pose gain {number_text(section['pose_gain'], 3)}, "
        f"motion gain {number_text(section['motion_gain'], 3)}, flicker ratio "
        f"{number_text(section['flicker_ratio'], 2)}"
    )


def product_path_table(section: Mapping[str, Any]) -> list[str]:
    """The model beside the still photo pasted for every frame and the real video itself (the
    ceiling); the baselines' gains and flicker follow from their definitions."""

    def text(key: str, decimals: int) -> str:
        return number_text(section[key], decimals)

    return [
        "| product path | painted by the model | still photo | real video |",
        "|---|---:|---:|---:|",
        f"| whole-frame MAE on [0, 1] | {text('product_mae', 4)} | {text('still_photo_mae', 4)} | 0 |",
        f"| person MAE (inside the true mask) | {text('person_mae', 4)} | "
        f"{text('still_photo_person_mae', 4)} | 0 |",
        f"| pose gain | {text('pose_gain', 3)} | 0 | 1 |",
        f"| motion gain | {text('motion_gain', 3)} | 0 | 1 |",
        f"| flicker: mean change between consecutive frames | {text('flicker_painted', 4)} | 0 | "
        f"{text('flicker_real', 4)} |",
        f"| flicker ratio to the real video | {text('flicker_ratio', 2)} | 0 | 1 |",
    ]


def write_report(evaluation: Evaluation, directory: Path) -> None:
    """report.md, metrics.json and the figures into `directory`."""
    for name, draw in FIGURES.items():
        (directory / name).write_bytes(ENCODERS[Path(name).suffix](draw(evaluation)))
    write_text_atomic(
        directory / METRICS_FILE, json.dumps(evaluation.metrics, indent=2, allow_nan=False) + "\n"
    )
    write_text_atomic(directory / REPORT_FILE, markdown(evaluation.metrics))


def markdown(metrics: Mapping[str, Any]) -> str:
    training = metrics["model_training"]
    table = ["| metric | value | target | met |", "|---|---:|---:|:---:|"]
    for row in ROWS:
        target, met = target_texts(metrics, row.key)
        table.append(f"| {row.label} | {value_text(metrics, row)} | {target} | {met} |")
    notes, product_notes = [], []
    for key, reason in metrics["unavailable"].items():
        (product_notes if key.startswith(PRODUCT_PATH_PREFIX) else notes).append(
            f"- `{key}` is n/a: {reason}."
        )
    product_path = metrics["product_path"]
    timings = ", ".join(
        f"{name.removesuffix('_s')} {seconds:.1f} s" for name, seconds in metrics["timings_s"].items()
    )
    return "\n".join(
        [
            "# SPADE-SR evaluation",
            "",
            f"- **Model**: `{metrics['model']}` ({steps_text(training)}, "
            f"trained on `{training['dataset'] or 'unknown'}`)",
            f"- **Data**: `{metrics['dataset']}`, split `{metrics['split']}`: {metrics['n_samples']} of "
            f"{metrics['split_size']} pairs (evenly spread), seed {metrics['seed']}, "
            f"device {metrics['device']}, {metrics['precision']}",
            f"- **Time**: {timings}",
            "",
            *table,
            "",
            "FID uses the TF-Inception network (2048-d pool features) on the real frames of the split "
            f"and on G(h, z) with {metrics.get('sample_codes', 'z ~ N(0, I)')} for the same heatmaps; "
            "the paper's 9.6 was computed on "
            "training images, so a held-out split is the harder test. G(h, I(x)) paints each frame from "
            "its own code; G(h, I(photo)) from the code of its session's first frame, as a user's "
            "enrolled photo (the product path), which is the honest test for a model whose code can "
            "hold the photo's pose. The MAE target is the reference "
            "code's 0.02733, rounded down. The silhouette IoU compares the true person mask with the "
            "person segmented from the painting by subtracting the session's empty room, estimated from "
            "its real frames; the ceiling is the same segmenter on the real frames. Appearance "
            "retention: each code painted with other sessions' heatmaps, the mean colour inside the "
            "true mask compared with every code's source colour (RGB distance on [0, 1]).",
            *(["", *notes] if notes else []),
            "",
            "## Product path",
            "",
            "What a user gets: each session's first frame of the split stands for their photo, turned "
            "into a code by the inversion encoder as `thermal-synth codes add` does, and every other "
            "frame of the session is painted from its own heatmap with that code, as the synthesis node "
            f"paints it ({metrics['precision']}). The baseline pastes the photo for every frame. "
            f"{product_path['frames']} painted frames of {product_path['sessions']} sessions (the whole "
            "split, not the subset above); errors are pooled over all their pixels.",
            "",
            *product_path_table(product_path),
            "",
            "Pose gain = 1 - person MAE / still-photo person MAE: it is high only if the painted person is "
            "both sharp and in the right place (0: no better than pasting the photo, below 0: worse). "
            "Motion gain is the same ratio counted only on the pixels the person entered or left since "
            "the photo (true mask XOR the photo's mask), where a still photo is wrong by construction. "
            "Flicker is the mean absolute change between consecutive frames of a session on [0, 1].",
            *(["", *product_notes] if product_notes else []),
            "",
            "Per session: the photo and some of its real frames, below them the same frames painted "
            "from the photo's code (captions: MAE of the painting, and of the photo pasted instead).",
            "",
            "![product path](product_path.jpg)",
            "",
            "## Samples",
            "",
            "Rows: real frames, reconstructions G(h, I(x)), samples G(h, z) with the same heatmaps "
            f"({metrics.get('sample_codes', 'z ~ N(0, I)')}).",
            "",
            "![samples](samples.png)",
            "",
            "## Disentanglement",
            "",
            "Each row paints one code (appearance) with the heatmaps (poses) of the header row: a "
            "disentangled model keeps the outfit and room along a row and the pose down a column.",
            "",
            "![disentanglement](disentanglement.png)",
            "",
            "## Blends",
            "",
            "An appearance switch mid-call blends the old code into the new one over `transition_s`; each "
            "row shows the steps of one such blend painted with one heatmap (left: the first code, right: "
            "the second). Every step should show a plausible person.",
            "",
            "![blends](blends.png)",
            "",
            "## Silhouettes",
            "",
            "White: person in both masks; red: true person pixels the segmentation missed; blue: pixels "
            "segmented as person outside the true mask.",
            "",
            "![silhouettes](silhouettes.png)",
            "",
        ]
    )
