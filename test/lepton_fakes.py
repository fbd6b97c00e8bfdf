"""Protocol-checking fakes for what cannot exist in CI: the Lepton's SPI (VoSPI) and I2C (CCI) sides.

The fakes restate the datasheet on their own (register addresses and command ids are written
out here, not imported from the driver), so a wrong constant in the driver fails a test instead
of agreeing with itself.
"""

from __future__ import annotations

import errno
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from fake_clock import FakeClock

from thermal_driver.sources.lepton.vospi import (
    FFC_STATES,
    FRAME_COLS,
    FRAME_ROWS,
    PACKET_BYTES,
    SEGMENT_PACKET_NUMBER,
    Telemetry,
    TelemetryMode,
    packet_crc,
)
from thermal_driver.sources.lepton.vospi_encoder import DISCARD_PACKET, EncodedStream, encode_stream

PLAUSIBLE_CENTIKELVIN = (29_000, 31_500)
"""About 17 to 42 degC: a room with people in it."""

RESYNC_IDLE_MIN_S = 0.185
SEGMENT_PERIOD_S = 1 / 106
"""A pause longer than this between segment reads makes a real module lose sync."""
DISCARDS_AFTER_RESYNC = 3
MAX_SPI_READS = 5_000
"""Far more than any test needs: a driver still reading after this is spinning, not recovering."""


def _bad_crc(packet: bytes) -> bytes:
    crc = packet_crc(packet) ^ 0xA5A5
    return packet[:2] + crc.to_bytes(2, "big") + packet[4:]


def _garbage_packet(rng: np.random.Generator) -> bytes:
    """Line noise: never a discard ID, and a CRC that cannot match, so it is always a CRC error."""
    raw = bytearray(rng.integers(0, 256, PACKET_BYTES, dtype=np.uint8).tobytes())
    if raw[0] & 0x0F == 0x0F:
        raw[0] ^= 0x01
    return _bad_crc(bytes(raw))


ZERO_PACKET = bytes(PACKET_BYTES)
"""All-zero bytes: what a floating MISO often reads, and a *valid* packet 0 (XMODEM of zeros is 0)."""


@dataclass
class LeptonStream(EncodedStream):
    """An encoded stream plus the source frames, so tests can compare recovered frames bit for bit."""

    frames: list[np.ndarray] = field(default_factory=list)
    telemetries: list[Telemetry] | None = None


class LeptonStreamBuilder:
    """Random plausible frames (and telemetry) encoded as the module would send them."""

    def __init__(
        self,
        n_frames: int = 4,
        telemetry: TelemetryMode = TelemetryMode.DISABLED,
        *,
        seed: int = 0,
        discards_before_sync: int = 7,
        discards_between_segments: int = 2,
        ffc_states: list[str] | None = None,
        tlinear_enabled: bool = True,
    ) -> None:
        self.n_frames = n_frames
        self.telemetry = telemetry
        self.seed = seed
        self.discards_before_sync = discards_before_sync
        self.discards_between_segments = discards_between_segments
        self.ffc_states = ffc_states or [FFC_STATES[i % len(FFC_STATES)] for i in range(n_frames)]
        self.tlinear_enabled = tlinear_enabled

    def build(self) -> LeptonStream:
        rng = np.random.default_rng(self.seed)
        low, high = PLAUSIBLE_CENTIKELVIN
        frames = [
            rng.integers(low, high, size=(FRAME_ROWS, FRAME_COLS), dtype=np.uint16)
            for _ in range(self.n_frames)
        ]
        telemetries = None
        if self.telemetry is not TelemetryMode.DISABLED:
            telemetries = [
                Telemetry(
                    frame_counter=70_000 + index,
                    fpa_temperature_k=int(rng.integers(29_800, 31_000)) / 100.0,
                    ffc_state=self.ffc_states[index],
                    ffc_desired=index % 2 == 1,
                    agc_enabled=False,
                    overtemp=False,
                    tlinear_enabled=self.tlinear_enabled,
                    tlinear_resolution_k=0.01,
                )
                for index in range(self.n_frames)
            ]
        encoded = encode_stream(
            frames,
            self.telemetry,
            telemetries,
            discards_before_sync=self.discards_before_sync,
            discards_between_segments=self.discards_between_segments,
        )
        return LeptonStream(
            packets=encoded.packets,
            frame_of_packet=encoded.frame_of_packet,
            segment_starts=encoded.segment_starts,
            frames=frames,
            telemetries=telemetries,
        )


