"""Units on the wire: centi-Kelvin (uint16) raw, degrees Celsius (float32) downsampled, stamps in ns."""

import numpy as np

ZERO_CELSIUS_CK = 27315
"""0 degC in centi-Kelvin: the Lepton's TLinear output and the PureThermal Y16 stream use this unit."""


def kelvin_to_celsius(kelvin: float) -> float:
    return kelvin - ZERO_CELSIUS_CK / 100


def centikelvin_to_celsius(centikelvin: np.ndarray) -> np.ndarray:
    return (np.asarray(centikelvin, dtype=np.float32) - ZERO_CELSIUS_CK) / np.float32(100.0)


def celsius_to_centikelvin(celsius: np.ndarray | float) -> np.ndarray:
    """Rounds to the nearest 0.01 K and clips to the uint16 range instead of wrapping around."""
    centikelvin = np.rint(np.asarray(celsius, dtype=np.float64) * 100.0 + ZERO_CELSIUS_CK)
    return np.clip(centikelvin, 0, np.iinfo(np.uint16).max).astype(np.uint16)


def stamp_ns(stamp) -> int:
    """A header stamp (builtin_interfaces/Time) as integer nanoseconds: exact, unlike float seconds."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec
