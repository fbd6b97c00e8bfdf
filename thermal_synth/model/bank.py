"""The latent bank: named appearances (`name -> z`) a user picks from during a call.

Stored as `bank.json` beside the weights, so `thermal-synth codes` can add, rename or remove an
appearance without touching the weights, and a running node can reload it. Each code keeps a
small thumbnail of the photo it came from, because "outfit-3" means nothing to a human.
The file is untrusted input: sizes, types and values are checked before anything is used.

A model that takes the room from the photo (`room_from_photo`) ends each code with that photo;
the file keeps it as a PNG (`photo_png`), a fifth of the bytes of its float32 numbers, so that
the training appearances of a dataset still fit the file's size limit.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from thermal_synth.common.json_files import check_format, read_json, write_text_atomic
from thermal_synth.engine.preprocess import to_unit_range
from thermal_synth.model.config import ModelConfig

FORMAT_NAME = "thermal_synth.latent_bank"
FORMAT_VERSION = 1
MAX_BANK_BYTES = 16 << 20
MAX_CODES = 1024
MAX_THUMBNAIL_BYTES = 64 << 10
THUMBNAIL_SHAPE = (48, 64)
"""(rows, cols): half the model image size of the default config, enough to recognise an outfit."""
MAX_THUMBNAIL_SIDE = 256
"""Also bounds a code's photo (`photo_png`): model images are at most 24x32 cells x 8."""
LIST_Z_DIM = 1024
"""Codes up to this size are stored as a JSON list of numbers (readable); larger ones (spatial
codes, a map per appearance) as base64 of little-endian float32, a quarter of the bytes."""
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
NAME_RULE = "1-64 characters from letters, digits, '_', '.', '-', starting with a letter or digit"


class LatentBankError(ValueError):
    """A bank file or request that cannot be used; the message says which entry and why."""


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise LatentBankError(f"invalid code name {name!r}: use {NAME_RULE}")
    return name


@dataclass(frozen=True)
class LatentCode:
    name: str
    z: np.ndarray
    """(z_dim,) float32."""
    thumbnail: np.ndarray | None = None
    """(rows, cols, 3) uint8 RGB, or None when the code has no source photo."""
    source: str = ""
    """Where the code came from, for humans: a photo's file name, a training session."""

    def __post_init__(self) -> None:
        check_name(self.name)
        z = np.asarray(self.z, dtype=np.float32)
        if z.ndim != 1 or not np.all(np.isfinite(z)):
            raise LatentBankError(f"code {self.name!r}: z must be a finite 1-D vector")
        object.__setattr__(self, "z", z)
        if self.thumbnail is not None:
            thumb = self.thumbnail
            if thumb.dtype != np.uint8 or thumb.ndim != 3 or thumb.shape[2] != 3:
                raise LatentBankError(f"code {self.name!r}: thumbnail must be (rows, cols, 3) uint8")


