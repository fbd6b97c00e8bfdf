"""What an eavesdropper gets: the published thermal stream for each audited setting, plus labels.

The attacker of the audit sees exactly what leaves the sensor: the raw Lepton frame when the
driver's `publish_raw` is on, or the heatmap the driver makes of it with its privacy settings.
Both come from the dataset's raw `thermal` field through the driver's own code path
(`PrivacySettings.apply`: downsampling, relative shift, noise, quantisation), so an audited
setting is what is on the wire with those driver parameters.

Person detection needs frames with nobody in them, which a dataset of pairs never has. For
simulated datasets they are rendered: the same session's room at the same instant with the same
sensor noise and FFC offset, minus the person, so a detector can only succeed by seeing the
person (`SimRig.render_empty_thermal`). The re-identifier gets one such frame per session, the
empty room an eavesdropper sees before the person sits down (`empty_rooms`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thermal_driver.sources.rig.people import IDENTITIES, outfits_of
from thermal_driver.sources.rig.rig import SimRig
from thermal_driver.sources.rig.scenes import SCENES
from thermal_driver.sources.rig.types import THERMAL_SHAPE, RigConfig, Session
from thermal_msgs.privacy import DRIVER_DEFAULTS, PrivacySettings
from thermal_msgs.units import centikelvin_to_celsius
from thermal_synth.dataset.shards import SPLITS, SessionRecord, ShardFormatError, ShardReader

FIELDS = ("thermal", "rgb", "session", "time_s")
MASK_FIELD = "person_mask"
"""Ground truth for the utility side of the sweep; loaded where the dataset has it."""
_SIM_SESSION_NAME = re.compile(r"id(\d+)-outfit(\d+)-scene(\d+)-seed(\d+)")
REPLAY_TOLERANCE_CK = 10
"""A re-rendered frame may differ from the stored one by float rounding, not by more than 0.1 K."""
REPLAY_MAX_MISMATCH = 0.01
"""Share of pixels allowed beyond the tolerance before the dataset counts as another rig's."""


class AuditDataError(ValueError):
    """A dataset the audit cannot use; the message says what is missing."""


@dataclass(frozen=True)
class AuditedView:
    """One row of the audit: what the eavesdropper records, the raw frame (`settings` None, what
    `publish_raw` exposes) or the heatmap the driver publishes with `settings`."""

    label: str
    settings: PrivacySettings | None = None

    @classmethod
    def of(cls, settings: PrivacySettings, label: str | None = None) -> AuditedView:
        return cls(settings.label if label is None else label, settings)

    def to_json(self) -> dict[str, Any] | None:
        return None if self.settings is None else self.settings.to_json()


RAW = AuditedView("x".join(map(str, THERMAL_SHAPE)))
DRIVER_DEFAULT = AuditedView.of(DRIVER_DEFAULTS, "default")
"""Exactly what the driver publishes with its default parameters."""


def with_driver_default(views: tuple[AuditedView, ...]) -> tuple[AuditedView, ...]:
    """`views` with the driver's default as the row `default`: a row with the same settings is
    relabelled (its attackers are trained once, not twice under two names that would differ only
    by chance), else `default` is added at the end."""
    rows = tuple(DRIVER_DEFAULT if view.settings == DRIVER_DEFAULT.settings else view for view in views)
    return rows if DRIVER_DEFAULT in rows else (*rows, DRIVER_DEFAULT)


DEFAULT_VIEWS = with_driver_default(
    (
        RAW,
        AuditedView.of(PrivacySettings(output_size=(12, 16))),
        AuditedView.of(PrivacySettings(output_size=(5, 8))),
    )
)


def parse_resolutions(text: str) -> tuple[AuditedView, ...]:
    """'120x160,12x16,5x8' -> views: the raw frame, or the plain heatmap at that size (the driver's
    grid and blur, no transforms)."""
    views: list[AuditedView] = []
    for item in text.split(","):
        rows, sep, cols = item.strip().lower().partition("x")
        if not sep or not rows.isdigit() or not cols.isdigit():
            raise ValueError(f"resolution {item.strip()!r} is not ROWSxCOLS (e.g. 12x16)")
        size = (int(rows), int(cols))
        if size == THERMAL_SHAPE:
            view = RAW
        else:
            try:
                view = AuditedView.of(PrivacySettings(output_size=size))
            except ValueError as exc:
                raise ValueError(
                    f"resolution {rows}x{cols}: not the raw {RAW.label} frame and not a size the "
                    f"driver publishes ({exc})"
                ) from None
        if view in views:
            raise ValueError(f"resolution {view.label} is listed twice")
        views.append(view)
    return tuple(views)


