"""A bank of the appearances a dataset holds: what a trained model ships with, and what evaluation
paints each session's appearance from."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from thermal_synth.dataset.pairs import PairTensors
from thermal_synth.dataset.shards import SessionRecord, appearance_name
from thermal_synth.engine.inference import to_uint8
from thermal_synth.model.bank import LatentBank, LatentCode, make_thumbnail
from thermal_synth.model.files import ModelBundle


def bank_from_sessions(
    bundle: ModelBundle,
    pairs: PairTensors,
    sessions: Sequence[SessionRecord],
    frames_per_code: int = 16,
) -> LatentBank:
    """One code per appearance (identity + outfit + scene) of the training data, named after it.

    The code is the mean of the encoder's codes for evenly spread frames of those sessions, and
    the thumbnail is the middle frame, so a user sees which appearance a name stands for. A
    spatial code is the middle frame's alone: a mean of maps would be a mean of poses, a blur.
    """
    encoder = bundle.networks.encoder.eval()
    bank = LatentBank.for_model(bundle.config)
    groups: dict[str, list[int]] = {}
    for index, session in enumerate(sessions):
        groups.setdefault(appearance_name(session), []).append(index)
    for name, session_indices in groups.items():
        rows = np.flatnonzero(np.isin(pairs.sessions, session_indices))
        if rows.size == 0:
            continue
        if bundle.config.spatial_code:
            chosen = rows[[rows.size // 2]]
        else:
            chosen = rows[np.linspace(0, rows.size - 1, min(frames_per_code, rows.size)).round().astype(int)]
        with torch.inference_mode():
            z = encoder(pairs.images[chosen]).mean(0).numpy()
        middle = to_uint8(pairs.images[chosen[len(chosen) // 2 :][:1]])[0]
        bank.add(LatentCode(name, z, make_thumbnail(middle), f"training sessions {session_indices}"))
    return bank
