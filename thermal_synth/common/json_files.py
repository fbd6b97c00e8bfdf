"""Reading and writing the JSON files a stranger may hand us: datasets, model files, latent banks.

Each format names itself and its version in the file, so a wrong or future file is one clear
error rather than a KeyError deep inside a loader; sizes are bounded before parsing; writes are
atomic, so a crash or a concurrent reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

MAX_JSON_BYTES = 16 << 20
_HASH_CHUNK_BYTES = 1 << 20


def read_json(
    path: Path, error: type[Exception], *, missing: str = "missing", max_bytes: int = MAX_JSON_BYTES
) -> Any:
    """Parsed JSON, or `error` with the path and a reason (`missing` says what an absent file means)."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"{path}: {size} bytes, more than the {max_bytes} this file may hold")
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise error(f"{path}: {missing}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not valid JSON ({exc})") from None


def check_format(data: Any, name: str, version: int, where: object, error: type[Exception]) -> dict[str, Any]:
    """`data` as a dict whose "format" is `name` and "version" is `version`."""
    if not isinstance(data, dict) or data.get("format") != name:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise error(f"{where}: format is {found!r}, expected {name!r}")
    if data.get("version") != version:
        raise error(
            f"{where}: format version {data.get('version')!r} is not supported (this build reads {version})"
        )
    return data


def write_text_atomic(path: Path, text: str) -> None:
    """Readers never see half a file; the permissions are what a plain `open` would give (the
    temporary file is created 0600, which would hide a shared model's bank from other users)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        try:
            os.chmod(handle.fileno(), 0o666 & ~_current_umask())
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        except BaseException:
            handle.close()
            os.unlink(handle.name)
            raise
    os.replace(handle.name, path)


def _current_umask() -> int:
    """os.umask can only be read by setting it; set it straight back."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_sha256(path: Path) -> str:
    """The checksum manifests record, so a truncated or altered file is named before it is parsed."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
