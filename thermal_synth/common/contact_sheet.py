"""Contact sheets: a grid of pictures, each with a few lines of caption, for a person to look at.

The latent bank (`thermal-synth codes list --sheet`), the dataset preview and the alignment check
all show many small images with names under them; one layout keeps them alike and keeps the
text handling (wrapping names without spaces, eliding what does not fit) in one place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_PLAIN
FONT_SCALE = 0.9
LINE_HEIGHT = 13
PADDING = 4
JPEG_QUALITY = 95
"""For sheets of many photographs, where PNG takes megabytes: high enough that a model's artefacts,
which the sheets are there to show, are not lost among the compression's own."""
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)


def captioned_grid(
    tiles: Sequence[np.ndarray],
    captions: Sequence[Sequence[str]],
    *,
    columns: int,
    caption_lines: int,
    min_cell_width: int = 0,
    empty_text: str = "(nothing to show)",
) -> np.ndarray:
    """(rows, cols, 3) uint8 RGB on white: tile i centred in its cell above captions[i].

    Tiles may differ in size (each cell fits the largest). Each caption line is wrapped to the
    cell width and the caption cut to `caption_lines`, the last kept line ending in "...".
    """
    if len(tiles) != len(captions):
        raise ValueError(f"{len(tiles)} tiles but {len(captions)} captions")
    tile_rows = max((tile.shape[0] for tile in tiles), default=LINE_HEIGHT * 2)
    tile_cols = max((tile.shape[1] for tile in tiles), default=0)
    cell_rows = tile_rows + 2 * PADDING + caption_lines * LINE_HEIGHT
    cell_cols = max(min_cell_width, tile_cols + 2 * PADDING)
    columns = max(1, min(columns, len(tiles)))
    grid_rows = max(1, math.ceil(len(tiles) / columns))
    sheet = np.full((grid_rows * cell_rows, columns * cell_cols, 3), 255, np.uint8)
    if not tiles:
        draw_text(sheet, empty_text, (2 * PADDING, cell_rows // 2))
    for index, (tile, caption) in enumerate(zip(tiles, captions, strict=True)):
        top, left = (index // columns) * cell_rows + PADDING, (index % columns) * cell_cols
        tile_left = left + (cell_cols - tile.shape[1]) // 2
        sheet[top : top + tile.shape[0], tile_left : tile_left + tile.shape[1]] = tile
        lines = fit_lines(caption, cell_cols - 2 * PADDING, caption_lines)
        for line, text in enumerate(lines):
            draw_text(sheet, text, (left + PADDING, top + tile_rows + (line + 1) * LINE_HEIGHT))
    return sheet


def fit_lines(caption: Sequence[str], width_px: int, max_lines: int) -> list[str]:
    """Names have no spaces, so lines wrap by characters; what is cut off ends in '...'."""
    lines = [wrapped for text in caption for wrapped in _wrap(text, width_px)]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][:-3] + "..."
    return lines


def _wrap(text: str, width_px: int) -> list[str]:
    lines, current = [], ""
    for character in text:
        if current and text_width(current + character) > width_px:
            lines.append(current)
            current = ""
        current += character
    lines.append(current)
    return lines


def text_width(text: str) -> int:
    return cv2.getTextSize(text, FONT, FONT_SCALE, 1)[0][0]


def draw_text(
    image: np.ndarray, text: str, origin: tuple[int, int], colour: tuple[int, int, int] = BLACK
) -> None:
    cv2.putText(image, text, origin, FONT, FONT_SCALE, colour, 1, cv2.LINE_AA)


def encode_png(rgb: np.ndarray) -> bytes:
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not encode the image as PNG")
    return png.tobytes()


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode the image as JPEG")
    return jpeg.tobytes()


def check_png_path(path: Path) -> None:
    """Before any work: a sheet named *.jpg would otherwise be PNG bytes under a lying name."""
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: the contact sheet is a PNG; name it *.png")
