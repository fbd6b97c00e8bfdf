"""Pair bag writing speed: how much headroom does the recorder's disk side have over 8.7 pairs/s?

`PairBagWriter` is fed what the `pair_recorder` node's writer thread hands it: the CDR of a
simulated rig pair (120x160 16UC1 thermal, 240x320 rgb8 frame, 240x320 mono8 person mask) under
one stamp per pair, with the node's `BagOptions` (only the storage chosen), and closed at the
end, which finishes the storage file and metadata.yaml. The writer flushes (with an fsync or a
durable commit) once per `flush_interval_s` of its clock; live that is once per second of pairs,
so here its clock runs on the pairs' stamps, not on the wall clock of a loop that writes
hundreds of pairs a second. Serialising is done beforehand and not timed: the node's
`serialize_message` is a separate cost. Bags go to a temporary directory on this machine's disk,
one at a time, each deleted after it is timed.

Run: `python -m bench recorder` (updates bench/results.json) or `python -m bench.bench_recorder`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import machine_info, spread
from thermal_driver.sources.rig.rig import SimRig, sessions
from thermal_msgs import topics
from thermal_synth.recording.bags import STORAGES, BagOptions, PairBagWriter, SessionLabels, image_cdr

PAIRS = 600
REPEATS = 5
LEPTON_PERIOD_NS = round(1e9 / 8.7)
LABELS = SessionLabels(person="bench", outfit="sim", scene="sim")

PairCdr = tuple[int, bytes, bytes, bytes]


def rig_pairs(count: int) -> list[PairCdr]:
    """(stamp, thermal, rgb, mask) CDR of one rendered rig pair under `count` stamps at the
    Lepton's rate: the writer checks every message's header stamp against the pair's."""
    rendered = SimRig(sessions(1, seed=0)[0]).render(0.0)
    mask = rendered.person_mask_rgb.astype(np.uint8) * 255
    pairs = []
    for index in range(count):
        stamp = 1_700_000_000 * 10**9 + index * LEPTON_PERIOD_NS
        pairs.append(
            (
                stamp,
                image_cdr(
                    rendered.thermal_centikelvin,
                    topics.THERMAL_RAW_ENCODING,
                    stamp,
                    topics.THERMAL_FRAME_ID,
                ),
                image_cdr(rendered.rgb, topics.RGB_ENCODING, stamp, topics.CAMERA_FRAME_ID),
                image_cdr(mask, topics.MASK_ENCODING, stamp, topics.CAMERA_FRAME_ID),
            )
        )
    return pairs


class RecordingClock:
    """The writer's flush clock, set to the stamp of the pair being written."""

    def __init__(self, now_s: float) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def write_bag(path: Path, pairs: list[PairCdr], storage: str) -> float:
    """Seconds from creating the bag to its close."""
    clock = RecordingClock(pairs[0][0] / 1e9)
    start = time.perf_counter()
    with PairBagWriter(path, LABELS, BagOptions(storage=storage), clock=clock) as writer:
        for stamp, thermal, rgb, mask in pairs:
            clock.now_s = stamp / 1e9
            writer.write_pair(stamp, thermal, rgb, mask)
    return time.perf_counter() - start


def run(pairs: int = PAIRS, repeats: int = REPEATS) -> dict:
    """Every storage writes the same pairs; the storages alternate per repeat so that a noisy
    neighbour slows both alike."""
    messages = rig_pairs(pairs)
    bytes_per_pair = sum(len(cdr) for cdr in messages[0][1:])
    rates: dict[str, list[float]] = {storage: [] for storage in STORAGES}
    with tempfile.TemporaryDirectory(prefix="bench-recorder-") as scratch:
        for repeat in range(repeats):
            for storage in STORAGES:
                bag = Path(scratch) / f"{storage}_{repeat}"
                rates[storage].append(pairs / write_bag(bag, messages, storage))
                shutil.rmtree(bag)
    return {
        "benchmark": "pair_recorder",
        "pairs_per_bag": pairs,
        "bytes_per_pair": bytes_per_pair,
        "flush_interval_s": BagOptions().flush_interval_s,
        "path": "PairBagWriter.write_pair per pair (pre-serialised CDR), flushed once per second of "
        "stamps at 8.7 pairs/s as live, close() included; temporary directory on the local disk",
        "storages": {
            storage: {
                "pairs_per_s": spread(samples),
                "mb_per_s": round(bytes_per_pair * np.median(samples) / 1e6, 1),
            }
            for storage, samples in rates.items()
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=PAIRS)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args(argv)
    print(json.dumps({"machine": machine_info(), **run(args.pairs, args.repeats)}, indent=2))


if __name__ == "__main__":
    main()
