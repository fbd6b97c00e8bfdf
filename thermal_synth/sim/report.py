"""How close is the simulated thermal data to a real Lepton frame? A picture and a few numbers.

The contact sheet lets a person spot what statistics miss (a floating head, a cold face, RGB
and thermal out of register); the statistics make "looks about right" comparable between
renderer versions. The reference is one real Lepton 3.5 frame stored per-frame min-max scaled,
so every simulated frame is scaled the same way before anything is measured: absolute
temperatures do not enter, only the shape of the scene.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from importlib.resources import files
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from thermal_driver.sources.rig.types import THERMAL_SHAPE
from thermal_synth.dataset.shards import SPLITS, ShardReader

CONTACT_SHEET_NAME = "contact_sheet.png"
REALISM_NAME = "realism.json"
REAL_FRAME_RESOURCE = "data/lepton35_person_frame.npy"
HOT_THRESHOLD = 0.5
"""On the min-max scaled frame: in a room-temperature scene this separates skin and clothing from the room."""
HISTOGRAM_BINS = 10
DEFAULT_CELLS = 16
"""Including the real frame in the first cell."""
SHEET_COLUMNS = 4
LABEL_HEIGHT_PX = 26
BBOX_KEYS = ("top", "bottom", "left", "right", "area_fraction")
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.33


def load_real_frame() -> np.ndarray:
    """The reference Lepton 3.5 frame, (120, 160) uint16, shipped with the package."""
    with (files("thermal_synth") / REAL_FRAME_RESOURCE).open("rb") as stream:
        frame = np.load(stream, allow_pickle=False)
    return frame.reshape(THERMAL_SHAPE)


def min_max_scale(frames: np.ndarray) -> np.ndarray:
    """Each (H, W) frame to [0, 1] on its own range, as the real frame was stored; flat frames give 0."""
    frames = np.asarray(frames, dtype=np.float32)
    low = frames.min(axis=(-2, -1), keepdims=True)
    span = frames.max(axis=(-2, -1), keepdims=True) - low
    return np.divide(frames - low, span, out=np.zeros_like(frames), where=span > 0)


def frame_statistics(scaled: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame numbers for (N, H, W) scaled frames; the bounding box is NaN where nothing is hot."""
    count, rows, cols = scaled.shape
    hot = scaled > HOT_THRESHOLD
    any_row, any_col = hot.any(axis=2), hot.any(axis=1)
    found = any_row.any(axis=1)
    top = np.argmax(any_row, axis=1).astype(np.float64)
    bottom = rows - 1 - np.argmax(any_row[:, ::-1], axis=1).astype(np.float64)
    left = np.argmax(any_col, axis=1).astype(np.float64)
    right = cols - 1 - np.argmax(any_col[:, ::-1], axis=1).astype(np.float64)
    area = (bottom - top + 1) * (right - left + 1) / (rows * cols)
    bins = np.minimum((scaled * HISTOGRAM_BINS).astype(np.int64), HISTOGRAM_BINS - 1).reshape(count, -1)
    offsets = (np.arange(count) * HISTOGRAM_BINS)[:, None]
    histogram = np.bincount((bins + offsets).ravel(), minlength=count * HISTOGRAM_BINS).reshape(count, -1)
    return {
        "hot_fraction": hot.mean(axis=(1, 2)),
        **{
            key: np.where(found, value, np.nan)
            for key, value in zip(BBOX_KEYS, (top, bottom, left, right, area), strict=True)
        },
        "histogram": histogram / (rows * cols),
    }


