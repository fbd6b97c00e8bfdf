"""The synthesis node's parameters: parsing and validation of what `ros2 param set` may send, kept
apart from the node so every refusal is tested without a graph."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_OUTPUT_SIZE = (2160, 3840)
"""4K UHD: beyond what any video-call client sends, and a bound on the per-frame resize cost."""
MAX_OUTPUT_RATE_HZ = 120.0
"""The fastest display refresh a call client shows; frames beyond it would be painted for nobody."""
NATIVE_SIZES = ((), (0, 0))
SETTINGS_PARAMETERS = ("output_size", "transition_s", "output_rate_hz")


def parse_output_size(value: Sequence[int]) -> tuple[int, int] | None:
    """None means the model's native size, so the common case costs no resize at all."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValueError(f"output_size must be [rows, cols] or [0, 0] for the model's size, got {value!r}")
    size = tuple(value)
    if size in NATIVE_SIZES:
        return None
    if len(size) != 2 or not all(isinstance(v, int | np.integer) for v in size):
        raise ValueError(f"output_size must be [rows, cols] or [0, 0] for the model's size, got {list(size)}")
    rows, cols = (int(v) for v in size)
    max_rows, max_cols = MAX_OUTPUT_SIZE
    if not (1 <= rows <= max_rows and 1 <= cols <= max_cols):
        raise ValueError(
            f"output_size must be positive and at most [{max_rows}, {max_cols}], got [{rows}, {cols}]"
        )
    return rows, cols


def parse_output_rate(value: float) -> float:
    """The rate is dynamically typed so that `-p output_rate_hz:=30` works: anything else is refused here."""
    if isinstance(value, bool) or not isinstance(value, float | int) or not math.isfinite(value):
        raise ValueError(f"output_rate_hz must be a number of frames per second, got {value!r}")
    if not 0 <= value <= MAX_OUTPUT_RATE_HZ:
        raise ValueError(
            f"output_rate_hz must be in [0, {MAX_OUTPUT_RATE_HZ:g}] (0 = one frame per thermal frame), "
            f"got {value}"
        )
    return float(value)


def parse_cpu_threads(value: int) -> int:
    """0 picks half the cores: on a 2-core laptop two painting threads stall whenever the driver or
    the call application takes a core, which doubled the graph's p99 latency in bench_e2e."""
    cores = os.cpu_count() or 1
    if not 0 <= value <= cores:
        raise ValueError(f"cpu_threads must be in 0..{cores} (0 = half the cores), got {value}")
    return value or max(1, cores // 2)


@dataclass(frozen=True)
class RenderSettings:
    """What may change while running; swapped whole so the worker never sees half an update."""

    output_size: tuple[int, int] | None
    transition_s: float
    output_rate_hz: float
    """0 = one frame per input frame; otherwise frames per second painted from interpolated heatmaps."""

    @classmethod
    def from_parameters(
        cls, output_size: Sequence[int], transition_s: float, output_rate_hz: float
    ) -> RenderSettings:
        if not isinstance(transition_s, float | int) or not math.isfinite(transition_s) or transition_s < 0:
            raise ValueError(f"transition_s must be a finite number of seconds >= 0, got {transition_s}")
        return cls(parse_output_size(output_size), float(transition_s), parse_output_rate(output_rate_hz))


def stream_code_parameter(stream: str) -> str:
    """The parameter holding one stream's own appearance: `<name>.latent_code`, as a YAML
    `<name>: {latent_code: ...}` block under the node's ros__parameters declares it."""
    return f"{stream}.latent_code"
