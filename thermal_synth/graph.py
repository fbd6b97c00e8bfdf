"""The bring-ups, described once as data: launch files and the ROS-free runner both read this.

Each node names its executable, its parameter file under `config/` and the launch arguments
that override single parameters, so `ros2 launch ... source:=purethermal` and the runner's
`source:=purethermal` mean exactly the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

PACKAGE = "thermal_synth"


@dataclass(frozen=True)
class LaunchArgument:
    """Its default is the value in the node's YAML file, so editing the YAML is never silently overridden."""

    name: str
    description: str


@dataclass(frozen=True)
class NodeSpec:
    executable: str
    name: str
    parameter_file: str
    arguments: dict[str, str] = field(default_factory=dict)
    """Launch argument name -> node parameter it sets."""
    fixed_parameters: dict[str, object] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Bringup:
    name: str
    description: str
    arguments: tuple[LaunchArgument, ...]
    nodes: tuple[NodeSpec, ...]


SOURCE_ARGUMENTS = (
    LaunchArgument("source", "thermal source: sim, lepton_spi, purethermal, amg8833 or replay"),
    LaunchArgument("device", "spidev path, video index/path, I2C bus or replay path (empty = default)"),
)
DRIVER_ARGUMENTS = {"source": "source", "device": "device"}
SIM_RGB_ARGUMENT = LaunchArgument(
    "publish_rgb", "sim only: the driver also publishes camera/image_raw (real rigs run rgb_camera)"
)
RECORDER_ARGUMENTS = (
    LaunchArgument("bag_path", "bag directory to create (empty = pairs_<date-time>)"),
    LaunchArgument("person", "session label: who is recorded"),
    LaunchArgument("outfit", "session label: what they wear"),
    LaunchArgument("scene", "session label: where"),
)
MODEL_ARGUMENT = LaunchArgument("model", "synthesis model directory (empty = the packaged default)")

BRINGUPS = {
    bringup.name: bringup
    for bringup in (
        Bringup(
            name="conference",
            description="live privacy-safe thermal stream for a video call",
            arguments=(*SOURCE_ARGUMENTS, MODEL_ARGUMENT),
            nodes=(
                NodeSpec("thermal_driver", "thermal_driver", "thermal_driver.yaml", DRIVER_ARGUMENTS),
                # thermal/image -> synth/image: both nodes use the shared relative topic names.
                NodeSpec("thermal_synth", "thermal_synth", "thermal_synth.yaml", {"model": "model"}),
            ),
        ),
        Bringup(
            name="record",
            description="record synchronized thermal/RGB training pairs to a rosbag2",
            arguments=(*SOURCE_ARGUMENTS, SIM_RGB_ARGUMENT, *RECORDER_ARGUMENTS),
            nodes=(
                NodeSpec(
                    "thermal_driver",
                    "thermal_driver",
                    "thermal_driver.yaml",
                    {**DRIVER_ARGUMENTS, "publish_rgb": "publish_rgb"},
                    fixed_parameters={"publish_raw": True},
                ),
                NodeSpec(
                    "pair_recorder",
                    "pair_recorder",
                    "pair_recorder.yaml",
                    {argument.name: argument.name for argument in RECORDER_ARGUMENTS},
                ),
            ),
        ),
    )
}


def config_dir() -> Path:
    """The source tree's config/ (pip -e, tests), else the installed share/thermal_synth/config (colcon)."""
    source = Path(__file__).resolve().parents[1] / "config"
    if source.is_dir():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("thermal_synth")) / "config"
    except (ImportError, KeyError):
        return source


def yaml_parameters(parameter_file: Path, node_name: str) -> dict[str, object]:
    """The `node_name: ros__parameters:` section of a standard ROS 2 parameter file."""
    document = yaml.safe_load(parameter_file.read_text()) or {}
    try:
        return dict(document[node_name]["ros__parameters"])
    except (KeyError, TypeError) as error:
        raise ValueError(f"{parameter_file}: no '{node_name}: ros__parameters:' section") from error


def argument_defaults(bringup: Bringup, config: Path) -> dict[str, str]:
    """Launch argument -> default, read from the parameter file of the first node that uses it."""
    defaults: dict[str, str] = {}
    for spec in bringup.nodes:
        parameters = yaml_parameters(config / spec.parameter_file, spec.name)
        for argument, parameter in spec.arguments.items():
            defaults.setdefault(argument, str(parameters[parameter]))
    return defaults