def attacker_view(
    thermal_centikelvin: np.ndarray, view: AuditedView, rng: np.random.Generator | None = None
) -> np.ndarray:
    """(N, 120, 160) uint16 raw frames -> (N, rows, cols) float32 degrees Celsius as published.

    `rng` draws the noise of settings with `noise_c` (required then, as in `PrivacySettings.apply`):
    a seeded generator makes the audit reproducible where the driver draws from OS entropy."""
    celsius = centikelvin_to_celsius(thermal_centikelvin)
    return celsius if view.settings is None else view.settings.apply(celsius, rng)


def session_windows(data: AuditData, rows: np.ndarray, length: int) -> np.ndarray:
    """(len(rows), length) dataset indices: for each row, the `length` frames of its session up to
    and including it, oldest first, what an eavesdropper has buffered when that frame arrives.

    Near a session's start the window is the session's first `length` frames (it still holds the
    row); a session shorter than `length` repeats its first frame in front. Never mixes sessions."""
    windows = np.empty((len(rows), length), np.int64)
    for session in np.unique(data.session[rows]):
        members = np.flatnonzero(data.session == session)
        ordered = members[np.argsort(data.time_s[members], kind="stable")]
        padded = np.r_[np.full(max(0, length - len(ordered)), ordered[0]), ordered]
        rank = {int(index): i for i, index in enumerate(ordered)}
        offset = len(padded) - len(ordered)
        for out_row in np.flatnonzero(data.session[rows] == session):
            end = max(rank[int(rows[out_row])] + offset + 1, length)
            windows[out_row] = padded[end - length : end]
    return windows


@dataclass
class AuditData:
    """Every sample of every split, with the session table; `split` names each sample's split."""

    thermal: np.ndarray
    """(N, 120, 160) uint16 centi-Kelvin."""
    rgb: np.ndarray
    """(N, 96, 128, 3) uint8, aligned to the thermal view."""
    session: np.ndarray
    time_s: np.ndarray
    split: np.ndarray
    sessions: tuple[SessionRecord, ...]
    rig: RigConfig
    sim_sessions: tuple[Session, ...]
    frame_spacing_s: float
    """The simulator's frame clock: times are stored as float32, the rig keys its noise on float64."""
    person_mask: np.ndarray | None = None
    """(N, 96, 128) bool, aligned to the thermal view; None where the dataset lacks it."""

    def render_time(self, index: int) -> float:
        """The exact time the simulator rendered sample `index` at, recovered from its float32."""
        return round(float(self.time_s[index]) / self.frame_spacing_s) * self.frame_spacing_s

    def identities(self) -> np.ndarray:
        """Per sample, the name of the person in front of the sensor."""
        names = np.asarray([record.identity for record in self.sessions])
        return names[self.session]

    def in_splits(self, splits: Sequence[str]) -> np.ndarray:
        return np.flatnonzero(np.isin(self.split, list(splits)))


def load_audit_data(directory: Path) -> AuditData:
    """The whole dataset, checked to be a simulated one whose empty scenes can be re-rendered."""
    directory = Path(directory)
    if not directory.is_dir():
        raise AuditDataError(f"--data {directory}: no such directory")
    try:
        reader = ShardReader(directory, verify=False)
    except ShardFormatError as exc:
        raise AuditDataError(str(exc)) from None
    missing = [name for name in FIELDS if name not in reader.fields]
    if missing:
        raise AuditDataError(
            f"--data {directory}: the dataset lacks {missing}; the audit needs the raw 120x160 thermal "
            "frames an eavesdropper would record, paired with RGB frames"
        )
    rig, frame_spacing_s, sim_sessions = _sim_provenance(reader)
    loaded = (*FIELDS, MASK_FIELD) if MASK_FIELD in reader.fields else FIELDS
    parts = {split: reader.load_split(split, loaded) for split in SPLITS}
    arrays = {name: np.concatenate([parts[split][name] for split in SPLITS]) for name in loaded}
    if len(arrays["session"]) == 0:
        raise AuditDataError(f"--data {directory}: the dataset holds no samples")
    split = np.concatenate([np.full(len(parts[s]["session"]), s) for s in SPLITS])
    return AuditData(
        thermal=arrays["thermal"],
        rgb=arrays["rgb"],
        session=arrays["session"].astype(np.int64),
        time_s=arrays["time_s"],
        split=split,
        sessions=reader.sessions,
        rig=rig,
        sim_sessions=sim_sessions,
        frame_spacing_s=frame_spacing_s,
        person_mask=arrays.get(MASK_FIELD),
    )


