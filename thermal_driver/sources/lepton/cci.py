"""Lepton CCI (Command and Control Interface) over I2C: the settings that make pixels mean Kelvin.

Most Lepton drivers skip the CCI and inherit whatever the module happens to be set to, which is
how users end up with ~8000 raw counts instead of ~30000 centi-Kelvin. The driver therefore
configures the module itself at start-up and reads every setting back.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from thermal_driver.sources.base import SensorUnavailable
from thermal_driver.sources.i2c import I2cBus
from thermal_driver.sources.lepton.vospi import TLINEAR_RESOLUTIONS_K, TelemetryMode

LEPTON_I2C_ADDRESS = 0x2A

REG_STATUS = 0x0002
REG_COMMAND = 0x0004
REG_DATA_LENGTH = 0x0006
REG_DATA0 = 0x0008
DATA_REGISTER_COUNT = 16

STATUS_BUSY = 0x0001
STATUS_BOOT_MODE = 0x0002
STATUS_BOOTED = 0x0004


class CommandType(enum.IntEnum):
    """Added to a module's base command id to form the command word."""

    GET = 0
    SET = 1
    RUN = 2


# Base command ids (type bits zero), from the FLIR SDK tables quoted in docs/sensors.md A1.
AGC_ENABLE = 0x0100
SYS_FPA_TEMPERATURE = 0x0214
SYS_TELEMETRY_ENABLE = 0x0218
SYS_TELEMETRY_LOCATION = 0x021C
SYS_RUN_FFC = 0x0240
RAD_RADIOMETRY_ENABLE = 0x4E10
RAD_TLINEAR_ENABLE = 0x4EC0
RAD_TLINEAR_RESOLUTION = 0x4EC4
OEM_REBOOT = 0x4840

TELEMETRY_LOCATIONS = {TelemetryMode.HEADER: 0, TelemetryMode.FOOTER: 1}

LEP_OK = 0
LEP_UNDEFINED_FUNCTION_ERROR = -7
LEP_TIMEOUT_ERROR = -109
# Checked against FLIR's LEPTON_ErrorCodes.h (LEP_RESULT), as vendored by openmv and others.
LEP_RESULT_NAMES = {
    LEP_OK: "LEP_OK",
    -1: "LEP_ERROR",
    -2: "LEP_NOT_READY",
    -3: "LEP_RANGE_ERROR",
    -4: "LEP_CHECKSUM_ERROR",
    -5: "LEP_BAD_ARG_POINTER_ERROR",
    -6: "LEP_DATA_SIZE_ERROR",
    LEP_UNDEFINED_FUNCTION_ERROR: "LEP_UNDEFINED_FUNCTION_ERROR",
    -8: "LEP_FUNCTION_NOT_SUPPORTED",
    -9: "LEP_DATA_OUT_OF_RANGE_ERROR",
    -11: "LEP_COMMAND_NOT_ALLOWED",
    LEP_TIMEOUT_ERROR: "LEP_TIMEOUT_ERROR",
}

BUSY_POLL_INTERVAL_S = 0.001
BOOT_POLL_INTERVAL_S = 0.01
BOOT_TIMEOUT_S = 5.0
"""Our margin for a reboot, not a datasheet figure: long enough for the module, short enough to report."""


class CciError(RuntimeError):
    """The module answered a command with a LEP_RESULT error code (kept signed in `code`)."""

    def __init__(self, code: int, command: int | None = None, detail: str = "") -> None:
        self.code = code
        self.command = command
        where = "Lepton CCI" if command is None else f"Lepton CCI command 0x{command:04X}"
        message = f"{where} failed: {self.name} ({code})"
        super().__init__(f"{message}: {detail}" if detail else message)

    @property
    def name(self) -> str:
        return LEP_RESULT_NAMES.get(self.code, f"LEP_RESULT {self.code}")


class CciTimeout(CciError):
    """The module stayed BUSY (or did not boot) past the deadline."""


class LeptonConfigurationError(RuntimeError):
    """The module did not end up in the configuration the driver needs; the message says why."""


@dataclass(frozen=True)
class CciStatus:
    """The CCI status register, decoded."""

    busy: bool
    boot_mode: bool
    booted: bool
    result: int

    @classmethod
    def from_register(cls, value: int) -> CciStatus:
        high_byte = value >> 8
        return cls(
            busy=bool(value & STATUS_BUSY),
            boot_mode=bool(value & STATUS_BOOT_MODE),
            booted=bool(value & STATUS_BOOTED),
            result=high_byte - 0x100 if high_byte & 0x80 else high_byte,
        )


