"""Turns a bring-up from `thermal_synth.bringup.graph` into launch_ros actions (ROS installs only)."""

from __future__ import annotations

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from thermal_synth.bringup.graph import (
    BRINGUPS,
    PACKAGE,
    NodeSpec,
    argument_defaults,
    command_arguments,
    file_parameters,
    parameter_type,
)


def generate_bringup_description(bringup_name: str) -> LaunchDescription:
    bringup = BRINGUPS[bringup_name]
    config = Path(get_package_share_directory(PACKAGE)) / "config"
    defaults = argument_defaults(bringup, config)
    actions = [
        DeclareLaunchArgument(
            argument.name,
            default_value=defaults[argument.name],
            description=argument.description,
            choices=list(argument.choices) or None,
        )
        for argument in bringup.arguments
    ]
    actions += [_node_action(spec, config) for spec in bringup.nodes]
    return LaunchDescription(actions)


def _node_action(spec: NodeSpec, config: Path) -> Node:
    defaults = file_parameters(spec, config)
    overrides = {
        parameter: ParameterValue(
            LaunchConfiguration(argument),
            # The runner's rule: the text becomes the type of the parameter's YAML default.
            value_type=parameter_type(defaults.get(parameter)),
        )
        for argument, parameter in spec.arguments.items()
    }
    parameter_files = [str(config / spec.parameter_file)] if spec.parameter_file else []
    return Node(
        package=spec.package,
        executable=spec.executable,
        name=spec.name,
        parameters=[*parameter_files, overrides, dict(spec.fixed_parameters)],
        remappings=list(spec.remappings),
        arguments=command_arguments(spec, config),
        condition=IfCondition(LaunchConfiguration(spec.enabled_by)) if spec.enabled_by else None,
        output="screen",
    )
