"""The package tree reads as the data path, and its imports keep it so: the ROS-free rooms import
no ROS, evaluation never needs the trainer, and only nodes/ and bring-up wire the graph.
docs/architecture.md draws the same rooms; this test fails when the code stops matching it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROS_MODULES = (
    "rclpy",
    "launch",
    "launch_ros",
    "sensor_msgs",
    "std_msgs",
    "diagnostic_msgs",
    "rcl_interfaces",
)
ROS_FREE_ROOMS = (
    "thermal_synth/engine",
    "thermal_synth/model",
    "thermal_synth/dataset",
    "thermal_synth/appearances",
    "thermal_synth/training",
    "thermal_synth/evaluation",
    "thermal_synth/recording",
    "thermal_synth/privacy_audit",
    "thermal_synth/sim",
    "thermal_driver/sources",
)
FORBIDDEN_ROOMS = {
    "thermal_synth/evaluation": ("thermal_synth.training",),
    "thermal_synth/engine": ("thermal_synth.training", "thermal_synth.evaluation", "thermal_synth.nodes"),
    "thermal_synth/model": ("thermal_synth.training", "thermal_synth.evaluation", "thermal_synth.dataset"),
    "thermal_synth/dataset": ("thermal_synth.training", "thermal_synth.evaluation"),
    "thermal_driver": ("thermal_synth",),
    "thermal_msgs": ("thermal_synth", "thermal_driver"),
}
ARCHITECTURE = REPO / "docs" / "architecture.md"


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module)
    return modules


def room_imports(room: str) -> dict[str, set[str]]:
    return {
        str(path.relative_to(REPO)): imported_modules(path) for path in sorted((REPO / room).rglob("*.py"))
    }


@pytest.mark.parametrize("room", ROS_FREE_ROOMS)
def test_ros_free_rooms_import_no_ros(room: str) -> None:
    offending = {
        path: sorted(m for m in modules if m.split(".")[0] in ROS_MODULES)
        for path, modules in room_imports(room).items()
    }
    assert not {path: found for path, found in offending.items() if found}


@pytest.mark.parametrize("room", sorted(FORBIDDEN_ROOMS))
def test_no_room_imports_one_above_it(room: str) -> None:
    above = FORBIDDEN_ROOMS[room]
    offending = {
        path: sorted(m for m in modules if m.startswith(above))
        for path, modules in room_imports(room).items()
    }
    assert not {path: found for path, found in offending.items() if found}


def test_the_architecture_page_names_every_room() -> None:
    text = ARCHITECTURE.read_text()
    rooms = [
        f"{top}/{path.name}/"
        for top in ("thermal_synth", "thermal_driver")
        for path in sorted((REPO / top).iterdir())
        if path.is_dir() and (path / "__init__.py").is_file()
    ]
    assert rooms
    missing = [room for room in rooms if room not in text]
    assert not missing, f"docs/architecture.md does not show {missing}"
