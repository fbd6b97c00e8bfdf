"""The metrics of a run: JSONL (one object per log step, each loss averaged over the steps since
the previous one), CSV (for a spreadsheet) and a plot.

Both files are appended to as the run goes, so a run killed at any time leaves every logged
step readable; a resumed run first drops the lines after the checkpoint it resumes from, so the
curves of an interrupted-and-resumed run are the curves of one run.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JSONL_FILE = "metrics.jsonl"
CSV_FILE = "metrics.csv"
PLOT_FILE = "curves.png"
COLUMNS = (
    "step", "phase", "phase_step", "elapsed_s", "steps_per_s",
    "d_loss", "d_adv", "d_rec", "r1", "g_loss", "g_rec", "g_distil", "e_loss", "e_l1", "e_distil",
    "g_total", "g_l1", "g_multiscale", "g_perceptual", "g_heatmap", "h_real", "g_adv",
    "g_retention", "g_uncovered_colour", "g_silhouette", "s_real",
)  # fmt: skip
"""Fixed so the CSV header never changes mid-file; a phase leaves the other phase's columns empty."""
PLOTTED = (
    ("adversarial", ("d_adv", "g_loss")),
    ("heatmap reconstruction (hinge-L1)", ("d_rec", "g_rec")),
    ("R1", ("r1",)),
    ("inversion", ("e_loss", "e_l1")),
    ("distillation (L1 to the teacher)", ("g_distil", "e_distil")),
    ("cpu recipe: painter's total loss", ("g_total",)),
    ("cpu recipe: L1 (x5 where moved), multi-scale L1", ("g_l1", "g_multiscale")),
    ("cpu recipe: perceptual (ImageNet features)", ("g_perceptual",)),
    ("cpu recipe: heatmap read back, painted / real", ("g_heatmap", "h_real")),
    ("cpu recipe: projected GAN, G / D", ("g_adv", "d_loss")),
    (
        "cpu recipe: swapped rows, colour kept / uncovered (L1)",
        ("g_retention", "g_uncovered_colour"),
    ),
    ("cpu recipe: silhouette read back (BCE), painted / real", ("g_silhouette", "s_real")),
)
"""A panel is drawn when its first loss was logged: `d_loss` is the GAN recipe's too."""


@dataclass
class LossWindow:
    """Each loss averaged over the steps since the last record. A loss computed only every few
    steps (R1 every `r1_interval`) is then logged whatever `log_every` is, where the last step's
    values alone would miss it in most or all records, and the curves are less noisy."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, losses: dict[str, float]) -> None:
        for name, value in losses.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
            self.counts[name] = self.counts.get(name, 0) + 1

    def take(self) -> dict[str, float]:
        """The means of the window, which then starts again empty."""
        means = {name: total / self.counts[name] for name, total in self.sums.items()}
        self.sums.clear()
        self.counts.clear()
        return means


class RunLog:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.jsonl = directory / JSONL_FILE
        self.csv = directory / CSV_FILE

    def truncate_after(self, step: int) -> None:
        """Drops the records of steps after `step` (a resumed run redoes them)."""
        kept = [record for record in self.records() if record["step"] <= step]
        self.jsonl.write_text("".join(json.dumps(record) + "\n" for record in kept))
        with self.csv.open("w", newline="") as stream:
            writer = csv.DictWriter(stream, COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)

    def append(self, record: dict[str, Any]) -> None:
        new_csv = not self.csv.exists()
        with self.jsonl.open("a") as stream:
            stream.write(json.dumps(record) + "\n")
        with self.csv.open("a", newline="") as stream:
            writer = csv.DictWriter(stream, COLUMNS, extrasaction="ignore")
            if new_csv:
                writer.writeheader()
            writer.writerow(record)

    def records(self) -> list[dict[str, Any]]:
        if not self.jsonl.exists():
            return []
        records = []
        for line in self.jsonl.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # the last line of a killed run may be half written
        return records

    def plot(self) -> Path | None:
        """curves.png: one panel per loss family, both phases on one step axis, smoothed."""
        records = self.records()
        if not records:
            return None
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot

        # Only the loss families this run logs: an ordinary run has no distillation panel.
        shown = [(title, keys) for title, keys in PLOTTED if any(keys[0] in r for r in records)]
        rows = max(1, math.ceil(len(shown) / 2))
        figure, axes = pyplot.subplots(
            rows, 2, figsize=(11, 3.5 * rows), squeeze=False, constrained_layout=True
        )
        for axis in axes.flat[len(shown) :]:
            axis.set_axis_off()
        for axis, (title, keys) in zip(axes.flat, shown, strict=False):
            for key in keys:
                points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), int | float)]
                if not points:
                    continue
                steps, values = zip(*points, strict=True)
                plot_series(axis, steps, values, key)
            gan_steps = [r["step"] for r in records if r["phase"] == "gan"]
            if gan_steps and any(r["phase"] == "inversion" for r in records):
                boundary = max(gan_steps)
                axis.axvline(boundary, color="grey", linestyle=":", linewidth=1)
            axis.set_title(title)
            axis.set_xlabel("step")
            if axis.lines:
                axis.legend(loc="best", fontsize="small")
        figure.suptitle(f"training curves: {self.directory.name}")
        path = self.directory / PLOT_FILE
        figure.savefig(path, dpi=90)
        pyplot.close(figure)
        return path


def plot_series(axis: Any, steps: Sequence[int], values: Sequence[float], label: str) -> None:
    """The raw values faint, their smoothed curve over them. A series of one record (a run paused
    at its first log step) gets a marker: a line through one point draws nothing."""
    marker = "o" if len(steps) == 1 else ""
    axis.plot(steps, values, alpha=0.25, linewidth=0.8)
    axis.plot(steps, smooth(values), label=label, color=axis.lines[-1].get_color(), marker=marker)


def smooth(values: Sequence[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average with bias correction (the first points are not pulled to 0)."""
    smoothed, average = [], 0.0
    for index, value in enumerate(values, start=1):
        average = weight * average + (1.0 - weight) * value if math.isfinite(value) else average
        smoothed.append(average / (1.0 - weight**index))
    return smoothed
