"""The `main()` every node of this package shares: start, spin, and fail the same way.

Users meet all our nodes through the same conventions: a bad start-up setting is one ERROR line
and exit code 2 (so launch files and systemd units can tell it from a crash), Ctrl-C is a clean
exit 0, and a node whose worker thread died (`node.failure` set) exits with 1.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

import rclpy
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.executors import ExternalShutdownException
from rclpy.logging import get_logger
from rclpy.node import Node

EXIT_CONFIG = 2
EXIT_FAILURE = 1

Served = TypeVar("Served")


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
            work_while_serving(node, lambda: _spin(node), join_timeout_s=5.0)
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


def work_while_serving(
    worker: MainThreadWorker,
    serve: Callable[[], Served],
    stop_serving: Callable[[], None] = lambda: None,
    *,
    join_timeout_s: float | None = None,
) -> Served | None:
    """`worker.work()` on this (the main) thread, `serve()` on a second one; either ending stops
    the other (`stop_serving` ends `serve`). Returns what `serve` returned; its error is raised
    here, on the thread that owns the exit code. None when it did not finish within the timeout."""
    served: list[Served] = []
    serving_error: list[BaseException] = []

    def run_serve() -> None:
        try:
            served.append(serve())
        except BaseException as error:
            serving_error.append(error)
        finally:
            worker.stop()

    server = threading.Thread(target=run_serve, name="ros", daemon=True)
    server.start()
    try:
        worker.work()
    finally:
        worker.stop()
        stop_serving()
        # The caller destroys the nodes after this returns: no callback may be running by then.
        server.join(timeout=join_timeout_s)
    if serving_error:
        raise serving_error[0]
    return served[0] if served else None
