"""Shared test fixtures: every test process talks on its own random ROS_DOMAIN_ID.

Set at import, before rclpy creates any context, so parallel CI jobs and anything else on the
machine never cross-talk with our nodes; child processes inherit it through the environment.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 101))
os.environ.setdefault("RCUTILS_COLORIZED_OUTPUT", "0")

import rclpy
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor

REPO = Path(__file__).resolve().parents[1]
LEPTON_FRAME = REPO / "thermal_synth" / "data" / "lepton35_person_frame.npy"
"""One real Lepton 3.5 frame of a person, packaged with the simulated rig: a clone's tests need
nothing beside it."""
BIN = Path(sys.executable).parent

# A shell without job control starts background jobs with SIGINT ignored (`make test &`, a CI
# runner's background step), and ignored signals survive exec: every Ctrl-C test would then
# interrupt nothing. Python's own handler in this process is reset to the default by exec, so
# the processes the tests start get Ctrl-C the way a user's terminal delivers it.
signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def ros_context() -> Iterator[Context]:
    context = Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


class Spinner:
    """Spins nodes on a background executor so a test can simply wait for what they publish."""

    def __init__(self, context: Context) -> None:
        self.executor = MultiThreadedExecutor(context=context)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # executor shut down underneath us at teardown
            return

    def add(self, node):
        self.executor.add_node(node)
        return node

    def shutdown(self) -> None:
        """Idempotent, so a fixture may stop spinning early before destroying its nodes."""
        self.executor.shutdown(timeout_sec=2.0)
        self._thread.join(timeout=5.0)


@pytest.fixture
def spinner(ros_context: Context) -> Iterator[Spinner]:
    """Stops spinning before the test's nodes are destroyed (fixtures tear down in reverse order)."""
    spinner = Spinner(ros_context)
    yield spinner
    spinner.shutdown()


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def call_service(node, service_type, name: str, request, timeout_s: float = 10.0):
    """One service call from a test node whose executor spins elsewhere, as the ros2 CLI makes it."""
    client = node.create_client(service_type, name)
    assert client.wait_for_service(timeout_sec=timeout_s), f"{name} never appeared"
    future = client.call_async(request)
    wait_for(future.done, timeout_s, f"{name} reply")
    return future.result()


def set_parameters(node, node_name: str, timeout_s: float = 10.0, **values) -> list:
    """Calls `/<node_name>/set_parameters` exactly as `ros2 param set` does; one result per value."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    request = SetParameters.Request(
        parameters=[Parameter(name, value=value).to_parameter_msg() for name, value in values.items()]
    )
    return call_service(node, SetParameters, f"/{node_name}/set_parameters", request, timeout_s).results


def start_executable(name: str, *ros_args: str) -> subprocess.Popen:
    """Starts one of our installed console scripts exactly as a user would, with --ros-args."""
    command = [str(BIN / name)]
    if ros_args:
        command += ["--ros-args", *ros_args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def thermal_synth(*args: object, timeout_s: float = 120.0) -> subprocess.CompletedProcess:
    """Runs the installed `thermal-synth` command as a user would, output captured."""
    return subprocess.run(
        [str(BIN / "thermal-synth"), *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def stop(process: subprocess.Popen, timeout_s: float = 10.0) -> tuple[int, str, str]:
    """SIGINT like Ctrl-C, then collect the exit code and output."""
    if process.poll() is None:
        process.send_signal(2)
    stdout, stderr = process.communicate(timeout=timeout_s)
    return process.returncode, stdout, stderr


@pytest.fixture(scope="session")
def sim_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated dataset (train/test/heldout), shared read-only by the whole session."""
    from model_fixtures import make_sim_dataset

    return make_sim_dataset(tmp_path_factory.mktemp("data") / "sim")


@pytest.fixture(scope="session")
def tiny_model(sim_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A really trained (if only briefly) tiny model directory; read-only, copy it to change it."""
    from model_fixtures import make_tiny_model

    return make_tiny_model(sim_dataset, tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """In-process training and attacks share two cores with others: a second torch thread mostly spins."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
