"""The bring-up description, its YAML files and launch adapters agree with the real nodes."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import xml.etree.ElementTree as ET
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from rclpy.node import Node
from rclpy.parameter import Parameter

from thermal_synth.bringup.graph import (
    BRINGUPS,
    NodeSpec,
    argument_defaults,
    config_dir,
    file_parameters,
    node_parameters,
    resolve_arguments,
    yaml_parameters,
)
from thermal_synth.bringup.runner import our_entry_point, plan
from thermal_synth.engine.inference import select_device, select_precision
from thermal_synth.model.files import load_model
from thermal_synth.nodes.synth_parameters import parse_cpu_threads

LAUNCH_DIR = REPO / "launch"
ROS_BUILTIN_PARAMETERS = {"use_sim_time", "start_type_description_service"}
ALL_SPECS = {(spec.package, spec.name): spec for bringup in BRINGUPS.values() for spec in bringup.nodes}
OUR_SPECS = [spec for spec in ALL_SPECS.values() if spec.ours]


def package_dependencies() -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return {element.text for element in root.iter("exec_depend")}


def node_class(spec: NodeSpec) -> type[Node]:
    module, _ = our_entry_point(spec.executable)
    return importlib.import_module(module).NODE_CLASS


def startup_overrides(spec: NodeSpec, request: pytest.FixtureRequest) -> dict[str, object]:
    """The YAML's empty `model` means the packaged default (slow to load); the recorder would start
    a bag in the working directory."""
    if spec.name == "thermal_synth":
        return {"model": str(request.getfixturevalue("tiny_model"))}
    if spec.name == "pair_recorder":
        return {"record_on_start": False}
    return {}


def read_back(spec: NodeSpec, name: str, parameters: dict[str, object]) -> object:
    """What a parameter reads back after start-up: the synthesis node names what its placeholders
    stand for, so `ros2 param get` says what runs (the first code of the bank for an empty
    latent_code, the device, precision and thread count that auto and 0 picked)."""
    value = parameters[name]
    if spec.name != "thermal_synth":
        return value
    device = select_device(str(parameters["device"]))
    resolved = {
        "latent_code": lambda: value or load_model(Path(str(parameters["model"]))).bank.names()[0],
        "device": lambda: str(device),
        "precision": lambda: select_precision(str(value), device),
        "cpu_threads": lambda: parse_cpu_threads(int(value)),
    }
    return resolved[name]() if name in resolved else value


def startup_keywords(spec: NodeSpec) -> dict[str, object]:
    """This machine has no v4l2loopback device: the webcam node writes to a stand-in sink."""
    if spec.name == "virtual_camera":
        from test_virtual_camera import FakeLoopbackSink

        return {"sink_factory": FakeLoopbackSink}
    return {}


def test_every_node_is_an_installed_executable_or_a_declared_dependency():
    scripts = {ep.name for ep in entry_points(group="console_scripts")}
    dependencies = package_dependencies()
    for spec in ALL_SPECS.values():
        if spec.ours:
            assert spec.executable in scripts
            assert issubclass(node_class(spec), Node)
        else:
            assert spec.package in dependencies, f"package.xml lacks <exec_depend>{spec.package}"
        if spec.parameter_file:
            assert (config_dir() / spec.parameter_file).is_file()


@pytest.mark.parametrize("bringup", BRINGUPS.values(), ids=lambda b: b.name)
def test_every_argument_is_declared_and_used(bringup):
    declared = {argument.name for argument in bringup.arguments}
    used = set()
    for spec in bringup.nodes:
        used |= set(spec.arguments) | ({spec.enabled_by} - {None})
    assert used == declared


def test_launch_argument_defaults_come_from_the_yaml():
    defaults = argument_defaults(BRINGUPS["conference"], config_dir())
    assert defaults == {
        "source": "sim",
        "device": "",
        "model": "",
        "latent_code": "",
        "output_rate_hz": "0.0",
        "virtual_camera": "false",
        "rviz": "false",
        "diagnostics": "true",
    }


@pytest.mark.parametrize("bringup", BRINGUPS.values(), ids=lambda b: b.name)
def test_an_argument_with_its_own_default_agrees_with_the_parameters_it_sets(bringup):
    """`rviz` switches RViz on and the driver's colour preview: off in both places by default."""
    config = config_dir()
    defaults = argument_defaults(bringup, config)
    for spec in bringup.nodes:
        in_yaml = file_parameters(spec, config)
        applied = node_parameters(spec, defaults, config)
        for parameter in spec.arguments.values():
            assert applied[parameter] == in_yaml[parameter], f"{spec.name}.{parameter}"


