"""The evaluation's pictures: samples, the disentanglement grid, the silhouettes and the product path.

Tiles are shown at twice the model's resolution with nearest-neighbour enlargement: a 96x128
frame is too small to judge on a screen, and smoothing would hide exactly the artefacts a
reader is looking for.
"""

from __future__ import annotations

import numpy as np

from thermal_synth.common.contact_sheet import captioned_grid
from thermal_synth.evaluation.metrics import BLEND_FRACTIONS, Evaluation, evenly_spread
from thermal_synth.evaluation.silhouettes import iou

TILE_SCALE = 2
SAMPLE_COLUMNS = 8
SILHOUETTE_ROWS = 6
EMPTY_SHEET_WIDTH = 480
NO_MASKS = "no person masks in this dataset: nothing to compare with"
NO_PRODUCT_PATH = "no session of this split has a frame besides its photo"
BOTH, MISSED, EXTRA = (255, 255, 255), (230, 40, 40), (60, 120, 255)
"""Overlay colours: true and segmented, true only (the person is missing), segmented only."""


def enlarge(image: np.ndarray) -> np.ndarray:
    return image.repeat(TILE_SCALE, axis=0).repeat(TILE_SCALE, axis=1)


def samples_sheet(evaluation: Evaluation) -> np.ndarray:
    """Three rows: real frames | G(h, I(x)) | G(h, z), the same evenly spread frames in each."""
    chosen = evenly_spread(len(evaluation.real), SAMPLE_COLUMNS)
    tiles, captions = [], []
    for index in chosen:
        tiles.append(enlarge(evaluation.real[index]))
        captions.append([f"real #{index}", evaluation.session_labels[index]])
    for index in chosen:
        tiles.append(enlarge(evaluation.reconstructions[index]))
        captions.append(["G(h, I(x)) reconstruction", f"MAE {evaluation.sample_mae[index]:.4f}"])
    for index in chosen:
        tiles.append(enlarge(evaluation.samples[index]))
        captions.append(["G(h, z)", f"same heatmap as #{index}"])
    return captioned_grid(tiles, captions, columns=len(chosen), caption_lines=2)


def disentanglement_sheet(evaluation: Evaluation) -> np.ndarray:
    """Header row: the frames whose heatmaps are used; header column: the codes' appearances;
    cell (c, j): code c painted with heatmap j. Each row should keep one outfit and room, each
    column one pose."""
    grid = evaluation.disentanglement
    blank = np.full_like(enlarge(grid.heatmap_frames[0]), 255)
    tiles = [blank]
    captions = [["rows: codes", "columns: heatmaps", ""]]
    for label, frame in zip(grid.heatmap_labels, grid.heatmap_frames, strict=True):
        tiles.append(enlarge(frame))
        captions.append(["heatmap (pose) of", label, ""])
    for code, (name, frame) in enumerate(zip(grid.code_names, grid.code_frames, strict=True)):
        tiles.append(enlarge(frame))
        captions.append(["code (appearance) of", name, ""])
        for column, cell in enumerate(grid.cells[code]):
            tiles.append(enlarge(cell))
            captions.append(_cell_caption(evaluation, code, column))
    return captioned_grid(tiles, captions, columns=len(grid.heatmap_labels) + 1, caption_lines=3)


def blends_sheet(evaluation: Evaluation) -> np.ndarray:
    """Row i: code 2i blended into code 2i + 1 (as the node blends on a switch), one heatmap."""
    grid = evaluation.disentanglement
    tiles, captions = [], []
    for pair, strip in enumerate(grid.blends):
        start, end = grid.code_names[2 * pair], grid.code_names[2 * pair + 1]
        for fraction, image in zip(BLEND_FRACTIONS, strip, strict=True):
            tiles.append(enlarge(image))
            captions.append([f"{1 - fraction:.0%} {start}"[:30], f"{fraction:.0%} {end}"[:30]])
    if not tiles:
        tiles, captions = [np.full((8, 8, 3), 255, np.uint8)], [["fewer than two codes", ""]]
    return captioned_grid(tiles, captions, columns=len(BLEND_FRACTIONS), caption_lines=2)


