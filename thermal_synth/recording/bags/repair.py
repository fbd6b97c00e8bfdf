"""Repair: a crashed bag made readable again from everything its storage files still hold."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from rosbags.rosbag2 import Reader

from thermal_msgs.topics import PAIRS_SESSION
from thermal_synth.common.interrupts import deferred_interrupt
from thermal_synth.common.json_files import write_text_atomic
from thermal_synth.recording.bags.labels import BagReadError, BagRepairError, SessionLabels, _typestore
from thermal_synth.recording.bags.layout import BagLayout, inspect_bag
from thermal_synth.recording.bags.metadata import STAGING_DIR, _FilePart, _metadata_yaml
from thermal_synth.recording.bags.reader import _labels_from_message
from thermal_synth.recording.bags.salvage import _complete_pairs, _salvage_file, _SalvageLog
from thermal_synth.recording.bags.storage import _StorageFileWriter, _write_failure


@dataclass(frozen=True)
class RepairReport:
    path: Path
    recovered_messages: int
    """Messages in the repaired bag."""
    recovered_pairs: int
    """Stamps with both thermal and RGB in the repaired bag."""
    dropped_bytes: int
    """Bytes of damaged storage files that held no complete record (a cut-off tail)."""
    files_repaired: tuple[str, ...]
    """Storage files rebuilt from salvaged messages; finished files are kept as they are."""
    backup: Path | None
    """The damaged bag as it was, unless repair was told not to keep it."""
    already_ok: bool
    problems: tuple[str, ...] = ()
    """What the bag was missing and what salvage had to skip."""


def repair_bag(path: Path | str, *, backup: bool = True) -> RepairReport:
    """Makes a crashed bag readable again: finished storage files are kept, damaged or unfinished ones are
    rebuilt from every complete message they hold, and one metadata.yaml is written for all of them.

    The repaired bag is built and read back beside the damaged one and only then swapped in, so nothing
    is lost if repair itself is interrupted; the damaged bag is kept as `<bag>.damaged-<UTC time>`.
    Rebuilt files need free space for their salvaged messages; kept ones are hard-linked where the file
    system allows it.
    """
    bag = Path(path)
    try:
        layout = inspect_bag(bag)
    except BagReadError as exc:
        raise BagRepairError(str(exc)) from None
    if layout.intact:
        return RepairReport(bag, 0, 0, 0, (), None, already_ok=True)
    if layout.storage is None:
        raise BagRepairError(f"{bag}: {'; '.join(layout.problems)}; repair cannot choose one storage")
    staging = bag.absolute().parent / f".{bag.name}.repair-{os.getpid()}"
    try:
        staging.mkdir()
    except OSError as exc:
        raise BagRepairError(
            f"{bag}: cannot create {staging} for the repaired copy: {_write_failure(exc)}"
        ) from None
    try:
        result = _rebuild(layout, staging)
        backup_path = _swap_in(bag, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not backup:
        shutil.rmtree(backup_path)
    return RepairReport(
        path=bag,
        recovered_messages=result.messages,
        recovered_pairs=result.pairs,
        dropped_bytes=result.log.dropped_bytes,
        files_repaired=result.rebuilt,
        backup=backup_path if backup else None,
        already_ok=False,
        problems=(*layout.problems, *result.log.problems),
    )


@dataclass(frozen=True)
class _Rebuilt:
    messages: int
    pairs: int
    rebuilt: tuple[str, ...]
    log: _SalvageLog


def _is_finished(file: Path, bag: Path) -> bool:
    if file.parent != bag or any(file.with_name(file.name + s).exists() for s in ("-journal", "-wal")):
        return False
    try:
        with Reader(file):
            return True
    except Exception:  # any failure to open means the file must be rebuilt, not that repair failed
        return False


def _rebuild(layout: BagLayout, staging: Path) -> _Rebuilt:
    assert layout.storage is not None
    log = _SalvageLog()
    parts: list[_FilePart] = []
    rebuilt: list[str] = []
    names: set[str] = set()
    (staging / STAGING_DIR).mkdir()
    for file in layout.files:
        if file.name in names:
            log.problems.append(f"{file} has the same name as an earlier file; skipped")
            continue
        names.add(file.name)
        if _is_finished(file, layout.path):
            _link_or_copy(file, staging / file.name)
            parts.append(_FilePart.from_reader(staging / file.name))
            continue
        part = _rebuild_file(file, layout.storage, staging, log)
        if part is not None:
            parts.append(part)
            rebuilt.append(part.name)
    (staging / STAGING_DIR).rmdir()
    if not parts:
        raise BagRepairError(
            f"{layout.path}: no complete message could be salvaged ({'; '.join(log.problems)})"
        )
    labels = _first_labels(staging / p.name for p in parts)
    if labels is None and layout.metadata is not None:
        with suppress(ValueError):
            labels = SessionLabels.from_custom_data(layout.metadata.get("custom_data"))
    custom = labels.custom_data() if labels else {}
    write_text_atomic(staging / "metadata.yaml", _metadata_yaml(layout.storage, parts, custom))
    try:
        with Reader(staging):
            pass
    except Exception as exc:  # whatever rosbags raises, the copy must not replace the original
        raise BagRepairError(
            f"{layout.path}: the repaired copy does not open ({exc}); the bag was left as it was"
        ) from exc
    files = [staging / p.name for p in parts]
    return _Rebuilt(sum(p.message_count for p in parts), _complete_pairs(files), tuple(rebuilt), log)


def _link_or_copy(source: Path, target: Path) -> None:
    """Finished files are kept byte for byte; a hard link costs no space where the file system has them."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _first_labels(files: Iterable[Path]) -> SessionLabels | None:
    """The labels each file opens with; reading stops at the first, so this costs one chunk."""
    for file in files:
        for message in _salvage_file(file, _SalvageLog()):
            if message.topic == PAIRS_SESSION:
                labels = _labels_from_message(message, [])
                if labels is not None:
                    return labels
    return None


