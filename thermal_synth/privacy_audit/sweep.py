"""`privacy-audit --sweep`: the privacy-utility curve of the published heatmap.

Every privacy setting trades what an eavesdropper learns against what the product can still do
with the heatmap. The sweep puts a fixed list of settings on one curve: privacy is the strongest
re-identifier's accuracy (the audit's attackers, lower bounds on what leaks), utility is how much of
the person's silhouette a small regressor recovers from the heatmaps. The regressor is trained per
setting, so utility is measured without retraining the painter (hours on a CPU); it says what the
heatmap still carries, which bounds what any painter can get out of it.

Detection (always near 1.0: the heatmap must show that someone is there), reconstruction and FID
are the plain audit's; the sweep leaves them out to fit a CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thermal_msgs.privacy import PrivacySettings
from thermal_synth.common.output_dirs import staged_directory
from thermal_synth.privacy_audit.attackers import (
    predict,
    silhouette_iou,
    silhouette_target,
    thermal_input,
    train_silhouette,
)
from thermal_synth.privacy_audit.audit import (
    TRAIN_SPLITS,
    UNSEEN_SPLITS,
    AuditConfig,
    Context,
    open_context,
    reidentify,
    result_header,
    setup_reidentification,
)
from thermal_synth.privacy_audit.data import AuditDataError, AuditedView

FORMAT_NAME = "thermal_synth.privacy_sweep"
FORMAT_VERSION = 1
SILHOUETTE_BATCH = 32
REFERENCE = AuditedView.of(PrivacySettings(output_size=(12, 16)))
"""The untransformed 12x16 heatmap every utility is compared with."""
TARGET_REID_ABOVE_CHANCE = 0.05
TARGET_UTILITY_SHARE = 0.9
"""The target region: re-identification within 0.05 of chance, at least 90 % of the reference's IoU."""


def _settings(
    size: tuple[int, int] = (12, 16),
    *,
    relative: bool = False,
    q: float = 0.0,
    noise: float = 0.0,
    blur: float = 1.0,
) -> AuditedView:
    return AuditedView.of(
        PrivacySettings(
            output_size=size, blur_sigma=blur, relative_temperature=relative, quantisation_c=q, noise_c=noise
        )
    )


SWEEP_VIEWS: tuple[AuditedView, ...] = (
    REFERENCE,
    _settings(blur=2.0),
    _settings(relative=True),
    _settings(q=0.5),
    _settings(q=1.0),
    _settings(q=2.0),
    _settings(noise=0.5),
    _settings(noise=1.0),
    _settings(relative=True, q=1.0, noise=0.5),
    _settings(relative=True, q=2.0, noise=1.0),
    _settings((8, 10)),
    _settings((8, 10), relative=True, q=1.0, noise=0.5),
    _settings((5, 8)),
    _settings((5, 8), relative=True, q=1.0, noise=0.5),
)
"""Each transform alone at a mild and a strong strength, two combinations, and the coarser grids
with and without the combination: the points span from the reference to settings that should
leave little of either identity or silhouette."""


@dataclass(frozen=True)
class SilhouetteSetup:
    train: np.ndarray
    test: np.ndarray
    target_train: torch.Tensor
    target_test: torch.Tensor
    mean_mask_iou: float
    """IoU of the mean training mask, the same guess for every frame: what needs no heatmap."""


def setup_silhouette(context: Context) -> SilhouetteSetup | str:
    data = context.data
    if data.person_mask is None:
        return "the dataset has no person_mask (make it with thermal-synth sim)"
    train, test = context.draw(data.in_splits(TRAIN_SPLITS)), context.draw(data.in_splits(UNSEEN_SPLITS))
    if len(train) == 0 or len(test) == 0:
        return "needs frames in the train split and in test or heldout"
    target_train = silhouette_target(data.person_mask[train])
    target_test = silhouette_target(data.person_mask[test])
    mean_mask = target_train.mean(0, keepdim=True).expand_as(target_test)
    mean_mask_iou = silhouette_iou(torch.logit(mean_mask.clamp(1e-4, 1 - 1e-4)), target_test)
    return SilhouetteSetup(train, test, target_train, target_test, mean_mask_iou)


