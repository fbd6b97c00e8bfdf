"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint is carried between machines (a GPU lent for 25 minutes, then back here), so it is a
file a stranger may hand us: loading one must not be able to run code. `torch.save` would
pickle the optimiser states; instead every tensor of the nested state goes into one safetensors
file under its path, and the nesting (dicts with int keys, tuples, numbers) into JSON.

    RUN/checkpoints/step_0000500/state.safetensors
    RUN/checkpoints/step_0000500/state.json        written last: a directory without it is no checkpoint
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from thermal_synth.common.json_files import check_format, read_json, write_text_atomic

FORMAT_NAME = "thermal_synth.checkpoint"
FORMAT_VERSION = 1
TENSORS_FILE = "state.safetensors"
STATE_FILE = "state.json"
MAX_STATE_JSON_BYTES = 16 << 20
STEP_DIRECTORY = re.compile(r"^step_(\d{7,})$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not belong to this run; the message says why."""


@dataclass(frozen=True)
class Checkpoint:
    step: int
    directory: Path


def pack(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Nested state -> JSON-able skeleton; tensors move into `tensors` under their path."""
    if isinstance(value, torch.Tensor):
        tensors[path] = value.detach().to("cpu").contiguous().clone()
        return {"tensor": path}
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value):
            return {"dict": {key: pack(item, f"{path}/{key}", tensors) for key, item in value.items()}}
        if all(isinstance(key, int) and not isinstance(key, bool) for key in value):
            return {"intdict": [[key, pack(item, f"{path}/{key}", tensors)] for key, item in value.items()]}
        raise TypeError(f"{path}: dict keys must be all str or all int")
    if isinstance(value, list | tuple):
        kind = "list" if isinstance(value, list) else "tuple"
        return {kind: [pack(item, f"{path}/{index}", tensors) for index, item in enumerate(value)]}
    if value is None or isinstance(value, bool | int | float | str):
        return {"value": value}
    raise TypeError(f"{path}: cannot store a {type(value).__name__} in a checkpoint")


def unpack(skeleton: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    """Inverse of `pack`; anything that is not one of its shapes is a damaged checkpoint."""
    if not isinstance(skeleton, dict) or len(skeleton) != 1:
        raise CheckpointError(f"{where}: malformed entry {str(skeleton)[:80]!r}")
    ((kind, content),) = skeleton.items()
    if kind == "tensor":
        if content not in tensors:
            raise CheckpointError(f"{where}: tensor {content!r} is missing from {TENSORS_FILE}")
        return tensors[content]
    if kind == "dict" and isinstance(content, dict):
        return {key: unpack(item, tensors, where) for key, item in content.items()}
    if kind == "intdict" and isinstance(content, list):
        if not all(
            isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], int) for pair in content
        ):
            raise CheckpointError(f"{where}: malformed int-keyed entry")
        return {key: unpack(item, tensors, where) for key, item in content}
    if kind in ("list", "tuple") and isinstance(content, list):
        items = [unpack(item, tensors, where) for item in content]
        return items if kind == "list" else tuple(items)
    if kind == "value" and (content is None or isinstance(content, bool | int | float | str)):
        return content
    raise CheckpointError(f"{where}: malformed entry of kind {kind!r}")


def step_directory(run_checkpoints: Path, step: int) -> Path:
    return run_checkpoints / f"step_{step:07d}"


def save_checkpoint(run_checkpoints: Path, step: int, state: dict[str, Any], *, keep: int) -> Path:
    """Writes the checkpoint of `step` whole (staging, then rename) and prunes all but the last `keep`."""
    run_checkpoints.mkdir(parents=True, exist_ok=True)
    final = step_directory(run_checkpoints, step)
    staging = run_checkpoints / f".{final.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        tensors: dict[str, torch.Tensor] = {}
        skeleton = pack(state, "state", tensors)
        save_file(tensors, str(staging / TENSORS_FILE), metadata={"format": FORMAT_NAME})
        document = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "step": step, "state": skeleton}
        write_text_atomic(staging / STATE_FILE, json.dumps(document) + "\n")
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for old in list_checkpoints(run_checkpoints)[:-keep]:
        shutil.rmtree(old.directory, ignore_errors=True)
    return final


def list_checkpoints(run_checkpoints: Path) -> list[Checkpoint]:
    """Complete checkpoints, oldest first."""
    if not run_checkpoints.is_dir():
        return []
    found = []
    for entry in run_checkpoints.iterdir():
        match = STEP_DIRECTORY.match(entry.name)
        if match and (entry / STATE_FILE).is_file() and (entry / TENSORS_FILE).is_file():
            found.append(Checkpoint(int(match.group(1)), entry))
    return sorted(found, key=lambda checkpoint: checkpoint.step)


def load_checkpoint(directory: Path) -> dict[str, Any]:
    document = read_json(directory / STATE_FILE, CheckpointError, max_bytes=MAX_STATE_JSON_BYTES)
    check_format(document, FORMAT_NAME, FORMAT_VERSION, directory / STATE_FILE, CheckpointError)
    try:
        tensors = load_file(str(directory / TENSORS_FILE))
    except (OSError, SafetensorError) as error:
        raise CheckpointError(f"{directory / TENSORS_FILE}: unreadable ({error})") from None
    return unpack(document.get("state"), tensors, str(directory))
