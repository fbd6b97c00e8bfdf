"""`thermal-synth codes`: the latent bank of a real (tiny, briefly trained) model, real photo files.

Photos are frames of the simulated dataset's test split written to disk in the formats a user
has; hostile files are real files too. Every failing command must leave bank.json byte-identical.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import thermal_synth
from model_fixtures import copy_model

from thermal_synth.appearances.cli import (
    ALPHA_BACKGROUND,
    MAX_PHOTO_BYTES,
    SHEET_SCALE,
    encode_photos,
    load_photo,
    reconstruction_l1,
    refine_code,
)
from thermal_synth.cli import main
from thermal_synth.dataset.shards import ShardReader, appearance_name
from thermal_synth.model.bank import THUMBNAIL_SHAPE, LatentBank, make_thumbnail
from thermal_synth.model.files import BANK_FILE, MODEL_JSON, load_trained_model

IMAGE_SIZE = (96, 128)
ERROR_PREFIX = "thermal-synth codes"


@pytest.fixture(scope="module")
def frames(sim_dataset: Path) -> np.ndarray:
    """(N, 96, 128, 3) uint8 RGB frames the model never trained on."""
    return ShardReader(sim_dataset).load_split("test", ["rgb"])["rgb"]


@pytest.fixture
def model(tiny_model: Path, tmp_path: Path) -> Path:
    return copy_model(tiny_model, tmp_path / "model")


@pytest.fixture
def photos(frames: np.ndarray, tmp_path: Path) -> list[Path]:
    return [write_rgb(tmp_path / f"photo{i}.png", frames[i * 4]) for i in range(3)]


def write_rgb(path: Path, rgb: np.ndarray, params: list[int] | None = None) -> Path:
    ok, data = cv2.imencode(path.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params or [])
    assert ok
    path.write_bytes(data.tobytes())
    return path


def codes(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """`thermal-synth codes ARGS` in this process: (exit code, stdout, stderr)."""
    try:
        code = main(["codes", *map(str, args)])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def bank_of(model: Path) -> LatentBank:
    return load_trained_model(model).bank


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert err.startswith(ERROR_PREFIX), err
    assert err.strip().count("\n") == 0, err
    for fragment in fragments:
        assert fragment in err


# --- list -----------------------------------------------------------------------------------------


def test_list_shows_every_code_with_its_norm_and_a_contact_sheet_of_the_thumbnails(
    tiny_model, tmp_path, capsys
):
    bank = bank_of(tiny_model)
    assert len(bank) >= 2
    sheet_path = tmp_path / "sheet.png"
    code, out, err = codes(capsys, "list", "--model", tiny_model, "--sheet", sheet_path)
    assert code == 0, err
    lines = out.splitlines()
    for entry in bank:
        (line,) = [line for line in lines if line.startswith(f"{entry.name} ")]
        assert line.endswith(f"{float(np.linalg.norm(entry.z)):.2f}")
        assert entry.source in line
    sheet = cv2.cvtColor(cv2.imread(str(sheet_path)), cv2.COLOR_BGR2RGB)
    for entry in bank:
        enlarged = np.repeat(np.repeat(entry.thumbnail, SHEET_SCALE, axis=0), SHEET_SCALE, axis=1)
        left, top = cv2.minMaxLoc(cv2.matchTemplate(sheet, enlarged, cv2.TM_SQDIFF))[2]
        placed = sheet[top : top + enlarged.shape[0], left : left + enlarged.shape[1]]
        np.testing.assert_array_equal(
            placed, enlarged, err_msg=f"{entry.name}'s thumbnail is not on the sheet"
        )


def test_list_refuses_a_sheet_that_is_not_a_png_and_a_missing_model(tiny_model, tmp_path, capsys):
    code, _, err = codes(capsys, "list", "--model", tiny_model, "--sheet", tmp_path / "sheet.jpg")
    assert_one_line_error(code, err, "PNG")
    assert not (tmp_path / "sheet.jpg").exists()
    code, _, err = codes(capsys, "list", "--model", tmp_path / "nowhere")
    assert_one_line_error(code, err, "no such model directory")


# --- photos ---------------------------------------------------------------------------------------


def test_a_large_photo_is_pixel_averaged_down_to_the_model_size(frames, tmp_path):
    big = cv2.resize(frames[0], (640, 480), interpolation=cv2.INTER_NEAREST)
    photo = load_photo(write_rgb(tmp_path / "big.jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 100]), IMAGE_SIZE)
    assert photo.shape == (*IMAGE_SIZE, 3)
    assert photo.dtype == np.uint8
    assert np.abs(photo.astype(int) - frames[0]).mean() < 1.0
    exact = load_photo(write_rgb(tmp_path / "big.png", big), IMAGE_SIZE)
    np.testing.assert_array_equal(exact, frames[0])


@pytest.mark.parametrize("shape", [(120, 400), (400, 120)], ids=["wide", "tall"])
def test_a_photo_of_another_aspect_is_centre_cropped_not_squashed(shape, tmp_path):
    rows, cols = shape
    crop_rows, crop_cols = (rows, 160) if cols > rows else (90, cols)  # 3:4 inside the photo
    image = np.zeros((rows, cols, 3), np.uint8)
    image[..., 2] = 255
    top, left = (rows - crop_rows) // 2, (cols - crop_cols) // 2
    image[top : top + crop_rows, left : left + crop_cols] = (255, 0, 0)
    photo = load_photo(write_rgb(tmp_path / "odd.png", image), IMAGE_SIZE)
    assert (photo == (255, 0, 0)).all()


@pytest.mark.parametrize(
    ("suffix", "params", "tolerance"),
    [
        (".png", [], 0.0),
        (".bmp", [], 0.0),
        (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95], 4.0),
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101], 0.0),
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 90], 4.0),
    ],
    ids=["png", "bmp", "jpeg", "webp-lossless", "webp-lossy"],
)
def test_every_supported_format_reads_back_as_rgb(suffix, params, tolerance, frames, tmp_path):
    photo = load_photo(write_rgb(tmp_path / f"frame{suffix}", frames[1], params), IMAGE_SIZE)
    assert np.abs(photo.astype(float) - frames[1]).mean() <= tolerance


def test_grayscale_16_bit_and_transparent_photos_become_plain_rgb(frames, tmp_path):
    gray = cv2.cvtColor(frames[2], cv2.COLOR_RGB2GRAY)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    np.testing.assert_array_equal(load_photo(tmp_path / "gray.png", IMAGE_SIZE), np.dstack([gray] * 3))

    cv2.imwrite(
        str(tmp_path / "deep.png"), cv2.cvtColor(frames[2], cv2.COLOR_RGB2BGR).astype(np.uint16) * 257
    )
    np.testing.assert_array_equal(load_photo(tmp_path / "deep.png", IMAGE_SIZE), frames[2])

    bgra = np.zeros((96, 128, 4), np.uint8)
    bgra[:, :64] = (0, 255, 0, 0)  # green, but fully transparent
    bgra[:, 64:] = (0, 0, 255, 255)  # opaque red
    cv2.imwrite(str(tmp_path / "cutout.png"), bgra)
    photo = load_photo(tmp_path / "cutout.png", IMAGE_SIZE)
    assert (photo[:, :64] == ALPHA_BACKGROUND).all()
    assert (photo[:, 64:] == (255, 0, 0)).all()


# --- add ------------------------------------------------------------------------------------------


def test_add_stores_the_mean_code_of_the_photos_with_a_thumbnail(model, photos, frames, tmp_path, capsys):
    big = write_rgb(tmp_path / "big.png", cv2.resize(frames[9], (640, 480), interpolation=cv2.INTER_CUBIC))
    before = bank_of(model)
    code, out, err = codes(
        capsys, "add", "--model", model, "--name", "my-outfit", *photos, big, "--device", "cpu"
    )
    assert code == 0, err
    assert "reconstruction L1" in out
    bundle = load_trained_model(model)  # the model still loads, bank.json included
    assert bundle.bank.names() == [*before.names(), "my-outfit"]
    for entry in before:
        np.testing.assert_array_equal(bundle.bank.get(entry.name).z, entry.z)
    added = bundle.bank.get("my-outfit")
    assert added.thumbnail.shape == (*THUMBNAIL_SHAPE, 3)
    cropped = [load_photo(path, IMAGE_SIZE) for path in [*photos, big]]
    np.testing.assert_array_equal(added.thumbnail, make_thumbnail(cropped[0]))
    np.testing.assert_allclose(added.z, encode_photos(bundle, cropped, "cpu"), atol=1e-5)
    assert added.source == "photo0.png, photo1.png, photo2.png, big.png"
    stored = json.loads((model / BANK_FILE).read_text())["codes"][-1]
    assert stored["name"] == "my-outfit"
    assert stored["thumbnail_png"]


def test_refine_code_lowers_the_reconstruction_error_and_leaves_the_model_as_it_was(tiny_model, photos):
    bundle = load_trained_model(tiny_model)
    images = [load_photo(path, IMAGE_SIZE) for path in photos[:2]]
    z = encode_photos(bundle, images, "cpu")
    weights = {name: tensor.clone() for name, tensor in bundle.networks.state_dict().items()}
    result = refine_code(bundle, images, z, steps=30, device="cpu")
    assert result.l1_before == pytest.approx(reconstruction_l1(bundle, images, z, "cpu"), abs=1e-5)
    assert result.l1_after < result.l1_before
    assert result.l1_after == pytest.approx(reconstruction_l1(bundle, images, result.z, "cpu"), abs=1e-5)
    assert result.z.shape == z.shape
    assert result.z.dtype == np.float32
    for name, tensor in bundle.networks.state_dict().items():
        assert torch.equal(tensor, weights[name]), f"{name} changed"
    for parameter in bundle.networks.parameters():
        assert parameter.requires_grad
        assert parameter.grad is None


def test_add_refine_prints_the_error_before_and_after_and_records_the_steps(model, photos, capsys):
    code, out, err = codes(
        capsys,
        "add",
        "--model",
        model,
        "--name",
        "refined",
        "--refine-steps",
        "3",
        "--device",
        "cpu",
        *photos,
    )
    assert code == 0, err
    (line,) = [line for line in out.splitlines() if line.startswith("reconstruction L1")]
    before, after = (float(value) for value in line.split(":")[1].split("->"))
    assert after <= before
    assert bank_of(model).get("refined").source.endswith("(refined 3 steps)")


def test_replace_overwrites_a_code_in_place_and_only_when_asked(model, photos, capsys):
    assert codes(capsys, "add", "--model", model, "--name", "mine", photos[0])[0] == 0
    first = bank_of(model)
    original = (model / BANK_FILE).read_bytes()
    code, _, err = codes(capsys, "add", "--model", model, "--name", "mine", photos[1])
    assert_one_line_error(code, err, "already exists", "--replace")
    assert (model / BANK_FILE).read_bytes() == original
    code, out, err = codes(capsys, "add", "--model", model, "--name", "mine", "--replace", photos[1])
    assert code == 0, err
    assert "replaced code 'mine'" in out
    second = bank_of(model)
    assert second.names() == first.names()
    assert not np.array_equal(second.get("mine").z, first.get("mine").z)
    assert second.get("mine").source == "photo1.png"


# --- rename and remove ----------------------------------------------------------------------------


def test_rename_keeps_the_code_and_its_place_and_remove_drops_it(model, capsys):
    before = bank_of(model)
    old = before.names()[0]
    code, _, err = codes(capsys, "rename", "--model", model, old, "renamed")
    assert code == 0, err
    renamed = bank_of(model)
    assert renamed.names() == ["renamed", *before.names()[1:]]
    np.testing.assert_array_equal(renamed.get("renamed").z, before.get(old).z)
    np.testing.assert_array_equal(renamed.get("renamed").thumbnail, before.get(old).thumbnail)
    code, _, err = codes(capsys, "remove", "--model", model, "renamed")
    assert code == 0, err
    assert bank_of(model).names() == before.names()[1:]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("remove", "nobody"), "no code named 'nobody'"),
        (("rename", "nobody", "someone"), "no code named 'nobody'"),
        (("rename", "FIRST", "SECOND"), "already exists"),
        (("rename", "FIRST", "../evil"), "invalid code name"),
    ],
)
def test_rename_and_remove_errors_leave_the_bank_untouched(args, fragment, model, capsys):
    names = bank_of(model).names()
    args = [names[0] if a == "FIRST" else names[1] if a == "SECOND" else a for a in args]
    original = (model / BANK_FILE).read_bytes()
    code, _, err = codes(capsys, args[0], "--model", model, *args[1:])
    assert_one_line_error(code, err, fragment)
    assert (model / BANK_FILE).read_bytes() == original


# --- hostile input --------------------------------------------------------------------------------


def png_declaring(cols: int, rows: int) -> bytes:
    """A PNG signature and IHDR claiming a huge image, followed by nothing a decoder could use."""
    ihdr = cols.to_bytes(4, "big") + rows.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + len(ihdr).to_bytes(4, "big") + b"IHDR" + ihdr + b"\0" * 64


def jpeg_claiming_width(path: Path, frame: np.ndarray, cols: int) -> bytes:
    data = bytearray(write_rgb(path, frame).read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 7 : sof + 9] = cols.to_bytes(2, "big")
    return bytes(data)


def webp_vp8x_declaring(cols: int, rows: int) -> bytes:
    body = b"VP8X" + (10).to_bytes(4, "little") + b"\0" * 4
    body += (cols - 1).to_bytes(3, "little") + (rows - 1).to_bytes(3, "little")
    return b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WEBP" + body


def make_hostile(kind: str, tmp_path: Path, frame: np.ndarray) -> Path:
    path = tmp_path / "photo.png"
    if kind == "text":
        path.write_text("I am not a picture\n")
    elif kind == "missing":
        path = tmp_path / "nowhere.png"
    elif kind == "directory":
        path.mkdir()
    elif kind == "declares-huge":
        path.write_bytes(png_declaring(100_000, 100_000))
    elif kind == "wider-than-8000":
        cv2.imwrite(str(path), np.zeros((32, 8001), np.uint8))
    elif kind == "jpeg-declares-9000":
        path = tmp_path / "photo.jpg"
        path.write_bytes(jpeg_claiming_width(tmp_path / "real.jpg", frame, 9000))
    elif kind == "webp-declares-9000":
        path = tmp_path / "photo.webp"
        path.write_bytes(webp_vp8x_declaring(9000, 9000))
    elif kind == "over-50-mb":
        with path.open("wb") as handle:  # sparse: costs no disk
            handle.truncate(MAX_PHOTO_BYTES + 1)
    elif kind == "truncated":
        path.write_bytes(write_rgb(tmp_path / "whole.png", frame).read_bytes()[:300])
    elif kind == "tiff":
        path = tmp_path / "photo.tiff"
        cv2.imwrite(str(path), frame)
    elif kind == "tiny":
        cv2.imwrite(str(path), np.zeros((8, 8, 3), np.uint8))
    return path


HOSTILE = {
    "text": "not a photo this command reads",
    "missing": "no such file",
    "directory": "not a regular file",
    "declares-huge": "100000x100000 pixels",
    "wider-than-8000": "8001x32 pixels",
    "jpeg-declares-9000": "9000x96 pixels",
    "webp-declares-9000": "9000x9000 pixels",
    "over-50-mb": "larger than 50 MB",
    "truncated": "not a decodable PNG",
    "tiff": "supported: PNG, JPEG, BMP, WebP",
    "tiny": "at least 32",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_photo_is_refused_on_one_line_and_the_bank_is_unchanged(
    kind, model, photos, tmp_path, capsys
):
    hostile = make_hostile(kind, tmp_path, load_photo(photos[0], IMAGE_SIZE))
    original = (model / BANK_FILE).read_bytes()
    code, out, err = codes(capsys, "add", "--model", model, "--name", "new", photos[0], hostile)
    assert_one_line_error(code, err, HOSTILE[kind], str(hostile))
    assert (model / BANK_FILE).read_bytes() == original
    assert "added" not in out


@pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden", "-dash", "x" * 65, ""])
def test_an_invalid_name_is_refused_and_the_bank_is_unchanged(name, model, photos, capsys):
    original = (model / BANK_FILE).read_bytes()
    code, _, err = codes(capsys, "add", "--model", model, f"--name={name}", photos[0])
    assert_one_line_error(code, err, "invalid code name")
    assert (model / BANK_FILE).read_bytes() == original


def test_a_broken_model_directory_is_refused(model, photos, capsys):
    weights = model / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-16])
    original = (model / BANK_FILE).read_bytes()
    code, _, err = codes(capsys, "add", "--model", model, "--name", "new", photos[0])
    assert_one_line_error(code, err, "weights.safetensors")
    assert (model / BANK_FILE).read_bytes() == original


def test_an_unknown_device_is_refused(model, photos, capsys):
    code, _, err = codes(capsys, "add", "--model", model, "--name", "new", "--device", "tpu", photos[0])
    assert_one_line_error(code, err, "device")


def test_a_model_whose_encoder_was_never_trained_cannot_add_but_still_lists(model, photos, capsys):
    description = json.loads((model / MODEL_JSON).read_text())
    description["training"]["inversion_steps"] = 0
    (model / MODEL_JSON).write_text(json.dumps(description))
    original = (model / BANK_FILE).read_bytes()
    code, _, err = codes(capsys, "add", "--model", model, "--name", "new", photos[0])
    assert_one_line_error(code, err, "inversion encoder was never trained")
    assert (model / BANK_FILE).read_bytes() == original
    assert codes(capsys, "list", "--model", model)[0] == 0


# --- the installed command ------------------------------------------------------------------------


def test_the_installed_command_lists_adds_and_reports_errors_on_one_line(model, photos):
    listed = thermal_synth("codes", "list", "--model", model)
    assert listed.returncode == 0, listed.stderr
    assert all(name in listed.stdout for name in bank_of(model).names())
    added = thermal_synth("codes", "add", "--model", model, "--name", "cli-made", "--device", "cpu", *photos)
    assert added.returncode == 0, added.stderr
    assert "cli-made" in bank_of(model)
    original = (model / BANK_FILE).read_bytes()
    refused = thermal_synth("codes", "add", "--model", model, "--name", "../evil", photos[0])
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"{ERROR_PREFIX}: error: invalid code name")
    assert refused.stderr.count("\n") == 1
    assert (model / BANK_FILE).read_bytes() == original


def test_add_sessions_enrols_one_code_per_appearance_of_a_split_as_add_encodes_a_photo(
    model, sim_dataset, capsys
):
    code, out, err = codes(
        capsys,
        "add-sessions",
        "--model",
        model,
        sim_dataset,
        "--split",
        "heldout",
        "--clear",
        "--device",
        "cpu",
    )
    assert code == 0, err
    reader = ShardReader(sim_dataset)
    data = reader.load_split("heldout", ["rgb", "session"])
    sessions = np.unique(data["session"])
    expected = list(dict.fromkeys(appearance_name(reader.sessions[s]) for s in sessions))
    bundle = load_trained_model(model)
    assert bundle.bank.names() == expected
    assert f"added {len(expected)} codes" in out
    first = np.flatnonzero(data["session"] == sessions[0])
    photo = data["rgb"][first[first.size // 2]]
    entry = bundle.bank.get(expected[0])
    np.testing.assert_allclose(entry.z, encode_photos(bundle, [photo], "cpu"), atol=1e-5)
    np.testing.assert_array_equal(entry.thumbnail, make_thumbnail(photo))
    missing, _, err = codes(
        capsys, "add-sessions", "--model", model, sim_dataset / "absent", "--device", "cpu"
    )
    assert missing == 2
    assert bank_of(model).names() == expected  # a failed enrolment leaves the bank as it was
