"""Runs a bring-up from `thermal_synth.bringup.graph` without ROS launch: the pip-installed product.

Each node gets exactly the command line `ros2 launch` would give it: its name, its YAML file and
a second parameter file with the launch arguments' overrides, so both start the same graph.
By default every node is its own process, like under launch: one crashing node cannot take the
others' memory or GIL with it, and its exit code says what went wrong. `single_process` builds
all of our nodes in this process on one multi-threaded executor (less memory, no DDS hops), which
is what small boards want. Nodes of other packages (RViz, the diagnostics aggregator) are always
processes. A node class that asks for the main thread (`MAIN_THREAD_WORK`, the synthesis node:
PyTorch's CPU kernels are fastest there, see `run_node`) gets it in this mode too; the executor
and the watching then run on a second thread.
"""

from __future__ import annotations

import importlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TextIO

import rclpy
import yaml
from rclpy.context import Context
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node

from thermal_msgs.node_main import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    ConfigError,
    MainThreadWorker,
    work_while_serving,
)
from thermal_synth.bringup.graph import Bringup, NodeSpec, command_arguments, is_enabled, node_parameters
from thermal_synth.common.cli_args import EXIT_INTERRUPTED

STOP_GRACE_S = 10.0
"""How long a node may take to finish after Ctrl-C (the recorder closes its bag) before SIGTERM."""
KILL_GRACE_S = 5.0
POLL_S = 0.1
OUTPUT_TAIL_LINES = 5
LAUNCHER = f"""import os, signal, sys
# Stopped while still importing (torch takes seconds): nothing is open yet, so leave at once.
# A KeyboardInterrupt here can land inside an importlib callback, which swallows it with a
# traceback and leaves the node running until SIGTERM.
signal.signal(signal.SIGINT, lambda signum, frame: os._exit({EXIT_INTERRUPTED}))
from {{module}} import {{function}}
# The runner stops nodes with SIGINT: hear it even when started from a background shell,
# which leaves SIGINT ignored across exec.
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.exit({{function}}())
"""


class BringupError(RuntimeError):
    """The graph cannot be started as asked (a missing executable); nothing has been started."""


@dataclass(frozen=True)
class PlannedNode:
    spec: NodeSpec
    ros_arguments: list[str]
    """`--ros-args ...` exactly as `ros2 launch` passes them: name, YAML file, overrides."""

    @property
    def name(self) -> str:
        return self.spec.name


class Observer:
    """Something that watches the running graph from this process (the preview).

    `ready()` says the graph does what it is for (the first synth/image arrived); `--duration`
    counts from then, so a slow start (a Raspberry Pi importing torch) does not eat the window.
    """

    node: Node

    def ready(self) -> bool:
        return True

    def restart(self) -> None:
        """Forget what arrived while starting, so the record covers only the timed window."""


@dataclass
class Outcome:
    exit_code: int
    message: str
    observer: Observer | None = None


def plan(bringup: Bringup, values: Mapping[str, str], config: Path, workdir: Path) -> list[PlannedNode]:
    """The enabled nodes with their ROS arguments; override files are written into `workdir`."""
    planned = []
    for spec in bringup.nodes:
        if not is_enabled(spec, values):
            continue
        ros_arguments = ["--ros-args", "-r", f"__node:={spec.name}"]
        if spec.parameter_file:
            ros_arguments += ["--params-file", str(config / spec.parameter_file)]
        overrides = node_parameters(spec, values, config)
        if overrides:
            override_file = workdir / f"{spec.name}.overrides.yaml"
            override_file.write_text(yaml.safe_dump({spec.name: {"ros__parameters": overrides}}))
            ros_arguments += ["--params-file", str(override_file)]
        for source, target in spec.remappings:
            ros_arguments += ["-r", f"{source}:={target}"]
        planned.append(PlannedNode(spec, ros_arguments))
    return planned


def our_entry_point(executable: str) -> tuple[str, str]:
    """(module, function) of one of our console scripts, as installed (pip or colcon)."""
    matches = list(entry_points(group="console_scripts", name=executable))
    if not matches:
        raise BringupError(f"no installed executable {executable!r}; reinstall the package (make setup)")
    module, _, function = matches[0].value.partition(":")
    return module, function


def foreign_executable(spec: NodeSpec) -> str | None:
    """Where `ros2 run` finds another package's executable (`<prefix>/lib/<package>/`, from the
    ament index), else the PATH; None when this install lacks it."""
    try:
        from ament_index_python.packages import get_package_prefix

        candidate = Path(get_package_prefix(spec.package)) / "lib" / spec.package / spec.executable
        if candidate.is_file():
            return str(candidate)
    except (ImportError, LookupError, OSError):
        pass
    return shutil.which(spec.executable)


