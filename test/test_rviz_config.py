"""config/conference.rviz shows our topics as they are named, and the package installs it."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from thermal_msgs import topics

REPO = Path(__file__).resolve().parents[1]
RVIZ_CONFIG = REPO / "config" / "conference.rviz"

# The driver publishes reliable, which matches a best-effort subscriber too (REP-2003); a viewer
# must never hold the stream up by asking for retransmissions.
VIEWER_QOS = {
    "Depth": 5,
    "History Policy": "Keep Last",
    "Reliability Policy": "Best Effort",
    "Durability Policy": "Volatile",
    "Filter size": 10,
}


def test_rviz_config_shows_the_thermal_preview_and_the_synthesised_image_best_effort():
    config = yaml.safe_load(RVIZ_CONFIG.read_text())
    manager = config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == topics.THERMAL_FRAME_ID
    assert {"Panels", "Window Geometry"} <= set(config)

    images = {
        display["Name"]: display
        for display in manager["Displays"]
        if display["Class"] == "rviz_default_plugins/Image"
    }
    assert {name: display["Topic"]["Value"] for name, display in images.items()} == {
        "Thermal (false colour)": "/" + topics.THERMAL_IMAGE_COLOR,
        "Synthesised": "/" + topics.SYNTH_IMAGE,
    }
    for display in images.values():
        assert display["Enabled"] is True
        assert {key: display["Topic"][key] for key in VIEWER_QOS} == VIEWER_QOS


def test_setup_installs_rviz_configs_into_share_config():
    """Read from setup.py's text: running setup() here would start a build."""
    tree = ast.parse((REPO / "setup.py").read_text())
    destinations = {
        ast.unparse(entry.elts[0]): ast.unparse(entry.elts[1])
        for keyword in ast.walk(tree)
        if isinstance(keyword, ast.keyword) and keyword.arg == "data_files"
        for entry in keyword.value.elts
    }
    assert "glob('config/*.rviz')" in destinations["f'share/{PACKAGE}/config'"]
