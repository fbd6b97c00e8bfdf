"""LeptonSpiSource end to end over the fake SPI and CCI: frames, resync timing, reboot, failures."""

from __future__ import annotations

import numpy as np
import pytest
from lepton_fakes import (
    FakeClock,
    FakeLeptonCciBus,
    FakeSpi,
    FaultInjector,
    LeptonStream,
    LeptonStreamBuilder,
)

from thermal_driver.sources.base import SensorUnavailable
from thermal_driver.sources.lepton.source import (
    SPI_IOC_WR_BITS_PER_WORD,
    SPI_IOC_WR_MAX_SPEED_HZ,
    SPI_IOC_WR_MODE,
    LeptonSpiSource,
    LinuxSpi,
)
from thermal_driver.sources.lepton.vospi import PACKET_BYTES, TelemetryMode

SPI_PATH = "/dev/spidev0.0"


class Rig:
    """A source wired to fake hardware, with the fakes kept at hand for assertions."""

    def __init__(
        self,
        stream: LeptonStream,
        telemetry: TelemetryMode = TelemetryMode.FOOTER,
        bus: FakeLeptonCciBus | None = None,
        hung: bool = False,
        max_resyncs_before_reboot: int = 20,
    ) -> None:
        self.stream = stream
        self.clock = FakeClock()
        self.bus = bus or FakeLeptonCciBus()
        self.spi = FakeSpi(stream, self.clock, cci=self.bus, hung=hung)
        self.opened: list[tuple[str, int]] = []
        self.source = LeptonSpiSource(
            spi_device=SPI_PATH,
            cci_bus=self.bus,
            telemetry=telemetry,
            spi_factory=self._open_spi,
            sleep=self.clock.sleep,
            clock=self.clock.monotonic,
            max_resyncs_before_reboot=max_resyncs_before_reboot,
        )

    def _open_spi(self, path: str, speed_hz: int) -> FakeSpi:
        self.opened.append((path, speed_hz))
        return self.spi

    def read_indices(self, count: int) -> list[int]:
        """Read `count` frames and name the source frame each one is, failing on anything else."""
        by_bytes = {frame.tobytes(): index for index, frame in enumerate(self.stream.frames)}
        indices = []
        for _ in range(count):
            frame = self.source.read()
            assert frame.centikelvin.tobytes() in by_bytes, "frame matches no source frame"
            indices.append(by_bytes[frame.centikelvin.tobytes()])
        return indices


def build(n_frames: int = 4, telemetry: TelemetryMode = TelemetryMode.FOOTER, **options) -> LeptonStream:
    return LeptonStreamBuilder(n_frames=n_frames, telemetry=telemetry, seed=11, **options).build()


@pytest.mark.parametrize("mode", list(TelemetryMode))
def test_frames_come_out_exactly_with_telemetry(mode):
    stream = build(telemetry=mode, ffc_states=["complete", "in_progress", "imminent", "complete"])
    rig = Rig(stream, telemetry=mode)
    rig.source.open()
    frames = [rig.source.read() for _ in range(4)]
    for frame, expected in zip(frames, stream.frames, strict=True):
        assert np.array_equal(frame.centikelvin, expected)
    if mode is TelemetryMode.DISABLED:
        assert all(frame.ffc_state is None and frame.fpa_temperature_k is None for frame in frames)
    else:
        assert [frame.ffc_state for frame in frames] == ["complete", "in_progress", "imminent", "complete"]
        assert [frame.fpa_temperature_k for frame in frames] == [
            t.fpa_temperature_k for t in stream.telemetries
        ]
        assert frames[2].extra["frame_counter"] == "70002"
    packets_per_segment = mode.packets_per_segment
    assert set(rig.spi.read_sizes) == {packets_per_segment * PACKET_BYTES}, "one whole segment per read"
    assert rig.opened == [(SPI_PATH, 18_000_000)]
    diagnostics = rig.source.diagnostics()
    assert (diagnostics["frames"], diagnostics["resyncs"], diagnostics["crc_errors"]) == ("4", "0", "0")


def test_open_configures_the_module_and_idles_before_the_first_read():
    rig = Rig(build())
    rig.source.open()
    assert (rig.bus.u32(0x4EC0), rig.bus.u32(0x4EC4), rig.bus.u32(0x0218), rig.bus.u32(0x021C)) == (
        1,
        1,
        1,
        1,
    )
    assert rig.clock.sleeps[-1] > 0.185, "the initial sync starts from a >185 ms /CS idle"
    assert rig.spi.read_sizes == []