def process_command(node: PlannedNode, config: Path) -> list[str]:
    spec = node.spec
    if spec.ours:
        module, function = our_entry_point(spec.executable)
        return [sys.executable, "-c", LAUNCHER.format(module=module, function=function), *node.ros_arguments]
    executable = foreign_executable(spec)
    if executable is None:
        raise BringupError(
            f"{spec.enabled_by or spec.name}:=true needs {spec.package}, which is not installed "
            f"(on ROS 2: sudo apt install ros-$ROS_DISTRO-{spec.package.replace('_', '-')})"
        )
    return [executable, *command_arguments(spec, config), *node.ros_arguments]


class NodeProcess:
    """A child node whose stderr is passed through and remembered, for the message if it dies."""

    def __init__(self, name: str, command: list[str], stderr: TextIO) -> None:
        self.name = name
        # Its own session: the terminal's Ctrl-C reaches only the runner, which then stops every
        # node once, in order, instead of each node getting the signal twice.
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        self.tail: deque[str] = deque(maxlen=OUTPUT_TAIL_LINES)
        self._stderr = stderr
        self._reader = threading.Thread(target=self._pass_through, name=f"{name}-stderr", daemon=True)
        self._reader.start()

    def _pass_through(self) -> None:
        for line in self.process.stderr:
            self.tail.append(line.rstrip())
            self._stderr.write(line)
            self._stderr.flush()

    def poll(self) -> int | None:
        return self.process.poll()

    def interrupt(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)

    def wait(self, deadline: float) -> None:
        """Waits until `deadline`, then escalates to SIGTERM and SIGKILL."""
        for escalation in (signal.SIGTERM, signal.SIGKILL):
            try:
                self.process.wait(timeout=max(deadline - time.monotonic(), 0.0))
                break
            except subprocess.TimeoutExpired:
                self._stderr.write(f"[runner] {self.name} did not stop; sending {escalation.name}\n")
                self.process.send_signal(escalation)
                deadline = time.monotonic() + KILL_GRACE_S
        self._reader.join(timeout=1.0)

    def describe_exit(self) -> str:
        code = self.process.returncode
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        last = "\n".join(f"  {line}" for line in self.tail)
        return f"{self.name} {how}" + (f"; its last output:\n{last}" if last else "")


@dataclass
class RunningGraph:
    """What one run started, so stopping it needs no bookkeeping beyond this."""

    executor: MultiThreadedExecutor
    processes: list[NodeProcess] = field(default_factory=list)
    in_process: dict[str, Node] = field(default_factory=dict)
    observer: Observer | None = None
    main_thread_worker: MainThreadWorker | None = None
    """The in-process node whose `work()` runs on the main thread, when one asked for it."""
    stopping: threading.Event = field(default_factory=threading.Event)
    """Set when the main thread's work ended, so the watching thread ends too."""

    def failure(self) -> Outcome | None:
        for name, node in self.in_process.items():
            if node.failure is not None:
                return Outcome(EXIT_FAILURE, f"{name} failed: {node.failure}")
        for process in self.processes:
            code = process.poll()
            if code not in (None, 0):
                return Outcome(EXIT_FAILURE if code < 0 else code, process.describe_exit())
        return None

    def finished(self) -> bool:
        """Every node ended by itself (a replay that played once): nothing left to run."""
        return (
            bool(self.processes) and not self.in_process and all(p.poll() is not None for p in self.processes)
        )

    def stop(self) -> None:
        """Stops the children as Ctrl-C does, all at once, then the in-process nodes."""
        for process in self.processes:
            process.interrupt()
        deadline = time.monotonic() + STOP_GRACE_S
        for process in self.processes:
            process.wait(deadline)
        # rclpy 7.1's Executor.shutdown does not wait for callbacks still running in the thread
        # pool (it tests the flag it has just set) and destroys the guard condition they trigger
        # on the way out ("cannot use Destroyable" on stderr). So let the pool finish first.
        self.executor._executor.shutdown(wait=True)
        self.executor.shutdown(timeout_sec=2.0)
        for node in self.in_process.values():
            node.destroy_node()


@dataclass(frozen=True)
class RunLimits:
    duration_s: float | None = None
    """None: until Ctrl-C. With an observer it counts from the observer's `ready()`."""
    startup_timeout_s: float = 60.0


