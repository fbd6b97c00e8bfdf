"""The simulated rig: ground truth agrees with the images, physics stays in range, output is pure."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from thermal_driver.sources.rig.body import SKIN_PARTS, Part
from thermal_driver.sources.rig.pose import POSE_KEYS
from thermal_driver.sources.rig.rig import IDENTITIES, SCENES, SimRig, outfits_of, sessions
from thermal_driver.sources.rig.scenes import DESK_ITEMS
from thermal_driver.sources.rig.types import THERMAL_SHAPE, RigConfig, Session, SimPair

FRAME_S = 1.0 / 8.7
SAMPLE_SESSIONS = sessions(10, seed=2024)


def celsius(pair: SimPair) -> np.ndarray:
    return pair.thermal_centikelvin.astype(np.float64) / 100.0 - 273.15


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def rigs() -> list[SimRig]:
    return [SimRig(s) for s in SAMPLE_SESSIONS]


def test_catalogues_are_large_and_varied():
    assert len(IDENTITIES) >= 8
    assert len(SCENES) >= 6
    assert len({i.name for i in IDENTITIES}) == len(IDENTITIES)
    assert len({s.name for s in SCENES}) == len(SCENES)
    assert len({i.hair_style for i in IDENTITIES}) >= 5
    assert {i.glasses for i in IDENTITIES} == {True, False}
    assert len({round(i.shoulder_half_width_m, 3) for i in IDENTITIES}) >= 6
    for index in range(len(IDENTITIES)):
        wardrobe = outfits_of(index)
        assert len(wardrobe) >= 3
        assert len({o.name for o in wardrobe}) == len(wardrobe)
    all_outfits = [o for index in range(len(IDENTITIES)) for o in outfits_of(index)]
    assert {o.kind for o in all_outfits} == {"tshirt", "collar_shirt", "sweater", "hoodie"}
    assert {o.pattern for o in all_outfits} == {"plain", "stripes", "checks"}
    assert any(o.hood_up for o in all_outfits)
    assert {o.long_sleeves for o in all_outfits} == {True, False}


def test_sessions_are_deterministic_and_cover_every_identity_and_scene():
    listed = sessions(16, seed=7)
    assert listed == sessions(16, seed=7)
    assert listed != sessions(16, seed=8)
    assert {s.identity for s in listed} == set(range(len(IDENTITIES)))
    assert {s.scene for s in listed} == set(range(len(SCENES)))
    assert all(0 <= s.outfit < len(outfits_of(s.identity)) for s in listed)
    assert len({s.seed for s in listed}) == len(listed)


@pytest.mark.parametrize("rgb_shape", [(120, 160), (240, 320), (480, 640)])
def test_outputs_have_the_contracted_shapes_and_types(rgb_shape):
    pair = SimRig(SAMPLE_SESSIONS[0], RigConfig(rgb_shape=rgb_shape)).render(3.0)
    assert pair.thermal_centikelvin.shape == THERMAL_SHAPE
    assert pair.thermal_centikelvin.dtype == np.uint16
    assert pair.rgb.shape == (*rgb_shape, 3)
    assert pair.rgb.dtype == np.uint8
    assert pair.person_mask_rgb.shape == rgb_shape
    assert pair.person_mask_rgb.dtype == bool
    assert pair.person_mask_thermal.shape == THERMAL_SHAPE
    assert pair.heat_source_mask.shape == THERMAL_SHAPE
    assert pair.rgb_to_thermal.shape == (2, 3)
    assert 0.02 < pair.person_mask_rgb.mean() < 0.8


def test_render_is_a_pure_function_of_session_config_and_time(rigs):
    fresh = SimRig(SAMPLE_SESSIONS[0])
    rigs[0].render(42.0)
    first, again = rigs[0].render(7.5), fresh.render(7.5)
    for field in ("thermal_centikelvin", "rgb", "person_mask_rgb", "person_mask_thermal", "heat_source_mask"):
        assert np.array_equal(getattr(first, field), getattr(again, field)), field
    assert first.pose == again.pose
    assert list(first.pose) == list(POSE_KEYS)
    reseeded = SimRig(dataclasses.replace(SAMPLE_SESSIONS[0], seed=SAMPLE_SESSIONS[0].seed + 1)).render(7.5)
    assert not np.array_equal(first.thermal_centikelvin, reseeded.thermal_centikelvin)
    assert first.pose != reseeded.pose


def test_person_is_much_warmer_than_the_room_inside_its_mask(rigs):
    for rig in rigs:
        for t in (1.0, 20.0):
            pair = rig.render(t)
            temperature = celsius(pair)
            inside = temperature[pair.person_mask_thermal]
            outside = temperature[~pair.person_mask_thermal & ~pair.heat_source_mask]
            assert inside.mean() > outside.mean() + 4.0, pair.session.name
            assert (pair.person_mask_thermal & pair.heat_source_mask).sum() == 0


def test_rgb_person_mask_maps_onto_the_thermal_mask(rigs):
    for rig in rigs:
        pair = rig.render(12.0)
        warped = cv2.warpAffine(
            pair.person_mask_rgb.astype(np.uint8),
            pair.rgb_to_thermal,
            THERMAL_SHAPE[::-1],
            flags=cv2.INTER_NEAREST,
        )
        assert iou(warped > 0, pair.person_mask_thermal) > 0.85, pair.session.name
        scale = pair.rgb_to_thermal[0, 0]
        assert 0.45 < scale < 0.6, "the webcam is wider than the Lepton and has twice its resolution"
        identity_like = np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]])
        assert not np.allclose(pair.rgb_to_thermal, identity_like, atol=0.5), "parallax and FOV must show"


def test_alignment_depends_on_the_persons_distance(rigs):
    shifts = {round(rigs[0].render(t).rgb_to_thermal[0, 2], 3) for t in np.arange(0.0, 120.0, 7.0)}
    assert len(shifts) > 3


def test_consecutive_frames_are_far_more_alike_than_distant_ones(rigs):
    near, far = [], []
    for rig in rigs[:5]:
        for start in (5.0, 33.0, 70.0):
            a, b, c = rig.render(start), rig.render(start + FRAME_S), rig.render(start + 9.0)
            near.append(1.0 - iou(a.person_mask_thermal, b.person_mask_thermal))
            far.append(1.0 - iou(a.person_mask_thermal, c.person_mask_thermal))
            assert np.abs(celsius(a) - celsius(b)).mean() < 0.5
    assert np.mean(near) < 0.25 * np.mean(far)
    assert np.mean(near) < 0.03


def test_heat_sources_are_hot_or_cold_as_declared_and_lie_outside_the_person():
    for index, scene in enumerate(SCENES):
        for item in scene.items:
            if item.heat_source:
                assert abs(item.temperature_c - scene.ambient_c) >= 5.0, (scene.name, item.kind)
            if item.kind in DESK_ITEMS or item.kind in ("radiator", "lamp"):
                assert item.heat_source
                assert item.temperature_c > scene.ambient_c + 5.0
        rig = SimRig(Session(0, 0, index, seed=3))
        pair = rig.render(4.0)
        assert not (pair.heat_source_mask & pair.person_mask_thermal).any()
        if not scene.items:
            assert not pair.heat_source_mask.any()
            continue
        assert pair.heat_source_mask.any(), scene.name
        _, truth = rig.thermal_ground_truth(4.0)
        departure = np.abs(truth[pair.heat_source_mask] - scene.ambient_c)
        assert np.mean(departure > 3.0) > 0.95, scene.name


def test_true_temperatures_stay_in_physical_ranges(rigs):
    for rig in rigs:
        labels, truth = rig.thermal_ground_truth(8.0)
        skin = np.isin(labels, SKIN_PARTS)
        assert skin.any()
        assert truth[skin].min() >= 33.0
        assert truth[skin].max() <= 35.5
        pair = rig.render(8.0)
        room = (labels == Part.BACKGROUND) & ~pair.heat_source_mask
        assert truth[room].min() >= 19.0
        assert truth[room].max() <= 25.0
        fabric = truth[labels == Part.GARMENT]
        assert 25.0 < fabric.mean() < 33.0
        assert fabric.mean() < truth[labels == Part.FACE].mean() - 1.5


def test_glasses_look_cold_against_the_face():
    wearers = [i for i, identity in enumerate(IDENTITIES) if identity.glasses]
    assert wearers
    for identity in wearers:
        rig = SimRig(Session(identity, 0, 6, seed=11))
        for t in (2.0, 15.0, 31.0):
            labels, truth = rig.thermal_ground_truth(t)
            lens = labels == Part.LENS
            if lens.sum() < 4:
                continue
            face = labels == Part.FACE
            assert truth[lens].mean() < truth[face].mean() - 4.0
            measured = celsius(rig.render(t))
            assert np.median(measured[lens]) < np.median(measured[face]) - 1.5


def test_sensor_noise_is_about_50_mk_and_fixed_pattern_persists(rigs):
    rig = rigs[0]
    a, b = rig.render(30.0), rig.render(30.0 + 1e-6)
    room = ~a.person_mask_thermal & ~a.heat_source_mask
    difference = celsius(a)[room] - celsius(b)[room]
    assert 0.035 < difference.std() / np.sqrt(2.0) < 0.07
    _, truth = rig.thermal_ground_truth(30.0)
    residual = (celsius(a) - cv2.GaussianBlur(truth, (7, 7), 1.0))[room]
    assert residual.std() > difference.std() / np.sqrt(2.0), "fixed-pattern noise adds to temporal noise"


def test_ffc_offset_steps_happen_at_seeded_times():
    config = RigConfig(ffc_interval_s=5.0)
    rig = SimRig(SAMPLE_SESSIONS[1], config)
    events = [t for t in np.arange(0.0, 60.0, FRAME_S) if rig.render(float(t)).ffc_event]
    assert 8 <= len(events) <= 16
    assert np.all(np.diff(events) > 2.0)
    default = SimRig(SAMPLE_SESSIONS[1])
    assert sum(default.render(float(t)).ffc_event for t in np.arange(0.0, 30.0, FRAME_S)) <= 1
    never = SimRig(SAMPLE_SESSIONS[1], RigConfig(ffc_interval_s=0.0))
    assert not any(never.render(float(t)).ffc_event for t in np.arange(0.0, 20.0, 1.0))


def test_people_are_told_apart_by_their_thermal_silhouettes():
    masks = [
        SimRig(Session(identity, 0, 6, seed=5)).render(10.0).person_mask_thermal for identity in range(8)
    ]
    overlaps = [iou(masks[i], masks[j]) for i in range(8) for j in range(i + 1, 8)]
    assert max(overlaps) < 0.97
    assert np.mean(overlaps) < 0.9


def test_motion_visits_varied_poses(rigs):
    poses = np.array(
        [[rig.render(t).pose[key] for key in POSE_KEYS] for rig in rigs[:3] for t in range(0, 240, 6)]
    )
    assert np.isfinite(poses).all()
    spread = dict(zip(POSE_KEYS, poses.std(axis=0), strict=True))
    assert spread["head_yaw_deg"] > 5.0
    assert spread["right_upper_arm_deg"] > 10.0
    assert spread["left_elbow_deg"] > 10.0
    assert spread["x_offset_m"] > 0.01
    assert spread["distance_m"] > 0.02
