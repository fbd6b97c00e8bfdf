"""What every benchmark report carries: the machine it ran on and robust summaries of repeats."""

from __future__ import annotations

import os
import platform
import statistics
import sys

import numpy as np


def machine_info() -> dict:
    import torch

    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def spread(samples: list[float], digits: int = 1) -> dict:
    """Median and spread: medians resist the noisy neighbours a shared 2-core machine has."""
    return {
        "median": round(statistics.median(samples), digits),
        "min": round(min(samples), digits),
        "max": round(max(samples), digits),
        "stdev": round(statistics.stdev(samples), digits) if len(samples) > 1 else 0.0,
        "n": len(samples),
    }


def tail(samples: list[float]) -> dict:
    """p50 and p99: for latencies the tail is what a user notices."""
    p50, p99 = np.percentile(np.asarray(samples), [50, 99])
    return {"p50": round(float(p50), 2), "p99": round(float(p99), 2)}
