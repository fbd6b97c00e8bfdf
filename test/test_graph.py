"""The bring-up description, its YAML files and launch adapters agree with the real nodes."""

from __future__ import annotations

import ast
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from rclpy.parameter import Parameter

from thermal_driver.node import ThermalDriverNode
from thermal_synth.graph import BRINGUPS, NodeSpec, argument_defaults, config_dir, yaml_parameters
from thermal_synth.recorder_node import PairRecorderNode
from thermal_synth.synth_node import ThermalSynthNode

LAUNCH_DIR = Path(__file__).resolve().parents[1] / "launch"
ROS_BUILTIN_PARAMETERS = {"use_sim_time", "start_type_description_service"}
NODE_CLASSES = {
    "thermal_driver": ThermalDriverNode,
    "thermal_synth": ThermalSynthNode,
    "pair_recorder": PairRecorderNode,
}


def startup_overrides(spec: NodeSpec, request: pytest.FixtureRequest) -> dict[str, object]:
    """The YAML's empty `model` means the packaged default, which a source checkout does not ship;
    the recorder would start a bag in the working directory."""
    if spec.name == "thermal_synth":
        return {"model": str(request.getfixturevalue("tiny_model"))}
    if spec.name == "pair_recorder":
        return {"record_on_start": False}
    return {}


def test_every_node_is_an_installed_executable_with_a_parameter_file():
    scripts = {ep.name for ep in entry_points(group="console_scripts")}
    for bringup in BRINGUPS.values():
        for spec in bringup.nodes:
            assert spec.executable in scripts
            assert (config_dir() / spec.parameter_file).is_file()
            assert set(spec.arguments) <= {argument.name for argument in bringup.arguments}


def test_launch_argument_defaults_come_from_the_yaml():
    defaults = argument_defaults(BRINGUPS["conference"], config_dir())
    assert defaults == {"source": "sim", "device": "", "model": ""}


@pytest.mark.ros
@pytest.mark.parametrize("spec", [spec for b in BRINGUPS.values() for spec in b.nodes], ids=lambda s: s.name)
def test_yaml_parameters_are_exactly_what_the_node_declares(ros_context, spec, request):
    parameters = yaml_parameters(config_dir() / spec.parameter_file, spec.name)
    expected = {**parameters, **startup_overrides(spec, request)}
    overrides = [Parameter(name, value=value) for name, value in expected.items()]
    node = NODE_CLASSES[spec.name](context=ros_context, parameter_overrides=overrides)
    try:
        declared = set(node._parameters) - ROS_BUILTIN_PARAMETERS
        assert set(parameters) == declared, "YAML and node disagree on the parameter set"
        for name, value in expected.items():
            assert node.get_parameter(name).value == value
        assert set(spec.fixed_parameters) | set(spec.arguments.values()) <= declared
    finally:
        node.destroy_node()


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
