"""The product path of `thermal-synth eval`: one photo per session turned into a code, the session's
other frames painted from their heatmaps, against pasting the photo.

The metrics are checked on synthetic sessions (a textured square "person" moving over a textured
room) with painters whose answers are known: the photo itself, the truth, and halfway between.
Then `measure` on the tiny trained model must paint exactly what `thermal-synth codes add` and
the synthesis node would give a user.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from thermal_synth.appearances.cli import encode_photos
from thermal_synth.dataset.pairs import load_pairs
from thermal_synth.dataset.shards import ShardReader
from thermal_synth.engine.inference import SynthesisEngine
from thermal_synth.evaluation.metrics import (
    PRODUCT_PATH_CHUNK,
    ProductPath,
    previous_in_session,
    product_path_metrics,
)
from thermal_synth.evaluation.run import PRODUCT_PATH_FRAMES, EvalConfig, measure
from thermal_synth.model.files import load_trained_model

ROWS, COLS, SIDE = 24, 32, 8
SESSION_LENGTHS = (31, 40, 26)
"""Unequal, and 97 frames in all: chunks of PRODUCT_PATH_CHUNK end inside a session."""
GAIN_KEYS = ("pose_gain", "motion_gain")


class Sessions:
    """Each session: a noisy textured room, a textured square walking a zigzag, leaving the view
    for the last frame of the first session (an empty mask). Frame 0 is the photo."""

    def __init__(self, seed: int = 3) -> None:
        rng = np.random.default_rng(seed)
        photos, photo_masks, frames, masks, sessions = [], [], [], [], []
        for session, length in enumerate(SESSION_LENGTHS):
            room = rng.integers(0, 110, (ROWS, COLS, 3))
            person = rng.integers(140, 256, (SIDE, SIDE, 3))
            for t in range(length):
                frame, mask = room + rng.integers(-3, 4, room.shape), np.zeros((ROWS, COLS), bool)
                if not (session == 0 and t == length - 1):
                    top, left = 4 + (t % 7) + session, (3 * t + 5 * session) % (COLS - SIDE)
                    frame[top : top + SIDE, left : left + SIDE] = person
                    mask[top : top + SIDE, left : left + SIDE] = True
                image = np.clip(frame, 0, 255).astype(np.uint8)
                if t == 0:
                    photos.append(image)
                    photo_masks.append(mask)
                else:
                    frames.append(image)
                    masks.append(mask)
                    sessions.append(session)
        self.photos, self.photo_masks = np.stack(photos), np.stack(photo_masks)
        self.frames, self.masks, self.sessions = np.stack(frames), np.stack(masks), np.array(sessions)

    def still(self) -> np.ndarray:
        return self.photos[self.sessions]

    def halfway(self) -> np.ndarray:
        return ((self.still().astype(np.int16) + self.frames) // 2).astype(np.uint8)

    def measure(self, painted: np.ndarray, *, with_masks: bool = True) -> ProductPath:
        masks = {"masks": self.masks, "photo_masks": self.photo_masks} if with_masks else {}
        return product_path_metrics(self.photos, self.frames, painted, self.sessions, **masks)


@pytest.fixture(scope="module")
def synthetic() -> Sessions:
    return Sessions()


def test_the_synthetic_sessions_exercise_chunks_empty_masks_and_motion(synthetic: Sessions) -> None:
    assert len(synthetic.frames) > PRODUCT_PATH_CHUNK
    assert not synthetic.masks[SESSION_LENGTHS[0] - 2].any()  # the first session's last frame
    moved = synthetic.masks ^ synthetic.photo_masks[synthetic.sessions]
    assert 0.02 < moved.mean() < 0.5


def test_pasting_the_photo_gains_nothing_and_does_not_flicker(synthetic: Sessions) -> None:
    result = synthetic.measure(synthetic.still())
    for key in GAIN_KEYS:
        assert abs(getattr(result, key)) < 0.05, key
    assert result.product_mae == result.still_photo_mae > 0.01
    assert result.person_mae == result.still_photo_person_mae > result.still_photo_mae
    assert result.flicker_painted == 0.0
    assert result.flicker_ratio == 0.0
    assert result.unavailable == {}


def test_painting_the_truth_gains_everything_and_flickers_as_the_video(synthetic: Sessions) -> None:
    result = synthetic.measure(synthetic.frames.copy())
    for key in GAIN_KEYS:
        assert getattr(result, key) == pytest.approx(1.0, abs=1e-12), key
    assert result.product_mae == 0.0
    assert result.person_mae == 0.0
    assert result.flicker_ratio == pytest.approx(1.0)
    assert result.flicker_painted == result.flicker_real > 0.0


def test_painting_halfway_lands_in_between(synthetic: Sessions) -> None:
    still, truth = synthetic.measure(synthetic.still()), synthetic.measure(synthetic.frames.copy())
    halfway = synthetic.measure(synthetic.halfway())
    for key in GAIN_KEYS:
        assert 0.35 < getattr(halfway, key) < 0.65, key
    assert truth.product_mae < halfway.product_mae < still.product_mae
    assert truth.person_mae < halfway.person_mae < still.person_mae
    assert 0.35 < halfway.flicker_ratio < 0.65
    assert halfway.flicker_real == truth.flicker_real


def test_errors_are_pooled_over_all_pixels_of_all_sessions(synthetic: Sessions) -> None:
    """Independent of the chunked integer sums: plain float means over the whole arrays. Sessions
    differ in length and person size per frame, so a mean of per-session ratios would differ."""
    painted = synthetic.halfway()
    result = synthetic.measure(painted)
    error = np.abs(painted.astype(np.float64) - synthetic.frames) / 255.0
    still_error = np.abs(synthetic.still().astype(np.float64) - synthetic.frames) / 255.0
    moved = synthetic.masks ^ synthetic.photo_masks[synthetic.sessions]
    assert result.product_mae == pytest.approx(error.mean(), rel=1e-12)
    assert result.still_photo_mae == pytest.approx(still_error.mean(), rel=1e-12)
    assert result.person_mae == pytest.approx(error[synthetic.masks].mean(), rel=1e-12)
    assert result.still_photo_person_mae == pytest.approx(still_error[synthetic.masks].mean(), rel=1e-12)
    assert result.pose_gain == pytest.approx(
        1 - error[synthetic.masks].sum() / still_error[synthetic.masks].sum()
    )
    assert result.motion_gain == pytest.approx(1 - error[moved].sum() / still_error[moved].sum())
    per_session = [
        1
        - error[synthetic.sessions == s][synthetic.masks[synthetic.sessions == s]].sum()
        / still_error[synthetic.sessions == s][synthetic.masks[synthetic.sessions == s]].sum()
        for s in range(len(SESSION_LENGTHS))
    ]
    assert result.pose_gain != pytest.approx(np.mean(per_session), abs=1e-6)
    steps = [
        np.abs(np.diff(frames.astype(np.float64), axis=0)).mean()
        for frames in (painted[synthetic.sessions == s] for s in range(len(SESSION_LENGTHS)))
    ]
    pairs = [length - 2 for length in SESSION_LENGTHS]
    assert result.flicker_painted == pytest.approx(np.average(steps, weights=pairs) / 255.0, rel=1e-12)
    assert (result.sessions, result.frames) == (len(SESSION_LENGTHS), sum(SESSION_LENGTHS) - 3)


def test_flicker_compares_consecutive_frames_of_one_session_even_when_sessions_interleave(
    synthetic: Sessions,
) -> None:
    assert previous_in_session(np.array([0, 1, 0, 1, 1, 2])).tolist() == [-1, -1, 0, 1, 3, -1]
    painted = synthetic.halfway()
    grouped = synthetic.measure(painted)
    # Deal the frames out round-robin; each session keeps its own order.
    order = np.argsort(np.concatenate([np.arange(n) for n in np.bincount(synthetic.sessions)]), kind="stable")
    interleaved = product_path_metrics(
        synthetic.photos,
        synthetic.frames[order],
        painted[order],
        synthetic.sessions[order],
        masks=synthetic.masks[order],
        photo_masks=synthetic.photo_masks,
    )
    assert synthetic.sessions[order][:3].tolist() == [0, 1, 2]
    assert interleaved.values() == pytest.approx(grouped.values())
    reversed_order = product_path_metrics(
        synthetic.photos, synthetic.frames[::-1], painted[::-1], synthetic.sessions[::-1]
    )
    assert reversed_order.flicker_painted == pytest.approx(grouped.flicker_painted)


def test_without_masks_the_person_metrics_are_null_and_say_why(synthetic: Sessions) -> None:
    result = synthetic.measure(synthetic.halfway(), with_masks=False)
    for key in ("person_mae", "still_photo_person_mae", *GAIN_KEYS):
        assert getattr(result, key) is None, key
        assert "person_mask" in result.unavailable[key], key
    assert result.product_mae == synthetic.measure(synthetic.halfway()).product_mae
    assert set(result.unavailable) == {"person_mae", "still_photo_person_mae", *GAIN_KEYS}
    json.dumps(result.values(), allow_nan=False)


def test_empty_masks_and_lone_photos_give_nulls_with_reasons_never_nan(synthetic: Sessions) -> None:
    nobody = product_path_metrics(
        synthetic.photos,
        synthetic.frames,
        synthetic.halfway(),
        synthetic.sessions,
        masks=np.zeros_like(synthetic.masks),
        photo_masks=np.zeros_like(synthetic.photo_masks),
    )
    assert nobody.person_mae is None
    assert nobody.pose_gain is None
    assert "every true person mask is empty" in nobody.unavailable["pose_gain"]
    assert "never moved" in nobody.unavailable["motion_gain"]
    assert nobody.product_mae is not None
    empty = synthetic.frames[:0]
    lone = product_path_metrics(
        synthetic.photos, empty, empty, np.zeros(0, np.int64), masks=synthetic.masks[:0],
        photo_masks=synthetic.photo_masks,
    )  # fmt: skip
    values = lone.values()
    assert (values.pop("sessions"), values.pop("frames")) == (0, 0)
    assert set(values.values()) == {None}
    assert set(lone.unavailable) == set(values)
    json.dumps(lone.values(), allow_nan=False)


def test_inputs_that_do_not_fit_together_are_refused(synthetic: Sessions) -> None:
    photos, frames, sessions = synthetic.photos, synthetic.frames, synthetic.sessions
    with pytest.raises(ValueError, match="one painted per frame"):
        product_path_metrics(photos, frames, frames[1:], sessions)
    with pytest.raises(ValueError, match="uint8"):
        product_path_metrics(photos, frames, frames.astype(np.float32), sessions)
    with pytest.raises(ValueError, match="must index the 3 photos"):
        product_path_metrics(photos, frames, frames, sessions + 1)
    with pytest.raises(ValueError, match="both or neither"):
        product_path_metrics(photos, frames, frames, sessions, masks=synthetic.masks)


def test_measure_paints_what_codes_add_and_the_node_give_a_user(tiny_model: Path, sim_dataset: Path) -> None:
    """The photo's code from `encode_photos` (what `thermal-synth codes add` stores), the frames
    painted by the node's engine: the evaluated frames must be those, to a grey level (the engine
    runs channels-last). Eight GAN steps barely listen to z, so the code of another frame of the
    session, a grey level away too, is the control that the comparison can tell codes apart."""
    evaluation = measure(tiny_model, sim_dataset, EvalConfig(max_samples=4, fid=False, device="cpu"))
    section = evaluation.metrics["product_path"]
    reader = ShardReader(sim_dataset)
    split = reader.load_split("test", ["rgb", "session"])
    session_ids, first_rows = np.unique(split["session"], return_index=True)
    assert (section["sessions"], section["frames"]) == (
        len(session_ids),
        len(split["rgb"]) - len(session_ids),
    )
    for key, value in section.items():
        assert value is not None, key
        assert np.isfinite(value), key
    assert section["product_mae"] > 0.0

    shown = evaluation.product_path
    assert len(shown.session_labels) == len(session_ids)  # the sim test split has fewer than 4
    bundle = load_trained_model(tiny_model)
    engine = SynthesisEngine(bundle, "cpu")
    heatmaps = load_pairs(reader, "test", bundle.preprocessing).heatmaps.numpy()
    for session, first in enumerate(first_rows):
        rows = first + shown.positions[session]
        assert (split["session"][rows] == session_ids[session]).all()
        assert len(rows) == PRODUCT_PATH_FRAMES
        np.testing.assert_array_equal(shown.photos[session], split["rgb"][first])
        np.testing.assert_array_equal(shown.real[session], split["rgb"][rows])
        differences = []
        for photo in (first, rows[-1]):
            z = encode_photos(bundle, [split["rgb"][photo]], "cpu")
            expected = engine.paint(heatmaps[rows], engine.project(z))
            differences.append(np.abs(expected.astype(np.int16) - shown.painted[session]))
        assert differences[0].max() <= 1, session
        assert differences[0].mean() < 0.25 * differences[1].mean(), session
