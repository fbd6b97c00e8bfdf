"""The `main()` every node of this package shares: start, spin, and fail the same way.

Users meet all our nodes through the same conventions: a bad start-up setting is one ERROR line
and exit code 2 (so launch files and systemd units can tell it from a crash), Ctrl-C is a clean
exit 0, and a node whose worker thread died (`node.failure` set) exits with 1.
"""

from __future__ import annotations

import sys
import threading
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


class MainThreadWorker(WorkerNode, Protocol):
    """A node whose work must run on the process's main thread (see `run_node`)."""

    def work(self) -> None:
        """Runs until `stop()` or a failure; a failure sets `failure`, as a worker thread's would."""

    def stop(self) -> None: ...


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


def run_node(
    name: str,
    create: Callable[[], WorkerNode],
    args: list[str] | None = None,
    *,
    main_thread_work: bool = False,
) -> int:
    """Starts the node and spins it until Ctrl-C, shutdown or a failure.

    `main_thread_work`: the node's `work()` runs on the main thread and ROS is served from a
    second one. PyTorch's CPU kernels use GNU OpenMP, which paints a `fast` frame about half as
    fast from any thread but the process's first on a 2-core machine (32 ms against 18 ms at the
    Lepton's 8.7 Hz; most likely OpenMP's spin-waiting is throttled once it manages more threads
    than there are cores), so the synthesis node keeps its forward passes on the main thread.
    """
    try:
        rclpy.init(args=args)
    except RuntimeError as error:
        # rcl has already printed its own line; this one says it was the command line, not the node.
        print(f"[{name}] cannot start: invalid --ros-args: {error}", file=sys.stderr)
        return EXIT_CONFIG
    node = None
    try:
        node = create()
        if main_thread_work:
            _work_while_spinning(node)
        else:
            _spin(node)
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


def _spin(node: WorkerNode) -> None:
    while rclpy.ok() and node.failure is None:
        try:
            rclpy.spin_once(node, timeout_sec=0.5)
        except ExternalShutdownException:
            return
        except Exception:
            if rclpy.ok():
                raise
            # Ctrl-C shut the context down while a message was being taken (rclpy then fails
            # to convert it): an artefact of stopping, not an error of the node.
            return


def _work_while_spinning(node: MainThreadWorker) -> None:
    """`node.work()` here, ROS callbacks on a second thread; either ending stops the other."""
    spinning_error: list[BaseException] = []

    def spin() -> None:
        try:
            _spin(node)
        except BaseException as error:  # re-raised on the main thread, which owns the exit code
            spinning_error.append(error)
        finally:
            node.stop()

    spinner = threading.Thread(target=spin, name="ros", daemon=True)
    spinner.start()
    try:
        node.work()
    finally:
        node.stop()
        # The node is destroyed after this returns: no callback may be running in it by then.
        spinner.join(timeout=5.0)
    if spinning_error:
        raise spinning_error[0]
