"""The bring-ups, described once as data: launch files and the ROS-free runner both read this.

Each node names its package, executable, parameter file under `config/` and the launch
arguments that override single parameters or switch the node on, so `ros2 launch ...
source:=purethermal` and `thermal-synth conference source:=purethermal` mean exactly the same
thing. How an argument's text becomes a parameter value is also decided here, once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from thermal_driver.sources.registry import SOURCE_NAMES

PACKAGE = "thermal_synth"
SWITCH_CHOICES = ("true", "false")
CONFIG_PLACEHOLDER = "{config}"


@dataclass(frozen=True)
class LaunchArgument:
    name: str
    description: str
    default: str | None = None
    """None: the value in the YAML of the parameter it sets, so editing the YAML is never silently
    overridden. Switches that start a node have their own default."""
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeSpec:
    executable: str
    name: str
    parameter_file: str | None = None
    arguments: Mapping[str, str] = field(default_factory=dict)
    """Launch argument name -> node parameter it sets."""
    fixed_parameters: Mapping[str, object] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    package: str = PACKAGE
    enabled_by: str | None = None
    """A true/false launch argument that starts this node; None = always started."""
    optional: bool = False
    """The runner skips it with a note when its package is not installed (pip installs have no C++
    ROS packages); launch files always start it, package.xml declares it."""
    command_arguments: tuple[str, ...] = ()
    """Non-ROS command-line arguments; `{config}` stands for the installed config directory."""

    @property
    def ours(self) -> bool:
        return self.package == PACKAGE


@dataclass(frozen=True)
class Bringup:
    name: str
    description: str
    arguments: tuple[LaunchArgument, ...]
    nodes: tuple[NodeSpec, ...]

    def argument(self, name: str) -> LaunchArgument:
        return next(argument for argument in self.arguments if argument.name == name)


SOURCE_ARGUMENTS = (
    LaunchArgument("source", "thermal source", choices=SOURCE_NAMES),
    LaunchArgument("device", "spidev path, video index/path, I2C bus or replay path (empty = default)"),
)
DIAGNOSTICS_ARGUMENT = LaunchArgument(
    "diagnostics",
    "aggregate /diagnostics on /diagnostics_agg for rqt_robot_monitor (diagnostic_aggregator)",
    default="true",
    choices=SWITCH_CHOICES,
)
DRIVER_ARGUMENTS = {"source": "source", "device": "device"}
AGGREGATOR = NodeSpec(
    "aggregator_node",
    "analyzers",
    "diagnostics_aggregator.yaml",
    package="diagnostic_aggregator",
    enabled_by="diagnostics",
    optional=True,
)
RECORDER_ARGUMENTS = {"bag": "bag_path", "person": "person", "outfit": "outfit", "scene": "scene"}

CONFERENCE = Bringup(
    name="conference",
    description="live privacy-safe thermal stream painted as a person, for a video call",
    arguments=(
        *SOURCE_ARGUMENTS,
        LaunchArgument("model", "synthesis model directory (empty = the packaged default)"),
        LaunchArgument("latent_code", "appearance: a code name of the model's bank (empty = the first)"),
        LaunchArgument(
            "output_rate_hz", "synth/image rate with interpolated in-between frames (0 = one per heatmap)"
        ),
        LaunchArgument(
            "virtual_camera",
            "write synth/image to a v4l2loopback webcam for Zoom/Meet/Teams",
            default="false",
            choices=SWITCH_CHOICES,
        ),
        LaunchArgument(
            "rviz",
            "open RViz with the false-colour heatmap (thermal/image_color) beside synth/image",
            default="false",
            choices=SWITCH_CHOICES,
        ),
        DIAGNOSTICS_ARGUMENT,
    ),
    nodes=(
        # thermal/image -> synth/image -> webcam: all nodes use the shared relative topic names.
        NodeSpec(
            "thermal_driver",
            "thermal_driver",
            "thermal_driver.yaml",
            {**DRIVER_ARGUMENTS, "rviz": "publish_color"},
        ),
        NodeSpec(
            "thermal_synth",
            "thermal_synth",
            "thermal_synth.yaml",
            {"model": "model", "latent_code": "latent_code", "output_rate_hz": "output_rate_hz"},
        ),
        NodeSpec("virtual_camera", "virtual_camera", "virtual_camera.yaml", enabled_by="virtual_camera"),
        NodeSpec(
            "rviz2",
            "rviz2",
            package="rviz2",
            enabled_by="rviz",
            command_arguments=("-d", f"{CONFIG_PLACEHOLDER}/conference.rviz"),
        ),
        AGGREGATOR,
    ),
)

RECORD = Bringup(
    name="record",
    description="record synchronized thermal/RGB training pairs to a rosbag2",
    arguments=(
        *SOURCE_ARGUMENTS,
        LaunchArgument(
            "publish_rgb", "sim only: the driver also publishes camera/image_raw and camera/person_mask"
        ),
        LaunchArgument(
            "rgb_camera",
            "start the rgb_camera node (config/rgb_camera.yaml) for a real rig's webcam",
            default="false",
            choices=SWITCH_CHOICES,
        ),
        LaunchArgument("bag", "bag directory to create (empty = pairs_<date-time>)"),
        LaunchArgument("person", "session label: who is recorded"),
        LaunchArgument("outfit", "session label: what they wear"),
        LaunchArgument("scene", "session label: where"),
        DIAGNOSTICS_ARGUMENT,
    ),
    nodes=(
        NodeSpec(
            "thermal_driver",
            "thermal_driver",
            "thermal_driver.yaml",
            {**DRIVER_ARGUMENTS, "publish_rgb": "publish_rgb"},
            fixed_parameters={"publish_raw": True},
        ),
        NodeSpec("rgb_camera", "rgb_camera", "rgb_camera.yaml", enabled_by="rgb_camera"),
        NodeSpec("pair_recorder", "pair_recorder", "pair_recorder.yaml", RECORDER_ARGUMENTS),
        AGGREGATOR,
    ),
)

BRINGUPS = {bringup.name: bringup for bringup in (CONFERENCE, RECORD)}


def config_dir() -> Path:
    """The source tree's config/ (pip -e, tests), else the installed share/thermal_synth/config (colcon)."""
    source = Path(__file__).resolve().parents[2] / "config"
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


