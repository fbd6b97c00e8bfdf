"""Seeded motion: what the person does, as a smooth function of time.

Three independent tracks (arms/shoulders, head, body position) each hop between target poses
with minimum-jerk transitions, like people who gesture, glance and shift in their chair on
different rhythms. Idle sway, breathing, waving and nodding are periodic terms on top. All of it
is a pure function of (seed, t), so any frame can be rendered in any order.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

POSE_KEYS: tuple[str, ...] = (
    "x_offset_m",
    "height_offset_m",
    "distance_m",
    "lean_deg",
    "head_yaw_deg",
    "head_pitch_deg",
    "head_roll_deg",
    "shoulder_raise_right_m",
    "shoulder_raise_left_m",
    "right_upper_arm_deg",
    "right_upper_arm_scale",
    "right_elbow_deg",
    "right_forearm_scale",
    "left_upper_arm_deg",
    "left_upper_arm_scale",
    "left_elbow_deg",
    "left_forearm_scale",
    "breath",
)
"""Sides are anatomical: the person's right arm appears on the image's left.

Arm angles: the upper arm's abduction from hanging straight down (90 = horizontal, outwards);
the elbow angle is added to it for the forearm (negative swings the forearm towards the body's
midline). Scales below 1 foreshorten a segment that points towards the camera."""

_REST_ARM = (8.0, 1.0, -12.0, 1.0)
ARM_GESTURES: dict[str, tuple[tuple[float, ...], tuple[float, ...], float, float, float, float]] = {
    "arms down": (_REST_ARM, _REST_ARM, 0.0, 0.0, 0.0, 0.0),
    "typing": ((6.0, 0.92, -38.0, 0.42), (6.0, 0.92, -38.0, 0.42), 0.0, 0.0, 0.0, 0.0),
    "arms crossed": ((16.0, 0.95, -112.0, 0.80), (18.0, 0.95, -106.0, 0.82), 0.01, 0.01, 0.0, 0.0),
    "hands on hips": ((40.0, 1.0, -100.0, 0.92), (40.0, 1.0, -100.0, 0.92), 0.0, 0.0, 0.0, 0.0),
    "right hand raised": ((150.0, 1.0, 15.0, 1.0), _REST_ARM, 0.02, 0.0, 0.0, 0.0),
    "left hand raised": (_REST_ARM, (150.0, 1.0, 15.0, 1.0), 0.0, 0.02, 0.0, 0.0),
    "waving right": ((78.0, 0.95, 88.0, 1.0), _REST_ARM, 0.015, 0.0, 1.0, 0.0),
    "waving left": (_REST_ARM, (78.0, 0.95, 88.0, 1.0), 0.0, 0.015, 0.0, 1.0),
    "chin on right hand": ((12.0, 0.55, -160.0, 0.9), _REST_ARM, 0.02, 0.0, 0.0, 0.0),
    "chin on left hand": (_REST_ARM, (12.0, 0.55, -160.0, 0.9), 0.0, 0.02, 0.0, 0.0),
    "shrug": ((24.0, 0.9, 48.0, 0.6), (24.0, 0.9, 48.0, 0.6), 0.035, 0.035, 0.0, 0.0),
    "one-shoulder shrug": (_REST_ARM, _REST_ARM, 0.03, 0.0, 0.0, 0.0),
    "hand on chest": ((10.0, 1.0, -104.0, 0.85), _REST_ARM, 0.0, 0.0, 0.0, 0.0),
}
_ARM_GESTURE_WEIGHTS = {
    "arms down": 5.0,
    "typing": 4.0,
    "arms crossed": 2.0,
    "hands on hips": 1.0,
    "right hand raised": 0.7,
    "left hand raised": 0.7,
    "waving right": 1.0,
    "waving left": 1.0,
    "chin on right hand": 1.2,
    "chin on left hand": 1.2,
    "shrug": 0.8,
    "one-shoulder shrug": 0.6,
    "hand on chest": 0.8,
}
TRACK_PERIOD_S = 3600.0
"""The schedule repeats after an hour; the wrap is itself a smooth transition."""
WAVE_HZ, WAVE_AMPLITUDE_DEG = 1.7, 22.0
NOD_HZ, NOD_AMPLITUDE_DEG = 1.3, 9.0


def minimum_jerk(u: float) -> float:
    """Zero velocity and acceleration at both ends: how people move between postures."""
    u = min(max(u, 0.0), 1.0)
    return u * u * u * (10.0 + u * (-15.0 + 6.0 * u))


def _clamp(value: float, low: float, high: float) -> float:
    """Scalar clip: an hour of gestures is drawn per session, and np.clip on floats costs ~7 us each."""
    return min(max(value, low), high)


class _Track:
    """Targets held between minimum-jerk transitions; evaluated by binary search in O(log n)."""

    def __init__(self, starts: list[float], transitions: list[float], targets: list[list[float]]) -> None:
        self._starts = np.asarray(starts)
        self._transitions = transitions
        self._targets = [np.asarray(t, dtype=np.float64) for t in targets]

    @classmethod
    def generate(
        cls,
        rng: np.random.Generator,
        hold_s: tuple[float, float],
        transition_s: tuple[float, float],
        draw_target: Callable[[], tuple[list[float], float]],
    ) -> _Track:
        """`draw_target` returns a target and a factor on its hold time (brief gestures hold shorter)."""
        starts, transitions, targets = [], [], []
        clock = 0.0
        while clock < TRACK_PERIOD_S:
            target, hold_scale = draw_target()
            starts.append(clock)
            transitions.append(rng.uniform(*transition_s))
            targets.append(target)
            clock += rng.uniform(*hold_s) * hold_scale
        return cls(starts, transitions, targets)

    def at(self, t: float) -> np.ndarray:
        local = t % TRACK_PERIOD_S
        k = int(np.searchsorted(self._starts, local, side="right")) - 1
        blend = minimum_jerk((local - self._starts[k]) / self._transitions[k])
        previous = self._targets[k - 1]
        return previous + (self._targets[k] - previous) * blend


class MotionSchedule:
    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng([seed, 0x5EED])
        self.base_distance_m = float(rng.uniform(0.84, 0.98))
        names = list(ARM_GESTURES)
        cumulative = np.cumsum([_ARM_GESTURE_WEIGHTS[n] for n in names])
        cumulative /= cumulative[-1]

        def draw_arms() -> tuple[list[float], float]:
            right, left, raise_r, raise_l, wave_r, wave_l = ARM_GESTURES[
                names[int(np.searchsorted(cumulative, rng.random(), side="right"))]
            ]
            jitter = rng.normal(0.0, 1.0, 8) * np.array([3.0, 0.02, 5.0, 0.03] * 2)
            arms = (np.array(right + left) + jitter).tolist()
            hold_scale = 0.5 if wave_r or wave_l else 1.0
            return [*arms, raise_r, raise_l, wave_r, wave_l], hold_scale

        def draw_head() -> tuple[list[float], float]:
            nod = float(rng.uniform() < 0.12)
            yaw = _clamp(float(rng.normal(0.0, 14.0)), -38.0, 38.0)
            pitch = _clamp(float(rng.normal(2.0, 6.0)), -12.0, 16.0)
            roll = _clamp(float(rng.normal(0.0, 4.0)), -12.0, 12.0)
            return [yaw * (1 - nod), pitch, roll, nod], 0.6 if nod else 1.0

        def draw_position() -> tuple[list[float], float]:
            return [
                rng.uniform(-0.07, 0.07),
                rng.uniform(-0.02, 0.03),
                self.base_distance_m * rng.uniform(0.93, 1.1),
                _clamp(float(rng.normal(0.0, 4.0)), -10.0, 10.0),
            ], 1.0

        self._arms = _Track.generate(rng, (2.5, 9.0), (0.6, 1.3), draw_arms)
        self._head = _Track.generate(rng, (1.0, 5.0), (0.4, 1.0), draw_head)
        self._position = _Track.generate(rng, (4.0, 15.0), (1.5, 3.5), draw_position)
        self._phases = rng.uniform(0.0, 2.0 * math.pi, 6).tolist()
        self._breath_period_s = float(rng.uniform(3.6, 4.8))

    def pose_at(self, t: float) -> dict[str, float]:
        arms = self._arms.at(t).tolist()
        yaw, pitch, roll, nod = self._head.at(t).tolist()
        x, height, distance, lean = self._position.at(t).tolist()
        p = self._phases
        two_pi_t = 2.0 * math.pi * t
        x += 0.006 * math.sin(0.11 * two_pi_t + p[0]) + 0.003 * math.sin(0.27 * two_pi_t + p[1])
        yaw += 1.5 * math.sin(0.09 * two_pi_t + p[2])
        roll += 1.0 * math.sin(0.13 * two_pi_t + p[3])
        pitch += 1.0 * math.sin(0.07 * two_pi_t + p[4]) + nod * NOD_AMPLITUDE_DEG * math.sin(
            NOD_HZ * two_pi_t
        )
        wave = WAVE_AMPLITUDE_DEG * math.sin(WAVE_HZ * two_pi_t)
        arms[2] += arms[10] * wave
        arms[6] -= arms[11] * wave
        breath = math.sin(two_pi_t / self._breath_period_s + p[5])
        values = (x, height, distance, lean, yaw, pitch, roll, arms[8], arms[9], *arms[:8], breath)
        return dict(zip(POSE_KEYS, values, strict=True))
