"""`thermal-synth dataset build|align|preview`: from recorded pair bags to a checked training set.

Exit codes, as for every subcommand: 0 done, 2 a request that cannot be carried out as given (bad
arguments, a non-empty --out, a bad alignment file, a missing optional extra), 1 the data gave
nothing to work with (no readable bag, no usable pair), 130 interrupted; after 1, 2 or 130
nothing was written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from thermal_msgs.privacy import DRIVER_DEFAULTS, validate_blur_sigma, validate_output_size
from thermal_synth.common.cli_args import (
    EXIT_INTERRUPTED,
    HEATMAP_TRANSFORMS_HELP,
    add_transform_arguments,
    asked_transforms,
    fraction,
    integer,
    non_negative_int,
    number,
    one_line_error,
    positive_int,
    use_one_line_errors,
)
from thermal_synth.common.contact_sheet import captioned_grid, check_png_path, encode_png
from thermal_synth.dataset.align import (
    AlignmentError,
    alignment_preview,
    estimate_alignment,
    load_alignment,
    pairs_for_alignment,
    write_alignment,
)
from thermal_synth.dataset.build import BuildConfig, BuildError, BuildResult, NothingToBuild, build, one_line
from thermal_synth.dataset.masks import MASK_METHODS, MissingExtraError, ThermalMaskRule
from thermal_synth.dataset.preview import load_preview_samples, preview_sheet
from thermal_synth.dataset.shards import SPLITS, HeatmapRecipe, ShardFormatError, ShardReader

PROG = "thermal-synth dataset"
EXIT_NO_DATA = 1
DEFAULT_ALIGN_PAIRS = 32
ALIGN_PREVIEW_PAIRS = 6
DEFAULT_PREVIEW_COUNT = 12
PREVIEW_NAME = "preview.png"
PROBLEMS_SHOWN = 2


def add_parser(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    parser = commands.add_parser(
        name,
        help=help,
        description="Build a training set from pair_recorder bags, in the same shard format as "
        "`thermal-synth sim`: `align` measures where the RGB camera looks, `build` writes the "
        "shards, `preview` draws a contact sheet to check them.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for each in (parser, _add_build(actions), _add_align(actions), _add_preview(actions)):
        use_one_line_errors(each)


def _add_build(actions: argparse._SubParsersAction) -> argparse.ArgumentParser:
    recipe = HeatmapRecipe()
    build_parser = actions.add_parser(
        "build",
        help="write training shards from pair bags (one bag = one session)",
        description="Write training shards from pair bags. Each bag is one session; sessions are "
        "split between train and test (and heldout for --heldout-person) as a whole.",
    )
    build_parser.add_argument("bags", nargs="+", type=Path, metavar="BAG", help="pair bag directories")
    build_parser.add_argument(
        "--out", type=Path, required=True, help="dataset directory (must not exist or be empty)"
    )
    build_parser.add_argument(
        "--align",
        type=Path,
        metavar="FILE",
        help="alignment from `dataset align` (default: assume co-located cameras with equal fields of view)",
    )
    build_parser.add_argument(
        "--test-fraction",
        type=fraction,
        default=0.2,
        help="share of sessions in the test split (default 0.2)",
    )
    build_parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="picks the test sessions (default 0)"
    )
    build_parser.add_argument(
        "--heldout-person",
        action="append",
        default=[],
        metavar="NAME",
        help="put this person's sessions in the heldout split only (repeatable)",
    )
    build_parser.add_argument(
        "--heatmap-size",
        type=_heatmap_size,
        default=recipe.output_size,
        metavar="HxW",
        help=f"heatmap grid (default {recipe.output_size[0]}x{recipe.output_size[1]}, the driver's)",
    )
    build_parser.add_argument(
        "--blur-sigma",
        type=_blur_sigma,
        default=recipe.blur_sigma,
        help=f"privacy blur in heatmap cells (default {recipe.blur_sigma:g}, the driver's)",
    )
    build_parser.add_argument(
        "--mask",
        choices=MASK_METHODS,
        default="auto",
        help="person masks: auto = ground-truth when every bag has /pairs/mask, else thermal (default auto)",
    )
    build_parser.add_argument(
        "--mask-threshold-c",
        type=number,
        metavar="DEGC",
        help="with --mask thermal: fixed lower temperature bound (default: room temperature + 3.5 per frame)",
    )
    build_parser.add_argument("--shard-size", type=positive_int, default=512, help="samples per shard file")
    add_transform_arguments(build_parser, *HEATMAP_TRANSFORMS_HELP, DRIVER_DEFAULTS)
    build_parser.set_defaults(run=run_build)
    return build_parser


def _add_align(actions: argparse._SubParsersAction) -> argparse.ArgumentParser:
    align_parser = actions.add_parser(
        "align",
        help="estimate where the RGB camera's frame lies in the thermal view",
        description="Estimate the RGB-to-thermal mapping (scale and shift) from pairs that show a "
        "warm person, by matching the person's thermal outline with the RGB edges. Bags from "
        "several sessions of the same rig give the best estimate.",
    )
    align_parser.add_argument("bags", nargs="+", type=Path, metavar="BAG", help="pair bag directories")
    align_parser.add_argument("--out", type=Path, required=True, help="alignment JSON to write")
    align_parser.add_argument(
        "--pairs",
        type=positive_int,
        default=DEFAULT_ALIGN_PAIRS,
        help=f"pairs to use (default {DEFAULT_ALIGN_PAIRS})",
    )
    align_parser.add_argument(
        "--preview",
        type=Path,
        metavar="PNG",
        help="also write an overlay of thermal edges on the aligned RGB",
    )
    align_parser.set_defaults(run=run_align)
    return align_parser


def _add_preview(actions: argparse._SubParsersAction) -> argparse.ArgumentParser:
    preview_parser = actions.add_parser(
        "preview",
        help="draw a contact sheet of a dataset: heatmap, RGB and person mask per sample",
        description="Draw a contact sheet PNG of a dataset to check it before training.",
    )
    preview_parser.add_argument("directory", type=Path, metavar="DIR", help="dataset directory")
    preview_parser.add_argument("--out", type=Path, help=f"PNG to write (default DIR/{PREVIEW_NAME})")
    preview_parser.add_argument(
        "--count",
        type=positive_int,
        default=DEFAULT_PREVIEW_COUNT,
        help=f"samples (default {DEFAULT_PREVIEW_COUNT})",
    )
    preview_parser.add_argument(
        "--split", choices=SPLITS, default="train", help="which split (default train)"
    )
    preview_parser.set_defaults(run=run_preview)
    return preview_parser


def _heatmap_size(text: str) -> tuple[int, int]:
    rows, _, cols = text.lower().partition("x")
    try:
        return validate_output_size((integer(rows), integer(cols)))
    except (ValueError, argparse.ArgumentTypeError) as problem:
        raise argparse.ArgumentTypeError(f"must be HxW within the privacy limit: {problem}") from None


def _blur_sigma(text: str) -> float:
    try:
        return validate_blur_sigma(number(text))
    except ValueError as problem:
        raise argparse.ArgumentTypeError(str(problem)) from None


def _warner(prog: str) -> Callable[[str], None]:
    def warn(message: str) -> None:
        print(f"{prog}: warning: {one_line(message)}", file=sys.stderr)

    return warn


def _no_data(prog: str, message: str) -> int:
    print(f"{prog}: error: {one_line(message, limit=2000)}", file=sys.stderr)
    return EXIT_NO_DATA


# --- build ----------------------------------------------------------------------------------------


def run_build(args: argparse.Namespace) -> int:
    prog = f"{PROG} build"
    fail, warn = one_line_error(prog), _warner(prog)
    try:
        alignment = None if args.align is None else load_alignment(args.align)
        config = BuildConfig(
            test_fraction=args.test_fraction,
            seed=args.seed,
            heldout_people=tuple(dict.fromkeys(args.heldout_person)),
            recipe=HeatmapRecipe(args.heatmap_size, args.blur_sigma, **asked_transforms(args)),
            mask=args.mask,
            mask_rule=ThermalMaskRule(args.mask_threshold_c),
            alignment=alignment,
            alignment_file=args.align,
            shard_size=args.shard_size,
        )
    except (AlignmentError, BuildError, ValueError) as problem:
        fail(str(problem))
    try:
        result = build(args.bags, args.out, config, warn=warn)
    except (BuildError, MissingExtraError) as problem:
        fail(str(problem))
    except NothingToBuild as problem:
        return _no_data(prog, str(problem))
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as problem:
        return _no_data(prog, f"{problem}; nothing was written")
    if alignment is None:
        warn(
            "no --align file: assumed co-located cameras with equal fields of view (the RGB frame "
            "scaled onto the thermal view); `thermal-synth dataset align` measures the real mapping"
        )
    print(summarise_build(result, args.out, args.align))
    return 0


def summarise_build(result: BuildResult, out: Path, align_file: Path | None) -> str:
    """One line per bag (what it gave, where it went, its first problems), then the totals."""
    lines = []
    for bag in result.bags:
        if bag.skipped:
            lines.append(f"  {bag.path}: skipped ({one_line(bag.skipped)})")
            continue
        line = (
            f"  {bag.path}: session {bag.session} -> {bag.split}, {bag.pairs_used} of {bag.pairs_read} pairs"
        )
        if bag.messages_skipped:
            reasons = ", ".join(f"{reason} {count}" for reason, count in bag.messages_skipped.items())
            line += f"; skipped messages: {reasons}"
        if bag.problems:
            shown = "; ".join(one_line(problem) for problem in bag.problems[:PROBLEMS_SHOWN])
            more = len(bag.problems) - PROBLEMS_SHOWN
            line += f"; {len(bag.problems)} problems: {shown}" + (
                f"; ... {more} more in the manifest" if more > 0 else ""
            )
        lines.append(line)
    counts = result.manifest["counts"]
    alignment = f"from {align_file}" if align_file is not None else "full-frame default"
    lines.append(
        f"wrote {sum(counts.values())} pairs from {len(result.manifest['sessions'])} sessions to {out}: "
        f"train {counts['train']}, test {counts['test']}, heldout {counts['heldout']} "
        f"(person masks: {result.mask_method}; RGB alignment: {alignment})"
    )
    return "\n".join(lines)


# --- align ----------------------------------------------------------------------------------------


def run_align(args: argparse.Namespace) -> int:
    prog = f"{PROG} align"
    fail, warn = one_line_error(prog), _warner(prog)
    if args.preview is not None:
        try:
            check_png_path(args.preview)
        except ValueError as problem:
            fail(str(problem))
    try:
        pairs = pairs_for_alignment(args.bags, args.pairs, warn)
        if not pairs.thermal:
            return _no_data(prog, "no readable pair shows a warm person; nothing to align on")
        estimate = estimate_alignment(pairs.thermal, pairs.rgb)
        write_alignment(args.out, estimate.alignment)
        if args.preview is not None:
            shown = list(range(0, len(pairs.thermal), max(1, len(pairs.thermal) // ALIGN_PREVIEW_PAIRS)))
            tiles, captions = alignment_preview(
                [pairs.thermal[i] for i in shown[:ALIGN_PREVIEW_PAIRS]],
                [pairs.rgb[i] for i in shown[:ALIGN_PREVIEW_PAIRS]],
                estimate.alignment,
            )
            sheet = captioned_grid(tiles, captions, columns=2, caption_lines=1)
            args.preview.write_bytes(encode_png(sheet))
    except AlignmentError as problem:
        return _no_data(prog, str(problem))
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as problem:
        return _no_data(prog, str(problem))
    for message in estimate.warnings:
        warn(message)
    alignment = estimate.alignment
    (scale, _, shift_x), (_, _, shift_y) = alignment.rgb_to_thermal
    print(
        f"rgb_to_thermal: scale {scale:.4f}, shift ({shift_x:.2f}, {shift_y:.2f}) thermal px for "
        f"{alignment.rgb_size[0]}x{alignment.rgb_size[1]} RGB; outline agreement {alignment.score:.2f}, "
        f"margin {alignment.margin:.2f}; {alignment.pairs_used} pairs from {pairs.bags_used} bags "
        f"-> {args.out}" + (f" (preview: {args.preview})" if args.preview is not None else "")
    )
    return 0


# --- preview --------------------------------------------------------------------------------------


def run_preview(args: argparse.Namespace) -> int:
    prog = f"{PROG} preview"
    fail = one_line_error(prog)
    out = args.out if args.out is not None else args.directory / PREVIEW_NAME
    try:
        check_png_path(out)
        # Shards are checked as they are read (names, dtypes, shapes); checksumming every shard of a
        # large dataset to draw twelve samples is not worth the wait.
        reader = ShardReader(args.directory, verify=False)
    except (ValueError, ShardFormatError) as problem:
        fail(str(problem))
    try:
        samples = load_preview_samples(reader, args.split, args.count)
        if not samples:
            nonempty = [split for split in SPLITS if reader.counts[split]]
            fail(
                f"the {args.split} split of {args.directory} is empty; "
                f"splits with samples: {', '.join(nonempty) or 'none'}"
            )
        out.write_bytes(encode_png(preview_sheet(reader, samples, args.split)))
    except ShardFormatError as problem:
        fail(str(problem))
    except OSError as problem:
        return _no_data(prog, str(problem))
    sessions = len({sample.session for sample in samples})
    print(f"wrote {out}: {len(samples)} samples from {sessions} sessions of the {args.split} split")
    return 0