@pytest.mark.parametrize(
    ("argument", "text", "parameter", "expected"),
    [
        ("device", "0", "device", "0"),  # a video index stays the string the driver expects
        ("output_rate_hz", "30", "output_rate_hz", 30.0),  # an integer is a valid double
        ("rviz", "true", "publish_color", True),
        ("model", "", "model", ""),
    ],
)
def test_argument_text_becomes_the_type_of_the_parameter(argument, text, parameter, expected):
    values = resolve_arguments(BRINGUPS["conference"], {argument: text}, config_dir())
    spec = next(s for s in BRINGUPS["conference"].nodes if parameter in s.arguments.values())
    value = node_parameters(spec, values, config_dir())[parameter]
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({"sauce": "sim"}, "unknown argument sauce"),
        ({"source": "webcam"}, "source:=webcam is not one of sim, lepton_spi"),
        ({"output_rate_hz": "fast"}, "output_rate_hz:=fast: 'fast' is not a float"),
        ({"rviz": "yes"}, "rviz:=yes is not one of true, false"),
    ],
)
def test_bad_arguments_are_refused_by_name(given, problem):
    with pytest.raises(ValueError, match=problem):
        resolve_arguments(BRINGUPS["conference"], given, config_dir())


def test_the_plan_gives_each_node_its_name_yaml_and_overrides(tmp_path):
    config = config_dir()
    values = resolve_arguments(BRINGUPS["record"], {"bag": "/data/take1", "rgb_camera": "true"}, config)
    planned = {node.name: node for node in plan(BRINGUPS["record"], values, config, tmp_path)}
    assert list(planned) == ["thermal_driver", "rgb_camera", "pair_recorder", "analyzers"]
    recorder = planned["pair_recorder"].ros_arguments
    assert recorder[:3] == ["--ros-args", "-r", "__node:=pair_recorder"]
    files = [recorder[i + 1] for i, arg in enumerate(recorder) if arg == "--params-file"]
    assert files[0] == str(config / "pair_recorder.yaml")
    overrides = yaml.safe_load(Path(files[1]).read_text())["pair_recorder"]["ros__parameters"]
    assert overrides == {"bag_path": "/data/take1", "person": "", "outfit": "", "scene": ""}
    driver_files = [a for a in planned["thermal_driver"].ros_arguments if a.endswith(".overrides.yaml")]
    driver = yaml.safe_load(Path(driver_files[0]).read_text())["thermal_driver"]["ros__parameters"]
    assert driver["publish_raw"] is True
    without_camera = plan(BRINGUPS["record"], {**values, "rgb_camera": "false"}, config, tmp_path)
    assert "rgb_camera" not in {node.name for node in without_camera}


@pytest.mark.ros
@pytest.mark.parametrize("spec", OUR_SPECS, ids=lambda s: s.name)
def test_yaml_parameters_are_exactly_what_the_node_declares(ros_context, spec, request):
    parameters = yaml_parameters(config_dir() / spec.parameter_file, spec.name)
    expected = {**parameters, **startup_overrides(spec, request)}
    overrides = [Parameter(name, value=value) for name, value in expected.items()]
    node = node_class(spec)(context=ros_context, parameter_overrides=overrides, **startup_keywords(spec))
    try:
        declared = set(node._parameters) - ROS_BUILTIN_PARAMETERS
        assert set(parameters) == declared, "YAML and node disagree on the parameter set"
        for name in expected:
            assert node.get_parameter(name).value == read_back(spec, name, expected)
        assert set(spec.fixed_parameters) | set(spec.arguments.values()) <= declared
    finally:
        node.destroy_node()


def test_the_aggregator_groups_every_status_our_nodes_publish():
    """rqt_robot_monitor shows /diagnostics_agg: a status no analyzer matches would land in 'Other'."""
    analyzers = yaml_parameters(config_dir() / "diagnostics_aggregator.yaml", "analyzers")
    patterns = [p for group in analyzers.values() if isinstance(group, dict) for p in group["contains"]]
    for spec in OUR_SPECS:
        status_name = f"/{spec.name}: status"
        assert any(pattern in status_name for pattern in patterns), spec.name


@pytest.mark.parametrize("launch_file", sorted(LAUNCH_DIR.glob("*.launch.py")), ids=lambda p: p.name)
def test_launch_files_are_thin_adapters_of_a_known_bringup(launch_file):
    tree = ast.parse(launch_file.read_text())
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "generate_bringup_description"
    ]
    assert len(calls) == 1
    assert calls[0].args[0].value in BRINGUPS
    assert launch_file.name == f"{calls[0].args[0].value}.launch.py"


@pytest.mark.skipif(
    importlib.util.find_spec("launch_ros") is None,
    reason="launch_ros is not on PyPI; this runs on machines with a sourced ROS 2 distro",
)
@pytest.mark.parametrize("launch_file", sorted(LAUNCH_DIR.glob("*.launch.py")), ids=lambda p: p.name)
def test_launch_files_load_into_the_described_nodes(launch_file):
    from launch_ros.actions import Node as LaunchNode

    spec = importlib.util.spec_from_file_location(launch_file.stem, launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    bringup = BRINGUPS[launch_file.name.removesuffix(".launch.py")]
    nodes = [entity for entity in description.entities if isinstance(entity, LaunchNode)]
    assert [node.node_executable for node in nodes] == [spec.executable for spec in bringup.nodes]
