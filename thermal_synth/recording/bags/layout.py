"""Inspection: what is on disk and what, if anything, a crash left unfinished in it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from rosbags.rosbag2 import Reader

from thermal_synth.recording.bags.labels import BagReadError
from thermal_synth.recording.bags.metadata import _SUFFIXES, STAGING_DIR, _load_metadata

_SPLIT_INDEX = re.compile(r"_(\d+)$")


@dataclass(frozen=True)
class BagLayout:
    """What is on disk and whether it is a complete bag."""

    path: Path
    storage: str | None
    metadata: Mapping[str, Any] | None
    """metadata.yaml's `rosbag2_bagfile_information`, when it parses."""
    files: tuple[Path, ...]
    """Every storage file, listed or not, in recording order: the bag's own by split index, then any
    a crash left under .recording/."""
    problems: tuple[str, ...]
    """Why the bag needs repair; empty for an intact bag."""

    @property
    def intact(self) -> bool:
        return not self.problems


def _split_order(file: Path) -> tuple[int, str]:
    match = _SPLIT_INDEX.search(file.stem)
    return (int(match.group(1)) if match else -1, file.name)


def _storage_files(bag: Path) -> list[Path]:
    patterns = [f"*{suffix}" for suffix in _SUFFIXES.values()]
    found = [f for pattern in patterns for f in bag.glob(pattern) if f.is_file()]
    staged = [f for pattern in patterns for f in bag.glob(f"{STAGING_DIR}/*/{pattern}") if f.is_file()]
    return sorted(found, key=_split_order) + sorted(staged, key=_split_order)


def inspect_bag(path: Path | str) -> BagLayout:
    """The layout of a bag and what, if anything, a crash left unfinished in it."""
    bag = Path(path)
    if not bag.exists():
        raise BagReadError(f"{bag}: does not exist")
    if not bag.is_dir():
        raise BagReadError(f"{bag}: not a directory; a rosbag2 bag is a directory holding metadata.yaml")
    problems: list[str] = []
    info = _load_metadata(bag, problems)
    files = _storage_files(bag)
    if not files:
        detail = "metadata.yaml lists files that are missing" if info else "no metadata.yaml"
        raise BagReadError(f"{bag}: not a rosbag2 bag ({detail} and no .mcap or .db3 files)")
    suffixes = {f.suffix for f in files}
    storage = None
    if len(suffixes) > 1:
        problems.append(f"storage files of different kinds: {', '.join(sorted(suffixes))}")
    else:
        # The files on disk are the truth; metadata.yaml may be a stranger's or stale.
        storage = next(k for k, s in _SUFFIXES.items() if s in suffixes)
        if info is not None and info["storage_identifier"] != storage:
            problems.append(f"metadata.yaml says {info['storage_identifier']} but the files are {storage}")
    if info is not None:
        listed = [PurePath(name).name for name in info["relative_file_paths"]]
        present = {f.name for f in files if f.parent == bag}
        problems += [
            f"metadata.yaml lists {name}, which is missing" for name in listed if name not in present
        ]
        problems += [f"{name} is not in metadata.yaml" for name in sorted(present - set(listed))]
    for file in files:
        if file.parent != bag:
            problems.append(f"{file.name} was still being written when the recorder stopped")
        elif any(file.with_name(file.name + s).exists() for s in ("-journal", "-wal")):
            problems.append(f"{file.name} has an unfinished SQLite transaction")
    if not problems:
        try:
            with Reader(bag):
                pass
        except Exception as exc:  # rosbags raises many kinds on damaged files; all mean "repair"
            problems.append(f"rosbags cannot open it: {exc}")
    return BagLayout(bag, storage, info, tuple(files), tuple(problems))
