"""The evaluation's output: a one-page Markdown report with its figures, and the stdout summary."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thermal_synth.contact_sheet import encode_png
from thermal_synth.evaluation.figures import disentanglement_sheet, samples_sheet, silhouettes_sheet
from thermal_synth.evaluation.metrics import TARGETS, Evaluation
from thermal_synth.json_files import write_text_atomic

REPORT_FILE = "report.md"
METRICS_FILE = "metrics.json"
FIGURES = {
    "samples.png": samples_sheet,
    "disentanglement.png": disentanglement_sheet,
    "silhouettes.png": silhouettes_sheet,
}


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    decimals: int


ROWS = (
    Row("fid", "FID, G(h, z) vs real", 2),
    Row("fid_reconstruction", "FID, G(h, I(x)) vs real", 2),
    Row("mae", "reconstruction MAE on [0, 1]", 4),
    Row("silhouette_iou", "silhouette IoU, G(h, I(x))", 3),
    Row("silhouette_iou_ceiling", "silhouette IoU, real frames (ceiling)", 3),
    Row("appearance_distance", "appearance distance to own source", 3),
    Row("appearance_distance_other", "appearance distance to other sources", 3),
    Row("appearance_retention", "appearance retention", 2),
)


def value_text(metrics: Mapping[str, Any], row: Row) -> str:
    value = metrics.get(row.key)
    if value is None:
        return "n/a"
    text = f"{value:.{row.decimals}f}"
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


def format_summary(metrics: Mapping[str, Any], out: Path) -> str:
    """The table `thermal-synth eval` prints: what was measured, each number, its target."""
    training = metrics["model_training"]
    lines = [
        f"wrote {out}: {metrics['n_samples']} of {metrics['split_size']} {metrics['split']} pairs of "
        f"{metrics['dataset']}, model {metrics['model']} ({training['gan_steps']} GAN + "
        f"{training['inversion_steps']} inversion steps), painted in {metrics['precision']} on "
        f"{metrics['device']}, {metrics['timings_s']['total_s']:.1f} s",
    ]
    width = max(len(row.label) for row in ROWS)
    lines.append(f"{'metric':<{width}}  {'value':>18}  {'target':>8}  met")
    for row in ROWS:
        target, met = target_texts(metrics, row.key)
        lines.append(f"{row.label:<{width}}  {value_text(metrics, row):>18}  {target:>8}  {met}".rstrip())
    return "\n".join(lines)


def write_report(evaluation: Evaluation, directory: Path) -> None:
    """report.md, metrics.json and the PNGs into `directory`."""
    for name, draw in FIGURES.items():
        (directory / name).write_bytes(encode_png(draw(evaluation)))
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
    notes = [f"- `{key}` is n/a: {reason}." for key, reason in metrics["unavailable"].items()]
    timings = ", ".join(
        f"{name.removesuffix('_s')} {seconds:.1f} s" for name, seconds in metrics["timings_s"].items()
    )
    return "\n".join(
        [
            "# SPADE-SR evaluation",
            "",
            f"- **Model**: `{metrics['model']}` ({training['gan_steps']} GAN + {training['inversion_steps']} "
            f"inversion steps, trained on `{training['dataset'] or 'unknown'}`)",
            f"- **Data**: `{metrics['dataset']}`, split `{metrics['split']}`: {metrics['n_samples']} of "
            f"{metrics['split_size']} pairs (evenly spread), seed {metrics['seed']}, "
            f"device {metrics['device']}, {metrics['precision']}",
            f"- **Time**: {timings}",
            "",
            *table,
            "",
            "FID uses the TF-Inception network (2048-d pool features) on the real frames of the split "
            "and on G(h, z) with z ~ N(0, I) for the same heatmaps; the paper's 9.6 was computed on "
            "training images, so a held-out split is the harder test. The MAE target is the reference "
            "code's 0.02733, rounded down. The silhouette IoU compares the true person mask with the "
            "person segmented from G(h, I(x)) by subtracting the session's empty room, estimated from "
            "its real frames; the ceiling is the same segmenter on the real frames. Appearance "
            "retention: each code painted with other sessions' heatmaps, the mean colour inside the "
            "true mask compared with every code's source colour (RGB distance on [0, 1]).",
            *(["", *notes] if notes else []),
            "",
            "## Samples",
            "",
            "Rows: real frames, reconstructions G(h, I(x)), random samples G(h, z) with the same heatmaps.",
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
            "## Silhouettes",
            "",
            "White: person in both masks; red: true person pixels the segmentation missed; blue: pixels "
            "segmented as person outside the true mask.",
            "",
            "![silhouettes](silhouettes.png)",
            "",
        ]
    )
