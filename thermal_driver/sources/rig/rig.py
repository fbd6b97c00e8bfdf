"""The simulated rig: paired thermal + RGB frames of a person at a desk, with ground truth.

`SimRig.render(t)` is a pure function of (session, config, t): motion comes from a seeded
schedule evaluated at t, and every per-frame random choice (noise windows, FFC steps) is hashed
from (seed, t). Static content is rendered once in `__init__`, so a frame costs a few
milliseconds: two label maps drawn with cv2 primitives, lookups and a handful of whole-image ops.
"""

from __future__ import annotations

import math

import numpy as np

from thermal_driver.sources.rig.backdrop import render_rgb_backdrop, render_thermal_backdrop, scene_paint_ops
from thermal_driver.sources.rig.body import build_person, draw_labels
from thermal_driver.sources.rig.camera import PlaneView, lepton_camera, plane_affine, webcam_camera
from thermal_driver.sources.rig.people import IDENTITIES, Identity, Outfit, outfits_of
from thermal_driver.sources.rig.pose import MotionSchedule
from thermal_driver.sources.rig.render_rgb import RgbShader
from thermal_driver.sources.rig.render_thermal import ThermalShader
from thermal_driver.sources.rig.scenes import SCENES, Scene
from thermal_driver.sources.rig.types import THERMAL_SHAPE, RigConfig, Session, SimPair

__all__ = ["IDENTITIES", "SCENES", "Identity", "Outfit", "Scene", "SimRig", "outfits_of", "sessions"]

DEFAULT_CONFIG = RigConfig()
_MASK64 = (1 << 64) - 1
FFC_OFFSET_CK = 12.0
"""After each FFC the residual offset lands somewhere within this, then drifts until the next."""
FFC_DRIFT_CK_PER_S = 0.05


