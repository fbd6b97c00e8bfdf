"""ros2 launch thermal_synth conference.launch.py [source:=purethermal] [device:=...]"""

from thermal_synth.bringup.launch_adapter import generate_bringup_description


def generate_launch_description():
    return generate_bringup_description("conference")