def _rebuild_file(file: Path, storage: str, staging: Path, log: _SalvageLog) -> _FilePart | None:
    """Rewrites what can be salvaged from `file` under its own name; None for a file with nothing in it."""
    writer: _StorageFileWriter | None = None
    counts: Counter[str] = Counter()
    unknown: Counter[str] = Counter()
    try:
        for message in _salvage_file(file, log, scratch=staging):
            if not _known_type(message.msgtype):
                unknown[message.msgtype] += 1
                continue
            if writer is None:
                writer = _StorageFileWriter(staging, file.stem, storage, {})
            writer.write(message.topic, message.msgtype, message.timestamp_ns, message.data)
            counts[message.topic] += 1
        part = writer.finish(staging) if writer is not None else None
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    log.problems += [f"{file.name}: dropped {n} messages of unknown type {t}" for t, n in unknown.items()]
    if part is None:
        log.problems.append(f"{file.name}: no complete message in it; left out")
        return None
    _verify_rebuilt(staging / part.name, counts)
    return part


def _known_type(msgtype: str) -> bool:
    return msgtype in _typestore().types


def _verify_rebuilt(file: Path, expected: Counter[str]) -> None:
    """Reads every message of a rebuilt file back before anything is swapped in."""
    found: Counter[str] = Counter()
    try:
        with Reader(file) as reader:
            for connection, _, _ in reader.messages():
                found[connection.topic] += 1
    except Exception as exc:  # whatever rosbags raises, the copy is not good enough to replace the original
        raise BagRepairError(f"{file.name}: the rebuilt file does not read back ({exc})") from exc
    if found != expected:
        raise BagRepairError(
            f"{file.name}: the rebuilt file reads back {dict(found)}, expected {dict(expected)}"
        )


def _swap_in(bag: Path, staging: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    backup = bag.with_name(f"{bag.name}.damaged-{stamp}")
    suffix = 1
    while backup.exists():
        backup = bag.with_name(f"{bag.name}.damaged-{stamp}-{suffix}")
        suffix += 1
    # Ctrl-C between the two renames would leave no bag at the original path.
    with deferred_interrupt():
        try:
            bag.rename(backup)
        except OSError as exc:
            raise BagRepairError(f"{bag}: cannot move the damaged bag aside: {_write_failure(exc)}") from None
        try:
            staging.rename(bag)
        except OSError as exc:
            backup.rename(bag)
            raise BagRepairError(
                f"{bag}: cannot move the repaired bag in place: {_write_failure(exc)}"
            ) from None
    return backup