class LatentBank:
    """An ordered set of named codes of one z dimension.

    `photo_size` (rows, cols): each code ends with a photo of that size, 3 x rows x cols numbers
    in [-1, 1] (a model with `room_from_photo`); None: codes hold no photo.
    """

    def __init__(
        self,
        z_dim: int,
        codes: Mapping[str, LatentCode] | None = None,
        *,
        photo_size: tuple[int, int] | None = None,
    ) -> None:
        self.z_dim = z_dim
        self.photo_size = None if photo_size is None else (int(photo_size[0]), int(photo_size[1]))
        self._codes: dict[str, LatentCode] = {}
        for code in (codes or {}).values():
            self.add(code)

    def __len__(self) -> int:
        return len(self._codes)

    def __iter__(self) -> Iterator[LatentCode]:
        return iter(self._codes.values())

    def __contains__(self, name: object) -> bool:
        return name in self._codes

    def names(self) -> list[str]:
        return list(self._codes)

    def get(self, name: str) -> LatentCode:
        try:
            return self._codes[name]
        except KeyError:
            raise LatentBankError(f"no code named {name!r}; available: {self.describe_names()}") from None

    def describe_names(self) -> str:
        return ", ".join(self._codes) if self._codes else "(the bank is empty)"

    def add(self, code: LatentCode, *, replace: bool = False) -> None:
        if code.z.shape != (self.z_dim,):
            raise LatentBankError(
                f"code {code.name!r} has {code.z.shape[0]} dimensions, the model uses {self.z_dim}"
            )
        if code.name in self._codes and not replace:
            raise LatentBankError(
                f"a code named {code.name!r} already exists (remove it first, or --replace)"
            )
        if code.name not in self._codes and len(self._codes) >= MAX_CODES:
            raise LatentBankError(f"the bank already holds the maximum of {MAX_CODES} codes")
        self._codes[code.name] = code

    def remove(self, name: str) -> LatentCode:
        code = self.get(name)
        del self._codes[name]
        return code

    def rename(self, old: str, new: str) -> None:
        code = self.get(old)
        check_name(new)
        if new in self._codes:
            raise LatentBankError(f"a code named {new!r} already exists")
        self._codes = {
            (new if name == old else name): (
                LatentCode(new, code.z, code.thumbnail, code.source) if name == old else entry
            )
            for name, entry in self._codes.items()
        }

    @classmethod
    def for_model(cls, config: ModelConfig) -> LatentBank:
        """An empty bank for the codes of a model with this config."""
        return cls(config.z_dim, photo_size=config.code_photo_size)

    @property
    def photo_numbers(self) -> int:
        return 0 if self.photo_size is None else 3 * self.photo_size[0] * self.photo_size[1]

    def to_json(self) -> dict[str, Any]:
        layout = {} if self.photo_size is None else {"photo_size": list(self.photo_size)}
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "z_dim": self.z_dim,
            **layout,
            "codes": [
                {
                    "name": code.name,
                    **self._code_to_json(code.z),
                    "source": code.source,
                    "thumbnail_png": None if code.thumbnail is None else _encode_png(code.thumbnail),
                }
                for code in self
            ],
        }

    def _code_to_json(self, z: np.ndarray) -> dict[str, Any]:
        if self.photo_size is None:
            return _z_to_json(z)
        photo = z[-self.photo_numbers :].reshape(3, *self.photo_size).transpose(1, 2, 0)
        pixels = np.clip(np.rint((photo + 1.0) * 127.5), 0, 255).astype(np.uint8)
        return _z_to_json(z[: -self.photo_numbers]) | {"photo_png": _encode_png(pixels)}

    @classmethod
    def from_json(
        cls, data: Any, z_dim: int, where: str = "bank", *, photo_size: tuple[int, int] | None = None
    ) -> LatentBank:
        data = check_format(data, FORMAT_NAME, FORMAT_VERSION, where, LatentBankError)
        if data.get("z_dim") != z_dim:
            raise LatentBankError(
                f"{where}: codes have {data.get('z_dim')!r} dimensions, the model uses {z_dim}"
            )
        stored_size = data.get("photo_size")
        wanted_size = None if photo_size is None else list(photo_size)
        if stored_size != wanted_size:
            holds = "no photo" if stored_size is None else f"photos of {stored_size!r}"
            wants = "none" if wanted_size is None else f"photos of {wanted_size}"
            raise LatentBankError(f"{where}: its codes hold {holds}, the model's hold {wants}")
        entries = data.get("codes")
        if not isinstance(entries, list) or len(entries) > MAX_CODES:
            raise LatentBankError(f"{where}: 'codes' must be a list of at most {MAX_CODES} entries")
        bank = cls(z_dim, photo_size=photo_size)
        for index, entry in enumerate(entries):
            bank.add(bank._code_from_json(entry, f"{where}: code #{index}"))
        return bank

    def _code_from_json(self, entry: Any, where: str) -> LatentCode:
        if not isinstance(entry, dict):
            raise LatentBankError(f"{where}: must be an object")
        z = _z_from_json(entry, self.z_dim - self.photo_numbers, where)
        if self.photo_size is not None:
            photo = _decode_png(entry.get("photo_png"), "photo_png")
            if photo.shape[:2] != self.photo_size:
                raise LatentBankError(
                    f"{where}: 'photo_png' is {photo.shape[1]}x{photo.shape[0]}, the model's photos are "
                    f"{self.photo_size[1]}x{self.photo_size[0]}"
                )
            numbers = to_unit_range(photo).transpose(2, 0, 1).ravel()
            z = np.concatenate([z, numbers])
        source = entry.get("source", "")
        if not isinstance(source, str):
            raise LatentBankError(f"{where}: 'source' must be a string")
        thumbnail = entry.get("thumbnail_png")
        try:
            return LatentCode(
                check_name(entry.get("name")),
                z,
                None if thumbnail is None else _decode_png(thumbnail),
                source,
            )
        except LatentBankError as error:
            raise LatentBankError(f"{where}: {error}") from None

    def save(self, path: Path) -> None:
        """Atomic: a crash (or a node reloading at that moment) sees the old bank or the new one."""
        write_text_atomic(Path(path), json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path, z_dim: int, *, photo_size: tuple[int, int] | None = None) -> LatentBank:
        path = Path(path)
        data = read_json(path, LatentBankError, max_bytes=MAX_BANK_BYTES)
        return cls.from_json(data, z_dim, str(path), photo_size=photo_size)


