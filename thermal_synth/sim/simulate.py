"""`thermal-synth sim`: render a paired thermal/RGB training set from the simulated rig into shards.

Splits are made of whole sessions, so no recording leaks frames from train into test; with
`--split-by identity` or `scene` whole people or rooms are held out of train. Independently of
that, a few identities are always reserved for `heldout/` only: the privacy evaluation asks
whether a model trained without ever seeing a person can reveal who they are, which needs
people that neither train nor test contain.

Everything is a function of the command line: the same command twice writes byte-identical
files. The dataset is written into a hidden sibling directory and renamed into place at the
end, so an error or Ctrl-C never leaves a half-written dataset behind.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from thermal_driver.sources.rig.pose import POSE_KEYS
from thermal_driver.sources.rig.rig import IDENTITIES, SCENES, SimRig, outfits_of, sessions
from thermal_driver.sources.rig.types import RigConfig, Session, SimPair
from thermal_msgs.privacy import DRIVER_DEFAULTS
from thermal_synth.common.cli_args import (
    EXIT_INTERRUPTED,
    HEATMAP_TRANSFORMS_HELP,
    add_transform_arguments,
    asked_transforms,
    fraction,
    image_size,
    non_negative_int,
    one_line_error,
    positive_int,
    use_one_line_errors,
)
from thermal_synth.common.output_dirs import OutputDirError, check_output_dir, staged_directory
from thermal_synth.dataset.shards import (
    GROUND_TRUTH_FIELDS,
    HeatmapRecipe,
    Sample,
    SessionRecord,
    ShardWriter,
)
from thermal_synth.engine.preprocess import align_mask, align_rgb

SPLIT_BY = ("session", "identity", "scene")
DEFAULT_FRAME_STRIDE = 3
"""Keep every 3rd frame of the 8.7 Hz clock (0.345 s apart): consecutive samples then differ in
pose instead of being near-copies that would inflate the dataset without adding information."""
DEFAULT_HELDOUT_IDENTITIES = 2


class InvalidRequest(ValueError):
    """Bad user input; the CLI reports it on one line with exit code 2."""


@dataclass(frozen=True)
class SimConfig:
    pairs: int
    seed: int
    split_by: str = "session"
    test_fraction: float = 0.2
    frames_per_session: int = 48
    """At most this many frames per session; small runs use more, shorter sessions for coverage."""
    shard_size: int = 512
    heldout_identities: int = DEFAULT_HELDOUT_IDENTITIES
    frame_stride: int = DEFAULT_FRAME_STRIDE
    recipe: HeatmapRecipe = field(default_factory=HeatmapRecipe)
    rig: RigConfig = field(default_factory=RigConfig)

    def __post_init__(self) -> None:
        for name in ("pairs", "frames_per_session", "shard_size", "frame_stride"):
            if getattr(self, name) < 1:
                raise InvalidRequest(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise InvalidRequest(f"seed must be >= 0, got {self.seed}")
        if self.split_by not in SPLIT_BY:
            raise InvalidRequest(f"split_by must be one of {SPLIT_BY}, got {self.split_by!r}")
        if not 0.0 < self.test_fraction < 1.0:
            raise InvalidRequest(f"test_fraction must be strictly between 0 and 1, got {self.test_fraction}")
        if self.heldout_identities < 1:
            raise InvalidRequest(f"heldout_identities must be >= 1, got {self.heldout_identities}")

    @property
    def frame_spacing_s(self) -> float:
        return self.frame_stride / self.rig.rate_hz


@dataclass(frozen=True)
class PlannedSession:
    session: Session
    split: str
    frames: int


@dataclass(frozen=True)
class SplitPlan:
    """Which session goes where and why; recorded in the manifest's provenance."""

    sessions: tuple[PlannedSession, ...]
    heldout_identities: tuple[int, ...]
    test_identities: tuple[int, ...] = ()
    test_scenes: tuple[int, ...] = ()


@dataclass
class SimResult:
    manifest: dict[str, Any]
    realism: dict[str, Any] | None
    """The `--report` statistics, when asked for."""


