"""`thermal-synth dataset preview`: a contact sheet of a dataset, to check it before training on it.

What the model will learn from is the heatmap next to the RGB, with the person mask deciding
which heat counts, so each cell shows exactly those, on one temperature scale for the whole
sheet (a warm person should look warm in every cell, not be stretched to white in each one).
The heatmap is drawn cell by cell, as coarse as the model gets it. The mask outline is drawn on
both panels: on the RGB it should hug the person, and on the heatmap it shows whether the warm
cells and the person line up (a misaligned RGB shows as an outline beside the heat).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from thermal_synth.common.contact_sheet import captioned_grid
from thermal_synth.dataset.shards import ShardReader

PANEL_SCALE = 2
"""The 96x128 model image, twice enlarged: big enough to judge a face, small enough for 12 cells."""
SHEET_COLUMNS = 3
CAPTION_LINES = 3
OUTLINE_COLOUR = (0, 255, 0)
DIVIDER_PX = 2


@dataclass(frozen=True)
class PreviewSample:
    session: int
    time_s: float
    heatmap: np.ndarray
    rgb: np.ndarray
    person_mask: np.ndarray | None


def pick_samples(sessions: np.ndarray, count: int) -> list[int]:
    """Indices of up to `count` samples: one per session in turn, evenly spread within each.

    Neighbouring frames of one recording look alike, so a sheet of the first twelve frames would
    show one person twelve times; this shows every session before any session twice.
    """
    by_session = {int(s): np.flatnonzero(sessions == s) for s in np.unique(sessions)}
    if not by_session:
        return []
    per_session = -(-count // len(by_session))
    spread = {
        session: indices[np.linspace(0, len(indices) - 1, min(per_session, len(indices))).round().astype(int)]
        for session, indices in by_session.items()
    }
    picked: list[int] = []
    for turn in range(per_session):
        for session in sorted(spread):
            if turn < len(spread[session]) and len(picked) < count:
                picked.append(int(spread[session][turn]))
    return picked


def load_preview_samples(reader: ShardReader, split: str, count: int) -> list[PreviewSample]:
    """The picked samples, reading only the shards they are in (RGB of a whole split can be GBs)."""
    picked = pick_samples(reader.load_split(split, ["session"])["session"], count)
    fields = ["session", "time_s", "heatmap", "rgb"]
    if "person_mask" in reader.fields:
        fields.append("person_mask")
    starts = np.cumsum([0] + [entry["samples"] for entry in reader.shard_entries(split)])
    found: dict[int, PreviewSample] = {}
    for shard in sorted({int(np.searchsorted(starts, i, side="right")) - 1 for i in picked}):
        arrays = reader.load_shard(split, shard, fields)
        for i in picked:
            if starts[shard] <= i < starts[shard + 1]:
                row = i - starts[shard]
                found[i] = PreviewSample(
                    session=int(arrays["session"][row]),
                    time_s=float(arrays["time_s"][row]),
                    heatmap=arrays["heatmap"][row],
                    rgb=arrays["rgb"][row],
                    person_mask=arrays["person_mask"][row] if "person_mask" in arrays else None,
                )
    return [found[i] for i in picked]


def preview_sheet(reader: ShardReader, samples: Sequence[PreviewSample], split: str) -> np.ndarray:
    """(rows, cols, 3) uint8 RGB: per sample heatmap | RGB with the mask outline, and its labels."""
    if samples:
        stacked = np.stack([sample.heatmap for sample in samples])
        low, high = (float(v) for v in np.percentile(stacked, [1, 99]))
    else:
        low, high = 0.0, 1.0
    tiles, captions = [], []
    for sample in samples:
        session = reader.sessions[sample.session]
        tiles.append(_tile(sample, low, high))
        captions.append(
            [
                session.name,
                f"{session.identity} / {session.outfit} / {session.scene}",
                f"{split}, t={sample.time_s:.1f} s, heat {low:.0f}..{high:.0f} degC",
            ]
        )
    return captioned_grid(
        tiles,
        captions,
        columns=SHEET_COLUMNS,
        caption_lines=CAPTION_LINES,
        empty_text=f"(the {split} split is empty)",
    )


def _tile(sample: PreviewSample, low_c: float, high_c: float) -> np.ndarray:
    rows, cols = (side * PANEL_SCALE for side in sample.rgb.shape[:2])
    levels = np.clip((sample.heatmap - low_c) / max(high_c - low_c, 1e-3) * 255.0, 0, 255).astype(np.uint8)
    heat = cv2.applyColorMap(
        cv2.resize(levels, (cols, rows), interpolation=cv2.INTER_NEAREST), cv2.COLORMAP_INFERNO
    )
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
    rgb = cv2.resize(sample.rgb, (cols, rows), interpolation=cv2.INTER_NEAREST)
    if sample.person_mask is not None:
        enlarged = cv2.resize(
            sample.person_mask.astype(np.uint8), (cols, rows), interpolation=cv2.INTER_NEAREST
        )
        contours, _ = cv2.findContours(enlarged, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        for panel in (heat, rgb):
            cv2.drawContours(panel, contours, -1, OUTLINE_COLOUR, 1)
    divider = np.full((rows, DIVIDER_PX, 3), 255, np.uint8)
    return np.hstack([heat, divider, rgb])