def _cell_caption(evaluation: Evaluation, code: int, column: int) -> list[str]:
    retention = evaluation.disentanglement.retention
    if retention is None or not retention.valid[code, column]:
        return [f"code {code + 1}, heatmap {column + 1}", "", ""]
    distances = retention.distances[code, column]
    nearest = int(np.argmin(distances))
    verdict = "nearest: own source" if nearest == code else f"nearest: code {nearest + 1}'s source"
    if retention.codes < 2:
        verdict = ""
    return [f"code {code + 1}, heatmap {column + 1}", f"colour distance {distances[code]:.3f}", verdict]


def silhouettes_sheet(evaluation: Evaluation) -> np.ndarray:
    """Per row: real | G(h, I(x)) | true vs segmented real (the ceiling) | true vs segmented G."""
    rows = evaluation.silhouette_rows
    if evaluation.true_masks is None or rows.size == 0:
        return captioned_grid(
            [], [], columns=1, caption_lines=1, min_cell_width=EMPTY_SHEET_WIDTH, empty_text=NO_MASKS
        )
    tiles, captions = [], []
    legend = "red missed, blue extra"
    for index in rows[evenly_spread(rows.size, SILHOUETTE_ROWS)]:
        truth = evaluation.true_masks[index]
        real_mask, generated_mask = evaluation.real_masks[index], evaluation.generated_masks[index]
        tiles += [
            enlarge(evaluation.real[index]),
            enlarge(evaluation.reconstructions[index]),
            enlarge(overlay(truth, real_mask)),
            enlarge(overlay(truth, generated_mask)),
        ]
        captions += [
            [f"real #{index}", evaluation.session_labels[index], ""],
            ["G(h, I(x))", f"MAE {evaluation.sample_mae[index]:.4f}", ""],
            ["true vs segmented real", f"IoU {_iou(real_mask, truth):.3f} (ceiling)", legend],
            ["true vs segmented G", f"IoU {_iou(generated_mask, truth):.3f}", legend],
        ]
    return captioned_grid(tiles, captions, columns=4, caption_lines=3)


def overlay(truth: np.ndarray, segmented: np.ndarray) -> np.ndarray:
    """(H, W) bool masks -> (H, W, 3) uint8: where they agree and where they do not."""
    image = np.zeros((*truth.shape, 3), np.uint8)
    image[truth & segmented] = BOTH
    image[truth & ~segmented] = MISSED
    image[~truth & segmented] = EXTRA
    return image


def _iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float(iou(predicted[None], truth[None])[0])


def product_path_sheet(evaluation: Evaluation) -> np.ndarray:
    """Per session two rows: its photo then some of its real frames, and below each real frame the
    same frame painted from the photo's code. A working product keeps the photo's person and room
    and follows the real row's poses; a row that looks like the photo pasted has learnt nothing
    of the heatmap."""
    shown = evaluation.product_path
    if not shown.session_labels:
        return captioned_grid(
            [], [], columns=1, caption_lines=2, min_cell_width=EMPTY_SHEET_WIDTH, empty_text=NO_PRODUCT_PATH
        )
    columns = 1 + max(len(frames) for frames in shown.real)
    blank = np.full_like(enlarge(shown.photos[0]), 255)
    tiles: list[np.ndarray] = []
    captions: list[list[str]] = []
    sessions = zip(
        shown.session_labels, shown.photos, shown.positions, shown.real, shown.painted, strict=True
    )
    for label, photo, positions, real, painted in sessions:
        tiles.append(enlarge(photo))
        captions.append(["photo (frame 0): the code", label])
        for position, frame in zip(positions, real, strict=True):
            tiles.append(enlarge(frame))
            captions.append([f"real frame +{position}", f"photo pasted: MAE {_mae(photo, frame):.4f}"])
        _fill_row(tiles, captions, columns, blank)
        tiles.append(blank)
        captions.append(["this row: painted", "with the photo's code"])
        for position, frame, truth in zip(positions, painted, real, strict=True):
            tiles.append(enlarge(frame))
            captions.append([f"painted frame +{position}", f"MAE {_mae(frame, truth):.4f}"])
        _fill_row(tiles, captions, columns, blank)
    return captioned_grid(tiles, captions, columns=columns, caption_lines=2)


def _fill_row(tiles: list[np.ndarray], captions: list[list[str]], columns: int, blank: np.ndarray) -> None:
    """Blank cells up to the end of the row, so a session with few frames does not shift the next."""
    while len(tiles) % columns:
        tiles.append(blank)
        captions.append([])


def _mae(image: np.ndarray, truth: np.ndarray) -> float:
    return float(np.abs(image.astype(np.int16) - truth).mean()) / 255.0
