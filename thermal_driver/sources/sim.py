"""The simulated Lepton: the rig's person at a desk, streamed at the sensor's pace.

It carries the paired RGB frame too, so the driver can publish camera/image_raw under the
same stamp and a whole recording workflow runs with no hardware.
"""

from __future__ import annotations

import time

from thermal_driver.sources.base import RateKeeper, ThermalFrame
from thermal_driver.sources.rig.rig import SimRig, sessions
from thermal_driver.sources.rig.types import RigConfig

LEPTON_RATE_HZ = 8.7


class SimSource:
    """One rig session chosen by `seed`; deterministic, paced on absolute deadlines at `rate_hz`."""

    name = "sim"
    provides_rgb = True

    def __init__(
        self, rate_hz: float = LEPTON_RATE_HZ, seed: int = 0, *, clock=time.monotonic, sleep=time.sleep
    ) -> None:
        self.nominal_rate_hz = rate_hz
        self._pace = RateKeeper(rate_hz, clock=clock, sleep=sleep)
        self.session = sessions(1, seed)[0]
        self._rig = SimRig(self.session, RigConfig(rate_hz=rate_hz))
        self._frames = 0
        self._last_names: dict[str, str] = {}

    def open(self) -> None:
        self._frames = 0

    def read(self) -> ThermalFrame:
        self._pace.wait()
        pair = self._rig.render(self._frames / self.nominal_rate_hz)
        self._frames += 1
        self._last_names = {
            "identity": pair.identity_name,
            "outfit": pair.outfit_name,
            "scene": pair.scene_name,
        }
        return ThermalFrame(
            centikelvin=pair.thermal_centikelvin,
            rgb=pair.rgb,
            person_mask=pair.person_mask_rgb,
            ffc_state="in_progress" if pair.ffc_event else "complete",
        )

    def close(self) -> None:
        """Nothing to release."""

    def diagnostics(self) -> dict[str, str]:
        return {"simulated_frames": str(self._frames), "session": self.session.name, **self._last_names}