class FaultInjector:
    """Edits a stream by original packet index and keeps account of which source frames got hurt.

    A frame is "touched" when one of its own packets ends up changed or dropped, or when a
    garbage packet lands strictly inside its span; every other frame must come out intact. The
    account is taken from the final packets, so edits that cancel out count as no edit.
    """

    def __init__(self, stream: LeptonStream, seed: int = 0) -> None:
        self.stream = stream
        self._rng = np.random.default_rng(seed)
        self._spans = [stream.frame_span(index) for index in range(len(stream.frames))]
        self._replaced: dict[int, bytes] = {}
        self._dropped: set[int] = set()
        self._inserted: dict[int, list[bytes]] = defaultdict(list)
        self._garbage_touched: set[int] = set()
        self._garbage_crc_errors = 0

    def corrupt_byte(self, index: int, offset: int, xor: int = 0xFF) -> None:
        """Flip bits in one byte at `offset` >= 1 (byte 0's top nibble is outside the CRC)."""
        assert 1 <= offset < PACKET_BYTES
        assert 0 < xor <= 0xFF
        packet = bytearray(self._current(index))
        packet[offset] ^= xor
        self._replaced[index] = bytes(packet)

    def drop(self, start: int, count: int) -> None:
        self._dropped.update(range(start, min(start + count, len(self.stream.packets))))

    def insert_garbage(self, before: int, zeros: bool = False) -> None:
        self._inserted[before].append(ZERO_PACKET if zeros else _garbage_packet(self._rng))
        if not zeros:
            self._garbage_crc_errors += 1
        self._garbage_touched.update(
            k for k, span in enumerate(self._spans) if span.start < before <= span[-1]
        )

    def insert_discards(self, before: int, count: int) -> None:
        """Discards are legal anywhere for a reader, so they touch nothing."""
        self._inserted[before].extend([DISCARD_PACKET] * count)

    def zero_segment_number(self, frame_index: int, segment_number: int) -> None:
        """TTT=0 on packet 20 of a valid segment (the CRC does not cover TTT, so it stays valid)."""
        index = self._packet_20_of(frame_index, segment_number)
        packet = bytearray(self._current(index))
        packet[0] &= 0x8F
        self._replaced[index] = bytes(packet)

    @property
    def touched_frames(self) -> set[int]:
        changed = {i for i, packet in self._replaced.items() if packet != self.stream.packets[i]}
        owners = {self.stream.frame_of_packet[i] for i in changed | self._dropped}
        return (owners | self._garbage_touched) - {-1}

    @property
    def expected_crc_errors(self) -> int:
        """Packets that reach the reader with a CRC that does not match, discards aside."""
        corrupted = [
            packet
            for i, packet in self._replaced.items()
            if i not in self._dropped
            and packet[0] & 0x0F != 0x0F
            and packet_crc(packet) != int.from_bytes(packet[2:4], "big")
        ]
        return len(corrupted) + self._garbage_crc_errors

    def packets(self) -> list[bytes]:
        result = []
        for index, original in enumerate(self.stream.packets):
            result.extend(self._inserted.get(index, ()))
            if index not in self._dropped:
                result.append(self._replaced.get(index, original))
        result.extend(self._inserted.get(len(self.stream.packets), ()))
        return result

    def _current(self, index: int) -> bytes:
        return self._replaced.get(index, self.stream.packets[index])

    def _packet_20_of(self, frame_index: int, segment_number: int) -> int:
        starts = [s for s in self.stream.segment_starts if self.stream.frame_of_packet[s] == frame_index]
        return starts[segment_number - 1] + SEGMENT_PACKET_NUMBER


