"""The `main()` every node of this package shares: start, spin, and fail the same way.

Users meet all our nodes through the same conventions: a bad start-up setting is one ERROR line
and exit code 2 (so launch files and systemd units can tell it from a crash), Ctrl-C is a clean
exit 0, and a node whose worker thread died (`node.failure` set) exits with 1.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Protocol

import rclpy
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.executors import ExternalShutdownException
from rclpy.logging import get_logger
from rclpy.node import Node

EXIT_CONFIG = 2
EXIT_FAILURE = 1


class ConfigError(ValueError):
    """A setting a node cannot start with; `run_node` logs it as one line and exits with 2."""


class WorkerNode(Protocol):
    failure: BaseException | None

    def destroy_node(self) -> None: ...


def run_guarded(node: Node, loop: Callable[[], None], what: str, on_failure: Callable[[str], None]) -> None:
    """A worker thread's body: a bug in `loop` ends the node with one FATAL line and exit code 1
    (`run_node` sees `node.failure`), not a hang or a frozen picture.

    `on_failure` gets the one-line problem, for the node's diagnostics and to stop its threads.
    An exception after Ctrl-C shut the context down (under a publish) is not a failure.
    """
    try:
        loop()
    except Exception as error:
        if not node.context.ok():
            return
        problem = f"{type(error).__name__}: {error}"
        node.get_logger().fatal(f"{what} failed: {problem}")
        node.failure = error
        on_failure(problem)


def run_node(name: str, create: Callable[[], WorkerNode], args: list[str] | None = None) -> int:
    try:
        rclpy.init(args=args)
    except RuntimeError as error:
        # rcl has already printed its own line; this one says it was the command line, not the node.
        print(f"[{name}] cannot start: invalid --ros-args: {error}", file=sys.stderr)
        return EXIT_CONFIG
    node = None
    try:
        node = create()
        while rclpy.ok() and node.failure is None:
            try:
                rclpy.spin_once(node, timeout_sec=0.5)
            except Exception:
                if rclpy.ok():
                    raise
                # Ctrl-C shut the context down while a message was being taken (rclpy then fails
                # to convert it): an artefact of stopping, not an error of the node.
                break
    except (ConfigError, InvalidParameterTypeException) as error:
        # A wrong type such as `-p rate_hz:=5` for a float is a setting problem like any other.
        get_logger(name).error(f"cannot start: {error}")
        return EXIT_CONFIG
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return EXIT_FAILURE if node is not None and node.failure is not None else 0
