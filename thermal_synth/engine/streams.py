"""Several participants in one forward pass: stream names, the newest-frame mailboxes the worker
takes them from, and the batch painting the node and the benchmarks share."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

import numpy as np
import torch
from torch import Tensor

from thermal_synth.engine.inference import SynthesisEngine, resize_output

MAX_STREAMS = 64
"""A bound on subscriptions per node; a batch of 64 `base` frames is still a small forward pass."""
STREAM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
"""One valid token of a ROS topic name, so `thermal/<name>/image` is always legal."""
SINGLE_STREAM = ""
"""The stream of the single-user graph: thermal/image in, synth/image out."""
Item = TypeVar("Item")


class Mailboxes(Generic[Item]):
    """One slot per stream under one condition.

    The worker sleeps until any stream has a frame, then takes the newest of every stream at once:
    that is what lets the frames of several streams share one forward pass. A new item replaces
    one the worker has not taken yet, which counts as dropped.
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self._ready = threading.Condition()
        self._slots: dict[str, Item] = {}
        self.overwritten = dict.fromkeys(keys, 0)

    def put(self, key: str, item: Item) -> None:
        with self._ready:
            if key in self._slots:
                self.overwritten[key] += 1
            self._slots[key] = item
            self._ready.notify()

    def take_all(self, timeout_s: float) -> dict[str, Item]:
        with self._ready:
            if not self._slots and timeout_s > 0.0:
                self._ready.wait(timeout_s)
            taken, self._slots = self._slots, {}
            return taken


def parse_streams(value: object) -> tuple[str, ...]:
    """Unset or empty means the single stream on thermal/image, the common case of one user."""
    if isinstance(value, str | bytes) or (value is not None and not isinstance(value, Sequence)):
        raise ValueError(f"streams must be a list of names such as [alice, bob], got {value!r}")
    if not value:
        return (SINGLE_STREAM,)
    names = tuple(value)
    bad = [name for name in names if not isinstance(name, str) or not STREAM_NAME.match(name)]
    if bad:
        raise ValueError(
            f"streams: {bad} are not valid names (a letter, then letters, digits or '_'; each becomes "
            "one level of thermal/<name>/image)"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"streams: names must be unique, got {list(names)}")
    if len(names) > MAX_STREAMS:
        raise ValueError(f"streams: at most {MAX_STREAMS} per node, got {len(names)}")
    return names


def paint_heatmaps(
    engine: SynthesisEngine,
    heatmaps_celsius: Sequence[np.ndarray],
    projections: Sequence[Tensor],
    output_size: tuple[int, int] | None,
) -> np.ndarray:
    """(rows, cols) Celsius heatmaps, one per stream, and their streams' projections -> the (N, H, W, 3)
    RGB frames the node publishes, in one forward pass: the node's whole per-batch path in one
    function, so the benchmarks time exactly what the node runs."""
    first = projections[0]
    # Streams that show the same appearance share one cached projection: broadcast, do not copy.
    projected = first if all(p is first for p in projections) else torch.cat(list(projections))
    return resize_output(engine.paint(engine.prepare(np.stack(heatmaps_celsius)), projected), output_size)


def paint_heatmap(
    engine: SynthesisEngine,
    heatmap_celsius: np.ndarray,
    projected: Tensor,
    output_size: tuple[int, int] | None,
) -> np.ndarray:
    """One stream's frame: `paint_heatmaps` with a batch of one."""
    return paint_heatmaps(engine, [heatmap_celsius], [projected], output_size)[0]