def histogram_l1(histograms: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """L1 distance between normalised histograms: 0 = identical, 2 = no overlap at all."""
    return np.abs(histograms - reference).sum(axis=-1)


def realism(reader: ShardReader) -> dict[str, Any]:
    """Statistics of every thermal frame in the dataset next to the real frame's, shard by shard."""
    real = frame_statistics(min_max_scale(load_real_frame()[None]))
    per_frame: list[dict[str, np.ndarray]] = [
        frame_statistics(min_max_scale(reader.load_shard(split, index, ["thermal"])["thermal"]))
        for split in SPLITS
        for index in range(len(reader.shard_entries(split)))
    ]
    simulated = {key: np.concatenate([stats[key] for stats in per_frame]) for key in real}
    distances = histogram_l1(simulated["histogram"], real["histogram"][0])
    mean_histogram = simulated["histogram"].mean(axis=0)
    scalar_keys = ("hot_fraction", *BBOX_KEYS)
    return {
        "scaling": "per-frame min-max to [0, 1], as the real frame was stored",
        "hot_threshold": HOT_THRESHOLD,
        "histogram_bins": HISTOGRAM_BINS,
        "simulated_frames": len(distances),
        "real": {
            **{key: _number(real[key][0]) for key in scalar_keys},
            "histogram": _rounded(real["histogram"][0]),
        },
        "simulated": {
            **{key: _summary(simulated[key]) for key in scalar_keys},
            "histogram_mean": _rounded(mean_histogram),
        },
        "histogram_l1_to_real": {
            **_summary(distances),
            "of_mean_histogram": _number(histogram_l1(mean_histogram, real["histogram"][0])),
        },
    }


def _summary(values: np.ndarray) -> dict[str, float | None]:
    """Median and 10th/90th percentiles over the frames that have a value."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"median": None, "p10": None, "p90": None}
    p10, median, p90 = np.percentile(values, [10, 50, 90])
    return {"median": _number(median), "p10": _number(p10), "p90": _number(p90)}


def _number(value: float) -> float | None:
    """JSON has no NaN: a frame with nothing hot has no bounding box."""
    return None if not math.isfinite(value) else round(float(value), 4)


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 4) for v in values]


def contact_sheet(reader: ShardReader, cells: int = DEFAULT_CELLS, seed: int = 0) -> np.ndarray:
    """BGR grid: the real frame first, then random pairs, each RGB | false-colour thermal + label."""
    shards = [(split, index) for split in SPLITS for index in range(len(reader.shard_entries(split)))]
    locations = [
        (split, index, row)
        for split, index in shards
        for row in range(reader.shard_entries(split)[index]["samples"])
    ]
    session_of = [
        int(s) for split, index in shards for s in reader.load_shard(split, index, ["session"])["session"]
    ]
    picks = _pick_across_sessions(session_of, cells - 1, np.random.default_rng(seed))
    rows_by_shard: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    for pick in picks:
        split, index, row = locations[pick]
        rows_by_shard[(split, index)].append((pick, row))
    tiles: dict[int, np.ndarray] = {}
    for (split, index), rows in rows_by_shard.items():
        arrays = reader.load_shard(split, index, ["thermal", "rgb"])
        for pick, row in rows:
            session = reader.sessions[session_of[pick]]
            tiles[pick] = _tile(
                cv2.cvtColor(arrays["rgb"][row], cv2.COLOR_RGB2BGR),
                arrays["thermal"][row],
                (f"{session.identity} / {session.outfit}", f"{session.scene} ({split})"),
            )
    return _grid([_real_tile(), *(tiles[pick] for pick in picks)])


def _pick_across_sessions(session_of: list[int], count: int, rng: np.random.Generator) -> list[int]:
    """Random samples, but one per session before any session shows twice: neighbouring frames of
    one recording look alike, and a sheet of 15 frames from 3 sessions would show little."""
    seen: Counter[int] = Counter()
    ranked = []
    for position in rng.permutation(len(session_of)):
        session = session_of[position]
        ranked.append((seen[session], len(ranked), int(position)))
        seen[session] += 1
    return [position for *_, position in sorted(ranked)[: max(count, 0)]]


def _real_tile() -> np.ndarray:
    placeholder = np.full((*THERMAL_SHAPE, 3), 40, dtype=np.uint8)
    _put_lines(placeholder, ("no RGB:", "real Lepton 3.5"), origin_y=THERMAL_SHAPE[0] // 2 - 6)
    return _tile(placeholder, load_real_frame(), ("REAL reference frame", "FLIR Lepton 3.5"))


def _tile(rgb_bgr: np.ndarray, thermal: np.ndarray, label: tuple[str, str]) -> np.ndarray:
    rows, cols = THERMAL_SHAPE
    rgb_panel = cv2.resize(rgb_bgr, (cols, rows), interpolation=cv2.INTER_LINEAR)
    levels = np.rint(min_max_scale(thermal) * 255).astype(np.uint8)
    thermal_panel = cv2.applyColorMap(levels, cv2.COLORMAP_INFERNO)
    label_strip = np.zeros((LABEL_HEIGHT_PX, 2 * cols, 3), dtype=np.uint8)
    _put_lines(label_strip, label, origin_y=10)
    return np.vstack([np.hstack([rgb_panel, thermal_panel]), label_strip])


def _put_lines(image: np.ndarray, lines: tuple[str, ...], origin_y: int) -> None:
    for number, text in enumerate(lines):
        position = (4, origin_y + 12 * number)
        cv2.putText(image, text, position, _FONT, _FONT_SCALE, (255, 255, 255), 1, cv2.LINE_AA)


def _grid(tiles: list[np.ndarray]) -> np.ndarray:
    columns = min(SHEET_COLUMNS, len(tiles))
    blank = np.zeros_like(tiles[0])
    padded = tiles + [blank] * (-len(tiles) % columns)
    rows = [np.hstack(padded[start : start + columns]) for start in range(0, len(padded), columns)]
    return np.vstack(rows)


def write_report(
    dataset_dir: Path, out_dir: Path | None = None, cells: int = DEFAULT_CELLS, seed: int = 0
) -> dict[str, Any]:
    """Writes contact_sheet.png and realism.json (into the dataset by default); returns the statistics."""
    reader = ShardReader(Path(dataset_dir))
    out_dir = Path(dataset_dir) if out_dir is None else Path(out_dir)
    sheet_path = out_dir / CONTACT_SHEET_NAME
    if not cv2.imwrite(str(sheet_path), contact_sheet(reader, cells, seed)):
        raise OSError(f"{sheet_path}: could not write the contact sheet")
    stats = realism(reader)
    (out_dir / REALISM_NAME).write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def format_table(stats: dict[str, Any]) -> str:
    """The statistics as a small aligned table for the terminal."""
    real, simulated = stats["real"], stats["simulated"]
    rows = [("metric", "real", "sim median", "sim p10..p90")]
    labels = {
        "hot_fraction": f"hot fraction (> {stats['hot_threshold']})",
        "top": "hot bbox top (row)",
        "bottom": "hot bbox bottom (row)",
        "left": "hot bbox left (col)",
        "right": "hot bbox right (col)",
        "area_fraction": "hot bbox area fraction",
    }
    for key, label in labels.items():
        summary = simulated[key]
        rows.append((label, _cell(real[key]), _cell(summary["median"]), _spread(summary)))
    distance = stats["histogram_l1_to_real"]
    rows.append(("histogram L1 to real (0..2)", "0", _cell(distance["median"]), _spread(distance)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        f"realism: {stats['simulated_frames']} simulated thermal frames vs the real Lepton 3.5 frame, "
        f"all {stats['scaling']}"
    ]
    lines += [
        "  ".join([row[0].ljust(widths[0]), *(v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True))])
        for row in rows
    ]
    lines.append(f"{'histogram, real':<{widths[0]}}  " + " ".join(f"{v:.2f}" for v in real["histogram"]))
    lines.append(
        f"{'histogram, sim mean':<{widths[0]}}  " + " ".join(f"{v:.2f}" for v in simulated["histogram_mean"])
    )
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _spread(summary: dict[str, float | None]) -> str:
    return f"{_cell(summary['p10'])}..{_cell(summary['p90'])}"
