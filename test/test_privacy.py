"""privacy_downsample: exact area averaging, mean-preserving blur, and what it hides on a real Lepton frame.

The computation runs in float64 and rounds once to float32, so uniform scenes and range bounds are exact.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import LEPTON_FRAME
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from thermal_msgs.privacy import MAX_OUTPUT_SIZE, privacy_downsample

SIZE_PAIRS = [
    ((120, 160), (12, 16)),  # Lepton -> default grid, integer factors
    ((120, 160), (24, 32)),  # Lepton -> largest privacy-safe grid
    ((120, 160), (7, 9)),  # non-integer factors on both axes
    ((8, 8), (5, 8)),  # Grid-EYE, fractional rows
    ((8, 8), (3, 7)),
    ((8, 8), (24, 32)),  # upsampling: every output cell lies inside one input pixel
]
SIGMAS = [0.0, 0.3, 1.0, 2.5, 10.0, 50.0]


def brute_force_area_average(frame: np.ndarray, output_size: tuple[int, int]) -> np.ndarray:
    """Area averaging by supersampling: repeating each pixel `out` times puts every output edge on a
    sub-pixel boundary, after which each output cell is the plain mean of `in` sub-pixels."""
    out_h, out_w = output_size
    in_h, in_w = frame.shape
    supersampled = np.repeat(np.repeat(frame.astype(np.float64), out_h, axis=0), out_w, axis=1)
    return supersampled.reshape(out_h, in_h, out_w, in_w).mean(axis=(1, 3))


def total_variation(grid: np.ndarray) -> float:
    return float(np.abs(np.diff(grid, axis=0)).sum() + np.abs(np.diff(grid, axis=1)).sum())


def deepest_enclosed_dip(grid: np.ndarray) -> tuple[float, tuple[int, int]]:
    """How far a cell lies below both neighbours along a row or a column (a cold cell between warm ones),
    as a fraction of the grid's range, and where the deepest such cell is."""
    centre = grid[1:-1, 1:-1]
    below_vertical = np.minimum(grid[:-2, 1:-1], grid[2:, 1:-1]) - centre
    below_horizontal = np.minimum(grid[1:-1, :-2], grid[1:-1, 2:]) - centre
    dip = np.maximum(below_vertical, below_horizontal)
    row, col = np.unravel_index(np.argmax(dip), dip.shape)
    return float(dip[row, col] / np.ptp(grid)), (int(row) + 1, int(col) + 1)


@pytest.fixture(scope="module")
def lepton_frame() -> np.ndarray:
    """The real Lepton 3.5 frame of a person (relative values, min-max scaled), as float32 (120, 160)."""
    frame = np.load(LEPTON_FRAME)
    assert frame.shape == (120, 160, 1)
    return frame[..., 0].astype(np.float32)


@pytest.mark.parametrize(("input_size", "output_size"), SIZE_PAIRS)
@pytest.mark.parametrize("blur_sigma", SIGMAS)
@pytest.mark.parametrize("value", [29.85, 30000.0, -12.5])
def test_uniform_scene_stays_uniform(
    input_size: tuple[int, int], output_size: tuple[int, int], blur_sigma: float, value: float
) -> None:
    frame = np.full(input_size, value, dtype=np.float32)
    result = privacy_downsample(frame, output_size, blur_sigma)
    np.testing.assert_array_equal(result, np.full(output_size, value, np.float32))


def test_unblurred_integer_factors_are_exact_block_means() -> None:
    frame = np.random.default_rng(1).uniform(27000, 31000, (120, 160)).astype(np.float32)
    block_means = frame.astype(np.float64).reshape(12, 10, 16, 10).mean(axis=(1, 3))
    np.testing.assert_allclose(privacy_downsample(frame, (12, 16), 0.0), block_means, rtol=1e-6)


@pytest.mark.parametrize(("input_size", "output_size"), [pair for pair in SIZE_PAIRS if pair[1] != (12, 16)])
def test_unblurred_fractional_factors_weight_pixels_by_overlap(
    input_size: tuple[int, int], output_size: tuple[int, int]
) -> None:
    frame = np.random.default_rng(2).uniform(-20, 80, input_size).astype(np.float32)
    expected = brute_force_area_average(frame, output_size)
    np.testing.assert_allclose(privacy_downsample(frame, output_size, 0.0), expected, rtol=1e-5, atol=1e-4)


def test_fractional_overlap_on_a_single_hot_pixel() -> None:
    """8 rows into 5 cells of 1.6 rows: row 1 lies 0.6 in cell 0 and 0.4 in cell 1."""
    frame = np.zeros((8, 8), np.float32)
    frame[1, :] = 1.0
    column = privacy_downsample(frame, (5, 8), 0.0)[:, 0]
    np.testing.assert_allclose(column, [0.6 / 1.6, 0.4 / 1.6, 0, 0, 0], atol=1e-6)


