"""`thermal-synth bag info|repair`: inspect and mend pair bags without a ROS installation.

`info` prints what `ros2 bag info` prints plus the session labels and the number of complete pairs,
so a bag can be checked on any laptop. A bag a crash left unfinished is reported with the repair
command and exit code 1, which scripts can test for.
"""

from __future__ import annotations

import argparse
import math
import sys
from datetime import datetime, timezone
from pathlib import Path

from thermal_synth.common.cli_args import EXIT_INTERRUPTED, one_line_error, use_one_line_errors
from thermal_synth.recording.bags import (
    BagInfo,
    BagReadError,
    BagRepairError,
    RepairReport,
    bag_info,
    inspect_bag,
    repair_bag,
)

EXIT_NEEDS_REPAIR = 1
EXIT_UNRECOVERABLE = 1
_LABEL_WIDTH = 19


def add_parser(commands, name: str, help: str) -> None:
    parser = commands.add_parser(
        name,
        help=help,
        description="Inspect or repair pair bags written by the pair_recorder node.",
    )
    actions = parser.add_subparsers(dest="bag_command", required=True, metavar="ACTION")
    info = actions.add_parser(
        "info",
        help="what ros2 bag info shows, plus labels and complete pairs",
        description="Print a bag's files, duration and topics (like `ros2 bag info`), its session labels "
        "and number of complete pairs. Exit code 1 when the bag needs repair.",
    )
    info.add_argument("path", type=Path, metavar="PATH", help="bag directory")
    info.set_defaults(run=run_info)
    repair = actions.add_parser(
        "repair",
        help="make a bag readable again after a crash",
        description="Salvage every complete message of a crashed bag into a readable bag at the same "
        "path; the damaged original is kept beside it as PATH.damaged-<UTC time>.",
    )
    repair.add_argument("path", type=Path, metavar="PATH", help="bag directory")
    repair.add_argument(
        "--no-backup", action="store_true", help="delete the damaged original once the repair is verified"
    )
    repair.set_defaults(run=run_repair)
    for each in (parser, info, repair):
        use_one_line_errors(each)


def _line(label: str, value: object) -> str:
    return f"{label + ':':<{_LABEL_WIDTH}}{value}"


def _block(label: str, values: list[str]) -> list[str]:
    if not values:
        return [_line(label, "(none)")]
    return [_line(label, values[0]), *(" " * _LABEL_WIDTH + value for value in values[1:])]


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    exponent = min(int(math.log(size, 1024)), 3)
    return f"{size / 1024**exponent:.1f} {('KiB', 'MiB', 'GiB')[exponent - 1]}"


def _time(ns: int) -> str:
    when = datetime.fromtimestamp(ns // 1_000_000_000, timezone.utc)
    seconds = f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"
    return f"{when:%Y-%m-%d %H:%M:%S}.{ns % 1_000_000_000:09d} UTC ({seconds})"


def format_info(info: BagInfo) -> str:
    layout = info.layout
    files = [f.relative_to(layout.path).as_posix() for f in layout.files]
    lines = [
        *_block("Files", files),
        _line("Bag size", _size(info.size_bytes)),
        _line("Storage id", layout.storage or "unknown"),
    ]
    if not layout.intact:
        lines += _block("Needs repair", list(layout.problems))
        lines.append(_line("Run", f"thermal-synth bag repair {layout.path}"))
        return "\n".join(lines)
    duration = info.duration_ns
    lines += [
        _line("Duration", f"{duration // 1_000_000_000}.{duration % 1_000_000_000:09d}s"),
        _line("Start", _time(info.start_ns)),
        _line("End", _time(info.start_ns + duration)),
        _line("Messages", info.message_count),
        *_block(
            "Topic information",
            [
                f"Topic: {t.name} | Type: {t.msgtype} | Count: {t.count} | "
                f"Serialization Format: {t.serialization_format}"
                for t in info.topics
            ],
        ),
    ]
    labels = info.labels
    if labels is not None:
        lines += [
            _line("Person", labels.person or "-"),
            _line("Outfit", labels.outfit or "-"),
            _line("Scene", labels.scene or "-"),
            *_block("Notes", labels.notes.splitlines() or ["-"]),
        ]
    lines.append(_line("Complete pairs", info.complete_pairs))
    return "\n".join(lines)


def format_report(report: RepairReport) -> str:
    if report.already_ok:
        return f"{report.path}: intact, nothing to repair"
    lines = [
        f"repaired {report.path}",
        _line("Messages", report.recovered_messages),
        _line("Complete pairs", report.recovered_pairs),
        _line("Dropped bytes", report.dropped_bytes),
        *_block("Rebuilt files", list(report.files_repaired)),
        _line("Original kept at", report.backup or "(not kept: --no-backup)"),
        *_block("Problems", list(report.problems)),
    ]
    return "\n".join(lines)


def run_info(args: argparse.Namespace) -> int:
    fail = one_line_error("thermal-synth bag info")
    try:
        info = bag_info(args.path)
    except BagReadError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        print("thermal-synth bag info: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        print(f"thermal-synth bag info: error: {exc}", file=sys.stderr)
        return 1
    print(format_info(info))
    return 0 if info.layout.intact else EXIT_NEEDS_REPAIR


def run_repair(args: argparse.Namespace) -> int:
    fail = one_line_error("thermal-synth bag repair")
    try:
        inspect_bag(args.path)
    except BagReadError as exc:
        fail(str(exc))
    try:
        report = repair_bag(args.path, backup=not args.no_backup)
    except KeyboardInterrupt:
        print("thermal-synth bag repair: interrupted; the bag was left as it was", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (BagRepairError, OSError) as exc:
        print(f"thermal-synth bag repair: error: {exc}", file=sys.stderr)
        return EXIT_UNRECOVERABLE
    print(format_report(report))
    return 0
