"""`thermal-synth` as a user runs it: the installed console script, real processes, real topics."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import BIN, thermal_synth

from thermal_synth.cli import COMMANDS, main
from thermal_synth.recording.bags import PairBagWriter, SessionLabels, image_cdr

IMPORTED_BY_HELP = """
import sys
from thermal_synth.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("torch" in sys.modules)
"""


@pytest.mark.parametrize(
    ("argv", "imports_torch"),
    [(["--help"], False), (["trian"], False), (["bag", "--help"], False), (["train", "--help"], True)],
)
def test_only_the_command_being_run_is_imported(argv, imports_torch):
    """`thermal-synth --help` or a typo answers without importing PyTorch (seconds on a Pi)."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORTED_BY_HELP, *argv],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.splitlines()[-1] == str(imports_torch), result.stderr


def test_help_lists_every_command_with_its_summary(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    listing = " ".join(capsys.readouterr().out.split())
    for name, command in COMMANDS.items():
        assert f"{name} {' '.join(command.help.split())}" in listing


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_defines_its_own_arguments(name, capsys):
    """Each command's module registers the parser under the name and summary it is listed with."""
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    usage = capsys.readouterr().out
    assert usage.startswith(f"usage: thermal-synth {name} ")
    assert not usage.startswith(f"usage: thermal-synth {name} [-h]\n"), "only the listing's stub"


@pytest.mark.parametrize("seconds", ["0", "-1", "soon"])
def test_demo_rejects_a_bad_duration_with_usage_and_exit_2(seconds):
    result = thermal_synth("demo", "--duration", seconds)
    assert result.returncode == 2
    assert "--duration" in result.stderr


def test_a_reader_that_stops_early_is_not_an_error(tmp_path):
    """`thermal-synth bag info BAG | head -1`: the pipe closes before the output is flushed."""
    with PairBagWriter(tmp_path / "bag", SessionLabels(person="ada")) as writer:
        writer.write_pair(
            1,
            image_cdr(np.zeros((120, 160), np.uint16), "16UC1", 1, "t"),
            image_cdr(np.zeros((4, 4, 3), np.uint8), "rgb8", 1, "c"),
        )
    process = subprocess.Popen(
        [str(BIN / "thermal-synth"), "bag", "info", str(tmp_path / "bag")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
