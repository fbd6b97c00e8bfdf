"""`thermal-synth codes`: list, add, rename and remove the appearances in a model's latent bank.

`add` turns a user's own photos into a code with the inversion encoder, optionally refined by a
short optimisation of z against those photos, so a new appearance needs no retraining (the
paper's admitted limit). Photos are untrusted files: their size, format and declared pixel
dimensions are checked before any decoder sees them, and only PNG, JPEG, BMP and WebP are read,
which keeps the rarely exercised decoders OpenCV also carries (TIFF, JPEG 2000, HDR, ...) out of
reach of a stranger's file.

Only the bank file changes, atomically and only once every photo was read and encoded, so an
error leaves bank.json byte-identical and a running node never sees half an edit.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
from tqdm import tqdm

from thermal_synth.common.cli_args import EXIT_INTERRUPTED, EXIT_USAGE, integer, use_one_line_errors
from thermal_synth.common.contact_sheet import captioned_grid, check_png_path, draw_text, encode_png
from thermal_synth.dataset.shards import ShardFormatError, ShardReader, appearance_name
from thermal_synth.engine.inference import SynthesisEngine, select_device, to_tensor_images
from thermal_synth.model.bank import (
    THUMBNAIL_SHAPE,
    LatentBank,
    LatentBankError,
    LatentCode,
    check_name,
    make_thumbnail,
)
from thermal_synth.model.files import ModelBundle, ModelFileError, load_trained_model

PROG = "thermal-synth codes"
EXIT_ERROR = 1
MAX_PHOTO_BYTES = 50 << 20
MAX_PHOTO_SIDE = 8000
MIN_PHOTO_SIDE = 32
"""Below this a photo cannot show a person's clothing; it is almost certainly the wrong file."""
PHOTO_FORMATS = "PNG, JPEG, BMP, WebP"
ALPHA_BACKGROUND = 128
"""Transparent pixels become mid-grey, the encoder's zero input, so they sway the code least."""
DEFAULT_REFINE_STEPS = 200
MAX_REFINE_STEPS = 10_000
REFINE_LEARNING_RATE = 0.05
PRIOR_WEIGHT = 0.05
"""Weight of (|z|^2 / z_dim - 1)^2: small next to the L1, enough to keep z where G was trained."""
SHEET_SCALE = 2
SHEET_COLUMNS = 6
SHEET_CELL_WIDTH = 160
SHEET_TEXT_LINES = 3
_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
"""Start-of-frame markers (they carry the size); C4, C8 and CC are tables and a reserved code."""


class CodesError(ValueError):
    """Bad user input (a photo, a name, a model): reported on one line with exit code 2."""


class Refinement(NamedTuple):
    z: np.ndarray
    """(z_dim,) float32, the refined code."""
    l1_before: float
    """Mean absolute error on [0, 1] pixels of G(z, h) against the photos, before refining."""
    l1_after: float


# --- photos ---------------------------------------------------------------------------------------


def load_photo(path: str | Path, image_size: tuple[int, int]) -> np.ndarray:
    """An untrusted photo file -> (rows, cols, 3) uint8 RGB at the model's image size.

    Centre-cropped to the model's aspect first, so a portrait phone photo is not squashed into
    a landscape frame, then pixel-averaged as the training images were (cv2.INTER_AREA).
    """
    path = Path(path)
    data = _read_photo_bytes(path)
    kind, rows, cols = _declared_size(path, data)
    if max(rows, cols) > MAX_PHOTO_SIDE:
        raise CodesError(f"{path}: {cols}x{rows} pixels; photos may have at most {MAX_PHOTO_SIDE} a side")
    if min(rows, cols) < MIN_PHOTO_SIDE:
        raise CodesError(f"{path}: {cols}x{rows} pixels; photos need at least {MIN_PHOTO_SIDE} a side")
    # JPEG is decoded to colour so its EXIF orientation is applied (phone photos rely on it); the
    # other formats keep their alpha channel, which is composited rather than dropped.
    flags = cv2.IMREAD_COLOR if kind == "JPEG" else cv2.IMREAD_UNCHANGED
    with _quiet_opencv():
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None or image.size == 0:
        raise CodesError(f"{path}: not a decodable {kind} image (corrupt or truncated)")
    if max(image.shape[:2]) > MAX_PHOTO_SIDE:
        raise CodesError(f"{path}: decodes to {image.shape[1]}x{image.shape[0]} pixels, more than declared")
    return _fit_to_model(_to_rgb(path, image), image_size)