def _sim_provenance(reader: ShardReader) -> tuple[RigConfig, float, tuple[Session, ...]]:
    """Rig configuration, frame clock and the rig sessions behind the session table, rebuilt from
    what `thermal-synth sim` records (its session names carry the rig's session parameters)."""
    why = (
        "person detection needs frames without the person, which only a simulated dataset "
        "(thermal-synth sim) can re-render"
    )
    provenance = reader.manifest.get("provenance", {})
    if not isinstance(provenance.get("rig_config"), dict) or "frame_spacing_s" not in provenance:
        raise AuditDataError(
            f"--data {reader.directory}: no simulator provenance (rig_config, frame_spacing_s) in the "
            f"manifest; {why}"
        )
    try:
        rig_json = provenance["rig_config"]
        rig = RigConfig(
            rgb_shape=tuple(rig_json["rgb_shape"]),
            rate_hz=float(rig_json["rate_hz"]),
            ffc_interval_s=float(rig_json["ffc_interval_s"]),
        )
        frame_spacing_s = float(provenance["frame_spacing_s"])
        if not frame_spacing_s > 0:
            raise ValueError(f"frame_spacing_s {frame_spacing_s} is not positive")
    except (KeyError, TypeError, ValueError) as exc:
        raise AuditDataError(
            f"--data {reader.directory}: malformed simulator provenance ({exc}); {why}"
        ) from None
    sessions = tuple(_sim_session(record, reader.directory, why) for record in reader.sessions)
    return rig, frame_spacing_s, sessions


def _sim_session(record: SessionRecord, directory: Path, why: str) -> Session:
    match = _SIM_SESSION_NAME.fullmatch(record.name)
    if match is None:
        raise AuditDataError(f"--data {directory}: session {record.name!r} is not a simulated one; {why}")
    identity, outfit, scene, seed = (int(v) for v in match.groups())
    known = (
        identity < len(IDENTITIES)
        and outfit < len(outfits_of(identity))
        and scene < len(SCENES)
        and (IDENTITIES[identity].name, outfits_of(identity)[outfit].name, SCENES[scene].name)
        == (record.identity, record.outfit, record.scene)
    )
    if not known:
        raise AuditDataError(
            f"--data {directory}: session {record.name!r} ({record.identity}, {record.outfit}, "
            f"{record.scene}) does not match this simulator's catalogue; {why}"
        )
    return Session(identity, outfit, scene, seed)


def render_empty_scenes(data: AuditData, indices: np.ndarray) -> np.ndarray:
    """(len(indices), 120, 160) uint16: each sample's frame with nobody in front of the sensor.

    The first requested frame of every session is re-rendered with the person and compared with
    the stored one: a dataset made by another version of the simulator would give negatives that
    differ from the positives in more than the person, and a detector would learn that difference.
    """
    empty = np.empty((len(indices), *THERMAL_SHAPE), np.uint16)
    for session_index in np.unique(data.session[indices]):
        rows = np.flatnonzero(data.session[indices] == session_index)
        rig = SimRig(data.sim_sessions[session_index], data.rig)
        _check_replay(rig, data, indices[rows[0]])
        for row in rows:
            empty[row] = rig.render_empty_thermal(data.render_time(indices[row]))
    return empty


def empty_rooms(data: AuditData) -> np.ndarray:
    """(sessions, 120, 160) uint16: per session, the room at its first frame's time, nobody in it.

    What an eavesdropper of a fixed sensor sees before the person sits down: one frame, with its
    own noise and FFC offset, not a fresh copy per frame."""
    firsts = np.asarray(
        [np.flatnonzero(data.session == s)[0] for s in range(len(data.sessions)) if np.any(data.session == s)]
    )
    rooms = np.zeros((len(data.sessions), *THERMAL_SHAPE), np.uint16)
    rooms[data.session[firsts]] = render_empty_scenes(data, firsts)
    return rooms


def _check_replay(rig: SimRig, data: AuditData, index: int) -> None:
    rendered = rig.render(data.render_time(index)).thermal_centikelvin.astype(np.int32)
    difference = np.abs(rendered - data.thermal[index].astype(np.int32))
    if np.mean(difference > REPLAY_TOLERANCE_CK) > REPLAY_MAX_MISMATCH:
        name = data.sessions[data.session[index]].name
        raise AuditDataError(
            f"session {name}: the stored thermal frames are not what this simulator renders for the "
            "session (made by another version?), so its empty-scene negatives would not match them; "
            "regenerate the dataset with this version's thermal-synth sim"
        )
