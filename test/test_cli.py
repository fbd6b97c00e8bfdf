"""`thermal-synth` as a user runs it: the installed console script, real processes, real topics."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from conftest import BIN, thermal_synth

from thermal_synth.bags import PairBagWriter, SessionLabels, image_cdr


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