def _hash64(*values: int) -> int:
    """splitmix64 over the values: cheap, portable, and identical on every run and machine."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (value & _MASK64)) * 0xBF58476D1CE4E5B9 & _MASK64
        state = (state ^ (state >> 27)) * 0x94D049BB133111EB & _MASK64
        state ^= state >> 31
    return state


def _unit(*values: int) -> float:
    return _hash64(*values) / float(_MASK64)


def sessions(n: int, seed: int) -> list[Session]:
    """Identities and scenes are dealt from shuffled decks, so any n >= 10 covers all of both, and
    pairings rotate between rounds instead of repeating."""
    rng = np.random.default_rng([seed, 0x5E55])
    identity_order = rng.permutation(len(IDENTITIES))
    scene_order = rng.permutation(len(SCENES))
    result = []
    for i in range(n):
        identity = int(identity_order[i % len(IDENTITIES)])
        scene = int(scene_order[(i + i // len(IDENTITIES)) % len(SCENES)])
        outfit = int(rng.integers(len(outfits_of(identity))))
        result.append(Session(identity, outfit, scene, int(rng.integers(2**31))))
    return result


class _FfcSchedule:
    """Flat-field corrections about every `interval` seconds, jittered per event from the seed.

    Event k happens at k * interval + jitter_k with |jitter_k| < interval / 4, so events stay
    ordered and the one in force at any t is found without state."""

    def __init__(self, seed: int, interval_s: float, frame_s: float) -> None:
        self._seed, self._interval, self._frame = seed, interval_s, frame_s

    def _event_time(self, k: int) -> float:
        return (k + 0.5 * (_unit(self._seed, k, 1) - 0.5)) * self._interval

    def at(self, t: float) -> tuple[float, bool]:
        if self._interval <= 0:
            return 0.0, False
        k = math.floor(t / self._interval) + 1
        while self._event_time(k) > t:
            k -= 1
        since = t - self._event_time(k)
        offset = FFC_OFFSET_CK * (2.0 * _unit(self._seed, k, 2) - 1.0)
        drift = FFC_DRIFT_CK_PER_S * (2.0 * _unit(self._seed, k, 3) - 1.0) * since
        return offset + drift, since < self._frame


def _to_pixels(view: PlaneView, point: tuple[float, float]) -> tuple[float, float]:
    return point[0] * view.scale + view.offset_x, point[1] * view.scale + view.offset_y


class SimRig:
    def __init__(self, session: Session, config: RigConfig = DEFAULT_CONFIG) -> None:
        self.session, self.config = session, config
        self.identity = IDENTITIES[session.identity]
        self.outfit = outfits_of(session.identity)[session.outfit]
        self.scene = SCENES[session.scene]
        self._thermal_camera = lepton_camera()
        self._rgb_camera = webcam_camera(config.rgb_shape)
        self._motion = MotionSchedule(session.seed)
        ops = scene_paint_ops(self.scene, session.scene)
        rgb_backdrop = render_rgb_backdrop(self.scene, ops, self._rgb_camera, session.scene)
        thermal_backdrop = render_thermal_backdrop(self.scene, ops, self._thermal_camera, session.scene)
        self._heat_behind = thermal_backdrop.heat_behind
        self._heat_front = thermal_backdrop.heat_front
        self._rgb = RgbShader(
            self.identity,
            self.outfit,
            self.scene,
            rgb_backdrop,
            focal_px=self._rgb_camera.focal_px,
            seed=session.seed,
        )
        self._thermal = ThermalShader(self.identity, self.outfit, self.scene, thermal_backdrop, session.seed)
        self._ffc = _FfcSchedule(session.seed, config.ffc_interval_s, 1.0 / config.rate_hz)
        self._exposure_phase = 2.0 * math.pi * _unit(session.seed, 7)

    def _thermal_labels(self, pose: dict[str, float]) -> tuple[np.ndarray, PlaneView, tuple]:
        shapes = build_person(self.identity, self.outfit, pose)
        view = self._thermal_camera.plane_view(pose["distance_m"])
        labels = draw_labels(shapes.primitives, view, np.zeros(THERMAL_SHAPE, np.uint8))
        return labels, view, shapes

    def thermal_ground_truth(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Part labels (body.Part) and true surface temperature (C) on the thermal grid, before
        optics and sensor: what a sensor-effects model or a temperature evaluator compares to."""
        pose = self._motion.pose_at(t)
        labels, view, shapes = self._thermal_labels(pose)
        temperature, _ = self._thermal.true_temperature(
            labels, _to_pixels(view, shapes.torso_anchor), pose["breath"]
        )
        return labels, temperature

    def render_empty_thermal(self, t: float) -> np.ndarray:
        """(120, 160) uint16 centi-Kelvin: the frame `render(t)` would give with nobody in the room.

        Same backdrop, heat sources, fixed-pattern and temporal noise and FFC offset, so the two
        frames differ only where the person was (and the optical blur around them): negatives a
        presence detector can tell apart by the person alone, not by the sensor's state."""
        nobody = np.zeros(THERMAL_SHAPE, np.uint8)
        temperature, _ = self._thermal.true_temperature(nobody, (0.0, 0.0), 0.0)
        offset_ck, _ = self._ffc.at(t)
        return self._thermal.sense(temperature, offset_ck, self._thermal_noise_offset(t))

    def _thermal_noise_offset(self, t: float) -> tuple[int, int]:
        """The window of temporal noise `render(t)` uses, derived from the same frame key."""
        frame_key = _hash64(self.session.seed, round(t * 1e6))
        return (frame_key >> 10) & 31, (frame_key >> 15) & 31

    def render(self, t: float) -> SimPair:
        pose = self._motion.pose_at(t)
        labels_t, view_t, shapes = self._thermal_labels(pose)
        view_rgb = self._rgb_camera.plane_view(pose["distance_m"])
        labels_rgb = draw_labels(shapes.primitives, view_rgb, np.zeros(self.config.rgb_shape, np.uint8))

        frame_key = _hash64(self.session.seed, round(t * 1e6))
        rgb_noise = (frame_key & 31, (frame_key >> 5) & 31)
        thermal_noise = ((frame_key >> 10) & 31, (frame_key >> 15) & 31)
        exposure = 1.0 + 0.03 * math.sin(2.0 * math.pi * t / 23.0 + self._exposure_phase)
        rgb, mask_rgb = self._rgb.shade(
            labels_rgb,
            _to_pixels(view_rgb, shapes.torso_anchor),
            _to_pixels(view_rgb, shapes.head_anchor),
            exposure,
            rgb_noise,
        )
        temperature, mask_t = self._thermal.true_temperature(
            labels_t, _to_pixels(view_t, shapes.torso_anchor), pose["breath"]
        )
        offset_ck, ffc_event = self._ffc.at(t)
        thermal = self._thermal.sense(self._thermal.apparent(temperature, mask_t), offset_ck, thermal_noise)
        return SimPair(
            time_s=t,
            thermal_centikelvin=thermal,
            rgb=rgb,
            person_mask_rgb=mask_rgb,
            person_mask_thermal=mask_t,
            heat_source_mask=(self._heat_behind & ~mask_t) | self._heat_front,
            rgb_to_thermal=plane_affine(view_rgb, view_t),
            session=self.session,
            identity_name=self.identity.name,
            outfit_name=self.outfit.name,
            scene_name=self.scene.name,
            pose=pose,
            ffc_event=ffc_event,
        )
