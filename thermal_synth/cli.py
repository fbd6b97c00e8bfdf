"""`thermal-synth`: the command-line entry point for everything that is not a ROS node."""

from __future__ import annotations

import argparse
import os
import sys

from thermal_synth import bag_cli, bringup_cli, codes, simulate
from thermal_synth.dataset import cli as dataset_cli
from thermal_synth.evaluation import cli as evaluation_cli
from thermal_synth.privacy_audit import cli as privacy_audit_cli
from thermal_synth.training import cli as training_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thermal-synth",
        description="Privacy-preserving video calls from a low-resolution thermal sensor.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bringup_cli.add_parser(commands)
    simulate.add_parser(commands)
    training_cli.add_parser(commands)
    evaluation_cli.add_parser(commands)
    privacy_audit_cli.add_parser(commands)
    codes.add_parser(commands)
    dataset_cli.add_parser(commands)
    bag_cli.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:
        # `thermal-synth bag info BAG | head`: the reader left, which is not an error. Point stdout
        # at /dev/null so the interpreter's final flush does not raise a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