class FakeSpi:
    """Serves a stream the way the module does, including what happens when the host breaks the rules.

    A read after a /CS idle of more than 185 ms resumes at the next segment start (after a few
    discards); a shorter pause that is still longer than a segment period loses sync, after which
    only garbage comes until a proper resync. `hung` models the module that keeps sending discards
    whatever the host does, until the linked CCI bus sees an OEM reboot.
    """

    def __init__(
        self,
        stream: EncodedStream,
        clock: FakeClock,
        cci: FakeLeptonCciBus | None = None,
        hung: bool = False,
    ) -> None:
        self.stream = stream
        self.clock = clock
        self.cci = cci
        self.hung = hung
        self.unplugged = False
        self.closed = False
        self.read_sizes: list[int] = []
        self.gaps: list[float] = []
        self.resyncs_seen = 0
        self._position = 0
        self._in_sync = True
        self._discards_owed = 0
        self._last_read_at: float | None = None
        self._reboots_seen = cci.reboots if cci else 0
        self._garbage = _garbage_packet(np.random.default_rng(1))

    def read(self, n: int) -> bytes:
        assert not self.closed, "read after close"
        assert n > 0, f"empty SPI read of {n} bytes"
        assert n % PACKET_BYTES == 0, f"SPI reads must be whole {PACKET_BYTES}-byte packets, got {n}"
        if self.unplugged:
            raise OSError(errno.EIO, "Input/output error")
        self.read_sizes.append(n)
        assert len(self.read_sizes) <= MAX_SPI_READS, f"{MAX_SPI_READS} SPI reads: the driver never gives up"
        self._observe_timing()
        if self.cci is not None and self.cci.reboots > self._reboots_seen:
            self._reboots_seen = self.cci.reboots
            self.hung = False
        count = n // PACKET_BYTES
        if self.hung:
            return DISCARD_PACKET * count
        if not self._in_sync:
            return self._garbage * count
        return b"".join(self._next_packet() for _ in range(count))

    def unplug(self) -> None:
        self.unplugged = True

    def close(self) -> None:
        self.closed = True

    def _observe_timing(self) -> None:
        now = self.clock.monotonic()
        if self._last_read_at is not None:
            gap = now - self._last_read_at
            self.gaps.append(gap)
            if gap > RESYNC_IDLE_MIN_S:
                self.resyncs_seen += 1
                self._in_sync = True
                self._discards_owed = DISCARDS_AFTER_RESYNC
                self._position = next(
                    (s for s in self.stream.segment_starts if s >= self._position), self._end
                )
            elif gap > SEGMENT_PERIOD_S:
                self._in_sync = False
        self._last_read_at = now

    @property
    def _end(self) -> int:
        return len(self.stream.packets)

    def _next_packet(self) -> bytes:
        if self._discards_owed or self._position >= self._end:
            self._discards_owed = max(0, self._discards_owed - 1)
            return DISCARD_PACKET
        packet = self.stream.packets[self._position]
        self._position += 1
        return packet


# The CCI as the datasheet describes it, restated independently of the driver's constants.
CCI_ADDRESS = 0x2A
REG_STATUS = 0x0002
REG_COMMAND = 0x0004
REG_DATA_LENGTH = 0x0006
REG_DATA_FIRST = 0x0008
REG_DATA_LAST = 0x0026
STATUS_BUSY = 0x0001
STATUS_BOOT_MODE = 0x0002
STATUS_BOOTED = 0x0004
GET, SET, RUN = 0, 1, 2
RESULT_OK = 0
RESULT_DATA_SIZE_ERROR = -6
RESULT_UNDEFINED_FUNCTION = -7


@dataclass(frozen=True)
class FakeAttribute:
    """A GET/SET attribute of the module: its size in words and its power-on value."""

    n_words: int
    default: tuple[int, ...]
    settable: bool = True
    radiometric: bool = False


FAKE_ATTRIBUTES = {
    0x0100: FakeAttribute(2, (0, 0)),  # AGC enable
    0x0214: FakeAttribute(1, (30_215,), settable=False),  # SYS FPA temperature, cK
    0x0218: FakeAttribute(2, (0, 0)),  # SYS telemetry enable
    0x021C: FakeAttribute(2, (0, 0)),  # SYS telemetry location
    0x4E10: FakeAttribute(2, (1, 0), radiometric=True),  # RAD radiometry enable
    0x4EC0: FakeAttribute(2, (0, 0), radiometric=True),  # RAD TLinear enable
    0x4EC4: FakeAttribute(2, (0, 0), radiometric=True),  # RAD TLinear resolution
}
RUN_SYS_FFC = 0x0240
RUN_OEM_REBOOT = 0x4840


class FakeLeptonCciBus:
    """The CCI register file behind an I2cBus, raising AssertionError on any protocol violation."""

    def __init__(
        self,
        busy_polls: int = 2,
        reboot_nack_accesses: int = 3,
        reboot_unbooted_polls: int = 3,
        radiometric: bool = True,
    ) -> None:
        self.busy_polls = busy_polls
        self.reboot_nack_accesses = reboot_nack_accesses
        self.reboot_unbooted_polls = reboot_unbooted_polls
        self.radiometric = radiometric
        self.stuck_busy = False
        self.unplugged = False
        self.ignored_sets: set[int] = set()
        """Base ids whose SET answers LEP_OK but changes nothing (a setting that does not take)."""
        self.forced_results: dict[int, int] = {}
        """Command word -> LEP_RESULT to answer instead of executing it."""
        self.commands: list[tuple[int, int, tuple[int, ...]]] = []
        self.ffc_runs = 0
        self.reboots = 0
        self.closed = False
        self.state = {base: list(attribute.default) for base, attribute in FAKE_ATTRIBUTES.items()}
        self._data = [0] * ((REG_DATA_LAST - REG_DATA_FIRST) // 2 + 1)
        self._length = 0
        self._length_written = False
        self._result = RESULT_OK
        self._busy_reads_left = 0
        self._nacks_left = 0
        self._unbooted_reads_left = 0

    def u32(self, base: int) -> int:
        low, high = self.state[base]
        return low | high << 16

    def write(self, address: int, data: bytes) -> None:
        self._access(address)
        assert len(data) % 2 == 0, f"write of {len(data)} bytes: need address + whole words"
        assert len(data) >= 4, f"write of {len(data)} bytes: need address + at least one word"
        register = self._register(data)
        words = [int.from_bytes(data[i : i + 2], "big") for i in range(2, len(data), 2)]
        assert not self._busy, f"write to 0x{register:04X} while BUSY"
        if register == REG_DATA_LENGTH:
            assert len(words) == 1, "data length is one register"
            self._length = words[0]
            self._length_written = True
        elif register == REG_COMMAND:
            assert len(words) == 1, "command is one register"
            assert self._length_written, (
                f"command 0x{words[0]:04X} written without first writing the data length"
            )
            self._length_written = False
            self._execute(words[0])
        else:
            first = self._data_index(register, len(words))
            self._data[first : first + len(words)] = words

    def write_read(self, address: int, data: bytes, read_length: int) -> bytes:
        self._access(address)
        assert len(data) == 2, f"a register read sends exactly a 16-bit address, got {len(data)} bytes"
        assert read_length % 2 == 0, f"reads must be whole words, got {read_length} bytes"
        assert read_length >= 2, f"read of {read_length} bytes"
        register = self._register(data)
        n_words = read_length // 2
        if register == REG_STATUS:
            assert n_words == 1, "status is one register"
            words = [self._poll_status()]
        else:
            assert not self._busy, f"read of 0x{register:04X} while BUSY"
            first = self._data_index(register, n_words)
            words = self._data[first : first + n_words]
        return b"".join(word.to_bytes(2, "big") for word in words)

    def close(self) -> None:
        self.closed = True

    @property
    def _busy(self) -> bool:
        return self.stuck_busy or self._busy_reads_left > 0

    def _access(self, address: int) -> None:
        assert address == CCI_ADDRESS, f"I2C address 0x{address:02X} is not the Lepton's 0x2A"
        if self.unplugged:
            raise OSError(errno.EREMOTEIO, "Remote I/O error")
        if self._nacks_left:
            self._nacks_left -= 1
            raise OSError(errno.EREMOTEIO, "Remote I/O error")

    @staticmethod
    def _register(data: bytes) -> int:
        register = int.from_bytes(data[:2], "big")
        assert register % 2 == 0, f"register 0x{register:04X} is not word aligned"
        return register

    def _data_index(self, register: int, n_words: int) -> int:
        last = register + 2 * (n_words - 1)
        assert register >= REG_DATA_FIRST, f"register 0x{register:04X} is not a DATA register"
        assert last <= REG_DATA_LAST, f"registers 0x{register:04X}-0x{last:04X} are not DATA0-15"
        return (register - REG_DATA_FIRST) // 2

    def _poll_status(self) -> int:
        busy = self._busy
        if self._busy_reads_left:
            self._busy_reads_left -= 1
        booted = STATUS_BOOTED | STATUS_BOOT_MODE
        if self._unbooted_reads_left:
            self._unbooted_reads_left -= 1
            booted = 0
        return (self._result & 0xFF) << 8 | booted | (STATUS_BUSY if busy else 0)

    def _execute(self, command: int) -> None:
        base, command_type = command & ~0x3, command & 0x3
        self.commands.append((command_type, base, tuple(self._data[: self._length])))
        self._busy_reads_left = self.busy_polls
        self._result = self.forced_results.get(command, RESULT_OK)
        if self._result == RESULT_OK:
            self._result = self._run(base, command_type)

    def _run(self, base: int, command_type: int) -> int:
        if command_type not in (GET, SET, RUN):
            return RESULT_UNDEFINED_FUNCTION
        if command_type == RUN:
            if base == RUN_SYS_FFC:
                self.ffc_runs += 1
                return RESULT_OK
            if base == RUN_OEM_REBOOT:
                self._reboot()
                return RESULT_OK
            return RESULT_UNDEFINED_FUNCTION
        attribute = FAKE_ATTRIBUTES.get(base)
        if attribute is None or (attribute.radiometric and not self.radiometric):
            return RESULT_UNDEFINED_FUNCTION
        if command_type == SET and not attribute.settable:
            return RESULT_UNDEFINED_FUNCTION
        if self._length != attribute.n_words:
            return RESULT_DATA_SIZE_ERROR
        if command_type == GET:
            self._data[: attribute.n_words] = self.state[base]
        elif command_type == SET and base not in self.ignored_sets:
            self.state[base] = self._data[: attribute.n_words]
        return RESULT_OK

    def _reboot(self) -> None:
        self.reboots += 1
        self.state = {base: list(attribute.default) for base, attribute in FAKE_ATTRIBUTES.items()}
        self._nacks_left = self.reboot_nack_accesses
        self._unbooted_reads_left = self.reboot_unbooted_polls
        self._busy_reads_left = 0
