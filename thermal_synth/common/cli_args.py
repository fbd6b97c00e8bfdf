"""Argument types and error reporting shared by every `thermal-synth` subcommand.

One line a user can read beats a usage block that buries it, so every subcommand reports bad
input as `thermal-synth CMD: error: ...` with exit code 2; `--help` still shows the usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from thermal_msgs.privacy import GRID_TRANSFORMS, PrivacySettings

Result = TypeVar("Result")

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def one_line_error(prog: str) -> Callable[[str], NoReturn]:
    def error(message: str) -> NoReturn:
        print(f"{prog}: error: {message} (see {prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)

    return error


def use_one_line_errors(parser: argparse.ArgumentParser) -> None:
    parser.error = one_line_error(parser.prog)


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def positive_int(text: str) -> int:
    value = integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    value = integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return value


def image_size(text: str) -> tuple[int, int]:
    height, _, width = text.lower().partition("x")
    size = (integer(height), integer(width))
    if min(size) < 16:
        raise argparse.ArgumentTypeError(f"must be HxW with both sides >= 16, got {text!r}")
    return size


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None


def positive_number(text: str) -> float:
    value = number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    value = number(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1, got {text!r}")
    return value


def run_writing_command(
    prog: str, action: Callable[[], Result], usage_errors: tuple[type[BaseException], ...]
) -> Result | int:
    """Runs a command that writes an output directory atomically, reporting like every other one:
    a usage error on one line (exit 2), Ctrl-C (exit 130) and an OS error (exit 1) each saying
    that nothing was written. Returns the action's result, or the exit code."""
    try:
        return action()
    except usage_errors as error:
        # One line whatever the message (torch's errors span several).
        print(f"{prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as error:
        print(f"{prog}: error: {error}; nothing was written", file=sys.stderr)
        return 1


HEATMAP_TRANSFORMS_HELP = (
    "heatmap transforms",
    "make the stored heatmaps as the driver publishes them with these parameters (docs/privacy.md); "
    "a model trained on them reads that setting, and records it",
)
"""Title and description of the transform options of the commands that write datasets."""


def add_transform_arguments(
    parser: argparse.ArgumentParser, title: str, description: str, defaults: PrivacySettings | None
) -> None:
    """The driver's transforms on the heatmap grid (docs/privacy.md), under the driver's parameter
    names, for every command that makes heatmaps as the driver would publish them. `defaults`
    None: an option not given is left to the model (`asked_transforms` omits it)."""

    def default(name: str) -> str:
        return "the model's" if defaults is None else f"{getattr(defaults, name):g}"

    group = parser.add_argument_group(title, description)
    group.add_argument(
        "--relative-temperature",
        action=argparse.BooleanOptionalAction,
        default=None if defaults is None else defaults.relative_temperature,
        help="shift every heatmap so its median cell reads --background-c "
        f"(default {default('relative_temperature')})",
    )
    for name, help in (
        ("background_c", "what the median cell reads with --relative-temperature"),
        ("quantisation_c", "round every cell to a multiple of this step in degrees C (0 = off)"),
        ("noise_c", "std in degrees C of Gaussian noise added to every cell before quantisation (0 = off)"),
    ):
        group.add_argument(
            "--" + name.replace("_", "-"),
            type=number,
            default=None if defaults is None else getattr(defaults, name),
            help=f"{help} (default {default(name)})",
        )


def transform_flag(name: str, value: bool | float) -> str:
    """The option that asks for one transform value, as a user types it."""
    flag = name.replace("_", "-")
    if isinstance(value, bool):
        return f"--{flag}" if value else f"--no-{flag}"
    return f"--{flag} {value:g}"


def asked_transforms(args: argparse.Namespace) -> dict[str, Any]:
    """The transform options that have a value, by the driver's parameter name."""
    return {name: getattr(args, name) for name in GRID_TRANSFORMS if getattr(args, name) is not None}
