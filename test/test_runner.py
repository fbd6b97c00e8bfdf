"""`thermal-synth conference|record` as a user runs them: real processes, real topics, Ctrl-C.

The runner is started as the installed console script on this test's private ROS_DOMAIN_ID;
the test talks to the graph it starts from its own node, exactly as `ros2 param set` and an
image viewer would.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import BIN, call_service, set_parameters, stop, thermal_synth, wait_for
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from thermal_msgs import topics
from thermal_msgs.qos import STREAM_SUBSCRIBER_QOS
from thermal_synth.bringup.graph import CONFERENCE
from thermal_synth.bringup.preview import SHADES, render_heatmap
from thermal_synth.bringup.runner import LAUNCHER, PlannedNode, process_command
from thermal_synth.common.cli_args import EXIT_INTERRUPTED
from thermal_synth.recording.bags import PairBagReader

STARTUP_S = 60.0

pytestmark = pytest.mark.ros


class Caller(Node):
    """A separate node in the test process: sees synth/image and calls services like the ros2 CLI."""

    def __init__(self, context) -> None:
        super().__init__("runner_test_caller", context=context)
        self.frames: list[Image] = []
        self.synth_status: list[dict[str, str]] = []
        self.create_subscription(Image, topics.SYNTH_IMAGE, self.frames.append, STREAM_SUBSCRIBER_QOS)
        self.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, 10)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith("/thermal_synth:"):
                self.synth_status.append({kv.key: kv.value for kv in status.values})


@pytest.fixture
def caller(ros_context, spinner) -> Caller:
    node = spinner.add(Caller(ros_context))
    yield node
    spinner.shutdown()
    node.destroy_node()


def start_runner(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "thermal-synth"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def started_pids(stderr: str) -> dict[str, int]:
    return {name: int(pid) for name, pid in re.findall(r"\[runner\] started (\w+) \(pid (\d+)\)", stderr)}


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("mode", [[], ["--single-process"]], ids=["processes", "single-process"])
def test_conference_paints_swaps_appearance_by_parameter_service_and_stops_on_ctrl_c(caller, mode):
    runner = start_runner("conference", "source:=sim", *mode)
    try:
        wait_for(lambda: len(caller.frames) >= 3 or runner.poll() is not None, STARTUP_S, "synth/image")
        assert runner.poll() is None, runner.communicate()[1]
        frame = caller.frames[-1]
        assert (frame.encoding, frame.height, frame.width) == ("rgb8", 96, 128)
        codes = call_service(
            caller, Trigger, "/thermal_synth/list_codes", Trigger.Request(), STARTUP_S
        ).message.split()
        new_code = codes[1]
        (result,) = set_parameters(caller, "thermal_synth", timeout_s=STARTUP_S, latent_code=new_code)
        assert result.successful, result.reason
        caller.synth_status.clear()
        wait_for(lambda: bool(caller.synth_status), 5.0, "diagnostics after the swap")
        assert caller.synth_status[-1]["latent_code"] == new_code
        (answer,) = set_parameters(caller, "thermal_synth", latent_code="nobody")
        assert not answer.successful
        assert new_code in answer.reason
    finally:
        code, _, stderr = stop(runner, timeout_s=30.0)
    assert code == 0, stderr
    assert "thermal-synth conference: stopped" in stderr
    assert "Traceback" not in stderr
    assert "never retrieved" not in stderr  # an rclpy callback failing under shutdown
    for pid in started_pids(stderr).values():
        assert not is_running(pid), "a node outlived the runner"
    if mode:
        assert "[runner] started thermal_driver in this process\n" in stderr
        assert "[runner] started thermal_synth in this process, working on its main thread" in stderr
    else:
        assert set(started_pids(stderr)) == {"thermal_driver", "thermal_synth"}


def test_a_node_that_cannot_start_ends_the_runner_with_its_code_and_message(tmp_path):
    result = thermal_synth("conference", f"model:={tmp_path / 'missing'}", "--duration", "30", timeout_s=90)
    assert result.returncode == 2
    assert re.search(r"thermal_synth exited with code 2; its last output:\n.*missing", result.stderr), (
        result.stderr
    )
    assert "thermal-synth train" in result.stderr  # how to get a model
    for pid in started_pids(result.stderr).values():
        assert not is_running(pid)


def test_single_process_names_the_node_that_cannot_start(tmp_path):
    result = thermal_synth(
        "conference", f"model:={tmp_path / 'missing'}", "--single-process", "--duration", "30", timeout_s=90
    )
    assert result.returncode == 2
    assert "thermal_synth cannot start:" in result.stderr


def test_a_node_dying_mid_run_makes_the_runner_exit_non_zero(caller):
    runner = start_runner("conference", "source:=sim")
    try:
        pids: dict[str, int] = {}
        for line in iter(runner.stderr.readline, ""):  # the runner names each child as it starts it
            pids.update(started_pids(line))
            if "thermal_synth" in pids:
                break
        wait_for(lambda: bool(caller.frames) or runner.poll() is not None, STARTUP_S, "synth/image")
        assert runner.poll() is None
        os.kill(pids["thermal_synth"], signal.SIGKILL)
        code = runner.wait(timeout=30)
        stderr = runner.stderr.read()
    finally:
        if runner.poll() is None:
            runner.kill()
    assert code == 1
    assert "thermal_synth was killed by SIGKILL" in stderr
    assert not is_running(pids["thermal_driver"])


def test_record_writes_a_bag_of_pairs_from_the_simulated_rig(tmp_path):
    bag = tmp_path / "take1"
    result = thermal_synth(
        "record",
        "source:=sim",
        "publish_rgb:=true",
        f"bag:={bag}",
        "person:=ada",
        "--duration",
        "8",
        timeout_s=90,
    )
    assert result.returncode == 0, result.stderr
    reader = PairBagReader(bag)
    assert reader.labels.person == "ada"
    pairs = list(reader.pairs())
    assert pairs, result.stderr
    assert pairs[0].rgb.shape == (240, 320, 3)
    # 8.7 Hz for 8 s (--duration counts from the start): start-up and discovery once took the
    # whole of a 4 s window here, so the window leaves them a few seconds.
    assert len(pairs) >= 20


def test_record_without_a_camera_says_so_while_it_runs(tmp_path):
    bag = tmp_path / "take"
    # 18 thermal frames take 2 s from the first one; start-up and discovery get the rest.
    result = thermal_synth("record", "source:=sim", f"bag:={bag}", "--duration", "8", timeout_s=90)
    assert result.returncode == 0, result.stderr
    assert "thermal frames and not one camera/image_raw frame: is a camera publishing it?" in result.stderr
    assert "publish_rgb:=true with source:=sim" in result.stderr
    assert list(PairBagReader(bag).pairs()) == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["virtual_camera:=true"], "modprobe v4l2loopback"),
        (["rviz:=true"], "rviz:=true needs rviz2, which is not installed"),
    ],
)
def test_missing_system_pieces_are_named_with_the_fix(arguments, message):
    result = thermal_synth("conference", *arguments, "--duration", "30", timeout_s=90)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["sauce:=sim"], "unknown argument sauce"),
        (["source=sim"], "'source=sim' is not NAME:=VALUE"),
        (["source:=webcam"], "source:=webcam is not one of"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(arguments, message):
    result = thermal_synth("conference", *arguments)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_show_args_lists_every_argument_with_its_default():
    result = thermal_synth("conference", "--show-args")
    assert result.returncode == 0
    assert "'virtual_camera':" in result.stdout
    assert "(default: 'sim')" in result.stdout


def test_demo_previews_heatmaps_beside_painted_frames(tmp_path):
    sheet = tmp_path / "demo.png"
    result = thermal_synth("demo", "--duration", "3", "--preview", sheet, timeout_s=120)
    assert result.returncode == 0, result.stderr
    summary = re.search(r"/thermal/image: (\d+) messages at ([\d.]+) Hz, 32FC1 12x16", result.stdout)
    assert summary, result.stdout
    assert float(summary.group(2)) == pytest.approx(8.7, rel=0.1)
    heatmap_rows = [line for line in result.stdout.splitlines() if line.startswith("  |")]
    assert len(heatmap_rows) == 12
    frames = re.search(
        r"/synth/image: (\d+) messages at [\d.]+ Hz, rgb8 96x128, .* (\d+) matched", result.stdout
    )
    assert frames, result.stdout
    assert int(frames.group(1)) >= 10
    assert int(frames.group(2)) >= int(frames.group(1)) - 2  # every frame carries its heatmap's stamp
    picture = cv2.imread(str(sheet))
    assert picture.shape[1] >= 4 * 128
    assert picture.std() > 20  # heatmaps and painted frames, not a blank sheet
    video = cv2.VideoCapture(str(sheet.with_suffix(".mp4")))
    assert video.get(cv2.CAP_PROP_FRAME_COUNT) >= int(frames.group(1)) - 1
    assert video.get(cv2.CAP_PROP_FRAME_WIDTH) == 2 * 128


def test_heatmap_rendering_puts_the_hottest_cell_at_the_top_shade():
    celsius = np.full((12, 16), 21.0, np.float32)
    celsius[3, 7] = 34.0
    rows = render_heatmap(celsius).splitlines()
    assert rows[3][3 + 2 * 7 : 3 + 2 * 8] == SHADES[-1] * 2
    assert set(rows[0][3:-1]) == {SHADES[0]}


SWALLOWING_IMPORT = """
import os, signal, time, weakref