def make_thumbnail(rgb: np.ndarray) -> np.ndarray:
    """Any (rows, cols, 3) uint8 RGB image -> THUMBNAIL_SHAPE, pixel-averaged."""
    rows, cols = THUMBNAIL_SHAPE
    return cv2.resize(rgb, (cols, rows), interpolation=cv2.INTER_AREA)


def _z_to_json(z: np.ndarray) -> dict[str, Any]:
    if z.size <= LIST_Z_DIM:
        return {"z": [float(v) for v in z]}
    return {"z_float32_base64": base64.b64encode(z.astype("<f4").tobytes()).decode("ascii")}


def _z_from_json(entry: dict, z_dim: int, where: str) -> np.ndarray:
    if "z_float32_base64" in entry:
        text = entry["z_float32_base64"]
        if not isinstance(text, str) or len(text) != 4 * math.ceil(4 * z_dim / 3):
            raise LatentBankError(f"{where}: 'z_float32_base64' must encode {z_dim} float32 numbers")
        try:
            z = np.frombuffer(base64.b64decode(text, validate=True), dtype="<f4").astype(np.float32)
        except (binascii.Error, ValueError):
            raise LatentBankError(f"{where}: 'z_float32_base64' is not valid base64") from None
        if z.shape != (z_dim,) or not np.all(np.isfinite(z)):
            raise LatentBankError(f"{where}: 'z_float32_base64' must encode {z_dim} finite float32 numbers")
        return z
    z = entry.get("z")
    if (
        not isinstance(z, list)
        or len(z) != z_dim
        or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in z)
    ):
        raise LatentBankError(f"{where}: 'z' must be a list of {z_dim} finite numbers")
    return np.asarray(z, dtype=np.float32)


def _encode_png(rgb: np.ndarray) -> str:
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise LatentBankError("could not encode a thumbnail as PNG")
    return base64.b64encode(png.tobytes()).decode("ascii")


def _decode_png(text: Any, field: str = "thumbnail_png") -> np.ndarray:
    if not isinstance(text, str) or len(text) > MAX_THUMBNAIL_BYTES * 4 // 3 + 4:
        raise LatentBankError(f"'{field}' must be base64 PNG text of at most {MAX_THUMBNAIL_BYTES} bytes")
    try:
        png = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise LatentBankError(f"'{field}' is not valid base64") from None
    if not png.startswith(b"\x89PNG\r\n\x1a\n") or png[12:16] != b"IHDR":
        raise LatentBankError(f"'{field}' is not a PNG image")
    # Read the declared size before decoding, so a tiny file cannot inflate to gigabytes.
    cols, rows = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    if rows > MAX_THUMBNAIL_SIDE or cols > MAX_THUMBNAIL_SIDE:
        raise LatentBankError(f"'{field}' is {cols}x{rows}, larger than {MAX_THUMBNAIL_SIDE} pixels a side")
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise LatentBankError(f"'{field}' is not a readable PNG image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