def plan_splits(config: SimConfig) -> SplitPlan:
    """Sessions from the rig, their frame counts, and their split.

    Held-out and test identities/scenes are drawn from the rig's catalogue with the seed, so they
    do not depend on `--pairs`. Runs too small for `--frames-per-session` get more sessions (up to
    one per identity) so that even a 16-pair preview shows several people.
    """
    identity_count, scene_count = len(IDENTITIES), len(SCENES)
    if identity_count < config.heldout_identities + 2:
        raise InvalidRequest(
            f"the rig has {identity_count} identities: too few to hold out {config.heldout_identities} "
            "and still have train and test identities"
        )
    session_count = max(
        math.ceil(config.pairs / config.frames_per_session), min(config.pairs, identity_count)
    )
    recordings = sessions(session_count, config.seed)
    rng = np.random.default_rng(config.seed)
    heldout = _draw(rng, range(identity_count), config.heldout_identities)
    candidates = [i for i in range(identity_count) if i not in heldout]
    test_identities: tuple[int, ...] = ()
    test_scenes: tuple[int, ...] = ()
    if config.split_by == "identity":
        test_identities = _draw(rng, candidates, _test_share(len(candidates), config.test_fraction))
    elif config.split_by == "scene":
        test_scenes = _draw(rng, range(scene_count), _test_share(scene_count, config.test_fraction))
    eligible = [i for i, s in enumerate(recordings) if s.identity not in heldout]
    test_sessions = set()
    if config.split_by == "session" and len(eligible) > 1:
        test_sessions = set(_draw(rng, eligible, _test_share(len(eligible), config.test_fraction)))

    def split_of(index: int, session: Session) -> str:
        if session.identity in heldout:
            return "heldout"
        is_test = (
            index in test_sessions or session.identity in test_identities or session.scene in test_scenes
        )
        return "test" if is_test else "train"

    base, extra = divmod(config.pairs, session_count)
    planned = tuple(
        PlannedSession(session, split_of(i, session), base + (i < extra))
        for i, session in enumerate(recordings)
    )
    return SplitPlan(planned, heldout, test_identities, test_scenes)


def _test_share(count: int, fraction: float) -> int:
    """At least one test item and at least one train item."""
    return min(max(round(fraction * count), 1), count - 1)


def _draw(rng: np.random.Generator, population: Sequence[int] | range, k: int) -> tuple[int, ...]:
    return tuple(sorted(int(v) for v in rng.choice(np.asarray(population), size=k, replace=False)))


def frame_times(frames: int, config: SimConfig) -> np.ndarray:
    """Sample times on the sensor's frame clock, `frame_stride` frames apart."""
    return np.arange(frames) * config.frame_spacing_s


def render_pairs(plan: SplitPlan, config: SimConfig) -> Iterator[tuple[int, SimPair]]:
    """(session index, pair) in session order; one renderer per session."""
    for index, planned in enumerate(plan.sessions):
        rig = SimRig(planned.session, config.rig)
        for t in frame_times(planned.frames, config):
            yield index, rig.render(float(t))


def to_sample(session_index: int, pair: SimPair) -> Sample:
    """A rendered pair as the shard writer stores it: RGB and its mask aligned to the thermal view."""
    return Sample(
        session=session_index,
        time_s=pair.time_s,
        thermal=pair.thermal_centikelvin,
        rgb=align_rgb(pair.rgb, pair.rgb_to_thermal),
        person_mask=align_mask(pair.person_mask_rgb, pair.rgb_to_thermal),
        person_mask_thermal=pair.person_mask_thermal,
        heat_source_mask=pair.heat_source_mask,
        pose=np.asarray([pair.pose[name] for name in POSE_KEYS], dtype=np.float32),
    )


def generate(
    config: SimConfig,
    out: Path,
    *,
    report: bool = False,
    progress: bool = True,
) -> SimResult:
    """Renders, aligns and writes the dataset to `out`, atomically: all of it or nothing."""
    check_output_dir(out)
    plan = plan_splits(config)
    with staged_directory(out) as staging:
        manifest = _write_dataset(plan, config, staging, progress)
        realism = None
        if report:
            from thermal_synth.sim.report import write_report

            realism = write_report(staging, seed=config.seed)
    return SimResult(manifest, realism)


def _write_dataset(plan: SplitPlan, config: SimConfig, directory: Path, progress: bool) -> dict[str, Any]:
    records = [_session_record(p) for p in plan.sessions]
    writer = ShardWriter(
        directory,
        records,
        recipe=config.recipe,
        noise_seed=config.seed,
        ground_truth=GROUND_TRUTH_FIELDS,
        pose_names=POSE_KEYS,
        shard_size=config.shard_size,
        creator=_creator(),
        provenance=_provenance(plan, config),
    )
    with tqdm(total=config.pairs, unit="pair", desc="sim", disable=not progress) as bar:
        for index, pair in render_pairs(plan, config):
            writer.add(to_sample(index, pair))
            bar.update()
    return writer.close()