class Runner:
    """Starts the planned nodes, watches them, and stops them all on Ctrl-C, timeout or a failure."""

    def __init__(
        self,
        bringup: Bringup,
        values: Mapping[str, str],
        config: Path,
        *,
        single_process: bool = False,
        stderr: TextIO = sys.stderr,
    ) -> None:
        self.bringup = bringup
        self.values = dict(values)
        self.config = config
        self.single_process = single_process
        self.stderr = stderr

    def run(
        self, limits: RunLimits = RunLimits(), observer_factory: Callable[[Context], Observer] | None = None
    ) -> Outcome:
        with tempfile.TemporaryDirectory(prefix=f"thermal_synth_{self.bringup.name}_") as workdir:
            nodes = self._available(plan(self.bringup, self.values, self.config, Path(workdir)))
            commands = {
                node.name: process_command(node, self.config)
                for node in nodes
                if not (self.single_process and node.spec.ours)
            }
            # `kill -INT` from a script must stop the graph like Ctrl-C, even though a shell without
            # job control starts background commands with SIGINT ignored.
            previous_sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
            context = Context()
            rclpy.init(args=[], context=context)
            previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)
            graph = RunningGraph(MultiThreadedExecutor(context=context))
            try:
                self._start(graph, nodes, commands, context)
                if observer_factory is not None:
                    graph.observer = observer_factory(context)
                    graph.executor.add_node(graph.observer.node)
                outcome = self._serve(graph, limits)
            except ConfigError as error:
                outcome = Outcome(EXIT_CONFIG, str(error))
            except (KeyboardInterrupt, ExternalShutdownException):
                outcome = Outcome(0, "stopped")
            finally:
                graph.stop()
                signal.signal(signal.SIGTERM, previous_sigterm)
                rclpy.try_shutdown(context=context)
                signal.signal(signal.SIGINT, previous_sigint)
        outcome.observer = graph.observer
        return outcome

    def _available(self, nodes: list[PlannedNode]) -> list[PlannedNode]:
        """Optional nodes of packages this install lacks are left out with a note, not an error."""
        kept = []
        for node in nodes:
            spec = node.spec
            if spec.optional and foreign_executable(spec) is None:
                self._say(
                    f"{spec.package} is not installed: {spec.name} not started "
                    f"(set {spec.enabled_by}:=false to silence this)"
                )
                continue
            kept.append(node)
        return kept

    def _start(
        self,
        graph: RunningGraph,
        nodes: list[PlannedNode],
        commands: Mapping[str, list[str]],
        context: Context,
    ) -> None:
        for node in nodes:
            if node.name in commands:
                graph.processes.append(NodeProcess(node.name, commands[node.name], self.stderr))
                self._say(f"started {node.name} (pid {graph.processes[-1].process.pid})")
            else:
                built = _build_in_process(node, context, main_thread=graph.main_thread_worker is None)
                graph.in_process[node.name] = built.node
                graph.executor.add_node(built.node)
                if built.main_thread_work:
                    graph.main_thread_worker = built.node
                    self._say(f"started {node.name} in this process, working on its main thread")
                else:
                    self._say(f"started {node.name} in this process")

    def _serve(self, graph: RunningGraph, limits: RunLimits) -> Outcome:
        """Watches the graph until it ends; a main-thread worker keeps the main thread meanwhile."""
        worker = graph.main_thread_worker
        if worker is None:
            return self._watch(graph, limits)
        return work_while_serving(worker, lambda: self._watch(graph, limits), graph.stopping.set)

    def _watch(self, graph: RunningGraph, limits: RunLimits) -> Outcome:
        started = time.monotonic()
        window_start = None if graph.observer else started
        while True:
            graph.executor.spin_once(timeout_sec=POLL_S)
            failure = graph.failure()
            if failure is not None:
                return failure
            if graph.stopping.is_set():
                return Outcome(0, "stopped")
            if graph.finished():
                return Outcome(0, "every node finished")
            now = time.monotonic()
            if window_start is None:
                if graph.observer.ready():
                    graph.observer.restart()
                    window_start = now
                elif now - started > limits.startup_timeout_s:
                    return Outcome(
                        EXIT_FAILURE, f"the graph did not get ready in {limits.startup_timeout_s:g} s"
                    )
            elif limits.duration_s is not None and now - window_start >= limits.duration_s:
                return Outcome(0, f"ran for {limits.duration_s:g} s")

    def _say(self, line: str) -> None:
        self.stderr.write(f"[runner] {line}\n")
        self.stderr.flush()


@dataclass(frozen=True)
class BuiltNode:
    node: Node
    main_thread_work: bool
    """The node left its work to the caller, who runs `work()` on the main thread."""


def _build_in_process(node: PlannedNode, context: Context, *, main_thread: bool) -> BuiltNode:
    """`main_thread`: the main thread is still free for a node class that asks for it."""
    module, _ = our_entry_point(node.spec.executable)
    node_class = importlib.import_module(module).NODE_CLASS
    main_thread_work = main_thread and getattr(node_class, "MAIN_THREAD_WORK", False)
    options = {"worker_thread": False} if main_thread_work else {}
    try:
        built = node_class(context=context, cli_args=node.ros_arguments, **options)
    except (ConfigError, InvalidParameterTypeException) as error:
        raise ConfigError(f"{node.name} cannot start: {error}") from error
    return BuiltNode(built, main_thread_work)


def _interrupt(_signum: int, _frame: object) -> None:
    """SIGTERM (systemd, docker stop) stops the graph the way Ctrl-C does."""
    raise KeyboardInterrupt
