"""The false-colour preview: what people see of the heatmap, and nothing more."""

from __future__ import annotations

import numpy as np
import pytest

from thermal_msgs.false_colour import false_colour, validate_color_size

# The ends of inferno in RGB (matplotlib and OpenCV agree): near-black for the coldest cell,
# pale yellow for the hottest. Swapped channels (BGR) would put 164 first.
INFERNO_COLDEST_RGB = (0, 0, 4)
INFERNO_HOTTEST_RGB = (252, 255, 164)


def room_with_a_person() -> np.ndarray:
    """A 12x16 heatmap with distinct cells: a 21 degC room gradient and a 31 degC blob."""
    rows, cols = np.mgrid[0:12, 0:16]
    room = 21.0 + 0.01 * (rows * 16 + cols)
    person = 10.0 * np.exp(-((rows - 5) ** 2 + (cols - 9) ** 2) / 8.0)
    return (room + person).astype(np.float32)


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def test_output_is_contiguous_rgb8_of_the_requested_size():
    preview = false_colour(room_with_a_person(), (240, 320))
    assert preview.shape == (240, 320, 3)
    assert preview.dtype == np.uint8
    assert preview.flags.c_contiguous


def test_upscaling_repeats_each_cell_as_a_square_block():
    ramp = np.linspace(20.0, 32.0, 12 * 16, dtype=np.float32).reshape(12, 16)
    cells = false_colour(ramp, ramp.shape)
    assert len(np.unique(cells.reshape(-1, 3), axis=0)) == ramp.size, "a misplaced block must show"
    preview = false_colour(ramp, (240, 320))
    np.testing.assert_array_equal(preview, np.repeat(np.repeat(cells, 20, axis=0), 20, axis=1))


def test_coldest_cell_is_inferno_black_and_hottest_inferno_yellow_in_rgb_order():
    heatmap = room_with_a_person()
    cells = false_colour(heatmap, heatmap.shape)
    assert tuple(cells[np.unravel_index(heatmap.argmin(), heatmap.shape)]) == INFERNO_COLDEST_RGB
    assert tuple(cells[np.unravel_index(heatmap.argmax(), heatmap.shape)]) == INFERNO_HOTTEST_RGB


def test_warmer_cells_are_never_darker():
    ramp = np.linspace(18.0, 36.0, 256, dtype=np.float32).reshape(16, 16)
    brightness = luminance(false_colour(ramp, ramp.shape)).ravel()
    assert np.all(np.diff(brightness) >= 0)
    assert brightness[-1] > brightness[0] + 200


def test_each_frame_spans_the_whole_colour_map_whatever_the_room_temperature():
    heatmap = room_with_a_person()
    np.testing.assert_array_equal(false_colour(heatmap + 15.0, (24, 32)), false_colour(heatmap, (24, 32)))


def test_a_uniform_frame_is_uniformly_dark_without_dividing_by_zero():
    with np.errstate(all="raise"):
        preview = false_colour(np.full((12, 16), 22.5, np.float32), (240, 320))
    assert np.all(preview == INFERNO_COLDEST_RGB)


@pytest.mark.parametrize("color_size", [[240, 320], (1, 1), [1080, 1440]])
def test_valid_color_sizes_pass(color_size):
    assert validate_color_size(color_size) == tuple(color_size)


@pytest.mark.parametrize(
    ("color_size", "reason"),
    [
        ([240], "two integers"),
        ([240, 320, 3], "two integers"),
        ([240.0, 320.0], "two integers"),
        ([0, 320], "positive"),
        ([240, -1], "positive"),
        ([1081, 320], "exceeds the maximum [1080, 1440]"),
        ([240, 1441], "exceeds the maximum [1080, 1440]"),
    ],
)
def test_invalid_color_sizes_say_why(color_size, reason):
    with pytest.raises(ValueError, match="color_size") as error:
        validate_color_size(color_size)
    assert reason in str(error.value)
