"""`thermal-synth sim`, its shard format, RGB alignment and realism report.

Dataset tests render with the real simulated rig, kept small (a few frames per session) so the
file stays fast; interruptions are real ones (a signal, another process writing into `--out`).
"""

from __future__ import annotations

import errno
import json
import math
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import BIN, LEPTON_FRAME

from thermal_msgs.privacy import privacy_downsample
from thermal_msgs.units import centikelvin_to_celsius
from thermal_synth.common.cli_args import EXIT_INTERRUPTED
from thermal_synth.dataset.shards import (
    FORMAT_NAME,
    GROUND_TRUTH_FIELDS,
    HeatmapRecipe,
    Sample,
    SessionRecord,
    ShardFormatError,
    ShardReader,
    ShardWriter,
)
from thermal_synth.engine.preprocess import align_mask, align_rgb, to_unit_range
from thermal_synth.sim import report as sim_report
from thermal_synth.sim.simulate import SimConfig, generate


def make_dataset(out: Path, **config) -> dict:
    defaults = {"pairs": 60, "seed": 3, "frames_per_session": 6, "shard_size": 16}
    return generate(SimConfig(**{**defaults, **config}), out, progress=False).manifest


def files_of(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


# --- preprocessing --------------------------------------------------------------------------------


def expected_cell(thermal_xy: tuple[float, float]) -> tuple[int, int]:
    """Model-grid (row, col) containing a thermal pixel-centre coordinate: 1.25 thermal px per cell."""
    x, y = thermal_xy
    return math.floor((y + 0.5) * 96 / 120), math.floor((x + 0.5) * 128 / 160)


def test_align_rgb_puts_a_dot_where_the_affine_says():
    rgb = np.zeros((240, 320, 3), dtype=np.uint8)
    rgb[198:202, 58:62] = (255, 0, 0)  # centre (x, y) = (59.5, 199.5)
    rgb[38:42, 278:282] = (0, 255, 0)  # centre (279.5, 39.5): tells x from y
    affine = np.array([[0.5, 0.0, 12.0], [0.0, 0.5, -7.0]])
    aligned = align_rgb(rgb, affine)
    assert aligned.shape == (96, 128, 3)
    assert aligned.dtype == np.uint8
    for channel, centre in ((0, (59.5, 199.5)), (1, (279.5, 39.5))):
        thermal_xy = (0.5 * centre[0] + 12.0, 0.5 * centre[1] - 7.0)
        peak = np.unravel_index(np.argmax(aligned[..., channel]), (96, 128))
        assert peak == expected_cell(thermal_xy)


def test_align_rgb_leaves_what_the_rgb_camera_does_not_see_black():
    rgb = np.full((240, 320, 3), 200, dtype=np.uint8)
    shifted = np.array([[0.5, 0.0, 40.0], [0.0, 0.5, -0.25]])  # RGB covers thermal x 39.75..199.75
    aligned = align_rgb(rgb, shifted)
    assert (aligned[:, :32] == 0).all()  # model columns 0..31 end at thermal x 39.5
    assert (aligned[:, 33:] == 200).all()


def test_align_mask_keeps_a_half_frame_mask_registered_with_the_image():
    mask = np.zeros((240, 320), dtype=bool)
    mask[:, :160] = True
    aligned = align_mask(mask, np.array([[0.5, 0.0, -0.25], [0.0, 0.5, -0.25]]))
    assert aligned.dtype == np.bool_
    assert aligned.shape == (96, 128)
    assert aligned[:, :64].all()
    assert not aligned[:, 64:].any()


def test_to_unit_range_spans_minus_one_to_one():
    scaled = to_unit_range(np.array([0, 255, 128], dtype=np.uint8))
    assert scaled.dtype == np.float32
    assert scaled[0] == -1.0
    assert scaled[1] == 1.0
    assert abs(scaled[2] - 0.0039) < 1e-3
    with pytest.raises(ValueError, match="uint8"):
        to_unit_range(np.zeros(3, dtype=np.float32))


# --- shard format ---------------------------------------------------------------------------------

POSE_NAMES = ("yaw", "pitch", "x")


def random_samples(count: int, sessions: int, seed: int = 0) -> list[Sample]:
    rng = np.random.default_rng(seed)
    return [
        Sample(
            session=i % sessions,
            time_s=0.345 * i,
            thermal=rng.integers(29_000, 31_000, (120, 160), dtype=np.uint16),
            rgb=rng.integers(0, 256, (96, 128, 3), dtype=np.uint8),
            person_mask=rng.random((96, 128)) > 0.5,
            person_mask_thermal=rng.random((120, 160)) > 0.5,
            heat_source_mask=rng.random((120, 160)) > 0.9,
            pose=rng.normal(size=len(POSE_NAMES)).astype(np.float32),
        )
        for i in range(count)
    ]


SESSIONS = [
    SessionRecord("s0", "ann", "shirt", "office", "train"),
    SessionRecord("s1", "bob", "coat", "kitchen", "test"),
    SessionRecord("s2", "cy", "shirt", "office", "heldout"),
    SessionRecord("s3", "ann", "coat", "lab", "train"),
]


def write_shards(directory: Path, samples: list[Sample], shard_size: int = 3) -> dict:
    writer = ShardWriter(
        directory,
        SESSIONS,
        recipe=HeatmapRecipe((12, 16), 1.0),
        ground_truth=GROUND_TRUTH_FIELDS,
        pose_names=POSE_NAMES,
        shard_size=shard_size,
        creator="test",
    )
    with writer:
        for sample in samples:
            writer.add(sample)
    return json.loads((directory / "manifest.json").read_text())


def test_shards_round_trip_exactly(tmp_path):
    samples = random_samples(11, len(SESSIONS))
    manifest = write_shards(tmp_path / "ds", samples)
    reader = ShardReader(tmp_path / "ds")
    assert manifest["counts"] == {"train": 5, "test": 3, "heldout": 3}
    assert [s["frames"] for s in manifest["sessions"]] == [3, 3, 3, 2]
    assert [e["samples"] for e in manifest["shards"]["train"]] == [3, 2]
    for split in ("train", "test", "heldout"):
        expected = [s for s in samples if SESSIONS[s.session].split == split]
        arrays = reader.load_split(split)
        for name in ("thermal", "rgb", "person_mask", "person_mask_thermal", "heat_source_mask", "pose"):
            np.testing.assert_array_equal(arrays[name], np.stack([getattr(s, name) for s in expected]))
        np.testing.assert_array_equal(arrays["session"], [s.session for s in expected])
        np.testing.assert_array_equal(arrays["time_s"], np.float32([s.time_s for s in expected]))
        iterated = list(reader.iter_samples(split))
        assert len(iterated) == len(expected)
        np.testing.assert_array_equal(iterated[-1]["thermal"], expected[-1].thermal)


def test_stored_heatmaps_are_the_privacy_downsampling_of_the_stored_thermal(tmp_path):
    write_shards(tmp_path / "ds", random_samples(5, len(SESSIONS)))
    arrays = ShardReader(tmp_path / "ds").load_split("train")
    for thermal, heatmap in zip(arrays["thermal"], arrays["heatmap"], strict=True):
        np.testing.assert_array_equal(
            heatmap, privacy_downsample(centikelvin_to_celsius(thermal), (12, 16), 1.0)
        )
    assert arrays["heatmap"].dtype == np.float32
    assert 26 < arrays["heatmap"].mean() < 30  # 29,000..31,000 cK = 16.85..36.85 degC, mean ~26.9


def test_a_truncated_shard_is_named_in_the_error(tmp_path):
    write_shards(tmp_path / "ds", random_samples(7, len(SESSIONS)))
    shard = tmp_path / "ds" / "train" / "shard-00000.npz"
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(ShardFormatError, match=r"train/shard-00000\.npz: .*truncated"):
        ShardReader(tmp_path / "ds")
    unverified = ShardReader(tmp_path / "ds", verify=False)
    with pytest.raises(ShardFormatError, match=r"train/shard-00000\.npz: unreadable"):
        unverified.load_split("train")


def test_a_modified_shard_fails_its_checksum(tmp_path):
    write_shards(tmp_path / "ds", random_samples(7, len(SESSIONS)))
    shard = tmp_path / "ds" / "test" / "shard-00000.npz"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ShardFormatError, match=r"test/shard-00000\.npz: sha256 .* modified"):
        ShardReader(tmp_path / "ds")


def test_a_missing_shard_and_an_unknown_version_are_refused(tmp_path):
    manifest = write_shards(tmp_path / "ds", random_samples(7, len(SESSIONS)))
    (tmp_path / "ds" / "heldout" / "shard-00000.npz").rename(tmp_path / "elsewhere.npz")
    with pytest.raises(
        ShardFormatError, match=r"heldout/shard-00000\.npz: listed in the manifest but missing"
    ):
        ShardReader(tmp_path / "ds")
    (tmp_path / "ds" / "manifest.json").write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(ShardFormatError, match="version 99 is not supported"):
        ShardReader(tmp_path / "ds")


class UnpicklingWouldTouch:
    """Unpickling this creates a file: proof of whether the reader ever unpickled anything."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    manifest = write_shards(tmp_path / "ds", random_samples(7, len(SESSIONS)))
    shard = tmp_path / "ds" / "train" / "shard-00000.npz"
    marker = tmp_path / "unpickled"
    with np.load(shard) as original:
        arrays = {name: original[name] for name in original.files}
    arrays["thermal"] = np.array([UnpicklingWouldTouch(marker)] * 3, dtype=object)
    np.savez(shard, **arrays)
    entry = manifest["shards"]["train"][0]
    entry["bytes"] = shard.stat().st_size
    entry["sha256"] = __import__("hashlib").sha256(shard.read_bytes()).hexdigest()
    (tmp_path / "ds" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardFormatError, match=r"train/shard-00000\.npz: holds an object array"):
        ShardReader(tmp_path / "ds")
    assert not marker.exists()


def test_the_writer_refuses_a_sample_that_does_not_match_the_declared_fields(tmp_path):
    sample = random_samples(1, 1)[0]
    writer = ShardWriter(tmp_path / "ds", SESSIONS[:1], ground_truth=("person_mask",))
    with pytest.raises(ValueError, match="does not declare"):
        writer.add(sample)
    sample.person_mask_thermal = sample.heat_source_mask = sample.pose = None
    sample.rgb = sample.rgb[:, :, 0]
    with pytest.raises(ValueError, match="'rgb' is uint8 \\(96, 128\\), expected uint8 \\(96, 128, 3\\)"):
        writer.add(sample)


# --- the generator --------------------------------------------------------------------------------


def split_sets(manifest: dict, key: str) -> dict[str, set[str]]:
    return {
        split: {s[key] for s in manifest["sessions"] if s["split"] == split}
        for split in ("train", "test", "heldout")
    }


@pytest.mark.parametrize("split_by", ["session", "identity", "scene"])
def test_splits_never_share_sessions_identities_or_scenes(tmp_path, split_by):
    manifest = make_dataset(tmp_path / "ds", split_by=split_by)
    reader = ShardReader(tmp_path / "ds")
    provenance = manifest["provenance"]
    assert all(count > 0 for count in manifest["counts"].values())
    for split in ("train", "test", "heldout"):
        used = set(reader.load_split(split, ["session"])["session"].tolist())
        assert {reader.sessions[i].split for i in used} == {split}
    identities = split_sets(manifest, "identity")
    assert len(provenance["heldout_identities"]) == 2
    assert identities["heldout"] == set(provenance["heldout_identities"])
    assert not identities["heldout"] & (identities["train"] | identities["test"])
    if split_by == "identity":
        assert not identities["train"] & identities["test"]
        assert identities["test"] == set(provenance["test_identities"])
    if split_by == "scene":
        scenes = split_sets(manifest, "scene")
        assert not scenes["train"] & scenes["test"]
        assert scenes["test"] <= set(provenance["test_scenes"])


def test_generated_heatmaps_match_the_recipe_in_the_manifest(tmp_path):
    manifest = make_dataset(tmp_path / "ds", pairs=20, recipe=HeatmapRecipe((6, 8), 0.5))
    assert manifest["heatmap_recipe"]["output_size"] == [6, 8]
    assert manifest["heatmap_recipe"]["blur_sigma"] == 0.5
    arrays = ShardReader(tmp_path / "ds").load_split("train", ["thermal", "heatmap"])
    expected = privacy_downsample(centikelvin_to_celsius(arrays["thermal"]), (6, 8), 0.5)
    np.testing.assert_array_equal(arrays["heatmap"], expected)


def test_the_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path, monkeypatch):
    make_dataset(tmp_path / "a", seed=5)
    an_hour_later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: an_hour_later)  # no wall clock may leak into the files
    make_dataset(tmp_path / "b", seed=5)
    make_dataset(tmp_path / "c", seed=6)
    first, again, other = (files_of(tmp_path / name) for name in "abc")
    assert len(first) > 4
    assert first == again
    assert first["manifest.json"] != other["manifest.json"]
    assert first["train/shard-00000.npz"] != other["train/shard-00000.npz"]


def thermal_synth(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "thermal-synth"), *args], check=False, capture_output=True, text=True, timeout=60
    )


def start_sim_and_wait_until_mid_run(out: Path, pairs: int) -> subprocess.Popen:
    """`thermal-synth sim` in its own process, returned once a shard is on disk in its staging
    directory: from then on a failure has something half-written to clean up."""
    process = subprocess.Popen(
        [str(BIN / "thermal-synth"), "sim", "--pairs", str(pairs), "--shard-size", "4", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not any(out.parent.glob(f".{out.name}.partial-*/*/shard-*.npz")):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the run never got to a shard: {process.communicate()[1]}")
        time.sleep(0.005)
    return process


def test_ctrl_c_mid_run_exits_130_and_leaves_nothing_behind(tmp_path):
    process = start_sim_and_wait_until_mid_run(tmp_path / "ds", pairs=2000)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == EXIT_INTERRUPTED, stderr
    assert "thermal-synth sim: interrupted; nothing was written" in stderr
    assert stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_an_error_mid_run_leaves_nothing_behind(tmp_path):
    """Another process writes into the (empty, so accepted) `--out` while the run renders: the
    final rename then fails, and the run must take back everything it wrote."""
    out = tmp_path / "ds"
    out.mkdir()
    process = start_sim_and_wait_until_mid_run(out, pairs=60)
    (out / "theirs.txt").write_text("not the generator's")
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 1, stderr
    assert f"[Errno {errno.ENOTEMPTY}]" in stderr or f"[Errno {errno.EEXIST}]" in stderr, stderr
    assert "nothing was written" in stderr
    assert "Traceback" not in stderr
    assert stdout == ""
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]
    assert [p.name for p in out.iterdir()] == ["theirs.txt"]


BAD_ARGUMENTS = [
    (["--pairs", "0"], "--pairs"),
    (["--pairs", "-5"], "--pairs"),
    (["--pairs", "ten"], "--pairs"),
    (["--pairs", "8", "--shard-size", "0"], "--shard-size"),
    (["--pairs", "8", "--frames-per-session", "-1"], "--frames-per-session"),
    (["--pairs", "8", "--split-by", "room"], "--split-by"),
    (["--pairs", "8", "--seed", "1.5"], "--seed"),
    (["--pairs", "8", "--test-fraction", "1"], "--test-fraction"),
    (["--pairs", "8", "--rgb-size", "0x320"], "--rgb-size"),
    (["--pairs", "8", "--rgb-size", "big"], "--rgb-size"),
    (["--pairs", "8", "--quantisation-c", "-2"], "quantisation_c"),
    (["--pairs", "8", "--noise-c", "nan"], "noise_c"),
]


def test_bad_input_is_one_line_exit_2_and_leaves_nothing(tmp_path):
    for arguments, culprit in BAD_ARGUMENTS:
        result = thermal_synth("sim", "--out", str(tmp_path / "ds"), *arguments)
        assert result.returncode == 2, (arguments, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert culprit in result.stderr
        assert result.stdout == ""
        assert list(tmp_path.iterdir()) == []


def test_an_existing_non_empty_out_is_refused_untouched(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    result = thermal_synth("sim", "--pairs", "8", "--out", str(out))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"thermal-synth sim: error: --out {out} exists and is not empty (see thermal-synth sim --help)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    assert [p.name for p in out.iterdir()] == ["precious.txt"]


# --- the realism report ---------------------------------------------------------------------------


def test_frame_statistics_of_a_known_box():
    frame = np.zeros((1, 120, 160), dtype=np.float32)
    frame[0, 10:20, 30:50] = 1.0
    frame[0, 0, 0] = 0.25
    stats = sim_report.frame_statistics(sim_report.min_max_scale(frame))
    assert stats["hot_fraction"][0] == pytest.approx(200 / 19200)
    assert [stats[k][0] for k in ("top", "bottom", "left", "right")] == [10, 19, 30, 49]
    assert stats["area_fraction"][0] == pytest.approx(200 / 19200)
    assert stats["histogram"][0].tolist() == pytest.approx(
        [18999 / 19200, 0, 1 / 19200, 0, 0, 0, 0, 0, 0, 200 / 19200]
    )


def test_the_packaged_real_frame_is_what_the_rig_report_compares_with():
    np.testing.assert_array_equal(sim_report.load_real_frame(), np.load(LEPTON_FRAME)[..., 0])
    assert sim_report.load_real_frame().shape == (120, 160)


def test_report_writes_a_contact_sheet_and_realism_statistics(tmp_path):
    result = generate(SimConfig(pairs=16, seed=1, shard_size=8), tmp_path / "ds", report=True, progress=False)
    sheet = cv2.imread(str(tmp_path / "ds" / "contact_sheet.png"))
    assert sheet.shape == (4 * (120 + sim_report.LABEL_HEIGHT_PX), 4 * 320, 3)
    stats = json.loads((tmp_path / "ds" / "realism.json").read_text())
    assert stats == result.realism
    assert stats["simulated_frames"] == 16
    assert stats["real"]["hot_fraction"] == pytest.approx(0.0742, abs=1e-4)
    for key in ("hot_fraction", "top", "bottom", "left", "right", "area_fraction"):
        assert set(stats["simulated"][key]) == {"median", "p10", "p90"}
    assert len(stats["real"]["histogram"]) == len(stats["simulated"]["histogram_mean"]) == 10
    assert 0 <= stats["histogram_l1_to_real"]["median"] <= 2
    table = sim_report.format_table(stats)
    assert "hot fraction" in table
    assert "histogram L1 to real" in table


def test_cli_renders_a_preview(tmp_path):
    result = thermal_synth("sim", "--report", "--pairs", "16", "--out", str(tmp_path / "ds"))
    assert result.returncode == 0, result.stderr
    assert "wrote 16 pairs" in result.stdout
    assert "histogram L1 to real" in result.stdout
    assert {"manifest.json", "contact_sheet.png", "realism.json"} <= {
        p.name for p in (tmp_path / "ds").iterdir()
    }
    assert ShardReader(tmp_path / "ds").counts["train"] > 0


def test_raw_rgb_size_is_configurable_and_recorded(tmp_path):
    result = thermal_synth("sim", "--pairs", "4", "--rgb-size", "120x160", "--out", str(tmp_path / "ds"))
    assert result.returncode == 0, result.stderr
    reader = ShardReader(tmp_path / "ds")
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["provenance"]["rig_config"]["rgb_shape"] == [120, 160]
    assert reader.load_split("train")["rgb"].shape[1:] == (96, 128, 3)


def test_the_format_name_is_the_one_existing_datasets_carry(tmp_path: Path) -> None:
    """Datasets on users' disks say `thermal_synth.shards`; moving the module must not orphan them."""
    assert FORMAT_NAME == "thermal_synth.shards"
    writer = ShardWriter(tmp_path / "data", [SessionRecord("s", "ana", "red", "room", "train")])
    writer.close()
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["format"] == "thermal_synth.shards"


def test_heatmaps_can_be_made_as_the_driver_publishes_them_with_its_transforms(tmp_path: Path) -> None:
    """`sim --quantisation-c / --noise-c ...`: a model trained on the result reads the driver's
    output with those parameters; the manifest says so, and the noise follows the seed."""
    transforms = ["--quantisation-c", "2", "--noise-c", "0.5", "--relative-temperature"]
    for name in ("a", "b"):
        result = thermal_synth("sim", "--pairs", "16", *transforms, "--out", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
    reader = ShardReader(tmp_path / "a")
    assert reader.recipe == HeatmapRecipe(relative_temperature=True, quantisation_c=2.0, noise_c=0.5)
    arrays = reader.load_split("train", ["thermal", "heatmap"])
    assert np.array_equal(arrays["heatmap"], np.round(arrays["heatmap"] / 2.0) * 2.0)
    noiseless = replace(reader.recipe, noise_c=0.0).apply(arrays["thermal"])
    assert not np.array_equal(arrays["heatmap"], noiseless), "the noise was drawn"
    assert files_of(tmp_path / "a") == files_of(tmp_path / "b")
