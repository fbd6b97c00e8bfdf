"""The recorder's ROS-free core: pairing, the writer thread, masks and a disk that fills up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from thermal_synth.recording.bags import BagOptions, PairBagReader, SessionLabels, image_cdr, repair_bag
from thermal_synth.recording.pairing import PairingConfig
from thermal_synth.recording.session import Recording

REPO = Path(__file__).resolve().parents[1]
PERIOD_NS = 100_000_000


def serialize(pair, mask):
    """Messages here are (array, encoding); everything is written under the pair's stamp."""
    thermal, rgb = pair.thermal, pair.rgb
    return (
        image_cdr(*thermal, pair.stamp_ns, "thermal"),
        image_cdr(*rgb, pair.stamp_ns, "camera"),
        None if mask is None else image_cdr(*mask, pair.stamp_ns, "camera"),
    )


def frames(index: int) -> tuple[tuple[np.ndarray, str], tuple[np.ndarray, str], tuple[np.ndarray, str]]:
    thermal = np.full((120, 160), 30000 + index, np.uint16)
    rgb = np.full((60, 80, 3), index % 256, np.uint8)
    mask = np.zeros((60, 80), np.uint8)
    mask[: index % 60 + 1] = 255
    return (thermal, "16UC1"), (rgb, "rgb8"), (mask, "mono8")


def test_pairs_masks_and_labels_reach_the_bag(tmp_path):
    errors: list[str] = []
    recording = Recording(
        tmp_path / "bag",
        SessionLabels(person="ada"),
        BagOptions(),
        pairing=PairingConfig(),
        serialize=serialize,
        on_error=errors.append,
    )
    for index in range(20):
        thermal, rgb, mask = frames(index)
        stamp = index * PERIOD_NS
        recording.add_rgb(stamp + 5_000_000, rgb)
        if index >= 3:  # the mask stream starts late, as when its subscription matches late
            recording.add_mask(stamp + 5_000_000, mask)
        recording.add_thermal(stamp, thermal)
    summary = recording.stop()
    assert errors == []
    assert summary.pairs == recording.stats.pairs_written == 20
    assert recording.stats.pairs_with_mask == 17
    pairs = list(PairBagReader(tmp_path / "bag").pairs())
    assert [p.stamp_ns for p in pairs] == [i * PERIOD_NS for i in range(20)]
    for index, pair in enumerate(pairs):
        assert pair.thermal_centikelvin[0, 0] == 30000 + index
        assert pair.rgb[0, 0, 0] == index
        assert (pair.person_mask is None) == (index < 3)
        if pair.person_mask is not None:
            assert pair.person_mask.sum() == (index % 60 + 1) * 80


FULL_DISK_CHILD = """
import json, resource, signal, sys
sys.path.insert(0, sys.argv[2])
from test_recording import frames, serialize
from thermal_synth.recording.bags import BagOptions, SessionLabels
from thermal_synth.recording.pairing import PairingConfig
from thermal_synth.recording.session import Recording

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
errors = []
recording = Recording(sys.argv[1], SessionLabels(), BagOptions(flush_interval_s=0.05),
                      pairing=PairingConfig(), serialize=serialize, on_error=errors.append)
resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, resource.RLIM_INFINITY))
import time
for index in range(200):
    thermal, rgb, _mask = frames(index)
    recording.add_rgb(index * 100_000_000, rgb)
    recording.add_thermal(index * 100_000_000, thermal)
    time.sleep(0.01)
active = recording.active
recording.stop()
print(json.dumps({"errors": errors, "active": active, "written": recording.stats.pairs_written}))
"""


def test_a_full_disk_stops_the_recording_with_one_error_and_keeps_what_was_written(tmp_path):
    """RLIMIT_FSIZE refuses writes past 2 MB (EFBIG) the way a full disk does (ENOSPC)."""
    bag = tmp_path / "full"
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK_CHILD, str(bag), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert len(report["errors"]) == 1, report
    assert str(bag) in report["errors"][0]
    assert not report["active"]
    assert 0 < report["written"] < 200
    repair_bag(bag)
    pairs = list(PairBagReader(bag).pairs())
    # Only what waited for the next flush is lost: 50 ms of writing (the writer may catch up a
    # backlog of a dozen pairs within that), never what an earlier flush put on disk.
    assert len(pairs) >= report["written"] // 2
    assert [p.stamp_ns for p in pairs] == [i * PERIOD_NS for i in range(len(pairs))]
