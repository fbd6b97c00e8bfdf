"""privacy_downsample: exact area averaging, mean-preserving blur, and what it hides on a real Lepton frame;
PrivacySettings: the relative shift, noise and quantisation on top, their validation and their JSON.

The computation runs in float64 and rounds once to float32, so uniform scenes and range bounds are exact.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import LEPTON_FRAME
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from thermal_msgs.privacy import MAX_OUTPUT_SIZE, PrivacySettings, privacy_downsample
from thermal_msgs.units import centikelvin_to_celsius
from thermal_synth.model.recipe import HeatmapRecipe

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


def room_frames(count: int, seed: int = 5) -> np.ndarray:
    """(count, 120, 160) degrees C: a room at 18-26 C (its own in each frame, +-1 C from pixel to pixel)
    with a person ~10 C warmer in a different place in each frame, covering well under half the grid."""
    rng = np.random.default_rng(seed)
    rooms = rng.uniform(18, 26, (count, 1, 1))
    frames = (rooms + rng.uniform(-1, 1, (count, 120, 160))).astype(np.float32)
    for frame, row, col in zip(frames, rng.integers(0, 60, count), rng.integers(0, 100, count), strict=True):
        frame[row : row + 60, col : col + 40] = rng.uniform(31, 35)
    return frames


@pytest.mark.parametrize("shape", [(120, 160), (3, 120, 160), (8, 8)])
def test_default_settings_are_privacy_downsample_bit_for_bit(shape: tuple[int, ...]) -> None:
    frame = np.random.default_rng(6).uniform(15, 40, shape).astype(np.float32)
    result = PrivacySettings().apply(frame)
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, privacy_downsample(frame, (12, 16), 1.0))
    blurred_coarse = PrivacySettings(output_size=(5, 8), blur_sigma=2.5)
    np.testing.assert_array_equal(blurred_coarse.apply(frame), privacy_downsample(frame, (5, 8), 2.5))


def test_heatmap_recipe_is_the_same_path_on_centikelvin() -> None:
    centikelvin = np.random.default_rng(7).integers(29000, 31500, (4, 120, 160), dtype=np.uint16)
    celsius = centikelvin_to_celsius(centikelvin)
    np.testing.assert_array_equal(
        HeatmapRecipe().apply(centikelvin), privacy_downsample(celsius, (12, 16), 1.0)
    )
    settings = {"relative_temperature": True, "quantisation_c": 0.25, "noise_c": 0.1}
    recipe = HeatmapRecipe((6, 8), 0.5, **settings)
    np.testing.assert_array_equal(
        recipe.apply(centikelvin, np.random.default_rng(8)),
        PrivacySettings((6, 8), 0.5, **settings).apply(celsius, np.random.default_rng(8)),
    )
    assert recipe.privacy == PrivacySettings((6, 8), 0.5, **settings)
    with pytest.raises(ValueError, match="integer centi-Kelvin"):
        recipe.apply(celsius, np.random.default_rng(8))


@pytest.mark.parametrize("background_c", [22.0, 5.0, -50.0])
def test_relative_shift_puts_the_median_at_background_c_and_keeps_differences(background_c: float) -> None:
    frames = room_frames(6)
    plain = PrivacySettings().apply(frames).astype(np.float64)
    shifted = PrivacySettings(relative_temperature=True, background_c=background_c).apply(frames)
    np.testing.assert_allclose(np.median(shifted, axis=(1, 2)), background_c, atol=1e-5)
    # One offset per frame: every difference between two cells of a frame is kept.
    offsets = shifted - plain
    np.testing.assert_allclose(offsets, offsets[:, :1, :1] * np.ones_like(offsets), atol=1e-5)
    assert np.ptp(offsets[:, 0, 0]) > 1.0, "each frame's own median, not one shift for the batch"
    np.testing.assert_allclose(offsets[:, 0, 0], background_c - np.median(plain, axis=(1, 2)), atol=1e-5)


def test_relative_shift_hides_the_room_temperature() -> None:
    """The same scene 4 C warmer (heating on) publishes the same heatmap."""
    frames = room_frames(3)
    relative = PrivacySettings(relative_temperature=True)
    np.testing.assert_allclose(relative.apply(frames + 4.0), relative.apply(frames), atol=1e-5)


@pytest.mark.parametrize("step", [0.5, 1.0, 0.1, 2.5])
def test_quantisation_gives_multiples_of_the_step_within_half_a_step(step: float) -> None:
    frames = room_frames(4)
    plain = PrivacySettings().apply(frames)
    quantised = PrivacySettings(quantisation_c=step).apply(frames)
    assert quantised.dtype == np.float32
    multiples = quantised.astype(np.float64) / step
    np.testing.assert_allclose(multiples, np.round(multiples), atol=1e-5)
    assert np.abs(quantised.astype(np.float64) - plain).max() <= step / 2 + 1e-5
    assert len(np.unique(quantised)) < len(np.unique(plain))


def test_noise_has_the_requested_std_and_is_fresh_for_every_frame() -> None:
    frames = np.repeat(room_frames(1), 400, axis=0)
    plain = PrivacySettings().apply(frames[:1]).astype(np.float64)
    noisy = PrivacySettings(noise_c=0.3).apply(frames, np.random.default_rng(9)).astype(np.float64)
    noise = noisy - plain
    assert noise.std() == pytest.approx(0.3, rel=0.02)
    assert abs(noise.mean()) < 0.005
    assert np.all(noise.std(axis=0) > 0.2), "every cell is dithered"
    assert not np.any(np.all(noisy[1:] == noisy[:-1], axis=(1, 2))), "each frame gets its own noise"


def test_noise_is_reproducible_with_a_seeded_rng_and_differs_between_calls() -> None:
    frame = room_frames(1)[0]
    noisy = PrivacySettings(noise_c=0.2)
    np.testing.assert_array_equal(
        noisy.apply(frame, np.random.default_rng(10)), noisy.apply(frame, np.random.default_rng(10))
    )
    rng = np.random.default_rng(10)
    assert not np.array_equal(noisy.apply(frame, rng), noisy.apply(frame, rng))


def test_noise_refuses_to_run_without_an_rng() -> None:
    with pytest.raises(ValueError, match=r"noise_c=0\.2 needs a numpy Generator"):
        PrivacySettings(noise_c=0.2).apply(room_frames(1)[0])
    # Without noise the rng is optional and unused: the driver always passes one.
    frame = room_frames(1)[0]
    np.testing.assert_array_equal(
        PrivacySettings(quantisation_c=0.5).apply(frame, np.random.default_rng(11)),
        PrivacySettings(quantisation_c=0.5).apply(frame),
    )


def test_dithered_quantisation_averages_to_the_true_value_plain_quantisation_does_not() -> None:
    """The reason noise comes before quantisation: a cell at 22.3 C always reads 22 when quantised
    to 1 C; dithered, its mean over frames approaches 22.3."""
    frames = np.full((2000, 120, 160), 22.3, np.float32)
    truth = PrivacySettings().apply(frames[:1]).astype(np.float64)
    plain = PrivacySettings(quantisation_c=1.0).apply(frames).astype(np.float64)
    dithered = PrivacySettings(quantisation_c=1.0, noise_c=0.5).apply(frames, np.random.default_rng(12))
    plain_error = np.abs(plain.mean(axis=0) - truth).max()
    dithered_error = np.abs(dithered.astype(np.float64).mean(axis=0) - truth).max()
    assert plain_error == pytest.approx(0.3, abs=1e-5)
    assert dithered_error < 0.2 * plain_error
    multiples = dithered.astype(np.float64)
    np.testing.assert_array_equal(multiples, np.round(multiples))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"output_size": (0, 16)}, "output_size must be positive"),
        ({"output_size": (48, 64)}, "not privacy-safe"),
        ({"blur_sigma": -1.0}, r"blur_sigma must be a finite number >= 0 \(output cells\), got -1.0"),
        ({"relative_temperature": 1}, "relative_temperature must be true or false, got 1"),
        ({"background_c": 295.15}, r"background_c must be a finite number in \[-50, 100\] \(degrees C\)"),
        ({"background_c": math.nan}, r"background_c must be a finite number in \[-50, 100\]"),
        ({"quantisation_c": -1.0}, r"quantisation_c must be 0 \(off\) or a finite number in \[0.001, 100\]"),
        ({"quantisation_c": 1e-6}, r"quantisation_c must be 0 \(off\) or .*got 1e-06"),
        ({"quantisation_c": math.inf}, r"quantisation_c must be 0 \(off\) or .*got inf"),
        ({"noise_c": -0.1}, r"noise_c must be a finite number in \[0, 100\] \(degrees C\), got -0.1"),
        ({"noise_c": math.nan}, r"noise_c must be a finite number in \[0, 100\].*got nan"),
        ({"noise_c": 1e30}, r"noise_c must be a finite number in \[0, 100\]"),
        ({"noise_c": "0.2"}, r"noise_c must be .*got '0.2'"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_bad_settings_are_refused_naming_the_parameter_and_the_range(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PrivacySettings(**changes)


@pytest.mark.parametrize(
    ("settings", "label"),
    [
        (PrivacySettings(), "12x16"),
        (PrivacySettings(output_size=(5, 8), blur_sigma=0.0), "5x8 blur0"),
        (
            PrivacySettings(blur_sigma=2.0, relative_temperature=True, quantisation_c=0.5, noise_c=0.2),
            "12x16 blur2 rel q0.5 n0.2",
        ),
        (PrivacySettings(relative_temperature=True, background_c=25.5), "12x16 rel25.5"),
        (PrivacySettings(background_c=25.0), "12x16"),  # no shift, so no background to name
        (HeatmapRecipe((24, 32), quantisation_c=0.001), "24x32 q0.001"),
    ],
)
def test_labels_name_the_grid_and_only_the_transforms_in_use(settings: PrivacySettings, label: str) -> None:
    assert settings.label == label


@pytest.mark.parametrize("cls", [PrivacySettings, HeatmapRecipe])
def test_settings_survive_a_json_file(cls: type[PrivacySettings]) -> None:
    transforms = {"relative_temperature": True, "background_c": 20.0, "quantisation_c": 0.25, "noise_c": 0.1}
    settings = cls((6, 8), 0.5, **transforms)
    data = json.loads(json.dumps(settings.to_json()))
    assert data["quantisation_c"] == 0.25
    assert data["output_size"] == [6, 8]
    assert cls.from_json(data) == settings
    assert cls.from_json(cls().to_json()) == cls()


def test_files_written_before_the_transforms_load_with_them_off() -> None:
    """The recipe as model.json and dataset manifests held it before the transforms existed."""
    old = {
        "function": "thermal_msgs.privacy.privacy_downsample",
        "input": "thermal centi-Kelvin converted to degrees Celsius",
        "output_size": [12, 16],
        "blur_sigma": 1.0,
        "unit": "celsius",
    }
    assert HeatmapRecipe.from_json(old) == HeatmapRecipe()
    coarse = {**old, "output_size": [6, 8], "blur_sigma": 0.5}
    assert HeatmapRecipe.from_json(coarse) == HeatmapRecipe((6, 8), 0.5)
    assert PrivacySettings.from_json({"output_size": [5, 8], "blur_sigma": 2}) == PrivacySettings((5, 8), 2.0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([12, 16], "must be a JSON object"),
        ({"output_size": [12, 16]}, r"lack \['blur_sigma'\]"),
        ({"output_size": [12, 16], "blur_sigma": 1.0, "quantization_c": 0.5}, "unknown privacy settings"),
        ({"output_size": 12, "blur_sigma": 1.0}, "output_size must be two integers"),
        ({"output_size": [12, True], "blur_sigma": 1.0}, "output_size must be two integers"),
        ({"output_size": [12, 16], "blur_sigma": "1"}, "blur_sigma must be"),
        ({"output_size": [12, 16], "blur_sigma": 1.0, "relative_temperature": "yes"}, "relative_temperature"),
        ({"output_size": [12, 16], "blur_sigma": 1.0, "noise_c": None}, "noise_c"),
        ({"output_size": [12, 16], "blur_sigma": 1.0, "quantisation_c": False}, "quantisation_c"),
    ],
)
@pytest.mark.parametrize("cls", [PrivacySettings, HeatmapRecipe])
def test_malformed_json_is_refused_with_the_reason(
    cls: type[PrivacySettings], data: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        cls.from_json(data)  # type: ignore[arg-type]