def test_crc_error_resyncs_with_a_real_idle_and_recovers():
    stream = build(n_frames=4)
    injector = FaultInjector(stream)
    frame_1_segment_2 = [s for s in stream.segment_starts if stream.frame_of_packet[s] == 1][1]
    injector.corrupt_byte(frame_1_segment_2 + 5, offset=40)
    faulty = LeptonStream(
        packets=injector.packets(),
        frame_of_packet=stream.frame_of_packet,
        segment_starts=stream.segment_starts,
        frames=stream.frames,
        telemetries=stream.telemetries,
    )
    rig = Rig(faulty)
    rig.source.open()
    assert rig.read_indices(3) == [0, 2, 3]
    assert rig.spi.resyncs_seen == 1, "the fake saw exactly one /CS idle long enough to resync"
    assert max(rig.spi.gaps) > 0.185
    diagnostics = rig.source.diagnostics()
    assert (diagnostics["resyncs"], diagnostics["crc_errors"], diagnostics["reboots"]) == ("1", "1", "0")


def test_module_stuck_in_discards_is_rebooted_after_n_fruitless_resyncs():
    stream = build(n_frames=3)
    rig = Rig(stream, hung=True, max_resyncs_before_reboot=3)
    rig.source.open()
    assert rig.read_indices(2) == [0, 1]
    assert rig.bus.reboots == 1
    diagnostics = rig.source.diagnostics()
    assert diagnostics["reboots"] == "1"
    assert int(diagnostics["resyncs"]) == 3 + 1, "three fruitless resyncs, then one after the reboot"
    assert rig.bus.u32(0x4EC0) == 1, "reconfigured after the reboot"


def test_gives_up_with_a_wiring_hint_when_reboots_do_not_help():
    rig = Rig(build(), max_resyncs_before_reboot=2)
    rig.spi.cci = None
    rig.spi.hung = True
    rig.source.open()
    with pytest.raises(SensorUnavailable, match=r"no video .* after 2 reboots.*wiring"):
        rig.source.read()
    assert rig.bus.reboots == 2


def test_unplugged_spi_raises_sensor_unavailable_with_the_device():
    rig = Rig(build())
    rig.source.open()
    rig.source.read()
    rig.spi.unplug()
    with pytest.raises(SensorUnavailable, match=rf"{SPI_PATH}.*wiring and power"):
        rig.source.read()


def test_unplugged_cci_during_ffc_raises_sensor_unavailable():
    rig = Rig(build())
    rig.source.open()
    rig.source.run_ffc()
    assert rig.bus.ffc_runs == 1
    rig.bus.unplugged = True
    with pytest.raises(SensorUnavailable, match="running FFC"):
        rig.source.run_ffc()


def test_tlinear_not_taking_effect_fails_open_clearly():
    bus = FakeLeptonCciBus()
    bus.ignored_sets.add(0x4EC0)
    rig = Rig(build(), bus=bus)
    with pytest.raises(SensorUnavailable, match=r"TLinear is still OFF.*8000"):
        rig.source.open()
    assert rig.spi.closed, "a failed open releases the SPI device"


def test_frame_telemetry_saying_tlinear_is_off_is_an_error():
    rig = Rig(build(tlinear_enabled=False))
    rig.source.open()
    with pytest.raises(SensorUnavailable, match="TLinear is OFF"):
        rig.source.read()


def test_frames_carry_ffc_state_and_fpa_temperature_from_telemetry():
    stream = build(ffc_states=["in_progress"] * 4)
    rig = Rig(stream)
    rig.source.open()
    frame = rig.source.read()
    assert frame.ffc_state == "in_progress", "frames during FFC are returned, flagged"
    assert frame.fpa_temperature_k == pytest.approx(stream.telemetries[0].fpa_temperature_k, abs=0.005)
    assert rig.source.diagnostics()["frames"] == "1"


def test_read_before_open_and_speed_limit():
    with pytest.raises(SensorUnavailable, match="not open"):
        LeptonSpiSource(cci_bus=FakeLeptonCciBus()).read()
    with pytest.raises(ValueError, match="20000000"):
        LeptonSpiSource(spi_speed_hz=20_000_001)


def test_spidev_ioctl_numbers_match_linux_headers():
    assert (SPI_IOC_WR_MODE, SPI_IOC_WR_BITS_PER_WORD, SPI_IOC_WR_MAX_SPEED_HZ) == (
        0x40016B01,
        0x40016B03,
        0x40046B04,
    )


def test_linux_spi_missing_device_hints_at_enabling_spi(tmp_path):
    with pytest.raises(SensorUnavailable, match=r"does not exist: enable SPI .*dtparam=spi=on"):
        LinuxSpi(str(tmp_path / "spidev9.9"), 18_000_000)


def test_linux_spi_rejects_a_file_that_is_not_spidev(tmp_path):
    not_spi = tmp_path / "plain"
    not_spi.write_bytes(b"")
    with pytest.raises(SensorUnavailable, match="spidev"):
        LinuxSpi(str(not_spi), 18_000_000)
