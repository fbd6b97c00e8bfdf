"""ros2 launch thermal_synth record.launch.py [source:=lepton_spi] [device:=...]"""

from thermal_synth.bringup.launch_adapter import generate_bringup_description


def generate_launch_description():
    return generate_bringup_description("record")
