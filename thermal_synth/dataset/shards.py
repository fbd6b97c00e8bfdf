"""The dataset shard format: numpy arrays in zip files plus a JSON manifest. No pickle, ever.

A dataset is a directory:

    manifest.json              format + version, recipe, session table, sha256 of every shard
    train/shard-00000.npz      each shard: one array per field, first axis = samples
    test/shard-00000.npz
    heldout/shard-00000.npz    identities kept out of train and test, for the privacy evaluation

Shards hold raw centi-Kelvin thermal frames next to the heatmaps made from them, so a later
recipe can be re-derived from the same data while the stored heatmap is exactly what this recipe
gives. Members are stored uncompressed: loading is a plain read (no inflate on the training
machine's CPU) at the price of about 2x the disk space of deflated shards.

Loading never unpickles (`allow_pickle=False`) and checks every file against the manifest first,
so a dataset from elsewhere can be read safely and a damaged one fails with the file's name.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thermal_driver.sources.rig.types import THERMAL_SHAPE
from thermal_synth.common.interrupts import deferred_interrupt
from thermal_synth.common.json_files import check_format, file_sha256, read_json
from thermal_synth.engine.preprocess import MODEL_IMAGE_SHAPE
from thermal_synth.model.recipe import HeatmapRecipe

FORMAT_NAME = "thermal_synth.shards"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SPLITS = ("train", "test", "heldout")
RGB_SHAPE = (*MODEL_IMAGE_SHAPE, 3)
GROUND_TRUTH_FIELDS = ("person_mask", "person_mask_thermal", "heat_source_mask", "pose")
"""What only a simulated (or hand-labelled) recording has; a dataset carries any subset."""


class ShardFormatError(ValueError):
    """A dataset directory that is not what its manifest says; the message names the file."""


@dataclass(frozen=True)
class SessionRecord:
    """One recording in the session table; every sample of it lives in the same split."""

    name: str
    identity: str
    outfit: str
    scene: str
    split: str

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"session {self.name!r}: split must be one of {SPLITS}, got {self.split!r}")


def appearance_name(session: SessionRecord) -> str:
    """identity-outfit-scene as a latent-bank code name: one appearance a user may pick."""
    raw = f"{session.identity}-{session.outfit}-{session.scene}".lower()
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in raw)[:64]


@dataclass(frozen=True)
class FieldSpec:
    dtype: str
    shape: tuple[int, ...]
    """Per sample; the stored array has the sample count in front."""


def field_specs(
    recipe: HeatmapRecipe, ground_truth: Collection[str] = (), pose_count: int = 0
) -> dict[str, FieldSpec]:
    """Every array a shard of this configuration holds, in the order they are written."""
    unknown = set(ground_truth) - set(GROUND_TRUTH_FIELDS)
    if unknown:
        raise ValueError(f"unknown ground-truth fields {sorted(unknown)}; known: {GROUND_TRUTH_FIELDS}")
    if ("pose" in ground_truth) != (pose_count > 0):
        raise ValueError("a pose field needs pose names, and pose names need a pose field")
    specs = {
        "thermal": FieldSpec("uint16", THERMAL_SHAPE),
        "heatmap": FieldSpec("float32", recipe.output_size),
        "rgb": FieldSpec("uint8", RGB_SHAPE),
        "session": FieldSpec("int32", ()),
        "time_s": FieldSpec("float32", ()),
    }
    optional = {
        "person_mask": FieldSpec("bool", MODEL_IMAGE_SHAPE),
        "person_mask_thermal": FieldSpec("bool", THERMAL_SHAPE),
        "heat_source_mask": FieldSpec("bool", THERMAL_SHAPE),
        "pose": FieldSpec("float32", (pose_count,)),
    }
    specs.update({name: spec for name, spec in optional.items() if name in ground_truth})
    return specs


@dataclass
class Sample:
    """One training pair as the writer takes it; the heatmap is derived, never supplied."""

    session: int
    time_s: float
    thermal: np.ndarray
    rgb: np.ndarray
    """Already aligned to the thermal field of view (`preprocess.align_rgb`)."""
    person_mask: np.ndarray | None = None
    person_mask_thermal: np.ndarray | None = None
    heat_source_mask: np.ndarray | None = None
    pose: np.ndarray | None = None


class ShardWriter:
    """Buffers samples per split and writes a shard every `shard_size`; `close` writes the manifest.

    Leaving the `with` block on an exception writes no manifest: a directory without one is not
    a dataset, and the caller (e.g. `thermal-synth sim`) removes it.
    """

    def __init__(
        self,
        directory: Path,
        sessions: Sequence[SessionRecord],
        *,
        recipe: HeatmapRecipe = HeatmapRecipe(),
        ground_truth: Collection[str] = (),
        pose_names: Sequence[str] = (),
        shard_size: int = 512,
        creator: str = "thermal_synth",
        provenance: Mapping[str, Any] | None = None,
        noise_seed: int = 0,
    ) -> None:
        """`noise_seed`: draws the recipe's noise (`noise_c`), one draw per stored heatmap."""
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.directory = Path(directory)
        if self.directory.exists() and any(self.directory.iterdir()):
            raise FileExistsError(f"{self.directory} is not empty")
        self.sessions = tuple(sessions)
        self.recipe = recipe
        self._noise = np.random.default_rng(noise_seed)
        self.pose_names = tuple(pose_names)
        self.fields = field_specs(recipe, ground_truth, len(self.pose_names))
        self.shard_size = shard_size
        self.creator = creator
        self.provenance = dict(provenance or {})
        self._pending: dict[str, list[Sample]] = {split: [] for split in SPLITS}
        self._shards: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
        self._frames_per_session = [0] * len(self.sessions)
        self._closed = False
        for split in SPLITS:
            (self.directory / split).mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()

    def add(self, sample: Sample) -> None:
        if self._closed:
            raise RuntimeError("ShardWriter is closed")
        if not 0 <= sample.session < len(self.sessions):
            raise ValueError(f"session index {sample.session} outside the table of {len(self.sessions)}")
        self._check_sample(sample)
        split = self.sessions[sample.session].split
        self._frames_per_session[sample.session] += 1
        pending = self._pending[split]
        pending.append(sample)
        if len(pending) == self.shard_size:
            self._flush(split)

    def close(self) -> dict[str, Any]:
        """Writes the last partial shards and the manifest; returns the manifest."""
        if self._closed:
            raise RuntimeError("ShardWriter is already closed")
        for split in SPLITS:
            if self._pending[split]:
                self._flush(split)
        self._closed = True
        manifest = self._manifest()
        (self.directory / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        return manifest

    def _check_sample(self, sample: Sample) -> None:
        for name, spec in self.fields.items():
            if name in ("heatmap", "session", "time_s"):
                continue
            value = getattr(sample, name)
            if value is None:
                raise ValueError(f"sample lacks {name!r}, which this dataset declares")
            if value.dtype != np.dtype(spec.dtype) or value.shape != spec.shape:
                raise ValueError(
                    f"sample field {name!r} is {value.dtype} {value.shape}, "
                    f"expected {spec.dtype} {spec.shape}"
                )
        undeclared = [
            n for n in GROUND_TRUTH_FIELDS if n not in self.fields and getattr(sample, n) is not None
        ]
        if undeclared:
            raise ValueError(f"sample carries {undeclared}, which this dataset does not declare")

    def _flush(self, split: str) -> None:
        samples = self._pending[split]
        arrays: dict[str, np.ndarray] = {}
        for name, spec in self.fields.items():
            if name == "heatmap":
                arrays[name] = self.recipe.apply(arrays["thermal"], self._noise)
            else:
                arrays[name] = np.asarray([getattr(s, name) for s in samples], dtype=spec.dtype)
        relative = f"{split}/shard-{len(self._shards[split]):05d}.npz"
        path = self.directory / relative
        _write_npz(path, arrays)
        self._shards[split].append(
            {
                "file": relative,
                "samples": len(samples),
                "bytes": path.stat().st_size,
                "sha256": file_sha256(path),
            }
        )
        self._pending[split] = []

    def _manifest(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "creator": self.creator,
            "counts": {split: sum(s["samples"] for s in self._shards[split]) for split in SPLITS},
            "heatmap_recipe": self.recipe.to_json(),
            "thermal": {"shape": list(THERMAL_SHAPE), "dtype": "uint16", "unit": "centikelvin"},
            "rgb_shape": list(RGB_SHAPE),
            "fields": {name: {"dtype": s.dtype, "shape": list(s.shape)} for name, s in self.fields.items()},
            "pose_names": list(self.pose_names),
            "sessions": [
                {**asdict(session), "frames": frames}
                for session, frames in zip(self.sessions, self._frames_per_session, strict=True)
            ],
            "shards": self._shards,
            "provenance": self.provenance,
        }


class ShardReader:
    """A checked view of a dataset directory; with `verify` every shard is checksummed up front."""

    def __init__(self, directory: Path, *, verify: bool = True) -> None:
        self.directory = Path(directory)
        manifest_path = self.directory / MANIFEST_NAME
        self.manifest: dict[str, Any] = read_json(
            manifest_path, ShardFormatError, missing=f"missing; not a {FORMAT_NAME} dataset"
        )
        self._parse_manifest(manifest_path)
        for split in SPLITS:
            for entry in self.manifest["shards"][split]:
                if not (self.directory / entry["file"]).is_file():
                    raise ShardFormatError(
                        f"{self.directory / entry['file']}: listed in the manifest but missing"
                    )
        if verify:
            self.verify()

    def _parse_manifest(self, manifest_path: Path) -> None:
        manifest = check_format(self.manifest, FORMAT_NAME, FORMAT_VERSION, manifest_path, ShardFormatError)
        try:
            self.recipe = HeatmapRecipe.from_json(manifest["heatmap_recipe"])
            self.pose_names = tuple(manifest["pose_names"])
            self.sessions = tuple(
                SessionRecord(s["name"], s["identity"], s["outfit"], s["scene"], s["split"])
                for s in manifest["sessions"]
            )
            ground_truth = [name for name in GROUND_TRUTH_FIELDS if name in manifest["fields"]]
            self.fields = field_specs(self.recipe, ground_truth, len(self.pose_names))
            declared = {
                name: FieldSpec(spec["dtype"], tuple(spec["shape"]))
                for name, spec in manifest["fields"].items()
            }
            self.counts = {split: int(manifest["counts"][split]) for split in SPLITS}
            listed = {split: sum(int(e["samples"]) for e in manifest["shards"][split]) for split in SPLITS}
        except (KeyError, TypeError, ValueError) as exc:
            raise ShardFormatError(
                f"{manifest_path}: malformed manifest ({type(exc).__name__}: {exc})"
            ) from None
        if declared != self.fields:
            raise ShardFormatError(
                f"{manifest_path}: declared fields {declared} differ from format version {FORMAT_VERSION}'s "
                f"{self.fields}"
            )
        if listed != self.counts:
            raise ShardFormatError(
                f"{manifest_path}: counts {self.counts} disagree with the shard list {listed}"
            )

    def shard_entries(self, split: str) -> list[dict[str, Any]]:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self.manifest["shards"][split]

    def verify(self) -> None:
        """Checks size, sha256 and every array's name, dtype and shape of every shard."""
        for split in SPLITS:
            for index, entry in enumerate(self.shard_entries(split)):
                path = self.directory / entry["file"]
                size = path.stat().st_size
                if size != entry["bytes"]:
                    raise ShardFormatError(
                        f"{path}: {size} bytes, the manifest says {entry['bytes']} (truncated or replaced)"
                    )
                digest = file_sha256(path)
                if digest != entry["sha256"]:
                    raise ShardFormatError(
                        f"{path}: sha256 {digest[:16]}... does not match the manifest's "
                        f"{entry['sha256'][:16]}... (contents modified)"
                    )
                self.load_shard(split, index)

    def load_shard(
        self, split: str, index: int, fields: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """The arrays of one shard (all fields, or the named ones: others are not even read)."""
        entry = self.shard_entries(split)[index]
        path = self.directory / entry["file"]
        wanted = list(self.fields) if fields is None else list(fields)
        unknown = set(wanted) - set(self.fields)
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}; this dataset has {list(self.fields)}")
        try:
            with np.load(path, allow_pickle=False) as archive:
                members = set(archive.files)
                if members != set(self.fields):
                    missing, extra = set(self.fields) - members, members - set(self.fields)
                    raise ShardFormatError(
                        f"{path}: missing arrays {sorted(missing)}, unexpected {sorted(extra)}"
                    )
                arrays = {name: archive[name] for name in wanted}
        except ShardFormatError:
            raise
        except ValueError as exc:
            if "allow_pickle" in str(exc):
                raise ShardFormatError(f"{path}: holds an object array; refusing to unpickle it") from None
            raise ShardFormatError(f"{path}: unreadable ({exc})") from None
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ShardFormatError(f"{path}: unreadable, truncated or not an npz file ({exc})") from None
        for name, array in arrays.items():
            spec = self.fields[name]
            expected_shape = (entry["samples"], *spec.shape)
            if array.dtype != np.dtype(spec.dtype) or array.shape != expected_shape:
                raise ShardFormatError(
                    f"{path}: array {name!r} is {array.dtype} {array.shape}, "
                    f"expected {spec.dtype} {expected_shape}"
                )
        if "session" in arrays:
            self._check_sessions(path, split, arrays["session"])
        return arrays

    def _check_sessions(self, path: Path, split: str, sessions: np.ndarray) -> None:
        indices = np.unique(sessions)
        if indices.size and (indices[0] < 0 or indices[-1] >= len(self.sessions)):
            raise ShardFormatError(
                f"{path}: session index outside the manifest's {len(self.sessions)} sessions"
            )
        strays = [self.sessions[i].name for i in indices if self.sessions[i].split != split]
        if strays:
            raise ShardFormatError(f"{path}: sessions {strays} belong to another split than {split!r}")

    def load_split(self, split: str, fields: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """A whole split as one array per field (empty arrays for an empty split)."""
        names = list(self.fields) if fields is None else list(fields)
        shards = [self.load_shard(split, i, names) for i in range(len(self.shard_entries(split)))]
        return {
            name: np.concatenate([s[name] for s in shards])
            if shards
            else np.empty((0, *self.fields[name].shape), dtype=self.fields[name].dtype)
            for name in names
        }

    def iter_samples(
        self, split: str, fields: Sequence[str] | None = None
    ) -> Iterator[dict[str, np.ndarray]]:
        """One dict per sample, reading one shard at a time."""
        for index in range(len(self.shard_entries(split))):
            arrays = self.load_shard(split, index, fields)
            count = len(next(iter(arrays.values()))) if arrays else 0
            for row in range(count):
                yield {name: array[row] for name, array in arrays.items()}


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """`np.savez`: its members carry zipfile's fixed 1980 date, not the clock, so a dataset is
    reproducible to the byte for a seed (a test guards this). Every array has a plain dtype from
    `field_specs`, so nothing here could ever need pickle. Ctrl-C is held until the archive is
    closed: an interrupt inside zipfile's `close()` would surface as an unrelated ValueError."""
    with deferred_interrupt():
        np.savez(path, **arrays)