def _session_record(planned: PlannedSession) -> SessionRecord:
    session = planned.session
    return SessionRecord(
        name=session.name,
        identity=IDENTITIES[session.identity].name,
        outfit=outfits_of(session.identity)[session.outfit].name,
        scene=SCENES[session.scene].name,
        split=planned.split,
    )


def _creator() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"thermal-synth sim (thermal_synth {version('thermal_synth')})"
    except PackageNotFoundError:
        return "thermal-synth sim (thermal_synth, not installed)"


def _provenance(plan: SplitPlan, config: SimConfig) -> dict[str, Any]:
    identity_names = [identity.name for identity in IDENTITIES]
    scene_names = [scene.name for scene in SCENES]
    return {
        "generator": "thermal-synth sim",
        "seed": config.seed,
        "pairs": config.pairs,
        "split_by": config.split_by,
        "test_fraction": config.test_fraction,
        "frames_per_session": config.frames_per_session,
        "frame_stride": config.frame_stride,
        "frame_spacing_s": config.frame_spacing_s,
        "rig_config": asdict(config.rig),
        "identities": identity_names,
        "scenes": scene_names,
        "heldout_identities": [identity_names[i] for i in plan.heldout_identities],
        "test_identities": [identity_names[i] for i in plan.test_identities],
        "test_scenes": [scene_names[i] for i in plan.test_scenes],
        "rgb_alignment": (
            "thermal_synth.engine.preprocess.align_rgb/align_mask: warp at 2x thermal, area to 96x128"
        ),
    }


def add_parser(commands, name: str, help: str) -> None:
    parser = commands.add_parser(
        name,
        help=help,
        description="Render a paired thermal/RGB training set from the simulated rig into shards.",
    )
    parser.add_argument("--pairs", type=positive_int, required=True, help="how many pairs to render")
    parser.add_argument(
        "--out", type=Path, required=True, help="dataset directory (must not exist or be empty)"
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="everything follows from it (default 0)"
    )
    parser.add_argument(
        "--split-by",
        choices=SPLIT_BY,
        default="session",
        help="what the test split holds out (default session)",
    )
    parser.add_argument(
        "--test-fraction", type=fraction, default=0.2, help="share of the test split (default 0.2)"
    )
    parser.add_argument(
        "--frames-per-session", type=positive_int, default=48, help="at most this many frames per session"
    )
    parser.add_argument("--shard-size", type=positive_int, default=512, help="samples per shard file")
    parser.add_argument(
        "--rgb-size",
        type=image_size,
        default=RigConfig().rgb_shape,
        metavar="HxW",
        help="raw RGB camera size before alignment to 96x128 (default 240x320)",
    )
    parser.add_argument(
        "--report", action="store_true", help="also write contact_sheet.png and realism.json into --out"
    )
    add_transform_arguments(parser, *HEATMAP_TRANSFORMS_HELP, DRIVER_DEFAULTS)
    parser.set_defaults(run=run)
    use_one_line_errors(parser)


def run(args: argparse.Namespace) -> int:
    fail = one_line_error("thermal-synth sim")
    try:
        config = SimConfig(
            pairs=args.pairs,
            seed=args.seed,
            split_by=args.split_by,
            test_fraction=args.test_fraction,
            frames_per_session=args.frames_per_session,
            shard_size=args.shard_size,
            rig=RigConfig(rgb_shape=args.rgb_size),
            recipe=HeatmapRecipe(**asked_transforms(args)),
        )
        check_output_dir(args.out)
    except (InvalidRequest, OutputDirError, ValueError) as exc:
        fail(str(exc))
    try:
        result = generate(config, args.out, report=args.report)
    except (InvalidRequest, OutputDirError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        print("thermal-synth sim: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        # A full disk or a directory filled by someone else meanwhile: say so, nothing is left behind.
        print(f"thermal-synth sim: error: {exc}; nothing was written", file=sys.stderr)
        return 1
    print(summarise(result.manifest, args.out))
    if result.realism is not None:
        from thermal_synth.sim.report import format_table

        print(format_table(result.realism))
    return 0


def summarise(manifest: dict[str, Any], out: Path) -> str:
    counts = manifest["counts"]
    provenance = manifest["provenance"]
    return (
        f"wrote {sum(counts.values())} pairs from {len(manifest['sessions'])} sessions to {out}: "
        f"train {counts['train']}, test {counts['test']}, heldout {counts['heldout']} "
        f"(held-out identities: {', '.join(provenance['heldout_identities'])}; "
        f"split by {provenance['split_by']})"
    )
