"""Source selection and validation, the RateKeeper pacing rule, and the simulated Lepton."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from fake_clock import FakeClock

from thermal_driver.sources.amg8833 import Amg8833Source
from thermal_driver.sources.base import RateKeeper
from thermal_driver.sources.purethermal import PureThermalSource
from thermal_driver.sources.registry import SourceConfig, make_source
from thermal_driver.sources.replay import ReplaySource
from thermal_driver.sources.rig.types import THERMAL_SHAPE
from thermal_driver.sources.sim import SimSource
from thermal_msgs.units import centikelvin_to_celsius

VALID_SOURCES = r"\['sim', 'lepton_spi', 'purethermal', 'amg8833', 'replay'\]"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"source": "lepton"}, rf"source must be one of {VALID_SOURCES}, got 'lepton'"),
        (
            {"source": "replay"},
            "source 'replay' needs device: a rosbag2 directory or a folder of .npy frames",
        ),
        ({"rate_hz": 0.0}, r"rate_hz must be in \(0, 100\], got 0.0"),
        ({"rate_hz": -8.7}, r"rate_hz must be in \(0, 100\], got -8.7"),
        ({"rate_hz": math.nan}, r"rate_hz must be in \(0, 100\], got nan"),
        ({"rate_hz": math.inf}, r"rate_hz must be in \(0, 100\], got inf"),
        ({"rate_hz": 100.5}, r"rate_hz must be in \(0, 100\], got 100.5"),
        ({"spi_speed_hz": 20_000_001}, r"spi_speed_hz must be in \(0, 20000000\] \(Lepton maximum\)"),
        ({"spi_speed_hz": 0}, r"spi_speed_hz must be in \(0, 20000000\]"),
        (
            {"telemetry": "footers"},
            r"telemetry must be one of \['footer', 'header', 'disabled'\], got 'footers'",
        ),
        ({"i2c_address": 0x40}, r"i2c_address must be 0x68 \(104\) or 0x69 \(105\) for an AMG8833, got 64"),
    ],
)
def test_each_bad_field_is_refused_naming_it(fields: dict[str, object], message: str) -> None:
    config = SourceConfig(**fields)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        config.validate()
    with pytest.raises(ValueError, match=message):
        make_source(config)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"source": "replay", "device": "/data/session_3"},
        {"source": "amg8833", "i2c_address": 0x68},
        {"rate_hz": 100.0},
        {"rate_hz": 0.5},
        {"source": "lepton_spi", "spi_speed_hz": 20_000_000, "telemetry": "disabled"},
    ],
)
def test_valid_configs_pass(fields: dict[str, object]) -> None:
    SourceConfig(**fields).validate()  # type: ignore[arg-type]


def test_make_source_builds_a_seeded_sim_at_the_configured_rate() -> None:
    source = make_source(SourceConfig(source="sim", rate_hz=5.0, seed=3))
    assert isinstance(source, SimSource)
    assert source.nominal_rate_hz == 5.0
    assert source.session == SimSource(seed=3).session != SimSource(seed=4).session


@pytest.mark.parametrize(("device", "expected"), [("", 0), ("/dev/video2", "/dev/video2")])
def test_make_source_builds_purethermal_on_the_default_or_given_device(
    device: str, expected: int | str
) -> None:
    source = make_source(SourceConfig(source="purethermal", device=device))
    assert isinstance(source, PureThermalSource)
    assert source.device == expected


def test_make_source_builds_amg8833_with_bus_and_address() -> None:
    source = make_source(SourceConfig(source="amg8833", i2c_address=0x68))
    assert isinstance(source, Amg8833Source)
    assert (source.device, source.address) == ("/dev/i2c-1", 0x68)


def test_make_source_builds_replay_with_path_rate_and_loop(tmp_path) -> None:
    source = make_source(SourceConfig(source="replay", device=str(tmp_path), rate_hz=4.0, loop=True))
    assert isinstance(source, ReplaySource)
    assert (source.path, source.nominal_rate_hz, source.loop) == (tmp_path, 4.0, True)


def tick_times(keeper: RateKeeper, clock: FakeClock, work_s: list[float]) -> list[float]:
    """When each wait() returns, with `work_s[i]` of work done after tick i."""
    ticks = []
    for work in work_s:
        keeper.wait()
        ticks.append(clock.monotonic())
        clock.advance(work)
    return ticks


def test_rate_keeper_keeps_the_average_period_whatever_the_work_time() -> None:
    clock = FakeClock(start_s=0.0)
    keeper = RateKeeper(10.0, clock=clock.monotonic, sleep=clock.sleep)
    work = list(np.random.default_rng(0).uniform(0.0, 0.09, 50))
    ticks = tick_times(keeper, clock, work)
    np.testing.assert_allclose(np.diff(ticks), 0.1, atol=1e-9)


def test_rate_keeper_catches_up_a_late_tick_on_the_original_schedule() -> None:
    clock = FakeClock(start_s=0.0)
    keeper = RateKeeper(10.0, clock=clock.monotonic, sleep=clock.sleep)
    ticks = tick_times(keeper, clock, [0.01, 0.15, 0.01, 0.01, 0.01])
    np.testing.assert_allclose(ticks, [0.0, 0.1, 0.25, 0.3, 0.4], atol=1e-9)


def test_rate_keeper_restarts_the_schedule_after_falling_behind_instead_of_bursting() -> None:
    clock = FakeClock(start_s=0.0)
    keeper = RateKeeper(10.0, clock=clock.monotonic, sleep=clock.sleep)
    ticks = tick_times(keeper, clock, [0.01, 0.7, 0.01, 0.01, 0.01])
    np.testing.assert_allclose(ticks, [0.0, 0.1, 0.8, 0.9, 1.0], atol=1e-9)


@pytest.mark.parametrize("rate_hz", [0.0, -1.0, math.nan, math.inf])
def test_rate_keeper_refuses_a_rate_it_cannot_keep(rate_hz: float) -> None:
    with pytest.raises(ValueError, match="rate_hz must be finite and > 0"):
        RateKeeper(rate_hz)


def sim_frames(seed: int, count: int, clock: FakeClock | None = None) -> list[np.ndarray]:
    clock = clock or FakeClock()
    source = SimSource(seed=seed, clock=clock.monotonic, sleep=clock.sleep)
    source.open()
    return [source.read().centikelvin for _ in range(count)]


def test_sim_is_deterministic_for_a_seed() -> None:
    first, again, other = sim_frames(7, 4), sim_frames(7, 4), sim_frames(8, 4)
    for frame, repeat in zip(first, again, strict=True):
        np.testing.assert_array_equal(frame, repeat)
    assert not np.array_equal(first[0], other[0])


def test_sim_frames_are_lepton_centikelvin_with_a_paired_rgb_frame() -> None:
    clock = FakeClock()
    source = SimSource(seed=0, clock=clock.monotonic, sleep=clock.sleep)
    source.open()
    frame = source.read()
    assert (frame.centikelvin.dtype, frame.centikelvin.shape) == (np.uint16, THERMAL_SHAPE)
    assert (frame.rgb.dtype, frame.rgb.shape) == (np.uint8, (240, 320, 3))
    celsius = centikelvin_to_celsius(frame.centikelvin)
    assert np.median(celsius) < 26.0, "mostly room"
    assert celsius.max() > 33.0, "a person's skin in it"


def test_sim_frames_change_by_motion_not_by_noise() -> None:
    frames = [centikelvin_to_celsius(frame) for frame in sim_frames(0, 60)]
    consecutive = [np.mean(np.abs(b - a)) for a, b in itertools.pairwise(frames)]
    ten_apart = [np.mean(np.abs(b - a)) for a, b in zip(frames[:-10], frames[10:], strict=True)]
    assert np.mean(ten_apart) > 2 * np.mean(consecutive), "the scene should drift away as the person moves"
    moved = [np.mean(np.abs(b - a) > 2.0) for a, b in itertools.pairwise(frames)]
    assert all(share < 0.1 for share in moved), "a moving edge, not the whole frame, should change"


def test_sim_is_paced_at_its_rate_and_reports_itself() -> None:
    clock = FakeClock()
    source = SimSource(rate_hz=8.7, seed=0, clock=clock.monotonic, sleep=clock.sleep)
    source.open()
    frames = [source.read() for _ in range(5)]
    np.testing.assert_allclose(clock.sleeps, [1 / 8.7] * 4, atol=1e-9)
    assert {frame.ffc_state for frame in frames} == {"complete"}
    diagnostics = source.diagnostics()
    assert diagnostics["simulated_frames"] == "5"
    assert diagnostics["session"] == source.session.name
    assert diagnostics["identity"]
