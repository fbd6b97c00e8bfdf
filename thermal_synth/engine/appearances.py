"""Which appearance each stream paints, and the blend when it changes: the latent-bank side of the
synthesis node, free of ROS so it is tested without a graph."""

from __future__ import annotations

import threading

import numpy as np
from torch import Tensor

from thermal_synth.engine.inference import AppearanceTransition, SynthesisEngine
from thermal_synth.model.bank import LatentBank


def code_name(bank: LatentBank, value: str) -> str:
    """The bank name a latent_code value stands for; the error lists the choices."""
    if not value:
        if not len(bank):
            raise ValueError(
                "latent_code: the model's bank is empty; add a code to its bank.json "
                "(`thermal-synth codes add`) and call ~/reload_bank"
            )
        return bank.names()[0]
    if value not in bank:
        raise ValueError(f"latent_code: no code named {value!r}; available: {bank.describe_names()}")
    return value


class Appearances:
    """The code each stream renders, safe against parameter changes and bank reloads on other threads.

    One lock for every stream makes a reload, a switch and a frame's choice of projection atomic
    with respect to each other, so the worker never asks the engine for a name a reload has just
    removed. Streams showing the same code share the engine's cached projection.
    """

    def __init__(self, engine: SynthesisEngine, initial: dict[str, str]) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._transitions: dict[str, AppearanceTransition] = {}
        # The projection of a target a reload removed from the bank: the engine caches bank names only.
        self._held: dict[str, Tensor] = {}
        for stream, name in initial.items():
            code = self.bank.get(name)
            self._transitions[stream] = AppearanceTransition(
                code.name, code.z, spherical=not engine.bundle.config.spatial_code
            )

    @property
    def bank(self) -> LatentBank:
        return self._engine.bundle.bank

    def switch(self, stream: str, name: str, duration_s: float, now_s: float) -> None:
        with self._lock:
            self._retarget(stream, name, duration_s, now_s)

    def _retarget(self, stream: str, name: str, duration_s: float, now_s: float) -> None:
        code = self.bank.get(name)
        transition = self._transitions[stream]
        if code.name == transition.target_name and np.array_equal(code.z, transition.target_z):
            return
        transition.switch(code.name, code.z, now_s, duration_s)
        self._held.pop(stream, None)

    def projection(self, stream: str, now_s: float) -> Tensor:
        """Projects the blended z only while blending; a steady appearance costs a cache look-up."""
        with self._lock:
            transition = self._transitions[stream]
            if transition.blending(now_s):
                return self._engine.project(transition.z_at(now_s))
            if transition.target_name in self.bank:
                return self._engine.projection(transition.target_name)
            if stream not in self._held:
                self._held[stream] = self._engine.project(transition.target_z)
            return self._held[stream]

    def reload(self, duration_s: float, now_s: float) -> str:
        """Re-reads bank.json; raises ModelFileError (keeping the old bank) when it is broken."""
        with self._lock:
            bank = self._engine.bundle.reload_bank()
            self._engine.forget_codes()
            notes = [f"reloaded {len(bank)} codes: {bank.describe_names()}"]
            for stream, transition in self._transitions.items():
                current = transition.target_name
                if current not in bank:
                    whose = f"{stream}'s current code" if stream else "the current code"
                    notes.append(
                        f"{whose} {current!r} is no longer in the bank, so its appearance stays until "
                        "latent_code is set"
                    )
                    continue
                # The name may now stand for another z: blend into it like any other change.
                self._retarget(stream, current, duration_s, now_s)
            return "; ".join(notes)

    def describe(self, stream: str, now_s: float) -> tuple[str, str]:
        """(code, transition state) for diagnostics."""
        with self._lock:
            transition = self._transitions[stream]
            name = transition.target_name
            if name not in self.bank:
                name = f"{name} (removed from the bank)"
            if transition.blending(now_s):
                return name, f"blending {transition.fraction_at(now_s):.0%}"
            return name, "steady"
