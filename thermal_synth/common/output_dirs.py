"""Output directories that appear whole or not at all.

Datasets, evaluation reports and audits are written into a hidden sibling directory that is
renamed into place only when complete, so an error or Ctrl-C never leaves a half-written
directory that a later command would mistake for a finished one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class OutputDirError(ValueError):
    """An --out the command must not write to; the message says why."""


def check_output_dir(out: Path) -> None:
    """`out` may not exist yet or be an empty directory, and its parent must exist."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        raise OutputDirError(f"--out {out} exists and is not empty")
    if not out.absolute().parent.is_dir():
        raise OutputDirError(f"--out {out}: parent directory {out.absolute().parent} does not exist")


@contextmanager
def staged_directory(out: Path) -> Iterator[Path]:
    """Yields an empty staging directory beside `out`; renames it to `out` when the block succeeds."""
    out = Path(out)
    check_output_dir(out)
    staging = out.absolute().parent / f".{out.name}.partial-{os.getpid()}"
    staging.mkdir()
    try:
        yield staging
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
