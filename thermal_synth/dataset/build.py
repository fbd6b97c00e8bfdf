"""`thermal-synth dataset build`: recorded pair bags -> training shards, in the simulated rig's format.

A model cannot tell a user's recording from a simulated one by the data's shape: thermal frames
stay raw centi-Kelvin, heatmaps come from `HeatmapRecipe` (the driver's privacy downsampling),
RGB goes through `preprocess.align_rgb`, masks through `preprocess.align_mask` or the same
majority rule. Each bag is one session, and a session lives in exactly one split, so no
recording leaks frames from train into test.

Bags come from users' machines and may be cut off by a crash or damaged on the way: the reader
skips what does not decode or fails the check every live subscriber runs (`thermal_msgs.validation`),
the builder skips frames it cannot use, and both end up in the manifest and the summary, counted
per reason, instead of stopping the build. Output is all or nothing: the dataset is
written into a hidden sibling directory and renamed into place only when complete.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from thermal_driver.sources.rig.types import THERMAL_SHAPE
from thermal_msgs.topics import PAIRS_MASK, PAIRS_RGB, PAIRS_THERMAL
from thermal_synth.common.json_files import file_sha256
from thermal_synth.common.output_dirs import OutputDirError, check_output_dir, staged_directory
from thermal_synth.dataset.align import Alignment, full_frame_alignment
from thermal_synth.dataset.masks import (
    MASK_METHODS,
    SelfieSegmenter,
    ThermalMaskRule,
    thermal_person_mask,
    to_model_grid,
)
from thermal_synth.dataset.shards import HeatmapRecipe, Sample, SessionRecord, ShardWriter
from thermal_synth.engine.preprocess import align_mask, align_rgb
from thermal_synth.recording.bags import BagReadError, PairBagReader, RecordedPair, SessionLabels

BUILDER = "thermal-synth dataset build"
UNLABELLED = "unknown"
_NS_PER_S = 1e9


class BuildError(ValueError):
    """A request the builder cannot carry out as asked; reported on one line with exit code 2."""


class NothingToBuild(RuntimeError):
    """Every bag was unreadable or held no usable pair; exit code 1, nothing written."""


@dataclass(frozen=True)
class BuildConfig:
    test_fraction: float = 0.2
    seed: int = 0
    heldout_people: tuple[str, ...] = ()
    """People (the bags' `person` label) whose sessions go to `heldout/` only."""
    recipe: HeatmapRecipe = field(default_factory=HeatmapRecipe)
    mask: str = "auto"
    mask_rule: ThermalMaskRule = field(default_factory=ThermalMaskRule)
    alignment: Alignment | None = None
    """None: the full-frame default for each RGB frame size met (co-located, equal field of view)."""
    alignment_file: Path | None = None
    shard_size: int = 512

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise BuildError(f"test fraction must be strictly between 0 and 1, got {self.test_fraction}")
        if self.seed < 0:
            raise BuildError(f"seed must be >= 0, got {self.seed}")
        if self.mask not in MASK_METHODS:
            raise BuildError(f"unknown mask method {self.mask!r}; one of {', '.join(MASK_METHODS)}")
        if self.mask_rule.threshold_c is not None and self.mask != "thermal":
            raise BuildError("--mask-threshold-c applies to --mask thermal only")
        if self.shard_size < 1:
            raise BuildError(f"shard size must be >= 1, got {self.shard_size}")


@dataclass
class BagReport:
    """What happened to one bag; the manifest's provenance and the summary are made from these."""

    path: Path
    session: str = ""
    split: str = ""
    labels: SessionLabels | None = None
    labels_from: str = "bag"
    files: list[dict[str, str]] = field(default_factory=list)
    pairs_read: int = 0
    pairs_used: int = 0
    messages_skipped: dict[str, int] = field(default_factory=dict)
    """Image messages the reader skipped, by reason (`thermal_msgs.validation.REASONS`, `undecodable`)."""
    problems: list[str] = field(default_factory=list)
    salvaged: bool = False
    skipped: str = ""
    """Why the bag could not be opened at all; empty when it was read."""

    def to_json(self) -> dict[str, Any]:
        if self.skipped:
            return {"path": str(self.path), "skipped": self.skipped, "problems": self.problems}
        assert self.labels is not None
        return {
            "path": str(self.path),
            "session": self.session,
            "split": self.split,
            "labels": self.labels.to_json(),
            "labels_from": self.labels_from,
            "files": self.files,
            "pairs_read": self.pairs_read,
            "pairs_used": self.pairs_used,
            "messages_skipped": self.messages_skipped,
            "salvaged": self.salvaged,
            "problems": self.problems,
        }


@dataclass
class BuildResult:
    manifest: dict[str, Any]
    bags: list[BagReport]
    mask_method: str


@dataclass
class _OpenBag:
    reader: PairBagReader
    report: BagReport
    identity: str
    outfit: str
    scene: str
    expected_pairs: int
    has_masks: bool


Warn = Callable[[str], None]


def build(
    bags: Sequence[Path],
    out: Path,
    config: BuildConfig,
    *,
    progress: bool = True,
    warn: Warn = lambda _message: None,
) -> BuildResult:
    """Reads every bag and writes the dataset to `out` atomically: all of it or nothing."""
    out = Path(out)
    try:
        check_output_dir(out)
    except OutputDirError as problem:
        raise BuildError(str(problem)) from None
    _refuse_duplicates(bags)
    # Before any bag is read: a missing optional extra should cost the user seconds, not a long read.
    segmenter = SelfieSegmenter() if config.mask == "mediapipe" else None
    try:
        return _build(bags, out, config, segmenter, progress=progress, warn=warn)
    finally:
        if segmenter is not None:
            segmenter.close()


def _build(
    bags: Sequence[Path],
    out: Path,
    config: BuildConfig,
    segmenter: SelfieSegmenter | None,
    *,
    progress: bool,
    warn: Warn,
) -> BuildResult:
    reports = [BagReport(Path(path)) for path in bags]
    opened = [bag for bag in (_open(report, warn) for report in reports) if bag is not None]
    if not opened:
        raise NothingToBuild(
            f"none of the {len(bags)} bags could be opened or held pairs; nothing was written "
            f"({_first_problems(reports)})"
        )
    opened.sort(key=lambda bag: (bag.report.path.name, str(bag.report.path)))
    _name_sessions(opened)
    method = _resolve_mask_method(config.mask, opened)
    splits = plan_splits(
        [(bag.report.session, bag.identity) for bag in opened],
        config.test_fraction,
        config.seed,
        config.heldout_people,
    )
    for bag in opened:
        bag.report.split = splits[bag.report.session]
    if not any(split == "test" for split in splits.values()):
        warn("only one session outside heldout: the test split is empty (record a second session)")
    with staged_directory(out) as staging:
        manifest = _write(
            opened, reports, config, staging, method=method, segmenter=segmenter, progress=progress
        )
    return BuildResult(manifest, reports, method)


def _refuse_duplicates(bags: Sequence[Path]) -> None:
    seen: dict[Path, Path] = {}
    for path in bags:
        resolved = Path(path).resolve()
        if resolved in seen:
            raise BuildError(f"{path}: given twice (also as {seen[resolved]}); one bag is one session")
        seen[resolved] = Path(path)


def _open(report: BagReport, warn: Warn) -> _OpenBag | None:
    """The bag ready to read, or None (with the reason in `report`) when it cannot be opened."""
    try:
        reader = PairBagReader(report.path)
        counts = reader.topic_counts()
    except (BagReadError, OSError) as problem:
        report.skipped = str(problem)
        warn(f"skipping {report.path}: {problem}")
        return None
    expected_pairs = min(counts.get(PAIRS_THERMAL, 0), counts.get(PAIRS_RGB, 0))
    if expected_pairs == 0:
        report.skipped = (
            f"no thermal/RGB pairs in it ({counts.get(PAIRS_THERMAL, 0)} {PAIRS_THERMAL}, "
            f"{counts.get(PAIRS_RGB, 0)} {PAIRS_RGB} messages)"
        )
        report.problems = list(reader.problems)
        warn(f"skipping {report.path}: {report.skipped}")
        return None
    labels = reader.labels
    report.labels, report.salvaged = labels, reader.salvaged
    report.files = _file_checksums(report.path)
    if not labels.person:
        report.labels_from = "directory name"
        warn(f"{report.path}: no person label in the bag; using its directory name {report.path.name!r}")
    return _OpenBag(
        reader=reader,
        report=report,
        identity=labels.person or report.path.name,
        outfit=labels.outfit or UNLABELLED,
        scene=labels.scene or UNLABELLED,
        expected_pairs=expected_pairs,
        has_masks=counts.get(PAIRS_MASK, 0) > 0,
    )


def _file_checksums(bag: Path) -> list[dict[str, str]]:
    """sha256 of every file in the bag directory, so a dataset names exactly what it was built from.

    Symbolic links are not followed: a link inside a stranger's bag must not make the builder
    read (and publish the checksum of) files elsewhere on this machine.
    """
    files = []
    for root, directories, names in os.walk(bag, followlinks=False):
        directories.sort()
        files += [Path(root) / name for name in sorted(names) if not (Path(root) / name).is_symlink()]
    return [{"file": str(path.relative_to(bag)), "sha256": file_sha256(path)} for path in files]


def _name_sessions(opened: Sequence[_OpenBag]) -> None:
    """Session name = the bag's directory name; two bags of one name (other parents) get -2, -3..."""
    used: Counter[str] = Counter()
    for bag in opened:
        base = bag.report.path.name
        used[base] += 1
        bag.report.session = base if used[base] == 1 else f"{base}-{used[base]}"


def _resolve_mask_method(requested: str, opened: Sequence[_OpenBag]) -> str:
    if requested == "auto":
        return "ground-truth" if all(bag.has_masks for bag in opened) else "thermal"
    if requested == "ground-truth":
        lacking = [str(bag.report.path) for bag in opened if not bag.has_masks]
        if lacking:
            raise BuildError(
                f"--mask ground-truth needs {PAIRS_MASK} (simulated recordings only); missing in "
                f"{', '.join(lacking)}; use --mask thermal or mediapipe"
            )
    return requested


def plan_splits(
    sessions: Sequence[tuple[str, str]],
    test_fraction: float,
    seed: int,
    heldout_people: Sequence[str] = (),
) -> dict[str, str]:
    """Session name -> split, for (session name, person) in a fixed order.

    Held-out people's sessions all go to `heldout`; of the rest a `test_fraction` share (at least
    one as soon as there are two, never all) goes to `test`, drawn with `seed`.
    """
    people = {person for _, person in sessions}
    unknown = sorted(set(heldout_people) - people)
    if unknown:
        raise BuildError(
            f"--heldout-person {', '.join(unknown)}: no bag shows them (people: {', '.join(sorted(people))})"
        )
    splits = {name: "heldout" for name, person in sessions if person in heldout_people}
    eligible = [name for name, _ in sessions if name not in splits]
    test_count = min(max(round(test_fraction * len(eligible)), 1), len(eligible) - 1)
    test = set()
    if test_count > 0:
        rng = np.random.default_rng(seed)
        test = {eligible[i] for i in rng.choice(len(eligible), size=test_count, replace=False)}
    splits.update({name: "test" if name in test else "train" for name in eligible})
    return splits


# --- writing --------------------------------------------------------------------------------------


class _PairConverter:
    """A recorded pair -> a shard Sample, or the reason it cannot be one."""

    def __init__(self, config: BuildConfig, method: str, segmenter: SelfieSegmenter | None) -> None:
        self._config, self._method, self._segmenter = config, method, segmenter
        self.alignments: dict[tuple[int, int], Alignment] = {}

    def alignment_for(self, rgb_size: tuple[int, int]) -> Alignment:
        fixed = self._config.alignment
        if fixed is not None:
            if fixed.rgb_size != rgb_size:
                raise _Rejected(
                    f"RGB frame is {rgb_size[0]}x{rgb_size[1]}, the alignment file is for "
                    f"{fixed.rgb_size[0]}x{fixed.rgb_size[1]}"
                )
            return fixed
        if rgb_size not in self.alignments:
            self.alignments[rgb_size] = full_frame_alignment(rgb_size)
        return self.alignments[rgb_size]

    def convert(self, session: int, pair: RecordedPair, start_ns: int) -> Sample:
        thermal = pair.thermal_centikelvin
        if thermal.shape != THERMAL_SHAPE or thermal.dtype != np.uint16:
            raise _Rejected(
                f"thermal frame is {'x'.join(map(str, thermal.shape))} {thermal.dtype}; the shard format "
                f"needs {THERMAL_SHAPE[0]}x{THERMAL_SHAPE[1]} 16UC1 (FLIR Lepton 3.5)"
            )
        affine = self.alignment_for(pair.rgb.shape[:2]).matrix
        return Sample(
            session=session,
            time_s=(pair.stamp_ns - start_ns) / _NS_PER_S,
            thermal=thermal,
            rgb=align_rgb(pair.rgb, affine),
            person_mask=self._mask(pair, affine),
        )

    def _mask(self, pair: RecordedPair, affine: np.ndarray) -> np.ndarray | None:
        if self._method == "none":
            return None
        if self._method == "thermal":
            return to_model_grid(thermal_person_mask(pair.thermal_centikelvin, self._config.mask_rule))
        if self._method == "ground-truth":
            if pair.person_mask is None:
                raise _Rejected(f"no {PAIRS_MASK} message for this pair (--mask ground-truth)")
            return align_mask(pair.person_mask, affine)
        assert self._segmenter is not None
        return align_mask(self._segmenter(pair.rgb), affine)


class _Rejected(ValueError):
    """One pair the builder cannot use; counted per reason, the build goes on."""


def _write(
    opened: Sequence[_OpenBag],
    reports: Sequence[BagReport],
    config: BuildConfig,
    directory: Path,
    *,
    method: str,
    segmenter: SelfieSegmenter | None,
    progress: bool,
) -> dict[str, Any]:
    records = [
        SessionRecord(bag.report.session, bag.identity, bag.outfit, bag.scene, bag.report.split)
        for bag in opened
    ]
    writer = ShardWriter(
        directory,
        records,
        recipe=config.recipe,
        noise_seed=config.seed,
        ground_truth=() if method == "none" else ("person_mask",),
        shard_size=config.shard_size,
        creator=f"{BUILDER} ({builder_version()})",
    )
    converter = _PairConverter(config, method, segmenter)
    total = sum(bag.expected_pairs for bag in opened)
    with tqdm(total=total, unit="pair", desc="build", disable=not progress) as bar:
        for index, bag in enumerate(opened):
            for sample in _samples(index, bag, converter, bar):
                writer.add(sample)
    if not any(report.pairs_used for report in reports):
        raise NothingToBuild(f"no bag held a usable pair; nothing was written ({_first_problems(reports)})")
    writer.provenance.update(_provenance(reports, config, method, converter))
    return writer.close()


def _samples(index: int, bag: _OpenBag, converter: _PairConverter, bar: tqdm) -> Iterator[Sample]:
    report, rejected = bag.report, Counter[str]()
    start_ns: int | None = None
    stopped: list[str] = []
    try:
        for pair in bag.reader.pairs():
            report.pairs_read += 1
            bar.update()
            start_ns = pair.stamp_ns if start_ns is None else start_ns
            try:
                sample = converter.convert(index, pair, start_ns)
            except _Rejected as reason:
                rejected[str(reason)] += 1
                continue
            report.pairs_used += 1
            yield sample
    except (BagReadError, OSError) as problem:
        stopped.append(f"stopped reading: {problem}")
    skipped = [f"{count} pairs skipped: {why}" for why, count in rejected.items()]
    report.messages_skipped = dict(sorted(bag.reader.skipped.items()))
    report.problems = [*skipped, *stopped, *bag.reader.problems]


def _first_problems(reports: Sequence[BagReport]) -> str:
    """Why each bag gave nothing, on one line: the error must say what to fix, not just that it failed."""
    reasons = []
    for report in reports:
        reason = report.skipped or (report.problems[0] if report.problems else "no pairs in it")
        reasons.append(f"{report.path.name}: {one_line(reason)}")
    return "; ".join(reasons)


def one_line(text: str, limit: int = 300) -> str:
    """A problem as one line of at most `limit` characters: some come from parsers that quote the
    offending file over several lines, and a summary line per bag must stay one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def builder_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"thermal_synth {version('thermal_synth')}"
    except PackageNotFoundError:
        return "thermal_synth (not installed)"


def _provenance(
    reports: Sequence[BagReport], config: BuildConfig, method: str, converter: _PairConverter
) -> dict[str, Any]:
    splits: dict[str, list[str]] = {"train": [], "test": [], "heldout": []}
    for report in reports:
        if not report.skipped:
            splits[report.split].append(report.session)
    return {
        "generator": BUILDER,
        "builder_version": builder_version(),
        "seed": config.seed,
        "test_fraction": config.test_fraction,
        "split_by": "session (one bag = one session)",
        "heldout_people": list(config.heldout_people),
        "split_assignment": splits,
        "rgb_alignment": _alignment_provenance(config, converter),
        "person_mask": _mask_provenance(method, config),
        "bags": [report.to_json() for report in reports],
    }


def _alignment_provenance(config: BuildConfig, converter: _PairConverter) -> dict[str, Any]:
    implementation = (
        "thermal_synth.engine.preprocess.align_rgb/align_mask: warp at 2x thermal, area to 96x128"
    )
    if config.alignment is None:
        return {
            "source": "default",
            "assumption": "co-located cameras with equal fields of view: the RGB frame scaled onto the "
            "thermal view; run `thermal-synth dataset align` for a measured mapping",
            "rgb_to_thermal_by_rgb_size": {
                f"{rows}x{cols}": [list(row) for row in alignment.rgb_to_thermal]
                for (rows, cols), alignment in sorted(converter.alignments.items())
            },
            "implementation": implementation,
        }
    estimate = config.alignment.to_json()
    for key in ("format", "version", "coordinates"):
        estimate.pop(key)
    source = config.alignment_file
    return {
        "source": "file",
        "file": None if source is None else str(source),
        "sha256": None if source is None else file_sha256(source),
        **estimate,
        "implementation": implementation,
    }


def _mask_provenance(method: str, config: BuildConfig) -> dict[str, Any]:
    details: dict[str, Any] = {"method": method, "requested": config.mask}
    if method == "thermal":
        details["thermal_threshold"] = config.mask_rule.to_json()
    elif method == "ground-truth":
        details["source"] = f"{PAIRS_MASK} (RGB grid) through thermal_synth.engine.preprocess.align_mask"
    elif method == "mediapipe":
        details["source"] = (
            "mediapipe selfie_segmentation (general model) > 0.5 on the RGB frame, through "
            "thermal_synth.engine.preprocess.align_mask"
        )
    return details