def file_parameters(spec: NodeSpec, config: Path) -> dict[str, object]:
    return yaml_parameters(config / spec.parameter_file, spec.name) if spec.parameter_file else {}


def argument_defaults(bringup: Bringup, config: Path) -> dict[str, str]:
    """Launch argument -> default: its own, else the YAML value of the first parameter it sets."""
    defaults = {a.name: a.default for a in bringup.arguments if a.default is not None}
    for spec in bringup.nodes:
        parameters = file_parameters(spec, config)
        for argument, parameter in spec.arguments.items():
            defaults.setdefault(argument, argument_text(parameters[parameter]))
    return defaults


def argument_text(value: object) -> str:
    """How a YAML value reads as a launch argument: `false`, not Python's `False`."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def resolve_arguments(bringup: Bringup, given: Mapping[str, str], config: Path) -> dict[str, str]:
    """Every argument's value; an unknown name or a value outside its choices is a ValueError."""
    known = {argument.name for argument in bringup.arguments}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(
            f"unknown argument {', '.join(unknown)} for {bringup.name}; known: {', '.join(sorted(known))}"
        )
    values = {**argument_defaults(bringup, config), **given}
    for argument in bringup.arguments:
        if argument.choices and values[argument.name] not in argument.choices:
            raise ValueError(
                f"{argument.name}:={values[argument.name]} is not one of {', '.join(argument.choices)}"
            )
    for spec in bringup.nodes:
        node_parameters(spec, values, config)  # a value its parameter cannot take fails here, by name
    return values


def is_enabled(spec: NodeSpec, values: Mapping[str, str]) -> bool:
    return spec.enabled_by is None or values[spec.enabled_by] == "true"


SCALAR_TYPES = (bool, int, float, str)


def parameter_type(default: object) -> type | None:
    """The type a launch argument's text must become: that of the parameter's YAML `default`.

    `device:=0` then stays the string "0" and `slop_s:=1` becomes the double 1.0, where plain YAML
    reading would hand the node an integer it refuses. None (lists): read as YAML.
    """
    return next((kind for kind in SCALAR_TYPES if type(default) is kind), None)


def parameter_value(text: str, kind: type | None) -> object:
    """`text` as a value of `kind`, the way launch_ros' ParameterValue(value_type=kind) reads it."""
    if kind is str:
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"cannot read {text!r} as a parameter value: {error}") from error
    if kind is float and type(value) is int:
        return float(value)
    if kind is not None and type(value) is not kind:
        raise ValueError(f"{text!r} is not a {kind.__name__}")
    return "" if value is None else value


def node_parameters(spec: NodeSpec, values: Mapping[str, str], config: Path) -> dict[str, object]:
    """What the launch arguments and fixed settings override in the node's YAML."""
    defaults = file_parameters(spec, config)
    overrides = {}
    for argument, parameter in spec.arguments.items():
        try:
            overrides[parameter] = parameter_value(values[argument], parameter_type(defaults.get(parameter)))
        except ValueError as error:
            raise ValueError(f"{argument}:={values[argument]}: {error}") from None
    return {**overrides, **spec.fixed_parameters}


def command_arguments(spec: NodeSpec, config: Path) -> list[str]:
    return [argument.replace(CONFIG_PLACEHOLDER, str(config)) for argument in spec.command_arguments]
