"""The audit's outputs: one Markdown table a reader can quote, the numbers as JSON, and two pictures.

Every accuracy stands next to its chance level and every reconstruction error next to the error
of the guess that ignores the thermal data, because a number alone does not say how much leaks.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from thermal_msgs.privacy import PrivacySettings
from thermal_synth.common.contact_sheet import captioned_grid, encode_png
from thermal_synth.common.json_files import write_text_atomic
from thermal_synth.privacy_audit.data import RAW

THREAT_MODEL = (
    "The eavesdropper records the published thermal stream (the raw Lepton frame when the driver's "
    "`publish_raw` is on, otherwise the driver's heatmap, made here by the driver's own "
    "`thermal_msgs.privacy.PrivacySettings.apply` with the row's settings; `default` is the driver's "
    "default parameters) and reads absolute temperatures where the settings publish them, the "
    "strongest case: a radiometric sensor does. It trains its own "
    "attackers on such recordings, with labels: frames of the same rooms with and without a person "
    "(detection), recordings of every person from other sessions plus a frame of each room empty "
    "(re-identification, closed set; one attacker per frame, one on the mean of the last few frames), "
    "thermal/RGB pairs of other sessions (reconstruction). Every test session is one the attacker "
    "never trained on. The attackers are small CNNs trained for a fixed budget, so each number, the "
    "strongest attacker's included, is a lower bound on what leaks: a stronger attacker can only do "
    "better."
)
PAPER_TABLE_II = {"120x160": 0.807, "12x16": 0.0, "5x8": 0.0}
"""PAIR-LRT-Human, Table II: fine-tuned YOLOv7 person detection on thermal at 160x120, 16x12, 8x5."""
ATTACK_TITLES = {
    "detection": "person detection",
    "reidentification": "re-identification",
    "reconstruction": "RGB reconstruction",
}
TILE_SCALE = 2
TARGET_PLOT_MARGIN = 0.1
"""The sweep plot shows at least this much above chance, so the target band is never cut off."""
LABEL_PLACES = ((4, 3, "left"), (4, -9, "left"), (-4, 3, "right"))
"""Label offsets (points) and alignment for the sweep plot's points, used in turn."""
FALSE_COLOUR_RANGE_C = (15.0, 40.0)