@pytest.mark.parametrize(("input_size", "output_size"), SIZE_PAIRS)
@pytest.mark.parametrize("blur_sigma", SIGMAS)
def test_mean_temperature_is_preserved(
    input_size: tuple[int, int], output_size: tuple[int, int], blur_sigma: float
) -> None:
    frame = np.random.default_rng(3).uniform(20, 36, input_size).astype(np.float32)
    frame[: input_size[0] // 3, : input_size[1] // 4] += 15  # a hot corner, so edge handling matters
    result = privacy_downsample(frame, output_size, blur_sigma)
    assert result.mean(dtype=np.float64) == pytest.approx(frame.mean(dtype=np.float64), rel=1e-5)


@pytest.mark.parametrize("blur_sigma", [0.0, 1.0])
def test_batch_equals_frame_by_frame(blur_sigma: float) -> None:
    batch = np.random.default_rng(4).integers(27000, 31000, (5, 120, 160), dtype=np.uint16)
    result = privacy_downsample(batch, (12, 16), blur_sigma)
    assert result.shape == (5, 12, 16)
    for frame, downsampled in zip(batch, result, strict=True):
        np.testing.assert_allclose(downsampled, privacy_downsample(frame, (12, 16), blur_sigma), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.float64, np.int32])
@pytest.mark.parametrize("output_size", [(12, 16), (1, 1), MAX_OUTPUT_SIZE])
def test_output_is_float32_of_the_requested_size(dtype: type, output_size: tuple[int, int]) -> None:
    result = privacy_downsample(np.full((120, 160), 30000, dtype=dtype), output_size, 1.0)
    assert result.dtype == np.float32
    assert result.shape == output_size


@pytest.mark.parametrize(
    ("output_size", "message"),
    [
        ((0, 16), "must be positive"),
        ((12, -1), "must be positive"),
        ((12, 16, 1), r"must be two integers \[height, width\]"),
        ((12.9, 16), r"must be two integers \[height, width\]"),
        ((MAX_OUTPUT_SIZE[0] + 1, 16), "not privacy-safe"),
        ((12, MAX_OUTPUT_SIZE[1] + 1), "publish_raw"),
    ],
)
def test_invalid_output_size_is_refused_with_the_reason(output_size: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        privacy_downsample(np.zeros((120, 160), np.float32), output_size, 1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("blur_sigma", [-0.5, math.nan, math.inf])
def test_invalid_blur_sigma_is_refused_with_the_reason(blur_sigma: float) -> None:
    with pytest.raises(ValueError, match="blur_sigma must be a finite number >= 0"):
        privacy_downsample(np.zeros((120, 160), np.float32), (12, 16), blur_sigma)


@pytest.mark.parametrize("shape", [(160,), (1, 1, 120, 160)])
def test_frames_of_the_wrong_rank_are_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"\(H, W\) or \(N, H, W\)"):
        privacy_downsample(np.zeros(shape, np.float32), (12, 16), 1.0)


def test_lepton_person_lands_in_the_hot_cells(lepton_frame: np.ndarray) -> None:
    result = privacy_downsample(lepton_frame, (12, 16), 1.0)
    hottest_pixels = lepton_frame >= np.percentile(lepton_frame, 95)
    rows, cols = np.nonzero(hottest_pixels)
    argmax_row, argmax_col = np.unravel_index(np.argmax(result), result.shape)
    assert rows.min() // 10 <= argmax_row <= rows.max() // 10
    assert cols.min() // 10 <= argmax_col <= cols.max() // 10
    # The warmest tenth of the cells holds most of the person; the rest is almost free of it.
    hot_share_per_cell = hottest_pixels.reshape(12, 10, 16, 10).mean(axis=(1, 3))
    hot_cells = result >= np.percentile(result, 90)
    assert hot_share_per_cell[hot_cells].mean() > 5 * hot_share_per_cell[~hot_cells].mean()


def test_lepton_output_is_smoother_than_block_means(lepton_frame: np.ndarray) -> None:
    blurred = privacy_downsample(lepton_frame, (12, 16), 1.0)
    block_means = privacy_downsample(lepton_frame, (12, 16), 0.0)
    assert total_variation(blurred) < 0.75 * total_variation(block_means)


def test_lepton_glasses_are_no_cold_cell_inside_the_warm_face(lepton_frame: np.ndarray) -> None:
    """Block means alone still show the cold glasses as a cell well below its warm neighbours; the
    default blur (1 cell) leaves no such local structure anywhere on the grid."""
    dip, (row, col) = deepest_enclosed_dip(privacy_downsample(lepton_frame, (12, 16), 0.0))
    assert dip > 0.2, "the glasses should be visible without blur, or this test proves nothing"
    assert lepton_frame[row * 10 : (row + 1) * 10, col * 10 : (col + 1) * 10].max() > np.percentile(
        lepton_frame, 95
    ), "the cold cell should sit in the face"
    blurred_dip, _ = deepest_enclosed_dip(privacy_downsample(lepton_frame, (12, 16), 1.0))
    assert blurred_dip < 0.05


@settings(max_examples=60, deadline=None)
@given(
    frame=arrays(
        np.float32,
        st.tuples(st.integers(1, 40), st.integers(1, 40)),
        elements=st.floats(-100, 500, width=32),
    ),
    output_size=st.tuples(st.integers(1, MAX_OUTPUT_SIZE[0]), st.integers(1, MAX_OUTPUT_SIZE[1])),
    blur_sigma=st.one_of(st.just(0.0), st.floats(0, 20)),
)
def test_output_stays_within_the_input_range(
    frame: np.ndarray, output_size: tuple[int, int], blur_sigma: float
) -> None:
    result = privacy_downsample(frame, output_size, blur_sigma)
    assert result.min() >= frame.min()
    assert result.max() <= frame.max()
