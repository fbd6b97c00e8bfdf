"""`thermal-synth` as a user runs it: the installed console script, real processes, real topics."""

from __future__ import annotations

import re
import subprocess

import cv2
import numpy as np
import pytest
from conftest import BIN, thermal_synth

from thermal_synth.bags import PairBagWriter, SessionLabels, image_cdr
from thermal_synth.demo import SHADES, render_heatmap


@pytest.mark.ros
def test_demo_shows_the_driver_and_the_packaged_model_painting_frames(tmp_path):
    sheet = tmp_path / "demo.png"
    result = thermal_synth("demo", "--seconds", "3", "--sheet", str(sheet))
    assert result.returncode == 0, result.stderr
    summary = re.search(r"/thermal/image: (\d+) messages at ([\d.]+) Hz, 32FC1 12x16", result.stdout)
    assert summary, result.stdout
    assert int(summary.group(1)) >= 20
    assert float(summary.group(2)) == pytest.approx(8.7, rel=0.1)
    assert "/thermal/image_raw: 0 messages" in result.stdout
    heatmap_rows = [line for line in result.stdout.splitlines() if line.startswith("  |")]
    assert len(heatmap_rows) == 12
    assert all(len(row) == 2 + 1 + 32 + 1 for row in heatmap_rows)
    frames = re.search(
        r"/synth/image: (\d+) messages at [\d.]+ Hz, rgb8 96x128, .* (\d+) matched", result.stdout
    )
    assert frames, result.stdout
    assert int(frames.group(1)) >= 10
    assert int(frames.group(2)) >= int(frames.group(1)) - 2  # every frame carries its heatmap's stamp
    picture = cv2.imread(str(sheet))
    assert picture is not None
    assert picture.shape[1] >= 4 * 128
    assert picture.std() > 20  # heatmaps and painted frames, not a blank sheet


@pytest.mark.parametrize("seconds", ["0", "-1", "soon"])
def test_demo_rejects_a_bad_duration_with_usage_and_exit_2(seconds):
    result = thermal_synth("demo", "--seconds", seconds)
    assert result.returncode == 2
    assert "--seconds" in result.stderr


def test_heatmap_rendering_puts_the_hottest_cell_at_the_top_shade():
    celsius = np.full((12, 16), 21.0, np.float32)
    celsius[3, 7] = 34.0
    rows = render_heatmap(celsius).splitlines()
    assert rows[3][3 + 2 * 7 : 3 + 2 * 8] == SHADES[-1] * 2
    assert set(rows[0][3:-1]) == {SHADES[0]}


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
