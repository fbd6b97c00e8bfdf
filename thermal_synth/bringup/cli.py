"""`thermal-synth conference|record|demo`: the launch files' graphs, for machines without ROS tooling.

Arguments are written as for `ros2 launch`: `thermal-synth conference source:=purethermal
latent_code:=office`, and `--show-args` lists them as `ros2 launch -s` does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from thermal_synth.bringup.graph import BRINGUPS, Bringup, argument_defaults, config_dir, resolve_arguments
from thermal_synth.bringup.processes import use_private_domain
from thermal_synth.bringup.runner import BringupError, RunLimits, Runner
from thermal_synth.common.cli_args import EXIT_USAGE, positive_number, use_one_line_errors
from thermal_synth.common.contact_sheet import check_png_path

DEMO_SECONDS = 5.0
DEMO_PREVIEW = Path("thermal_synth_demo.png")


def add_parser(commands, name: str, help: str) -> None:
    """`demo`, or the graph of `BRINGUPS` called `name`."""
    if name == "demo":
        _add_demo_parser(commands, help)
        return
    bringup = BRINGUPS[name]
    parser = commands.add_parser(
        name,
        help=help,
        description=f"{bringup.description}. Starts the graph of `ros2 launch thermal_synth "
        f"{bringup.name}.launch.py` without ROS tooling; Ctrl-C stops every node.",
    )
    use_one_line_errors(parser)
    parser.add_argument(
        "overrides", nargs="*", metavar="NAME:=VALUE", help="launch arguments, as for ros2 launch"
    )
    parser.add_argument("--source", help="shorthand for source:=SOURCE (sim needs no hardware)", default=None)
    _add_run_options(parser)
    parser.add_argument("--show-args", action="store_true", help="list the launch arguments and exit")
    if bringup is BRINGUPS["conference"]:
        parser.add_argument(
            "--preview",
            type=Path,
            help="PNG of heatmaps beside painted frames (and an MP4 of every frame beside it); "
            "--duration counts from the first painted frame",
        )
    parser.set_defaults(run=run, bringup=bringup)


def _add_demo_parser(commands, help: str) -> None:
    demo = commands.add_parser(
        "demo",
        help=help,
        description=f"Same as `thermal-synth conference source:=sim --duration {DEMO_SECONDS:g} "
        f"--preview {DEMO_PREVIEW}`.",
    )
    use_one_line_errors(demo)
    demo.add_argument("--source", default="sim", help="driver source (default: sim, needs no hardware)")
    demo.add_argument("--model", default="", help="model directory (default: the packaged model)")
    demo.add_argument("--preview", type=Path, default=DEMO_PREVIEW, help=f"PNG to write ({DEMO_PREVIEW})")
    _add_run_options(demo, duration=DEMO_SECONDS)
    demo.set_defaults(run=run_demo, bringup=BRINGUPS["conference"])


def _add_run_options(parser: argparse.ArgumentParser, duration: float | None = None) -> None:
    parser.add_argument(
        "--duration",
        type=positive_number,
        default=duration,
        help="stop after this many seconds"
        + (f" (default {duration:g})" if duration else " (default: Ctrl-C)"),
    )
    parser.add_argument(
        "--single-process",
        action="store_true",
        help="run our nodes in this process on one multi-threaded executor (less memory)",
    )


def run_demo(args: argparse.Namespace) -> int:
    # The demo shows the picture; the aggregator note on pip installs would only distract from it.
    args.overrides = ["diagnostics:=false"] + ([f"model:={args.model}"] if args.model else [])
    args.show_args = False
    return run(args)


def run(args: argparse.Namespace) -> int:
    bringup: Bringup = args.bringup
    prog = f"thermal-synth {args.command}"
    config = config_dir()
    if args.show_args:
        print(describe_arguments(bringup, config))
        return 0
    preview = getattr(args, "preview", None)
    try:
        given = parse_overrides(args.overrides)
        if args.source is not None:
            given.setdefault("source", args.source)
        values = resolve_arguments(bringup, given, config)
        if preview is not None:
            check_png_path(preview)
    except ValueError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "demo":
        # A demo must not mix with a robot's topics; a conference must be reachable by the
        # user's `ros2 param set` and rqt, so it keeps their ROS_DOMAIN_ID.
        use_private_domain()
    runner = Runner(bringup, values, config, single_process=args.single_process)
    try:
        outcome = runner.run(RunLimits(args.duration), _preview_factory() if preview is not None else None)
    except BringupError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{prog}: {outcome.message}", file=sys.stderr)
    if outcome.exit_code or outcome.observer is None:
        return outcome.exit_code
    return report_preview(outcome.observer, preview)


def _preview_factory():
    """Imported only for --preview: the plain runner needs no OpenCV video code."""
    from thermal_synth.bringup.preview import Preview

    return Preview


def report_preview(preview, sheet: Path) -> int:
    print(preview.summary())
    try:
        written = preview.write(sheet)
    except ValueError as error:
        print(f"thermal-synth: error: {error}", file=sys.stderr)
        return 1
    print(
        f"wrote {' and '.join(map(str, written))}: heatmaps (what leaves the driver) beside the "
        "frames painted from them"
    )
    return 0


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """`name:=value` pairs as ros2 launch takes them; the value may be empty (`model:=`)."""
    given = {}
    for override in overrides:
        name, separator, value = override.partition(":=")
        if not separator or not name:
            raise ValueError(f"{override!r} is not NAME:=VALUE (see --show-args for the names)")
        given[name] = value
    return given


def describe_arguments(bringup: Bringup, config: Path) -> str:
    defaults = argument_defaults(bringup, config)
    lines = [f"Arguments of {bringup.name} (NAME:=VALUE):"]
    for argument in bringup.arguments:
        choices = f" (one of: {', '.join(argument.choices)})" if argument.choices else ""
        lines += [
            f"    '{argument.name}':",
            f"        {argument.description}{choices}",
            f"        (default: '{defaults[argument.name]}')",
        ]
    return "\n".join(lines)