def write_outputs(directory: Path, result: dict[str, Any], sheet: dict[str, Any]) -> None:
    write_text_atomic(directory / "audit.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(directory / "audit.md", markdown(result))
    (directory / "audit.png").write_bytes(plot(result))
    if sheet:
        (directory / "reconstructions.png").write_bytes(encode_png(reconstruction_sheet(sheet)))


def _resolution_name(label: str) -> str:
    return f"{label} (raw)" if label == RAW.label else label


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table_rows(result: dict[str, Any]) -> list[list[str]]:
    """One row per resolution and attack that ran; skipped attacks are explained below the table."""
    attacks = result["attacks"]
    rows = []
    for label in result["views"]:
        detection = attacks["detection"]
        if detection["status"] == "ok":
            entry = detection["results"][label]
            rows.append(
                [
                    _resolution_name(label),
                    ATTACK_TITLES["detection"],
                    _number(entry["accuracy"]),
                    _number(entry["chance"]),
                    "",
                    "",
                    f"{entry['train_samples']} / {entry['test_samples']}",
                ]
            )
        reid = attacks["reidentification"]
        if reid["status"] == "ok":
            entry = reid["results"][label]
            low, high = entry["session_accuracy_ci95"]
            strongest = entry["strongest"]
            rows.append(
                [
                    _resolution_name(label),
                    f"{ATTACK_TITLES['reidentification']} ({len(reid['identities'])} people)",
                    f"{_number(entry['accuracy'])}; sessions {entry['sessions_correct']}/"
                    f"{entry['sessions_tested']} (95 % CI {low:.2f}-{high:.2f}); strongest "
                    f"{_number(strongest['accuracy'])} ({strongest['attacker']})",
                    _number(entry["chance"]),
                    "",
                    "",
                    f"{entry['train_samples']} / {entry['test_samples']}",
                ]
            )
        reconstruction = attacks["reconstruction"]
        if reconstruction["status"] == "ok":
            entry, baseline = reconstruction["results"][label], reconstruction["baseline"]
            rows.append(
                [
                    _resolution_name(label),
                    ATTACK_TITLES["reconstruction"],
                    "",
                    f"mean image: MAE {_number(baseline['mae'])}, FID {_number(baseline['fid'], 1)}",
                    _number(entry["mae"]),
                    _number(entry["fid"], 1),
                    f"{entry['train_samples']} / {entry['test_samples']}",
                ]
            )
    return rows


def markdown(result: dict[str, Any]) -> str:
    header = [
        "Published",
        "Attack",
        "Accuracy",
        "Chance / baseline",
        "MAE [0,1]",
        "FID",
        "Train / test samples",
    ]
    lines = [
        "# Privacy audit: what trained attackers learn from the thermal stream",
        "",
        f"Dataset `{result['dataset']}`: {result['frames']} frames from {result['sessions']} sessions. "
        f"{result['config']['steps']} training steps per attacker, seed {result['config']['seed']}, "
        f"device {result['device']}, {result['wall_time_s']:.0f} s.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in table_rows(result)),
        "",
        _row_settings(result),
        "",
        "## Threat model",
        "",
        result["threat_model"],
        "",
        "## The attacks",
        "",
        *_attack_notes(result),
        "",
        "## Compared with the paper",
        "",
        _paper_comparison(result),
        "",
    ]
    return "\n".join(lines)


def _settings_label(result: dict[str, Any], label: str) -> str:
    """The label of a row's settings themselves (`default` -> e.g. `12x16`)."""
    settings = result["config"]["views"][label]
    return RAW.label if settings is None else PrivacySettings.from_json(settings).label


def _tick(result: dict[str, Any], label: str) -> str:
    """A plot's name for a row: `default` says what the default publishes (e.g. 12x16)."""
    settings = _settings_label(result, label)
    name = _resolution_name(label)
    return name if settings == label else f"{name}\n({settings})"


def _row_settings(result: dict[str, Any]) -> str:
    """Says what each row's label stands for where it is not the settings' own label (`default`)."""
    named = []
    for label, settings in result["config"]["views"].items():
        if settings is None:
            named.append(f"`{label}`: the raw frame (`publish_raw`)")
        else:
            own = _settings_label(result, label)
            named.append(
                f"`{label}`: " + (f"the driver's default parameters ({own})" if own != label else own)
            )
    return "Rows: " + "; ".join(named) + "."


def _attack_notes(result: dict[str, Any]) -> list[str]:
    attacks = result["attacks"]
    notes = []
    detection = attacks["detection"]
    if detection["status"] == "ok":
        notes.append(
            f"- **Person detection**: trained on {detection['train_sessions']} sessions of the train split, "
            f"tested on {detection['test_sessions']} unseen sessions (test and heldout splits). Every frame "
            "has a negative: the same room at the same instant, with the same sensor noise and FFC offset, "
            "re-rendered without the person, so the classes are balanced (chance 0.5) and only the person "
            "tells them apart."
        )
    else:
        notes.append(f"- **Person detection**: skipped: {detection['reason']}.")
    reid = attacks["reidentification"]
    if reid["status"] == "ok":
        notes.append(
            f"- **Re-identification**: among {reid['population']}: {', '.join(reid['identities'])}. "
            f"Each person's sessions take turns as the unseen test session ({reid['folds']} folds); the "
            "attacker trains on all other sessions of the same people, recorded in other rooms and often "
            "in other clothes. It subtracts one frame of the empty room per session (what the sensor "
            "streams before the person sits down) at the resolution it records, and so classifies the "
            "person's warmth over the room: fed whole frames, it learns the rooms and names whoever it saw "
            "in the test room, below chance. Frame accuracy counts every frame; the session count is a "
            "majority vote over a whole session, what an eavesdropper of a call gets, with its 95 % "
            f"Wilson interval (sessions are the independent unit). Chance is 1/{len(reid['identities'])}. "
            f"A second, temporal attacker reads the mean of the session's last {reid['temporal_frames']} "
            "frames (room subtracted, trained twice as long), as an eavesdropper who buffers the stream "
            "would, averaging away noise drawn per frame; *strongest* is the better of the two, still "
            "only a lower bound."
        )
    else:
        notes.append(f"- **Re-identification**: skipped: {reid['reason']}.")
    reconstruction = attacks["reconstruction"]
    if reconstruction["status"] == "ok":
        fid_samples = next(iter(reconstruction["results"].values()))["fid_samples"]
        fid_note = (
            f"FID is computed on {fid_samples} frames per set: it is biased upwards at that size and "
            "compares only within this table, not with the paper's 9.6. It rates how real the set of "
            "images looks, not whether each matches its frame: blurred guesses can score worse than "
            "the constant mean image while being far closer frame by frame (MAE)."
            if fid_samples
            else "FID was not computed (--no-fid, or fewer than two test frames)."
        )
        notes.append(
            f"- **RGB reconstruction**: thermal frame to the 96x128 camera frame, L1-trained on "
            f"{reconstruction['train_sessions']} train sessions, tested on {reconstruction['test_sessions']} "
            "unseen ones. The baseline is the mean training image, the constant guess of an attacker "
            f"without the thermal stream; the gap to it is what the stream adds. {fid_note} "
            "See reconstructions.png."
        )
    else:
        notes.append(f"- **RGB reconstruction**: skipped: {reconstruction['reason']}.")
    return notes


def _paper_comparison(result: dict[str, Any]) -> str:
    detection = result["attacks"]["detection"]
    ours = ""
    if detection["status"] == "ok":
        ours = (
            "Here a detector trained on the stream itself scores "
            + ", ".join(
                f"{100 * entry['accuracy']:.1f} % at {label}" for label, entry in detection["results"].items()
            )
            + ". "
        )
    return (
        "The paper (Table II) fine-tuned YOLOv7 on thermal images and found people in 80.7 % of frames at "
        "160x120 and in 0 % at 16x12 and 8x5. That tests a detector built for sharp images on inputs "
        f"unlike its training data, not what the heatmap reveals. {ours}Low resolution does not hide "
        "that someone is there (the heatmap must carry the person's pose for the synthesis to work); "
        "whether it hides who they are and what the camera would show is what the re-identification and "
        "reconstruction rows measure against chance."
    )


def plot(result: dict[str, Any]) -> bytes:
    """audit.png: attacker accuracy per resolution with chance lines; reconstruction MAE (and FID)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    labels = result["views"]
    ticks = [_tick(result, label) for label in labels]
    positions = np.arange(len(labels))
    attacks = result["attacks"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 5.4), dpi=110)
    colours = {"detection": "tab:blue", "reidentification": "tab:orange"}
    for name, colour in colours.items():
        attack = attacks[name]
        if attack["status"] != "ok":
            left.plot([], [], " ", label=f"{ATTACK_TITLES[name]}: skipped (see audit.md)")
            continue
        accuracy = [attack["results"][label]["accuracy"] for label in labels]
        chance = attack["results"][labels[0]]["chance"]
        left.plot(positions, accuracy, "o-", color=colour, lw=2, label=f"trained {ATTACK_TITLES[name]}")
        if name == "reidentification":
            strongest = [attack["results"][label]["strongest"]["accuracy"] for label in labels]
            left.plot(positions, strongest, "^:", color=colour, lw=1.5, label="strongest re-identifier")
        left.axhline(
            chance, color=colour, ls="--", lw=1, label=f"chance, {ATTACK_TITLES[name]} ({chance:.2f})"
        )
    sizes = [_settings_label(result, label) for label in labels]
    paper = [(i, PAPER_TABLE_II[size]) for i, size in enumerate(sizes) if size in PAPER_TABLE_II]
    if paper:
        left.plot(*zip(*paper, strict=True), "kx", ms=9, mew=2, label="paper: fine-tuned YOLOv7 detection")
    left.set(
        xticks=positions,
        xticklabels=ticks,
        ylim=(-0.03, 1.05),
        xlabel="what the eavesdropper records",
        ylabel="accuracy on unseen sessions",
        title="Detection and re-identification",
    )
    left.grid(axis="y", alpha=0.3)
    left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    _plot_reconstruction(right, attacks["reconstruction"], labels, ticks, positions)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def _plot_reconstruction(
    axes, attack: dict[str, Any], labels: list[str], ticks: list[str], positions: np.ndarray
) -> None:
    axes.set(
        title="RGB reconstruction from thermal", xticks=positions, xlabel="what the eavesdropper records"
    )
    axes.set_xticklabels(ticks)
    if attack["status"] != "ok":
        axes.text(
            0.5,
            0.5,
            f"skipped: {attack['reason']}",
            ha="center",
            va="center",
            wrap=True,
            transform=axes.transAxes,
        )
        return
    mae = [attack["results"][label]["mae"] for label in labels]
    bars = axes.bar(positions, mae, color="tab:green", width=0.5, label="trained attacker")
    baseline = attack["baseline"]
    fid_text = f", FID {baseline['fid']:.0f}" if baseline["fid"] is not None else ""
    axes.axhline(
        baseline["mae"],
        color="k",
        ls="--",
        lw=1,
        label=f"mean training image (MAE {baseline['mae']:.3f}{fid_text})",
    )
    for bar, label in zip(bars, labels, strict=True):
        fid = attack["results"][label]["fid"]
        text = f"{bar.get_height():.3f}" + (f"\nFID {fid:.0f}" if fid is not None else "")
        axes.annotate(
            text,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 2),
            textcoords="offset points",
        )
    axes.set(ylabel="MAE on [0, 1] (lower = more revealed)", ylim=(0, max(*mae, baseline["mae"]) * 1.3))
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16))


def false_colour(celsius: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(rows, cols) Celsius -> RGB uint8 of `shape`, on one fixed scale, cells kept square-edged."""
    low, high = FALSE_COLOUR_RANGE_C
    levels = np.clip((celsius - low) / (high - low) * 255.0, 0, 255).astype(np.uint8)
    resized = cv2.resize(levels, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return cv2.applyColorMap(resized, cv2.COLORMAP_INFERNO)[:, :, ::-1].copy()


def reconstruction_sheet(sheet: dict[str, Any]) -> np.ndarray:
    """One row per example: the real frame, then for each resolution what the attacker saw and
    what it painted from it."""
    real = sheet["real"]
    rows, cols = real.shape[1] * TILE_SCALE, real.shape[2] * TILE_SCALE

    def enlarge(image: np.ndarray) -> np.ndarray:
        return cv2.resize(image, (cols, rows), interpolation=cv2.INTER_NEAREST)

    tiles, captions = [], []
    for index, image in enumerate(real):
        tiles.append(enlarge(image))
        captions.append(["real camera frame", sheet["captions"][index]])
        for label, images in sheet["reconstructions"].items():
            tiles.append(false_colour(sheet["views"][label][index], (rows, cols)))
            captions.append([f"seen: {_resolution_name(label)}"])
            tiles.append(enlarge(images[index]))
            error = np.mean(np.abs(images[index].astype(np.float32) - image.astype(np.float32))) / 255.0
            captions.append([f"painted from {label}", f"MAE {error:.3f}"])
    columns = 1 + 2 * len(sheet["reconstructions"])
    return captioned_grid(tiles, captions, columns=columns, caption_lines=2)


def write_sweep(directory: Path, result: dict[str, Any]) -> None:
    write_text_atomic(directory / "sweep.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(directory / "sweep.md", sweep_markdown(result))
    (directory / "sweep.png").write_bytes(sweep_plot(result))


def sweep_table(result: dict[str, Any]) -> list[str]:
    """The curve as Markdown table lines, one row per setting, the knee in bold."""
    header = [
        "Setting",
        "Re-ID single-frame",
        "Re-ID temporal",
        "Re-ID strongest (chance)",
        "Sessions named (single-frame)",
        "Silhouette IoU",
        f"IoU / {result['reference'] or 'reference'}",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in result["rows"]:
        label = f"**{row['label']}** (knee)" if row["label"] == result["knee"] else row["label"]
        relative = row["iou_vs_reference"]
        cells = [
            label,
            _number(row["reid_single_frame"]),
            _number(row["reid_temporal"]),
            f"{_number(row['reid_strongest'])} ({_number(row['reid_chance'])})",
            f"{row['reid_sessions_correct']}/{row['reid_sessions_tested']}",
            _number(row["silhouette_iou"]),
            "n/a" if relative is None else f"{100 * relative:.0f} %",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _knee_sentence(result: dict[str, Any]) -> str:
    target = result["target"]
    if result["knee"] is None:
        return (
            "No knee: no setting keeps 90 % of the untransformed 12x16's silhouette IoU, or that "
            "reference row is missing."
        )
    knee = next(row for row in result["rows"] if row["label"] == result["knee"])
    reached = (
        f"The target region (strongest re-ID <= {target['max_reid']:.3f}, IoU >= "
        f"{100 * target['min_iou_vs_reference']:.0f} % of {result['reference']}) is reached by "
        + ", ".join(f"`{label}`" for label in target["reached_by"])
        if target["reached_by"]
        else f"No setting reaches the target region (strongest re-ID <= {target['max_reid']:.3f} with IoU >= "
        f"{100 * target['min_iou_vs_reference']:.0f} % of {result['reference']})"
    )
    return (
        f"**Knee**: `{knee['label']}`, the lowest strongest re-identification "
        f"({knee['reid_strongest']:.3f}, chance {knee['reid_chance']:.3f}) among the settings that keep "
        f"at least {100 * target['min_iou_vs_reference']:.0f} % of {result['reference']}'s silhouette IoU "
        f"(it keeps {100 * knee['iou_vs_reference']:.0f} %). {reached}."
    )


def sweep_markdown(result: dict[str, Any]) -> str:
    reid, utility = result["reidentification"], result["silhouette"]
    return "\n".join(
        [
            "# Privacy sweep: what each heatmap setting hides, and what it keeps",
            "",
            f"Dataset `{result['dataset']}`: {result['frames']} frames from {result['sessions']} sessions. "
            f"{result['config']['steps']} training steps per attacker and regressor, seed "
            f"{result['config']['seed']}, device {result['device']}, {result['wall_time_s']:.0f} s.",
            "",
            *sweep_table(result),
            "",
            _knee_sentence(result),
            "",
            "## How to read it",
            "",
            f"- **Re-identification** among {reid['population']} (chance 1/{len(reid['identities'])}), "
            f"on unseen sessions, {reid['folds']} folds, as in the audit. *Single-frame* is the audit's "
            f"attacker; *temporal* reads the mean of the session's last {reid['temporal_frames']} frames "
            "(noise drawn per frame averages out) and trains twice as long; *strongest* is the better "
            "of the two. Each is a lower bound on what an eavesdropper learns: a stronger attacker can "
            "only do better. Accuracy well below chance means the attacker learned something of the "
            "training sessions that misleads it on new ones, not that the setting hides the person.",
            f"- **Silhouette IoU**: a small CNN trained on the setting's heatmaps of "
            f"{utility['train_samples']} train-split frames predicts the person mask (24x32 cells) of "
            f"{utility['test_samples']} frames of unseen sessions. Guessing the mean training mask for "
            f"every frame scores {utility['mean_mask_iou']:.3f}, all background 0. It stands in for "
            "what the painter can still get from the heatmap (where the person is, their pose), "
            "without retraining the painter per setting.",
            "- Detection, reconstruction and FID are not in the sweep (see the plain audit): detection "
            "is near 1.0 for every heatmap, which must show that someone is there.",
            "",
        ]
    )


def sweep_plot(result: dict[str, Any]) -> bytes:
    """sweep.png: utility (x) against the strongest re-identification (y), with chance and the target."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.patches import Rectangle

    rows = result["rows"]
    iou = np.array([row["silhouette_iou"] for row in rows])
    reid = np.array([row["reid_strongest"] for row in rows])
    chance = rows[0]["reid_chance"]
    target = result["target"]
    figure, axes = plt.subplots(figsize=(8.5, 6.5), dpi=110)
    mean_mask = result["silhouette"]["mean_mask_iou"]
    x_low, x_high = min(iou.min(), mean_mask) - 0.05, min(1.0, max(iou.max(), mean_mask) + 0.08)
    y_high = max(reid.max(), chance + TARGET_PLOT_MARGIN) * 1.1
    reference = next((row for row in rows if row["label"] == result["reference"]), None)
    if reference is not None:
        left = target["min_iou_vs_reference"] * reference["silhouette_iou"]
        axes.add_patch(
            Rectangle(
                (left, 0),
                x_high - left,
                target["max_reid"],
                color="tab:green",
                alpha=0.15,
                label=f"target: re-ID <= chance + {target['max_reid'] - chance:.2f}, "
                f"IoU >= {100 * target['min_iou_vs_reference']:.0f} % of {result['reference']}",
            )
        )
    axes.axhline(chance, color="k", ls="--", lw=1, label=f"chance ({chance:.2f})")
    axes.axvline(
        mean_mask, color="tab:gray", ls=":", lw=1, label=f"same mean mask for every frame ({mean_mask:.2f})"
    )
    colours = ["tab:red" if row["label"] == result["knee"] else "tab:blue" for row in rows]
    axes.scatter(iou, reid, c=colours, s=36, zorder=3)
    for index, (row, x, y) in enumerate(zip(rows, iou, reid, strict=True)):
        text = f"{row['label']} (knee)" if row["label"] == result["knee"] else row["label"]
        # Right, below, left in turn keeps neighbours' labels apart.
        place = LABEL_PLACES[index % len(LABEL_PLACES)]
        axes.annotate(text, (x, y), fontsize=7, xytext=place[:2], ha=place[2], textcoords="offset points")
    axes.set(
        xlim=(x_low, x_high),
        ylim=(0, y_high),
        xlabel="utility: silhouette IoU on unseen sessions (higher = more useful)",
        ylabel="strongest re-identification accuracy (lower bound; lower = more private)",
        title="Privacy-utility curve of the published heatmap",
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
