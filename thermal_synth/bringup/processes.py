"""Starting our nodes as separate processes, the way users run them, from Python tools."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import rclpy
from rclpy.node import Node


def use_private_domain() -> None:
    """A random ROS_DOMAIN_ID unless the user chose one, so tools never mix with other robots' topics."""
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 101)))


def node_command(module: str, parameters: dict[str, object]) -> list[str]:
    overrides = [arg for name, value in parameters.items() for arg in ("-p", f"{name}:={value}")]
    return [sys.executable, "-m", module, "--ros-args", *overrides]


@contextmanager
def node_process(module: str, parameters: dict[str, object]) -> Iterator[subprocess.Popen]:
    """Runs `python -m module --ros-args -p ...`; on exit stops it like Ctrl-C and collects its stderr."""
    process = subprocess.Popen(node_command(module, parameters), stderr=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        _, process.stderr_text = process.communicate(timeout=10)


def spin_for(node: Node, seconds: float, process: subprocess.Popen | None = None) -> None:
    """Spin `node` for `seconds`, stopping early if the watched process dies."""
    spin_until(node, lambda: False, seconds, process)


def spin_until(
    node: Node, done: Callable[[], bool], timeout_s: float, process: subprocess.Popen | None = None
) -> bool:
    """Spin `node` until `done()`, the timeout, or the watched process's death; returns `done()`."""
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline and (process is None or process.poll() is None):
        rclpy.spin_once(node, timeout_sec=0.05)
    return done()
