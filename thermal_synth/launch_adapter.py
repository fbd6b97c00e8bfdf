"""Turns a bring-up from `thermal_synth.graph` into launch_ros actions (ROS installs only)."""

from __future__ import annotations

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from thermal_synth.graph import BRINGUPS, PACKAGE, argument_defaults


def generate_bringup_description(bringup_name: str) -> LaunchDescription:
    bringup = BRINGUPS[bringup_name]
    config = Path(get_package_share_directory(PACKAGE)) / "config"
    defaults = argument_defaults(bringup, config)
    actions = [
        DeclareLaunchArgument(
            argument.name, default_value=defaults[argument.name], description=argument.description
        )
        for argument in bringup.arguments
    ]
    for spec in bringup.nodes:
        overrides = {
            parameter: LaunchConfiguration(argument) for argument, parameter in spec.arguments.items()
        }
        actions.append(
            Node(
                package=PACKAGE,
                executable=spec.executable,
                name=spec.name,
                parameters=[str(config / spec.parameter_file), overrides, spec.fixed_parameters],
                remappings=list(spec.remappings),
                output="screen",
            )
        )
    return LaunchDescription(actions)
