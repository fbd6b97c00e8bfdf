"""End-to-end latency of the conference graph: from a heatmap's capture to its painted frame's arrival.

The real nodes run as the user starts them, `thermal-synth conference source:=sim
diagnostics:=false` (the packaged default model), each in its own process and then all in one
(`--single-process`). A subscriber node of this process, outside the graph as a video app is,
notes the receipt time of every `synth/image` by its node clock: system time, the clock the
driver stamps `thermal/image` with at capture, so receipt minus header stamp is the whole way
through driver publication, DDS, synthesis and DDS again, on the same machine. Each
configuration is timed for a window that starts a few seconds after its first painted frame, so
start-up (torch imports, model loading, the first frames' lazy set-up) is not part of it.

With `output_rate_hz` 0 every frame carries the stamp of the heatmap it was painted from; only
frames whose stamp matches a heatmap's exactly are counted. With 30 the in-between frames are
blends of the two latest heatmaps, played one input period behind, so their stamp-to-receipt
time includes that ~115 ms playback delay by design; the jitter of that output (the spread of
the intervals between frames, repeated or backward stamps) is what a call's smoothness rests on.

Run: `python -m bench e2e` (updates bench/results.json) or `python -m bench.bench_e2e`.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import Image

from bench.common import machine_info, tail
from thermal_msgs import topics
from thermal_msgs.qos import STREAM_SUBSCRIBER_QOS
from thermal_msgs.units import stamp_ns
from thermal_synth.bringup.processes import spin_for, spin_until, use_private_domain

WINDOW_S = 60.0
"""A p99 over some 520 frames at 8.7 Hz (the fifth-worst): on two shared cores the few slowest
frames of 30 s moved the p99 by several ms from one run to the next."""
WARMUP_S = 3.0
"""Not timed after the first painted frame: the first frames pay for lazy set-up (oneDNN's bf16
kernels, the allocator), one of them over 100 ms."""
QUICK_WINDOW_S = 2.0
STARTUP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
OUTPUT_RATES_HZ = (0.0, 30.0)
GRAPH_ARGUMENTS = {"source": "sim", "diagnostics": "false"}
"""`model` and `latent_code` are left at their defaults: the packaged model and its first code."""
PLAYBACK_DELAY_NOTE = (
    "output_rate_hz 30: latency over all frames, interpolated ones included; they carry stamps "
    "one input period (~115 ms at 8.7 Hz) behind, so the playback delay is part of the latency"
)


class LatencyProbe:
    """Notes (stamp, receipt) of each painted frame and the stamps of the heatmaps it was fed."""

    def __init__(self) -> None:
        self.node = Node("bench_e2e_probe")
        self.heatmap_stamps: set[int] = set()
        self.window_heatmaps: list[int] = []
        """Stamps of the heatmaps that arrived in the timed window, to count those never painted."""
        self.frames: list[tuple[int, int]] = []
        """(header stamp, receipt) of each synth/image, in ns of the system clock."""
        subscribe = self.node.create_subscription
        subscribe(Image, topics.THERMAL_IMAGE, self._on_heatmap, STREAM_SUBSCRIBER_QOS)
        subscribe(Image, topics.SYNTH_IMAGE, self._on_frame, STREAM_SUBSCRIBER_QOS)

    def ready(self) -> bool:
        return bool(self.frames)

    def restart(self) -> None:
        self.frames.clear()
        self.window_heatmaps.clear()

    def _on_heatmap(self, msg: Image) -> None:
        self.heatmap_stamps.add(stamp_ns(msg.header.stamp))
        self.window_heatmaps.append(stamp_ns(msg.header.stamp))

    def _on_frame(self, msg: Image) -> None:
        self.frames.append((stamp_ns(msg.header.stamp), self.node.get_clock().now().nanoseconds))


def latency_summary(frames: list[tuple[int, int]]) -> dict:
    latencies_ms = [(receipt - stamp) / 1e6 for stamp, receipt in frames]
    return {**tail(latencies_ms), "max": round(max(latencies_ms), 2)}


def measure(single_process: bool, output_rate_hz: float, window_s: float) -> dict:
    arguments = {**GRAPH_ARGUMENTS, "output_rate_hz": f"{output_rate_hz:g}"}
    command = [sys.executable, "-m", "thermal_synth.cli", "conference"]
    command += [f"{name}:={value}" for name, value in arguments.items()]
    command += ["--single-process"] if single_process else []
    rclpy.init(args=[])
    probe = LatencyProbe()
    # A file, not a pipe: nobody reads the graph's log while it runs, and a full pipe would stall it.
    with tempfile.TemporaryFile("w+") as log:
        graph = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            _time_window(graph, probe, window_s)
        finally:
            graph.send_signal(signal.SIGINT)
            try:
                code = graph.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                graph.kill()
                code = graph.wait()
            probe.node.destroy_node()
            rclpy.try_shutdown()
        if code:
            log.seek(0)
            raise RuntimeError(f"the conference graph exited with {code}:\n{log.read()[-2000:]}")
    receipts_s = np.array([receipt for _, receipt in probe.frames]) / 1e9
    matched = [frame for frame in probe.frames if frame[0] in probe.heatmap_stamps]
    result = {
        "frames": len(probe.frames),
        "frames_with_a_heatmap_stamp": len(matched),
        "synth_fps": round((len(receipts_s) - 1) / (receipts_s[-1] - receipts_s[0]), 2),
    }
    if output_rate_hz:
        return {
            **result,
            "stamp_to_receipt_ms": latency_summary(probe.frames),
            "jitter": output_jitter(probe.frames),
        }
    return {**result, **unpainted(probe), "stamp_to_receipt_ms": latency_summary(matched)}


def output_jitter(frames: list[tuple[int, int]]) -> dict:
    """How steady an interpolated output is as a call sees it: the spread of the intervals between
    receipts and between header stamps, and stamps that repeat or go back (a frame shown twice or
    out of order)."""
    receipt_steps_ms = np.diff([receipt for _, receipt in frames]) / 1e6
    stamp_steps_ms = np.diff([stamp for stamp, _ in frames]) / 1e6
    return {
        "receipt_interval_ms": {
            "mean": round(float(receipt_steps_ms.mean()), 2),
            "std": round(float(receipt_steps_ms.std()), 2),
        },
        "stamp_interval_std_ms": round(float(stamp_steps_ms.std()), 2),
        "duplicated_stamps": int((stamp_steps_ms == 0).sum()),
        "stamps_out_of_order": int((stamp_steps_ms < 0).sum()),
    }


def _time_window(graph: subprocess.Popen, probe: LatencyProbe, window_s: float) -> None:
    """Spins the probe until the first painted frame, through the warm-up, then for `window_s`;
    a graph that dies ends the spinning, and `measure` reports its exit."""
    if not spin_until(probe.node, probe.ready, STARTUP_TIMEOUT_S, graph) and graph.poll() is None:
        raise RuntimeError(f"the conference graph painted nothing in {STARTUP_TIMEOUT_S:g} s")
    for seconds in (WARMUP_S, window_s):
        probe.restart()
        spin_for(probe.node, seconds, graph)


def unpainted(probe: LatencyProbe) -> dict:
    """Heatmaps of the window that never became a frame; those newer than the last frame may still
    have been in flight when the window closed, so they do not count."""
    painted = {stamp for stamp, _ in probe.frames}
    last = max(painted)
    counted = [stamp for stamp in probe.window_heatmaps if stamp <= last]
    return {
        "heatmaps_in_window": len(counted),
        "heatmaps_never_painted": sum(stamp not in painted for stamp in counted),
    }


def run(window_s: float = WINDOW_S, *, quick: bool = False) -> dict:
    """`quick`: one configuration (processes, output_rate_hz 0) for 2 s, for the smoke test."""
    use_private_domain()
    window_s = QUICK_WINDOW_S if quick else window_s
    modes = {"processes": False} if quick else {"processes": False, "single_process": True}
    rates = OUTPUT_RATES_HZ[:1] if quick else OUTPUT_RATES_HZ
    started = time.perf_counter()
    results = {
        mode: {f"output_rate_hz_{rate:g}": measure(single_process, rate, window_s) for rate in rates}
        for mode, single_process in modes.items()
    }
    return {
        "benchmark": "end_to_end",
        "graph": "conference: thermal_driver (sim, 8.7 Hz) -> thermal_synth (packaged default model) "
        "-> a subscriber in the benchmark's own process, outside the graph; diagnostics:=false",
        "latency": "subscriber's receipt time - thermal/image header stamp, both system clock, ms",
        "warmup_s": WARMUP_S,
        "window_s": window_s,
        "quick": quick,
        "note": PLAYBACK_DELAY_NOTE,
        **results,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=WINDOW_S, help="window per configuration")
    parser.add_argument("--quick", action="store_true", help="one configuration for 2 s")
    args = parser.parse_args(argv)
    print(json.dumps({"machine": machine_info(), **run(args.seconds, quick=args.quick)}, indent=2))


if __name__ == "__main__":
    main()
