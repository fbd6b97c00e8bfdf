"""`thermal-synth`: the command-line entry point for everything that is not a ROS node.

Only the module of the command being run is imported: most commands need PyTorch, whose import
alone takes seconds on a laptop (longer on a Raspberry Pi), and `thermal-synth --help`, a
mistyped command or `thermal-synth bag info` should not wait for it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import dataclass

from thermal_synth.bringup.graph import BRINGUPS


@dataclass(frozen=True)
class Command:
    module: str
    """Where `add_parser(commands, name, help)` defines the command's arguments and what it runs."""
    help: str


COMMANDS: dict[str, Command] = {
    **{
        name: Command("thermal_synth.bringup.cli", f"run the {name} graph: {bringup.description}")
        for name, bringup in BRINGUPS.items()
    },
    "demo": Command(
        "thermal_synth.bringup.cli",
        "a few seconds of the conference graph on the simulated sensor, with a preview",
    ),
    "sim": Command("thermal_synth.sim.simulate", "render a simulated thermal/RGB training set into shards"),
    "train": Command("thermal_synth.training.cli", "train a SPADE-SR model on a shard dataset"),
    "eval": Command(
        "thermal_synth.evaluation.cli",
        "evaluate a trained model on a dataset split (FID, MAE, silhouettes, disentanglement)",
    ),
    "privacy-audit": Command(
        "thermal_synth.privacy_audit.cli",
        "train attackers on the thermal stream and report what they learn, against chance",
    ),
    "codes": Command(
        "thermal_synth.appearances.cli",
        "list, add, rename or remove the appearances in a model's latent bank",
    ),
    "dataset": Command(
        "thermal_synth.dataset.cli",
        "turn recorded pair bags into training shards; align the cameras; preview a dataset",
    ),
    "bag": Command("thermal_synth.recording.cli", "inspect or repair recorded pair bags"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command is listed; only `command` gets its arguments, from its own module."""
    parser = argparse.ArgumentParser(
        prog="thermal-synth",
        description="Privacy-preserving video calls from a low-resolution thermal sensor.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, entry in COMMANDS.items():
        if name == command:
            importlib.import_module(entry.module).add_parser(commands, name, entry.help)
        else:
            commands.add_parser(name, help=entry.help)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:
        # `thermal-synth bag info BAG | head`: the reader left, which is not an error. Point stdout
        # at /dev/null so the interpreter's final flush does not raise a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