def silhouette(context: Context, setup: SilhouetteSetup, view: AuditedView, index: int) -> float:
    """IoU on unseen sessions of a small regressor trained on this view's train-split heatmaps."""
    thermal = context.data.thermal
    model = train_silhouette(
        thermal_input(context.view(thermal[setup.train], view)),
        setup.target_train,
        context.settings(SILHOUETTE_BATCH, 400 + index),
    )
    predicted = predict(model, thermal_input(context.view(thermal[setup.test], view)), context.device)
    return silhouette_iou(predicted, setup.target_test)


def run_sweep(data_dir: Path, out_dir: Path, config: AuditConfig, *, progress: bool = True) -> dict[str, Any]:
    """Re-identification and silhouette IoU for every view of `config`; writes sweep.json, sweep.md
    and sweep.png into `out_dir` (all or nothing) and returns what sweep.json holds."""
    from thermal_synth.privacy_audit import report

    context = open_context(data_dir, out_dir, config, progress, name="privacy-sweep")
    reid = setup_reidentification(context)
    utility = setup_silhouette(context)
    if isinstance(reid, str) or isinstance(utility, str):
        reasons = "; ".join(r for r in (reid, utility) if isinstance(r, str))
        raise AuditDataError(f"the sweep cannot run on {data_dir}: {reasons}")
    rows = []
    for index, view in enumerate(config.views):
        clock = time.monotonic()
        entry = reidentify(context, reid, view, index)
        iou = silhouette(context, utility, view, index)
        rows.append(
            {
                "label": view.label,
                "settings": view.to_json(),
                "reid_chance": entry["chance"],
                "reid_single_frame": entry["accuracy"],
                "reid_temporal": entry["temporal"]["accuracy"],
                "reid_strongest": entry["strongest"]["accuracy"],
                "reid_strongest_attacker": entry["strongest"]["attacker"],
                "reid_sessions_correct": entry["sessions_correct"],
                "reid_sessions_tested": entry["sessions_tested"],
                "silhouette_iou": iou,
                "seconds": round(time.monotonic() - clock, 1),
            }
        )
        context.log(
            f"[{index + 1}/{len(config.views)}] {view.label}: strongest re-ID "
            f"{entry['strongest']['accuracy']:.3f} (chance {entry['chance']:.3f}), silhouette IoU {iou:.3f}"
        )
    reference = next((row for row in rows if row["label"] == REFERENCE.label), None)
    for row in rows:
        row["iou_vs_reference"] = row["silhouette_iou"] / reference["silhouette_iou"] if reference else None
    result = {
        **result_header(context, config, data_dir, FORMAT_NAME, FORMAT_VERSION),
        "reidentification": {**reid.summary(), "temporal_frames": config.temporal_frames},
        "silhouette": {
            "train_samples": len(utility.train),
            "test_samples": len(utility.test),
            "mean_mask_iou": utility.mean_mask_iou,
            "all_background_iou": 0.0,
        },
        "reference": REFERENCE.label if reference else None,
        "rows": rows,
        "knee": knee(rows),
        "target": target_region(rows),
        "wall_time_s": context.elapsed_s(),
    }
    with staged_directory(out_dir) as staging:
        report.write_sweep(staging, result)
    context.log(f"wrote {out_dir}")
    return result


def keeps_utility(row: dict[str, Any]) -> bool:
    """At least 90 % of the reference's silhouette IoU (never without a reference row)."""
    return row["iou_vs_reference"] is not None and row["iou_vs_reference"] >= TARGET_UTILITY_SHARE


def knee(rows: list[dict[str, Any]]) -> str | None:
    """The setting that hides identity best (lowest strongest re-ID) among those that keep the
    utility; None without a reference row."""
    kept = [row for row in rows if keeps_utility(row)]
    return min(kept, key=lambda row: row["reid_strongest"])["label"] if kept else None


def target_region(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Where a setting would be private enough and still useful, and which settings reach it."""
    chance = rows[0]["reid_chance"]
    reached = [
        row["label"]
        for row in rows
        if keeps_utility(row) and row["reid_strongest"] <= chance + TARGET_REID_ABOVE_CHANCE
    ]
    return {
        "max_reid": chance + TARGET_REID_ABOVE_CHANCE,
        "min_iou_vs_reference": TARGET_UTILITY_SHARE,
        "reached_by": reached,
    }