def _read_photo_bytes(path: Path) -> bytes:
    if not path.exists():
        raise CodesError(f"{path}: no such file")
    if not path.is_file():
        raise CodesError(f"{path}: not a regular file")
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            # Bounded even if the file grew since stat(): never more than one byte over the limit.
            data = handle.read(MAX_PHOTO_BYTES + 1) if size <= MAX_PHOTO_BYTES else b""
    except OSError as error:
        raise CodesError(f"{path}: cannot read ({error.strerror or error})") from None
    if size > MAX_PHOTO_BYTES or len(data) > MAX_PHOTO_BYTES:
        raise CodesError(f"{path}: larger than {MAX_PHOTO_BYTES >> 20} MB; not accepted as a photo")
    return data


def _declared_size(path: Path, data: bytes) -> tuple[str, int, int]:
    """(format, rows, cols) from the file header, so a tiny file cannot make the decoder allocate
    gigabytes; anything that is not one of PHOTO_FORMATS is refused here."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        if data[12:16] != b"IHDR" or len(data) < 24:
            raise CodesError(f"{path}: PNG without a complete header (corrupt or truncated)")
        return "PNG", _big(data, 20, 4), _big(data, 16, 4)
    if data.startswith(b"\xff\xd8"):
        return "JPEG", *_jpeg_size(path, data)
    if data.startswith(b"BM") and len(data) >= 26:
        header_bytes = _little(data, 14, 4)
        if header_bytes == 12:
            return "BMP", _little(data, 20, 2), _little(data, 18, 2)
        if header_bytes >= 40:
            cols = int.from_bytes(data[18:22], "little", signed=True)
            rows = int.from_bytes(data[22:26], "little", signed=True)
            return "BMP", abs(rows), abs(cols)
        raise CodesError(f"{path}: unknown BMP header; not a readable photo")
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP" and len(data) >= 30:
        return "WebP", *_webp_size(path, data)
    raise CodesError(f"{path}: not a photo this command reads (supported: {PHOTO_FORMATS})")


def _jpeg_size(path: Path, data: bytes) -> tuple[int, int]:
    index = 2
    while index + 4 <= len(data):
        if data[index] != 0xFF:
            break
        marker = data[index + 1]
        if marker == 0xFF:
            index += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            index += 2
            continue
        if marker in (0xD9, 0xDA):
            break
        if marker in _JPEG_SOF_MARKERS and index + 9 <= len(data):
            rows, cols = _big(data, index + 5, 2), _big(data, index + 7, 2)
            if rows == 0:
                raise CodesError(f"{path}: JPEG without a declared height; not accepted as a photo")
            return rows, cols
        index += 2 + _big(data, index + 2, 2)
    raise CodesError(f"{path}: JPEG header without a frame size (corrupt or truncated)")


def _webp_size(path: Path, data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        return _little(data, 28, 2) & 0x3FFF, _little(data, 26, 2) & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = _little(data, 21, 4)
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    if chunk == b"VP8X":
        return _little(data, 27, 3) + 1, _little(data, 24, 3) + 1
    raise CodesError(f"{path}: unknown WebP header; not a readable photo")


def _big(data: bytes, offset: int, length: int) -> int:
    return int.from_bytes(data[offset : offset + length], "big")


def _little(data: bytes, offset: int, length: int) -> int:
    return int.from_bytes(data[offset : offset + length], "little")


@contextmanager
def _quiet_opencv() -> Iterator[None]:
    """A corrupt file makes OpenCV log warnings on stderr; the user gets our one-line error instead."""
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(level)


def _to_rgb(path: Path, image: np.ndarray) -> np.ndarray:
    """Whatever the decoder returned (gray, gray+alpha, BGR, BGRA; 8 or 16 bit) -> uint8 RGB."""
    if image.dtype == np.uint16:
        image = np.round(image / 257.0).astype(np.uint8)
    if image.dtype != np.uint8:
        raise CodesError(f"{path}: {image.dtype} pixels; only 8- and 16-bit photos are read")
    if image.ndim == 2:
        image = image[:, :, None]
    channels = image.shape[2]
    if channels in (2, 4):
        alpha = image[:, :, -1:].astype(np.float32) / 255.0
        colour = image[:, :, :-1].astype(np.float32)
        image = np.round(colour * alpha + ALPHA_BACKGROUND * (1.0 - alpha)).astype(np.uint8)
        channels -= 1
    if channels == 1:
        return np.repeat(image, 3, axis=2)
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    raise CodesError(f"{path}: {image.shape[2]} colour channels; not a photo")


def _fit_to_model(rgb: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    rows, cols = rgb.shape[:2]
    target_rows, target_cols = image_size
    if rows * target_cols > cols * target_rows:
        crop_rows, crop_cols = max(1, round(cols * target_rows / target_cols)), cols
    else:
        crop_rows, crop_cols = rows, max(1, round(rows * target_cols / target_rows))
    top, left = (rows - crop_rows) // 2, (cols - crop_cols) // 2
    cropped = np.ascontiguousarray(rgb[top : top + crop_rows, left : left + crop_cols])
    return cv2.resize(cropped, (target_cols, target_rows), interpolation=cv2.INTER_AREA)


# --- codes from photos ----------------------------------------------------------------------------


def encode_photos(bundle: ModelBundle, photos: Sequence[np.ndarray], device: str = "auto") -> np.ndarray:
    """The mean of the inversion encoder's codes: one appearance seen in several photos is one
    code, and averaging cancels what differs between the photos (pose, framing). A spatial code
    is a map of the photo, and a mean of maps of several poses is a blur: it is the first photo's."""
    if len(photos) == 0:
        raise CodesError("no photos to encode")
    if bundle.config.spatial_code:
        photos = photos[:1]
    codes = SynthesisEngine(bundle, device).encode(np.stack(photos))
    return codes.mean(axis=0).astype(np.float32)


def reconstruction_l1(
    bundle: ModelBundle, photos: Sequence[np.ndarray], z: np.ndarray, device: str = "auto"
) -> float:
    """Mean |G(z, h_i) - x_i| on [0, 1] pixels, h_i read from each photo by the discriminator."""
    target = select_device(str(device))
    with _frozen_on(bundle, target), torch.no_grad():
        images, heatmaps = _targets(bundle, photos, target)
        code = torch.as_tensor(z, dtype=torch.float32, device=target)[None]
        painted = bundle.networks.generator(code.expand(len(images), -1), heatmaps)
        return float((painted - images).abs().mean()) / 2.0


def refine_code(
    bundle: ModelBundle,
    photos: Sequence[np.ndarray],
    z: np.ndarray,
    steps: int = DEFAULT_REFINE_STEPS,
    device: str = "auto",
    *,
    learning_rate: float = REFINE_LEARNING_RATE,
    prior_weight: float = PRIOR_WEIGHT,
    progress: bool = False,
) -> Refinement:
    """Optimises one z so that G(z, h_i) reproduces every photo x_i; G and D stay frozen.

    The encoder only approximates G's inverse (the paper's "wrong colours after inversion");
    a few hundred Adam steps on z close much of that gap without retraining anything. A photo
    has no thermal frame, so h_i is the discriminator's reading of the photo, the same heatmap
    space G was trained on. The prior term keeps |z|^2 / z_dim near 1: far outside the shell
    where N(0, I) codes live, G paints artefacts that happen to fit these photos but nothing else.
    The returned z is the best one seen (lowest objective), so refining never makes a code worse.
    """
    if steps < 0:
        raise CodesError(f"refine steps must be >= 0, got {steps}")
    if bundle.config.spatial_code:
        raise CodesError(
            "this model's codes are maps read straight from the photo (spatial codes); there is "
            "nothing to refine: add the photo without --refine"
        )
    target = select_device(str(device))
    generator, z_dim = bundle.networks.generator, bundle.config.z_dim
    with _frozen_on(bundle, target), torch.enable_grad():
        with torch.no_grad():
            images, heatmaps = _targets(bundle, photos, target)
        code = torch.tensor(np.asarray(z, dtype=np.float32)[None], device=target, requires_grad=True)
        optimiser = torch.optim.Adam([code], lr=learning_rate)
        best_objective, best_z, best_l1 = math.inf, code.detach().clone(), math.nan
        l1_before = math.nan
        for step in tqdm(range(steps + 1), desc="refine", unit="step", disable=not progress):
            painted = generator(code.expand(len(images), -1), heatmaps)
            l1 = (painted - images).abs().mean()
            objective = l1 + prior_weight * (code.square().sum() / z_dim - 1.0).square()
            if step == 0:
                l1_before = l1.item() / 2.0
            if objective.item() < best_objective:
                best_objective, best_z, best_l1 = objective.item(), code.detach().clone(), l1.item() / 2.0
            if step == steps:
                break
            optimiser.zero_grad(set_to_none=True)
            objective.backward()
            optimiser.step()
    return Refinement(best_z[0].cpu().numpy().astype(np.float32), l1_before, best_l1)


def _targets(
    bundle: ModelBundle, photos: Sequence[np.ndarray], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The photos in [-1, 1] and the heatmaps the discriminator reads from them."""
    if len(photos) == 0:
        raise CodesError("no photos to compare the code with")
    images = to_tensor_images(np.stack(photos), device)
    return images, bundle.networks.discriminator(images)[1].detach()


@contextmanager
def _frozen_on(bundle: ModelBundle, device: torch.device) -> Iterator[None]:
    """Generator and discriminator on `device`, in eval mode and without parameter gradients.

    Modes and gradient flags are restored afterwards, so refining neither updates BatchNorm
    statistics nor leaves gradients on the caller's model; the networks stay on `device`, as
    SynthesisEngine leaves them.
    """
    networks = [bundle.networks.generator, bundle.networks.discriminator]
    modes = [network.training for network in networks]
    flags = [[p.requires_grad for p in network.parameters()] for network in networks]
    for network in networks:
        network.to(device).eval().requires_grad_(False)
    try:
        yield
    finally:
        for network, mode, network_flags in zip(networks, modes, flags, strict=True):
            network.train(mode)
            for parameter, flag in zip(network.parameters(), network_flags, strict=True):
                parameter.requires_grad_(flag)


# --- listing --------------------------------------------------------------------------------------


def format_table(bank: LatentBank) -> str:
    if len(bank) == 0:
        return "(the bank is empty)"
    rows = [(code.name, code.source or "-", f"{float(np.linalg.norm(code.z)):.2f}") for code in bank]
    header = ("NAME", "SOURCE", "|z|")
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(3)]
    lines = [
        f"{name:<{widths[0]}}  {source:<{widths[1]}}  {norm:>{widths[2]}}"
        for name, source, norm in (header, *rows)
    ]
    lines.append(f"(codes drawn from N(0, I) have |z| near sqrt({bank.z_dim}) = {math.sqrt(bank.z_dim):.1f})")
    return "\n".join(lines)


def contact_sheet(bank: LatentBank) -> np.ndarray:
    """(rows, cols, 3) uint8 RGB: every code's thumbnail, enlarged SHEET_SCALE times, with its name."""
    codes = list(bank)
    shape = _thumbnail_shape(codes)
    return captioned_grid(
        [_sheet_tile(code, shape) for code in codes],
        [[code.name] for code in codes],
        columns=SHEET_COLUMNS,
        caption_lines=SHEET_TEXT_LINES,
        min_cell_width=SHEET_CELL_WIDTH,
        empty_text="(empty bank)",
    )


def _sheet_tile(code: LatentCode, shape: tuple[int, int]) -> np.ndarray:
    if code.thumbnail is None:
        tile = np.full((shape[0] * SHEET_SCALE, shape[1] * SHEET_SCALE, 3), 200, np.uint8)
        draw_text(tile, "no photo", (4, tile.shape[0] // 2))
        return tile
    return _enlarge(code.thumbnail, shape)


def _thumbnail_shape(codes: Sequence[LatentCode]) -> tuple[int, int]:
    """Codes from another tool may carry another thumbnail size: the sheet uses the largest."""
    shapes = [code.thumbnail.shape[:2] for code in codes if code.thumbnail is not None]
    return tuple(max(sizes) for sizes in zip(*shapes, strict=True)) if shapes else THUMBNAIL_SHAPE


def _enlarge(thumbnail: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    rows, cols = shape
    if thumbnail.shape[:2] != shape:
        thumbnail = cv2.resize(thumbnail, (cols, rows), interpolation=cv2.INTER_AREA)
    return np.repeat(np.repeat(thumbnail, SHEET_SCALE, axis=0), SHEET_SCALE, axis=1)


def write_png(path: Path, rgb: np.ndarray) -> None:
    try:
        check_png_path(path)
        png = encode_png(rgb)
    except ValueError as error:
        raise CodesError(str(error)) from None
    path.write_bytes(png)


# --- command line ---------------------------------------------------------------------------------


def add_parser(commands: argparse._SubParsersAction, name: str, help: str) -> None:
    parser = commands.add_parser(
        name,
        help=help,
        description="Manage the latent bank (bank.json) of a model directory: the appearances a "
        "call can switch between. `add` makes a new appearance from your own photos.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    model_help = "model directory (default: the packaged default model)"

    listing = actions.add_parser("list", help="show the codes: name, source, |z|")
    listing.add_argument("--model", type=Path, metavar="DIR", help=model_help)
    listing.add_argument("--sheet", type=Path, metavar="OUT.png", help="also write a contact sheet PNG")
    listing.set_defaults(run=run_list)

    adding = actions.add_parser(
        "add",
        help="add a code made from photos of one appearance",
        description="Encode photos of one appearance (same person, clothes and room) into one code. "
        f"Photos: {PHOTO_FORMATS}, at most {MAX_PHOTO_BYTES >> 20} MB and {MAX_PHOTO_SIDE} px a side; "
        "they are centre-cropped to the model's aspect.",
    )
    adding.add_argument("--model", type=Path, metavar="DIR", help=model_help)
    adding.add_argument("--name", required=True, help="name of the new code")
    adding.add_argument("photos", nargs="+", type=Path, metavar="PHOTO", help="photo files")
    adding.add_argument(
        "--refine", action="store_true", help="optimise the code against the photos (closer, slower)"
    )
    adding.add_argument(
        "--refine-steps",
        type=_refine_steps,
        metavar="N",
        help=f"optimisation steps; implies --refine (default {DEFAULT_REFINE_STEPS})",
    )
    adding.add_argument("--replace", action="store_true", help="overwrite a code of the same name")
    adding.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    adding.set_defaults(run=run_add)

    sessions = actions.add_parser(
        "add-sessions",
        help="add one code per appearance of a recorded or simulated dataset's split",
        description="Enrol the appearances of a shard dataset (`thermal-synth sim` or `dataset "
        "build`): for each identity + outfit + room of the split, its first session's middle frame "
        "is the photo, encoded exactly as `add` encodes a photo file. The packaged default model's "
        "bank is made this way from the held-out identities of the simulated rig.",
    )
    sessions.add_argument("--model", type=Path, metavar="DIR", help=model_help)
    sessions.add_argument("data", type=Path, metavar="DATASET", help="shard dataset directory")
    sessions.add_argument("--split", default="heldout", help="train, test or heldout (default heldout)")
    sessions.add_argument("--clear", action="store_true", help="remove every existing code first")
    sessions.add_argument("--replace", action="store_true", help="overwrite codes of the same names")
    sessions.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    sessions.set_defaults(run=run_add_sessions)

    removing = actions.add_parser("remove", help="remove a code")
    removing.add_argument("--model", type=Path, metavar="DIR", help=model_help)
    removing.add_argument("name", metavar="NAME")
    removing.set_defaults(run=run_remove)

    renaming = actions.add_parser("rename", help="rename a code")
    renaming.add_argument("--model", type=Path, metavar="DIR", help=model_help)
    renaming.add_argument("old", metavar="OLD")
    renaming.add_argument("new", metavar="NEW")
    renaming.set_defaults(run=run_rename)

    for each in (parser, listing, adding, sessions, removing, renaming):
        use_one_line_errors(each)


def _refine_steps(text: str) -> int:
    steps = integer(text)
    if not 1 <= steps <= MAX_REFINE_STEPS:
        raise argparse.ArgumentTypeError(f"must be in 1..{MAX_REFINE_STEPS}, got {text!r}")
    return steps


def _guarded(action: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], int]:
    """One place for the error contract: bad input is one line and exit 2, a machine that cannot
    write (read-only install, full disk) exit 1; the bank is saved last, so it is unchanged."""

    def run(args: argparse.Namespace) -> int:
        try:
            action(args)
        except (CodesError, LatentBankError) as error:
            print(f"{PROG}: error: {error}", file=sys.stderr)
            return EXIT_USAGE
        except OSError as error:
            print(f"{PROG}: error: {error}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted; the bank is unchanged", file=sys.stderr)
            return EXIT_INTERRUPTED
        return 0

    return run


def _load(model: Path | None) -> ModelBundle:
    try:
        return load_trained_model(model)
    except ModelFileError as error:
        raise CodesError(str(error)) from None


def _encoding_model(args: argparse.Namespace) -> tuple[str, ModelBundle]:
    """The device and the model of an action that turns photos into codes (`add`, `add-sessions`)."""
    try:
        device = str(select_device(args.device))
    except ValueError as error:
        raise CodesError(str(error)) from None
    bundle = _load(args.model)
    if not bundle.training.encoder_trained:
        raise CodesError(
            f"{bundle.directory}: this model's inversion encoder was never trained (0 inversion "
            "steps), so it cannot turn photos into codes; train it with inversion steps"
        )
    return device, bundle


@_guarded
def run_list(args: argparse.Namespace) -> None:
    bundle = _load(args.model)
    print(f"{len(bundle.bank)} codes in {bundle.bank_path}")
    print(format_table(bundle.bank))
    if args.sheet is not None:
        write_png(args.sheet, contact_sheet(bundle.bank))
        print(f"contact sheet: {args.sheet}")


@_guarded
def run_add(args: argparse.Namespace) -> None:
    name = check_name(args.name)
    device, bundle = _encoding_model(args)
    replacing = name in bundle.bank
    if replacing and not args.replace:
        raise CodesError(f"a code named {name!r} already exists (remove it first, or --replace)")
    photos = [load_photo(path, bundle.config.image_size) for path in args.photos]
    z = encode_photos(bundle, photos, device)
    source = ", ".join(path.name for path in args.photos)
    if bundle.config.spatial_code and len(photos) > 1:
        source = args.photos[0].name
        print(f"this model reads its code as a map from one photo: using {source}, the first")
    if args.refine or args.refine_steps is not None:
        steps = args.refine_steps or DEFAULT_REFINE_STEPS
        result = refine_code(bundle, photos, z, steps, device, progress=sys.stderr.isatty())
        z, source = result.z, f"{source} (refined {steps} steps)"
        print(f"reconstruction L1 (0..1 pixels): {result.l1_before:.4f} -> {result.l1_after:.4f}")
    elif not bundle.config.spatial_code:
        print(f"reconstruction L1 (0..1 pixels): {reconstruction_l1(bundle, photos, z, device):.4f}")
    bundle.bank.add(LatentCode(name, z, make_thumbnail(photos[0]), source), replace=args.replace)
    bundle.bank.save(bundle.bank_path)
    print(
        f"{'replaced' if replacing else 'added'} code {name!r} from {len(photos)} photo(s) "
        f"(|z| = {float(np.linalg.norm(z)):.2f}); the bank now holds {len(bundle.bank)} codes"
    )


def session_photos(data: Path, split: str) -> list[tuple[str, np.ndarray, str]]:
    """(appearance name, photo, source) for each appearance of a dataset split, in session order."""
    try:
        reader = ShardReader(data)
        arrays = reader.load_split(split, ["rgb", "session"])
    except (ShardFormatError, ValueError, OSError) as error:
        raise CodesError(f"{data}: {error}") from None
    photos: dict[str, tuple[np.ndarray, str]] = {}
    for session_index in np.unique(arrays["session"]):
        name = appearance_name(reader.sessions[session_index])
        rows = np.flatnonzero(arrays["session"] == session_index)
        if name not in photos:
            middle = rows[rows.size // 2]
            photos[name] = (arrays["rgb"][middle], f"{data.name} {split} session {session_index}")
    if not photos:
        raise CodesError(f"{data}: the {split} split holds no frames")
    return [(name, photo, source) for name, (photo, source) in photos.items()]


@_guarded
def run_add_sessions(args: argparse.Namespace) -> None:
    device, bundle = _encoding_model(args)
    entries = session_photos(args.data, args.split)
    if args.clear:
        for name in bundle.bank.names():
            bundle.bank.remove(name)
    for name, frame, source in entries:
        photo = _fit_to_model(frame, bundle.config.image_size)
        z = encode_photos(bundle, [photo], device)
        bundle.bank.add(LatentCode(name, z, make_thumbnail(photo), source), replace=args.replace)
    bundle.bank.save(bundle.bank_path)
    print(
        f"added {len(entries)} codes from {args.data} ({args.split}); the bank now holds {len(bundle.bank)}"
    )


@_guarded
def run_remove(args: argparse.Namespace) -> None:
    bundle = _load(args.model)
    bundle.bank.remove(args.name)
    bundle.bank.save(bundle.bank_path)
    print(f"removed code {args.name!r}; the bank now holds {len(bundle.bank)} codes")


@_guarded
def run_rename(args: argparse.Namespace) -> None:
    bundle = _load(args.model)
    bundle.bank.rename(args.old, args.new)
    bundle.bank.save(bundle.bank_path)
    print(f"renamed code {args.old!r} to {args.new!r}")
