"""The CCI driver against a register-level fake that rejects every protocol violation."""

from __future__ import annotations

import pytest
from fake_clock import FakeClock
from lepton_fakes import FakeLeptonCciBus

from thermal_driver.sources.lepton.cci import (
    RAD_TLINEAR_ENABLE,
    SYS_TELEMETRY_LOCATION,
    CciError,
    CciTimeout,
    LeptonCci,
    LeptonConfigurationError,
)
from thermal_driver.sources.lepton.vospi import TelemetryMode

GET, SET, RUN = 0, 1, 2


def make_cci(bus: FakeLeptonCciBus | None = None) -> tuple[LeptonCci, FakeLeptonCciBus, FakeClock]:
    bus = bus or FakeLeptonCciBus()
    clock = FakeClock()
    return LeptonCci(bus, clock=clock.monotonic, sleep=clock.sleep), bus, clock


@pytest.mark.parametrize(
    ("mode", "enable", "location"),
    [(TelemetryMode.DISABLED, 0, 0), (TelemetryMode.HEADER, 1, 0), (TelemetryMode.FOOTER, 1, 1)],
)
def test_configure_for_radiometry_leaves_the_module_in_centikelvin(mode, enable, location):
    cci, bus, _ = make_cci()
    bus.state[0x0100] = [1, 0]  # AGC left on by another program: it survives until a power cycle
    cci.configure_for_radiometry(mode)
    assert bus.u32(0x0100) == 0, "AGC must be off"
    assert bus.u32(0x4E10) == 1, "radiometry on"
    assert bus.u32(0x4EC0) == 1, "TLinear on"
    assert bus.u32(0x4EC4) == 1, "TLinear resolution 0.01 K"
    assert (bus.u32(0x0218), bus.u32(0x021C)) == (enable, location)
    sets = [base for kind, base, _ in bus.commands if kind == SET]
    assert sets.index(0x4E10) < sets.index(0x4EC0), "radiometry must be on before TLinear"
    gets = {base for kind, base, _ in bus.commands if kind == GET}
    assert {0x4EC0, 0x4EC4, 0x0218} <= gets, "settings are read back"


def test_tlinear_that_does_not_take_effect_is_impossible_to_miss():
    bus = FakeLeptonCciBus()
    bus.ignored_sets.add(0x4EC0)
    cci, _, _ = make_cci(bus)
    with pytest.raises(LeptonConfigurationError, match=r"TLinear is still OFF.*8000.*30000"):
        cci.configure_for_radiometry(TelemetryMode.FOOTER)


def test_wrong_tlinear_resolution_is_caught():
    bus = FakeLeptonCciBus()
    bus.ignored_sets.add(0x4EC4)
    cci, _, _ = make_cci(bus)
    with pytest.raises(LeptonConfigurationError, match="factor of 10"):
        cci.configure_for_radiometry(TelemetryMode.FOOTER)


def test_non_radiometric_module_gets_a_clear_error():
    cci, _, _ = make_cci(FakeLeptonCciBus(radiometric=False))
    with pytest.raises(
        LeptonConfigurationError, match=r"LEP_UNDEFINED_FUNCTION_ERROR.*2\.5 and 3\.5"
    ) as caught:
        cci.configure_for_radiometry(TelemetryMode.FOOTER)
    assert isinstance(caught.value.__cause__, CciError)


def test_error_status_raises_cci_error_with_its_name():
    bus = FakeLeptonCciBus()
    bus.forced_results[0x4EC1] = -11
    cci, _, _ = make_cci(bus)
    with pytest.raises(CciError, match=r"0x4EC1.*LEP_COMMAND_NOT_ALLOWED \(-11\)") as caught:
        cci.enable_tlinear()
    assert (caught.value.code, caught.value.name, caught.value.command) == (
        -11,
        "LEP_COMMAND_NOT_ALLOWED",
        0x4EC1,
    )


def test_unknown_command_and_unknown_code():
    cci, bus, _ = make_cci()
    with pytest.raises(CciError) as caught:
        cci.get(0x0F00, 1)
    assert caught.value.name == "LEP_UNDEFINED_FUNCTION_ERROR"
    bus.forced_results[0x0101] = -42
    with pytest.raises(CciError, match="LEP_RESULT -42"):
        cci.enable_agc(False)


