"""The privacy audit: empty-scene negatives, attackers that really learn, the report end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import BIN, stop

from thermal_driver.sources.rig.rig import SimRig, sessions
from thermal_msgs.privacy import DRIVER_DEFAULTS, PrivacySettings, privacy_downsample
from thermal_msgs.units import centikelvin_to_celsius
from thermal_synth.cli import main
from thermal_synth.dataset.shards import ShardReader
from thermal_synth.privacy_audit.attackers import (
    TrainSettings,
    predict,
    silhouette_iou,
    silhouette_target,
    thermal_input,
    train_classifier,
    train_silhouette,
)
from thermal_synth.privacy_audit.audit import (
    AuditConfig,
    plan_reidentification,
    run_audit,
    wilson_interval,
)
from thermal_synth.privacy_audit.data import (
    DRIVER_DEFAULT,
    RAW,
    AuditDataError,
    AuditedView,
    attacker_view,
    load_audit_data,
    parse_resolutions,
    render_empty_scenes,
    session_windows,
    with_driver_default,
)
from thermal_synth.privacy_audit.sweep import SWEEP_VIEWS
from thermal_synth.sim.simulate import SimConfig, generate

QUICK = ("--steps", "3", "--max-samples", "40", "--no-fid")
SINGLE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}
"""The audit's subprocess shares two cores with others: one thread wastes no CPU on spinning."""

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def audit_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two sessions per person (20 sessions of 6 frames): `sim_dataset` has one, too few to re-identify."""
    out = tmp_path_factory.mktemp("audit") / "sim"
    generate(SimConfig(pairs=120, seed=3, frames_per_session=6), out, progress=False)
    return out


def test_empty_scene_frame_is_the_same_room_without_the_person() -> None:
    rig = SimRig(sessions(3, seed=21)[1])
    for t in (0.0, 7.3):
        pair = rig.render(t)
        empty = rig.render_empty_thermal(t)
        assert empty.dtype == np.uint16
        assert empty.shape == pair.thermal_centikelvin.shape
        person = pair.person_mask_thermal
        assert person.mean() > 0.05
        warmth_k = (pair.thermal_centikelvin.astype(np.int32) - empty.astype(np.int32)) / 100.0
        assert warmth_k[person].mean() > 3.0
        assert np.mean(warmth_k[person] > 0) > 0.8
        halo = cv2.dilate(person.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        assert np.array_equal(empty[~halo], pair.thermal_centikelvin[~halo])
    assert not np.array_equal(rig.render_empty_thermal(0.0), rig.render_empty_thermal(7.3))


def test_attackers_see_what_the_driver_publishes(audit_dataset: Path) -> None:
    reader = ShardReader(audit_dataset)
    stored = reader.load_split("train", ["thermal", "heatmap"])
    thermal = stored["thermal"][:5]
    raw = attacker_view(thermal, RAW)
    assert raw.shape == (5, 120, 160)
    np.testing.assert_array_equal(raw, centikelvin_to_celsius(thermal))
    heatmap = attacker_view(thermal, AuditedView.of(reader.recipe.privacy))
    np.testing.assert_array_equal(heatmap, stored["heatmap"][:5])
    published = DRIVER_DEFAULTS.apply(centikelvin_to_celsius(thermal))
    np.testing.assert_array_equal(attacker_view(thermal, DRIVER_DEFAULT), published)
    coarse = attacker_view(thermal, parse_resolutions("5x8")[0])
    assert coarse.shape == (5, 5, 8)
    expected = privacy_downsample(centikelvin_to_celsius(thermal), (5, 8), PrivacySettings().blur_sigma)
    np.testing.assert_array_equal(coarse, expected)


def test_attacker_view_applies_every_transform_reproducibly(audit_dataset: Path) -> None:
    thermal = ShardReader(audit_dataset).load_split("train", ["thermal"])["thermal"][:8]
    view = AuditedView.of(
        PrivacySettings(relative_temperature=True, background_c=20.0, quantisation_c=0.5, noise_c=0.3)
    )
    assert view.label == "12x16 rel20 q0.5 n0.3"
    first = attacker_view(thermal, view, np.random.default_rng(5))
    assert first.shape == (8, 12, 16)
    steps = first / 0.5
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-4)
    assert np.all(np.abs(np.median(first, axis=(1, 2)) - 20.0) <= 0.5)
    plain = attacker_view(thermal, AuditedView.of(PrivacySettings()))
    assert np.abs(np.median(plain, axis=(1, 2)) - 20.0).min() > 0.5
    np.testing.assert_array_equal(first, attacker_view(thermal, view, np.random.default_rng(5)))
    assert not np.array_equal(first, attacker_view(thermal, view, np.random.default_rng(6)))
    with pytest.raises(ValueError, match="needs a numpy Generator"):
        attacker_view(thermal, view)


def test_temporal_windows_hold_one_session_in_time_order(audit_dataset: Path) -> None:
    data = load_audit_data(audit_dataset)
    rows = np.arange(len(data.session))
    windows = session_windows(data, rows, 4)
    assert windows.shape == (len(rows), 4)
    for row, window in zip(rows, windows, strict=True):
        assert np.all(data.session[window] == data.session[row])
        assert np.all(np.diff(data.time_s[window]) > 0)
        assert row in window
        earlier = np.sum((data.session == data.session[row]) & (data.time_s < data.time_s[row]))
        if earlier >= 3:
            assert window[-1] == row
    short = session_windows(data, rows[:1], 10)[0]
    session_length = int(np.sum(data.session == data.session[0]))
    assert session_length < 10
    assert np.all(short[: 10 - session_length] == short[10 - session_length])
    assert np.all(data.session[short] == data.session[0])


def test_silhouette_regressor_beats_the_mean_mask(audit_dataset: Path) -> None:
    data = load_audit_data(audit_dataset)
    assert data.person_mask is not None
    train, test = data.in_splits(["train"]), data.in_splits(["test", "heldout"])
    view = AuditedView.of(PrivacySettings())
    target_train, target_test = (
        silhouette_target(data.person_mask[train]),
        silhouette_target(data.person_mask[test]),
    )
    model = train_silhouette(
        thermal_input(attacker_view(data.thermal[train], view)),
        target_train,
        TrainSettings(steps=150, batch_size=32, seed=2),
    )
    iou = silhouette_iou(
        predict(model, thermal_input(attacker_view(data.thermal[test], view)), "cpu"), target_test
    )
    mean_mask = target_train.mean(0, keepdim=True).expand_as(target_test)
    baseline = silhouette_iou(torch.logit(mean_mask.clamp(1e-4, 1 - 1e-4)), target_test)
    assert silhouette_iou(torch.full_like(target_test, -1.0), target_test) == 0.0
    assert iou > baseline + 0.05


def test_resolutions_parse_raw_and_publishable_sizes_only() -> None:
    parsed = parse_resolutions("120x160, 12x16,5X8")
    assert parsed[0] == RAW
    assert [view.settings for view in parsed[1:]] == [PrivacySettings(), PrivacySettings(output_size=(5, 8))]
    assert [view.label for view in parsed] == ["120x160", "12x16", "5x8"]
    assert [view.label for view in with_driver_default(parsed)] == ["120x160", "12x16", "5x8", "default"]
    assert with_driver_default(parsed)[-1] == DRIVER_DEFAULT
    assert DRIVER_DEFAULT.settings == DRIVER_DEFAULTS
    relabelled = with_driver_default((RAW, AuditedView.of(DRIVER_DEFAULTS), parsed[2]))
    assert [view.label for view in relabelled] == ["120x160", "default", "5x8"]
    for bad, reason in [
        ("12by16", "not ROWSxCOLS"),
        ("60x80", "not privacy-safe"),
        ("0x8", "positive"),
        ("5x8,5x8", "twice"),
        ("", "not ROWSxCOLS"),
    ]:
        with pytest.raises(ValueError, match=reason):
            parse_resolutions(bad)


def test_detector_learns_presence_from_the_raw_frame(audit_dataset: Path) -> None:
    data = load_audit_data(audit_dataset)
    train, test = data.in_splits(["train"]), data.in_splits(["test", "heldout"])

    def examples(rows: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        frames = np.concatenate([data.thermal[rows], render_empty_scenes(data, rows)])
        labels = np.r_[np.ones(len(rows)), np.zeros(len(rows))].astype(np.int64)
        return thermal_input(attacker_view(frames, RAW)), labels

    inputs, labels = examples(train)
    model = train_classifier(inputs, labels, 2, TrainSettings(steps=40, batch_size=32, seed=1))
    test_inputs, test_labels = examples(test)
    predicted = predict(model, test_inputs, "cpu").argmax(1).numpy()
    assert len(set(data.session[test])) >= 4
    assert np.mean(predicted == test_labels) >= 0.9


def test_training_is_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(0)
    inputs = thermal_input(rng.normal(25.0, 3.0, (16, 5, 8)))
    labels = rng.integers(0, 3, 16)
    settings = TrainSettings(steps=4, batch_size=8, seed=7)
    first, second = (train_classifier(inputs, labels, 3, settings).state_dict() for _ in range(2))
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_negatives_need_the_simulator_that_made_the_dataset(audit_dataset: Path) -> None:
    data = load_audit_data(audit_dataset)
    rows = np.flatnonzero(data.session == 0)
    data.thermal[rows] = data.thermal[rows] + np.uint16(300)
    with pytest.raises(AuditDataError, match="not what this simulator renders"):
        render_empty_scenes(data, rows)


def test_reidentification_tests_unseen_sessions_of_known_people(audit_dataset: Path) -> None:
    data = load_audit_data(audit_dataset)
    plan = plan_reidentification(data, AuditConfig(), np.random.default_rng(0))
    assert not isinstance(plan, str)
    assert len(plan.identities) == 10
    assert "all 10 identities" in plan.population
    assert len(plan.folds) == 2
    for tested in plan.folds:
        people = [data.sessions[s].identity for s in tested]
        assert sorted(people) == list(plan.identities)
        trained = set(plan.sessions) - set(tested)
        assert {data.sessions[s].identity for s in trained} == set(plan.identities)
    assert sorted(s for fold in plan.folds for s in fold) == list(plan.sessions)
    heldout_only = plan_reidentification(
        data, AuditConfig(min_heldout_identities=2), np.random.default_rng(0)
    )
    assert not isinstance(heldout_only, str)
    assert len(heldout_only.identities) == 2
    assert all(data.sessions[s].split == "heldout" for s in heldout_only.sessions)


def test_wilson_interval_brackets_the_session_accuracy() -> None:
    assert wilson_interval(0, 10) == pytest.approx([0.0, 0.2775], abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx([0.2366, 0.7634], abs=1e-4)
    assert wilson_interval(0, 0) == [0.0, 1.0]


def test_privacy_audit_end_to_end(audit_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit"
    done = subprocess.run(
        [
            str(BIN / "thermal-synth"),
            "privacy-audit",
            "--data",
            str(audit_dataset),
            "--out",
            str(out),
            *QUICK,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=SINGLE_THREAD,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "re-identification default" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "audit.json",
        "audit.md",
        "audit.png",
        "reconstructions.png",
    ]
    result = json.loads((out / "audit.json").read_text())
    labels = ["120x160", "12x16", "5x8", "default"]  # the plain heatmap beside what the driver publishes
    assert result["views"] == labels
    default = PrivacySettings.from_json(result["config"]["views"]["default"])
    assert default == DRIVER_DEFAULTS == DRIVER_DEFAULT.settings
    assert default.quantisation_c == 2.0
    attacks = result["attacks"]
    assert all(attack["status"] == "ok" for attack in attacks.values())
    for label in labels:
        assert attacks["detection"]["results"][label]["chance"] == 0.5
        assert 0.0 <= attacks["detection"]["results"][label]["accuracy"] <= 1.0
        reid = attacks["reidentification"]["results"][label]
        assert reid["chance"] == pytest.approx(1 / 10)
        assert reid["strongest"]["accuracy"] == max(reid["accuracy"], reid["temporal"]["accuracy"])
        assert reid["temporal"]["frames"] == 6
        assert 0.0 < attacks["reconstruction"]["results"][label]["mae"] < 1.0
    assert len(attacks["reidentification"]["identities"]) == 10
    assert 0.0 < attacks["reconstruction"]["baseline"]["mae"] < 1.0
    report = (out / "audit.md").read_text()
    assert "`default`: the driver's default parameters (12x16 q2)" in report
    for label in ["120x160 (raw)", "12x16", "default", "5x8"]:
        for attack in ["person detection", "re-identification (10 people)", "RGB reconstruction"]:
            assert f"| {label} | {attack} |" in report
    assert "| 0.500 |" in report
    assert "| 0.100 |" in report
    assert "Table II" in report
    for picture in ("audit.png", "reconstructions.png"):
        image = cv2.imread(str(out / picture))
        assert image is not None
        assert min(image.shape[:2]) > 300
    assert "reidentification 5x8: accuracy" in done.stdout
    assert "reidentification default: accuracy" in done.stdout
    assert ", strongest " in done.stdout


def test_reidentification_is_skipped_with_a_reason_and_fid_is_measured(
    sim_dataset: Path, tmp_path: Path
) -> None:
    """`sim_dataset` has one session per person; the FID path runs on whatever the other attacks give."""
    fid = pytest.importorskip("thermal_synth.evaluation.fid")
    try:
        fid.InceptionFeatures()
    except fid.FidUnavailable as exc:
        pytest.skip(str(exc))
    config = AuditConfig(views=parse_resolutions("5x8"), steps=2, max_samples=12, fid_samples=4)
    result = run_audit(sim_dataset, tmp_path / "audit", config, progress=False)
    reid = result["attacks"]["reidentification"]
    assert reid["status"] == "skipped"
    assert "2 or more sessions" in reid["reason"]
    reconstruction = result["attacks"]["reconstruction"]
    assert reconstruction["results"]["5x8"]["fid"] > 0.0
    assert reconstruction["results"]["5x8"]["fid_samples"] == 4
    assert reconstruction["baseline"]["fid"] > 0.0
    assert "**Re-identification**: skipped" in (tmp_path / "audit" / "audit.md").read_text()


def _run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(["privacy-audit", *args])
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def test_bad_inputs_fail_on_one_line(audit_dataset: Path, tmp_path: Path, capsys) -> None:
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    no_provenance = tmp_path / "real"
    shutil.copytree(audit_dataset, no_provenance)
    manifest = json.loads((no_provenance / "manifest.json").read_text())
    del manifest["provenance"]["rig_config"]
    (no_provenance / "manifest.json").write_text(json.dumps(manifest))
    cases = [
        (["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "a")], "no such directory"),
        (
            ["--data", str(audit_dataset), "--out", str(tmp_path / "b"), "--resolutions", "12x16,40x40"],
            "40x40",
        ),
        (["--data", str(audit_dataset), "--out", str(occupied)], "not empty"),
        (["--data", str(no_provenance), "--out", str(tmp_path / "c")], "only a simulated dataset"),
        (["--data", str(audit_dataset), "--out", str(tmp_path / "d"), "--steps", "0"], "positive integer"),
        (["--data", str(audit_dataset), "--out", str(tmp_path / "e"), "--device", "warp9"], "unknown device"),
        (
            ["--data", str(audit_dataset), "--out", str(tmp_path / "f"), "--sweep", "--resolutions", "5x8"],
            "not allowed with argument",
        ),
    ]
    for args, reason in cases:
        code, err = _run_cli([*args, "--no-fid"], capsys)
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1, err
        assert reason in err
        assert err.startswith("thermal-synth privacy-audit: error:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["occupied", "real"]
    assert [p.name for p in occupied.iterdir()] == ["keep.txt"]


def test_ctrl_c_writes_nothing(audit_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit"
    process = subprocess.Popen(
        [BIN / "thermal-synth", "privacy-audit", "--data", audit_dataset, "--out", out, "--steps", "100000"],
        stderr=subprocess.PIPE,
        text=True,
        env=SINGLE_THREAD,
    )
    assert process.stderr is not None
    while "empty-scene frames" not in (line := process.stderr.readline()):
        assert line, "the audit ended before it started training"
    code, _, err = stop(process, timeout_s=60)
    assert code == 130
    assert "interrupted; nothing was written" in err
    assert list(tmp_path.iterdir()) == []


def test_sweep_writes_the_curve_with_one_row_per_setting(
    audit_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sweep"
    assert main(["privacy-audit", "--data", str(audit_dataset), "--out", str(out), "--sweep", *QUICK]) == 0
    captured = capsys.readouterr()
    assert f"[{len(SWEEP_VIEWS)}/{len(SWEEP_VIEWS)}]" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["sweep.json", "sweep.md", "sweep.png"]
    result = json.loads((out / "sweep.json").read_text())
    labels = [row["label"] for row in result["rows"]]
    assert labels == [view.label for view in SWEEP_VIEWS]
    assert len(set(labels)) == len(labels) >= 10
    assert result["reference"] == "12x16"
    reference = result["rows"][0]
    assert reference["iou_vs_reference"] == pytest.approx(1.0)
    for row in result["rows"]:
        assert row["reid_strongest"] == max(row["reid_single_frame"], row["reid_temporal"])
        assert row["reid_chance"] == pytest.approx(1 / 10)
        assert 0.0 <= row["silhouette_iou"] <= 1.0
    kept = [row for row in result["rows"] if row["iou_vs_reference"] >= 0.9]
    knee = min(kept, key=lambda row: row["reid_strongest"])
    assert result["knee"] == knee["label"]
    report = (out / "sweep.md").read_text()
    table = [line for line in report.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(labels)
    assert f"**{knee['label']}** (knee)" in report
    assert f"**Knee**: `{knee['label']}`" in report
    image = cv2.imread(str(out / "sweep.png"))
    assert image is not None
    assert min(image.shape[:2]) > 300
    assert f"knee: {knee['label']}" in captured.out