class LeptonCci:
    """Command access to one Lepton: GET/SET/RUN on top of the register protocol, plus named settings."""

    def __init__(
        self,
        bus: I2cBus,
        address: int = LEPTON_I2C_ADDRESS,
        timeout_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.bus = bus
        self.address = address
        self.timeout_s = timeout_s
        self._clock = clock
        self._sleep = sleep

    def get(self, command: int, n_words: int) -> list[int]:
        return self._execute(_command_word(command, CommandType.GET), read_words=n_words)

    def set(self, command: int, words: Sequence[int]) -> None:
        self._execute(_command_word(command, CommandType.SET), write_words=words)

    def run(self, command: int) -> None:
        self._execute(_command_word(command, CommandType.RUN))

    def get_u32(self, command: int) -> int:
        """32-bit values (the SDK's enums) travel least-significant word first."""
        low, high = self.get(command, 2)
        return low | high << 16

    def set_u32(self, command: int, value: int) -> None:
        if not 0 <= value <= 0xFFFF_FFFF:
            raise ValueError(f"not a 32-bit value: {value}")
        self.set(command, [value & 0xFFFF, value >> 16])

    def boot_status(self) -> CciStatus:
        return CciStatus.from_register(self._read_registers(REG_STATUS, 1)[0])

    def enable_agc(self, on: bool = True) -> None:
        self.set_u32(AGC_ENABLE, int(on))

    def agc_enabled(self) -> bool:
        return bool(self.get_u32(AGC_ENABLE))

    def enable_radiometry(self, on: bool = True) -> None:
        self.set_u32(RAD_RADIOMETRY_ENABLE, int(on))

    def enable_tlinear(self, on: bool = True) -> None:
        self.set_u32(RAD_TLINEAR_ENABLE, int(on))

    def tlinear_enabled(self) -> bool:
        return bool(self.get_u32(RAD_TLINEAR_ENABLE))

    def set_tlinear_resolution(self, resolution_k: float = 0.01) -> None:
        if resolution_k not in TLINEAR_RESOLUTIONS_K:
            raise ValueError(
                f"TLinear resolution must be one of {TLINEAR_RESOLUTIONS_K} K, got {resolution_k}"
            )
        self.set_u32(RAD_TLINEAR_RESOLUTION, TLINEAR_RESOLUTIONS_K.index(resolution_k))

    def tlinear_resolution_k(self) -> float:
        code = self.get_u32(RAD_TLINEAR_RESOLUTION)
        if code >= len(TLINEAR_RESOLUTIONS_K):
            raise LeptonConfigurationError(f"unknown TLinear resolution code {code}")
        return TLINEAR_RESOLUTIONS_K[code]

    def set_telemetry(self, mode: TelemetryMode) -> None:
        if mode is not TelemetryMode.DISABLED:
            self.set_u32(SYS_TELEMETRY_LOCATION, TELEMETRY_LOCATIONS[mode])
        self.set_u32(SYS_TELEMETRY_ENABLE, int(mode is not TelemetryMode.DISABLED))

    def telemetry_mode(self) -> TelemetryMode:
        if not self.get_u32(SYS_TELEMETRY_ENABLE):
            return TelemetryMode.DISABLED
        location = self.get_u32(SYS_TELEMETRY_LOCATION)
        for mode, code in TELEMETRY_LOCATIONS.items():
            if code == location:
                return mode
        raise LeptonConfigurationError(f"unknown telemetry location code {location}")

    def run_ffc(self) -> None:
        self.run(SYS_RUN_FFC)

    def fpa_temperature_k(self) -> float:
        return self.get(SYS_FPA_TEMPERATURE, 1)[0] / 100.0

    def reboot(self) -> None:
        """Issue OEM reboot without waiting for a result: the module resets instead of answering."""
        command = _command_word(OEM_REBOOT, CommandType.RUN)
        self._wait_until_idle(command)
        self._write_registers(REG_DATA_LENGTH, [0])
        self._write_registers(REG_COMMAND, [command])

    def wait_until_booted(self, timeout_s: float = BOOT_TIMEOUT_S) -> CciStatus:
        """Poll until the module reports booted and idle; it may not even ACK while it restarts."""
        return self._poll_status(
            lambda status: status.booted and not status.busy,
            timeout_s,
            BOOT_POLL_INTERVAL_S,
            command=_command_word(OEM_REBOOT, CommandType.RUN),
            waiting_for="boot",
            tolerate_bus_errors=True,
        )

    def configure_for_radiometry(self, telemetry: TelemetryMode) -> None:
        """Make pixels centi-Kelvin (radiometry + TLinear at 0.01 K, AGC off) and verify it took.

        AGC is switched off explicitly because it survives until a power cycle and, when on,
        squeezes every pixel into 8 bits.
        """
        try:
            self.enable_agc(False)
            self.enable_radiometry(True)
            self.enable_tlinear(True)
            self.set_tlinear_resolution(TLINEAR_RESOLUTIONS_K[1])
        except CciError as error:
            if error.code == LEP_TIMEOUT_ERROR:
                raise
            raise LeptonConfigurationError(
                f"the Lepton refused the radiometry settings ({error.name}): only the radiometric "
                "Lepton 2.5 and 3.5 report temperatures; a Lepton 2.0/3.0 cannot"
            ) from error
        self.set_telemetry(telemetry)
        if not self.tlinear_enabled():
            raise LeptonConfigurationError(
                "TLinear is still OFF after enabling it: pixels would be raw counts (about 8000) instead "
                "of centi-Kelvin (about 30000). Only the radiometric Lepton 2.5 and 3.5 support TLinear."
            )
        resolution_k = self.tlinear_resolution_k()
        if resolution_k != TLINEAR_RESOLUTIONS_K[1]:
            raise LeptonConfigurationError(
                f"TLinear resolution reads back as {resolution_k} K, not 0.01 K: pixels would be "
                "deci-Kelvin and every temperature off by a factor of 10"
            )
        if self.agc_enabled():
            raise LeptonConfigurationError("AGC is still ON after disabling it: pixels would be 8-bit")
        actual_telemetry = self.telemetry_mode()
        if actual_telemetry is not telemetry:
            raise LeptonConfigurationError(
                f"telemetry reads back as {actual_telemetry.value}, not {telemetry.value}: "
                "VoSPI segments would have the wrong length and no frame would assemble"
            )

    def _execute(self, command: int, write_words: Sequence[int] = (), read_words: int = 0) -> list[int]:
        if max(len(write_words), read_words) > DATA_REGISTER_COUNT:
            raise ValueError(f"at most {DATA_REGISTER_COUNT} data words fit the CCI data registers")
        self._wait_until_idle(command)
        if write_words:
            self._write_registers(REG_DATA0, write_words)
        self._write_registers(REG_DATA_LENGTH, [len(write_words) or read_words])
        self._write_registers(REG_COMMAND, [command])
        status = self._wait_until_idle(command)
        if status.result != LEP_OK:
            raise CciError(status.result, command)
        return self._read_registers(REG_DATA0, read_words) if read_words else []

    def _wait_until_idle(self, command: int) -> CciStatus:
        return self._poll_status(
            lambda status: not status.busy,
            self.timeout_s,
            BUSY_POLL_INTERVAL_S,
            command=command,
            waiting_for="BUSY to clear",
        )

    def _poll_status(
        self,
        ready: Callable[[CciStatus], bool],
        timeout_s: float,
        interval_s: float,
        *,
        command: int,
        waiting_for: str,
        tolerate_bus_errors: bool = False,
    ) -> CciStatus:
        deadline = self._clock() + timeout_s
        while True:
            try:
                status = self.boot_status()
            except (OSError, SensorUnavailable):
                if not tolerate_bus_errors:
                    raise
            else:
                if ready(status):
                    return status
            if self._clock() >= deadline:
                raise CciTimeout(LEP_TIMEOUT_ERROR, command, f"waited {timeout_s:g} s for {waiting_for}")
            self._sleep(interval_s)

    def _read_registers(self, register: int, n_words: int) -> list[int]:
        data = self.bus.write_read(self.address, register.to_bytes(2, "big"), 2 * n_words)
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, 2 * n_words, 2)]

    def _write_registers(self, register: int, words: Sequence[int]) -> None:
        payload = b"".join(word.to_bytes(2, "big") for word in words)
        self.bus.write(self.address, register.to_bytes(2, "big") + payload)


def _command_word(command: int, command_type: CommandType) -> int:
    if command & 0x3:
        raise ValueError(f"0x{command:04X} is not a base command id (its type bits are set)")
    return command | command_type