class Anything:
    pass


def on_collected(reference):
    # Python runs signal handlers between bytecodes: this one runs inside a weakref callback,
    # where importlib's module-lock callbacks sit, and an exception there is only printed.
    os.kill(os.getpid(), signal.SIGINT)
    sum(range(10_000))


anything = Anything()
reference = weakref.ref(anything, on_collected)
del anything
time.sleep(30)


def main():
    return 0
"""


def test_a_node_interrupted_inside_an_import_callback_leaves_at_once(tmp_path):
    """CI once saw the runner stop a synthesiser that was still importing torch: the interrupt
    landed in an importlib callback, which printed a traceback, swallowed it, and left the node
    running until SIGTERM. This module reproduces that landing spot on purpose."""
    (tmp_path / "swallowing_import.py").write_text(SWALLOWING_IMPORT)
    command = [sys.executable, "-c", LAUNCHER.format(module="swallowing_import", function="main")]
    environment = {**os.environ, "PYTHONPATH": str(tmp_path)}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=environment)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr


def test_the_synthesiser_stopped_while_importing_torch_leaves_quietly():
    synthesiser = next(spec for spec in CONFERENCE.nodes if spec.name == "thermal_synth")
    command = process_command(PlannedNode(synthesiser, ros_arguments=[]), Path("unused.yaml"))
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)  # importing it takes over a second here
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr
