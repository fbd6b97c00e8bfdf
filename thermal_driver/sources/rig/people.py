"""Who sits in front of the rig and what they wear.

The GAN must learn appearance from a 12x16 heatmap, so what it can tell apart there matters most:
silhouette (shoulder width, head size, hair volume, hood), vertical position, and warm skin vs.
cool hair, glasses and clothing. Identities and wardrobes vary exactly those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RGB = tuple[int, int, int]
HairStyle = Literal["short", "long", "bob", "bald", "bun", "curly"]
GarmentKind = Literal["tshirt", "collar_shirt", "sweater", "hoodie"]
Pattern = Literal["plain", "stripes", "checks"]


@dataclass(frozen=True)
class Identity:
    """Body proportions are in metres at the person's plane; the camera model turns them into pixels."""

    name: str
    shoulder_half_width_m: float
    head_width_m: float
    head_height_m: float
    neck_width_m: float
    shoulder_drop_m: float
    """Shoulder line below the cameras' optical axis: a tall person sits higher in the frame."""
    skin_rgb: RGB
    hair_style: HairStyle
    hair_rgb: RGB
    glasses: bool
    beard: bool
    skin_offset_c: float
    """Individual skin temperature offset (metabolism, circulation), small enough to stay in 33-35.5 C."""


@dataclass(frozen=True)
class Outfit:
    """`insulation_clo` sets how much of the skin's warmth reaches the fabric surface the Lepton sees."""

    name: str
    kind: GarmentKind
    long_sleeves: bool
    hood_up: bool
    strings: bool
    pattern: Pattern
    main_rgb: RGB
    accent_rgb: RGB
    insulation_clo: float
    emissivity: float


IDENTITIES: tuple[Identity, ...] = (
    Identity(
        "Amara", 0.205, 0.150, 0.225, 0.105, 0.14, (112, 74, 52), "curly", (28, 22, 20), False, False, 0.2
    ),
    Identity(
        "Lukas", 0.220, 0.155, 0.235, 0.115, 0.10, (236, 196, 168), "short", (196, 160, 96), True, False, 0.0
    ),
    Identity(
        "Mei", 0.180, 0.140, 0.215, 0.095, 0.17, (228, 190, 156), "long", (20, 18, 20), False, False, 0.3
    ),
    Identity(
        "Ravi", 0.210, 0.152, 0.230, 0.112, 0.13, (166, 116, 82), "short", (30, 26, 24), True, True, -0.1
    ),
    Identity(
        "Sofia", 0.185, 0.145, 0.220, 0.098, 0.15, (206, 160, 122), "bun", (74, 46, 30), False, False, 0.1
    ),
    Identity(
        "Kwame", 0.228, 0.160, 0.238, 0.120, 0.11, (86, 57, 42), "bald", (40, 30, 26), True, False, -0.2
    ),
    Identity(
        "Ingrid", 0.178, 0.142, 0.218, 0.096, 0.16, (242, 208, 188), "long", (150, 70, 38), True, False, 0.0
    ),
    Identity(
        "Diego", 0.212, 0.150, 0.228, 0.112, 0.12, (196, 146, 106), "short", (58, 40, 28), False, True, 0.2
    ),
    Identity(
        "Hana", 0.182, 0.143, 0.216, 0.097, 0.15, (232, 198, 168), "bob", (36, 28, 26), True, False, -0.1
    ),
    Identity(
        "Tom", 0.215, 0.156, 0.236, 0.116, 0.13, (226, 180, 154), "short", (170, 168, 164), True, False, -0.3
    ),
)


@dataclass(frozen=True)
class _Design:
    name: str
    kind: GarmentKind
    long_sleeves: bool
    hood_up: bool
    strings: bool
    pattern: Pattern
    insulation_clo: float


_DESIGNS: dict[str, _Design] = {
    d.name: d
    for d in (
        _Design("t-shirt", "tshirt", False, False, False, "plain", 0.10),
        _Design("striped t-shirt", "tshirt", False, False, False, "stripes", 0.10),
        _Design("long-sleeve tee", "tshirt", True, False, False, "plain", 0.16),
        _Design("oxford shirt", "collar_shirt", True, False, False, "plain", 0.20),
        _Design("checked shirt", "collar_shirt", True, False, False, "checks", 0.24),
        _Design("short-sleeve shirt", "collar_shirt", False, False, False, "plain", 0.14),
        _Design("sweater", "sweater", True, False, False, "plain", 0.55),
        _Design("striped sweater", "sweater", True, False, False, "stripes", 0.55),
        _Design("hoodie", "hoodie", True, False, True, "plain", 0.50),
        _Design("hoodie, hood up", "hoodie", True, True, True, "plain", 0.50),
        _Design("short-sleeve hoodie, hood up", "hoodie", False, True, True, "plain", 0.42),
        _Design("zip hoodie", "hoodie", True, False, False, "plain", 0.45),
    )
}

_COLOURWAYS: dict[str, tuple[RGB, RGB]] = {
    "navy": ((34, 42, 78), (205, 205, 212)),
    "charcoal": ((56, 56, 62), (150, 150, 152)),
    "heather grey": ((150, 150, 156), (84, 86, 96)),
    "white": ((236, 236, 230), (44, 64, 128)),
    "black": ((26, 26, 30), (196, 196, 196)),
    "burgundy": ((112, 28, 38), (222, 204, 182)),
    "forest": ((34, 82, 48), (214, 194, 146)),
    "mustard": ((204, 152, 44), (64, 52, 40)),
    "sky": ((124, 172, 222), (246, 246, 246)),
    "red": ((184, 38, 38), (32, 32, 34)),
}

_WARDROBES: tuple[tuple[tuple[str, str], ...], ...] = (
    (
        ("mustard", "t-shirt"),
        ("forest", "checked shirt"),
        ("charcoal", "hoodie, hood up"),
        ("white", "sweater"),
    ),
    (
        ("navy", "oxford shirt"),
        ("heather grey", "hoodie"),
        ("red", "striped t-shirt"),
        ("black", "zip hoodie"),
    ),
    (("white", "striped sweater"), ("black", "t-shirt"), ("sky", "long-sleeve tee"), ("burgundy", "hoodie")),
    (
        ("sky", "oxford shirt"),
        ("charcoal", "sweater"),
        ("navy", "short-sleeve hoodie, hood up"),
        ("white", "t-shirt"),
    ),
    (
        ("burgundy", "sweater"),
        ("white", "short-sleeve shirt"),
        ("navy", "striped t-shirt"),
        ("forest", "hoodie"),
    ),
    (
        ("black", "hoodie, hood up"),
        ("red", "checked shirt"),
        ("heather grey", "t-shirt"),
        ("navy", "sweater"),
    ),
    (("forest", "striped sweater"), ("mustard", "long-sleeve tee"), ("white", "oxford shirt")),
    (("heather grey", "short-sleeve hoodie, hood up"), ("navy", "checked shirt"), ("black", "t-shirt")),
    (("red", "sweater"), ("sky", "t-shirt"), ("charcoal", "zip hoodie"), ("white", "checked shirt")),
    (("charcoal", "oxford shirt"), ("burgundy", "striped sweater"), ("heather grey", "hoodie, hood up")),
)

FABRIC_EMISSIVITY = 0.95
"""Textiles are near-black in LWIR whatever their visible colour, which is why RGB colour is unrecoverable."""


def outfits_of(identity: int) -> tuple[Outfit, ...]:
    """Each person owns a wardrobe, so a session's clothes are plausible for its wearer."""
    outfits = []
    for colour, design_name in _WARDROBES[identity]:
        design = _DESIGNS[design_name]
        main, accent = _COLOURWAYS[colour]
        outfits.append(
            Outfit(
                name=f"{colour} {design.name}",
                kind=design.kind,
                long_sleeves=design.long_sleeves,
                hood_up=design.hood_up,
                strings=design.strings,
                pattern=design.pattern,
                main_rgb=main,
                accent_rgb=accent,
                insulation_clo=design.insulation_clo,
                emissivity=FABRIC_EMISSIVITY,
            )
        )
    return tuple(outfits)