def test_busy_stuck_times_out_after_the_deadline():
    cci, bus, clock = make_cci()
    bus.stuck_busy = True
    start = clock.monotonic()
    with pytest.raises(CciTimeout, match="BUSY") as caught:
        cci.fpa_temperature_k()
    assert caught.value.name == "LEP_TIMEOUT_ERROR"
    assert 1.0 <= clock.monotonic() - start < 1.1


def test_u32_values_travel_least_significant_word_first():
    cci, bus, _ = make_cci()
    cci.set_u32(SYS_TELEMETRY_LOCATION, 0x0001_0002)
    assert bus.state[0x021C] == [0x0002, 0x0001]
    assert bus.commands[-1] == (SET, 0x021C, (0x0002, 0x0001))
    assert cci.get_u32(SYS_TELEMETRY_LOCATION) == 0x0001_0002
    with pytest.raises(ValueError, match="32-bit"):
        cci.set_u32(RAD_TLINEAR_ENABLE, 1 << 32)


def test_status_fpa_temperature_and_ffc():
    cci, bus, _ = make_cci()
    status = cci.boot_status()
    assert (status.booted, status.busy, status.result) == (True, False, 0)
    assert cci.fpa_temperature_k() == pytest.approx(302.15)
    cci.run_ffc()
    assert bus.ffc_runs == 1
    assert bus.commands[-1] == (RUN, 0x0240, ())


def test_reboot_then_wait_tolerates_nacks_and_resets_settings():
    cci, bus, _ = make_cci(FakeLeptonCciBus(reboot_nack_accesses=5, reboot_unbooted_polls=4))
    cci.configure_for_radiometry(TelemetryMode.FOOTER)
    cci.reboot()
    assert bus.reboots == 1
    with pytest.raises(OSError, match="Remote I/O"):
        cci.boot_status()
    status = cci.wait_until_booted()
    assert status.booted
    assert not cci.tlinear_enabled(), "a reboot restores power-on defaults, so the driver must reconfigure"


def test_module_that_never_boots_times_out():
    cci, _, clock = make_cci(FakeLeptonCciBus(reboot_nack_accesses=10**6))
    cci.reboot()
    start = clock.monotonic()
    with pytest.raises(CciTimeout, match="boot"):
        cci.wait_until_booted(timeout_s=2.0)
    assert clock.monotonic() - start >= 2.0


def test_argument_checks():
    cci, _, _ = make_cci()
    with pytest.raises(ValueError, match="resolution"):
        cci.set_tlinear_resolution(0.05)
    with pytest.raises(ValueError, match="base command"):
        cci.get(0x4EC1, 2)
    with pytest.raises(ValueError, match="16 data words"):
        cci.get(0x4EC0, 17)


def test_unplugged_bus_raises_oserror_for_the_caller_to_translate():
    cci, bus, _ = make_cci()
    bus.unplugged = True
    with pytest.raises(OSError, match="Remote I/O"):
        cci.run_ffc()


@pytest.mark.parametrize(
    ("violation", "message"),
    [
        (lambda bus: bus.write(0x2B, b"\x00\x06\x00\x00"), "not the Lepton"),
        (lambda bus: bus.write(0x2A, b"\x00\x06\x00"), "whole words"),
        (lambda bus: bus.write(0x2A, b"\x00\x07\x00\x00"), "word aligned"),
        (lambda bus: bus.write(0x2A, b"\x00\x04\x4e\xc0"), "without first writing the data length"),
        (lambda bus: bus.write_read(0x2A, b"\x00\x08", 3), "whole words"),
        (lambda bus: bus.write(0x2A, b"\x00\x26\x00\x00\x00\x00"), "not DATA0-15"),
    ],
)
def test_fake_bus_rejects_protocol_violations(violation, message):
    """The fake is only worth trusting if it catches the mistakes a driver could make."""
    with pytest.raises(AssertionError, match=message):
        violation(FakeLeptonCciBus())


def test_fake_bus_rejects_writes_and_data_reads_while_busy():
    bus = FakeLeptonCciBus()
    bus.write(0x2A, b"\x00\x06\x00\x02")
    bus.write(0x2A, b"\x00\x04\x4e\xc0")
    with pytest.raises(AssertionError, match="while BUSY"):
        bus.write(0x2A, b"\x00\x06\x00\x02")
    with pytest.raises(AssertionError, match="while BUSY"):
        bus.write_read(0x2A, b"\x00\x08", 4)
