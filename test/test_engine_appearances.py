"""The synthesis node's ROS-free parts, without a graph: which code each stream paints and the blend
when it changes (engine/appearances.py), stream names (engine/streams.py) and the node's
parameter parsing (nodes/synth_parameters.py). The shipped default model paints."""

from __future__ import annotations

import json
from array import array
from pathlib import Path

import pytest
import torch
from model_fixtures import copy_model

from thermal_synth.engine.appearances import Appearances, code_name
from thermal_synth.engine.inference import SynthesisEngine
from thermal_synth.engine.streams import MAX_STREAMS, SINGLE_STREAM, parse_streams
from thermal_synth.model.bank import LatentBank
from thermal_synth.model.files import BANK_FILE, DEFAULT_MODEL, load_model
from thermal_synth.nodes.synth_parameters import (
    MAX_OUTPUT_RATE_HZ,
    RenderSettings,
    parse_output_rate,
    parse_output_size,
)


@pytest.fixture
def engine(tmp_path: Path) -> SynthesisEngine:
    return SynthesisEngine(load_model(copy_model(DEFAULT_MODEL, tmp_path / "model")), "cpu", precision="fp32")


def test_an_empty_name_is_the_first_code_and_unknown_names_list_the_choices(engine) -> None:
    bank = engine.bundle.bank
    assert code_name(bank, "") == bank.names()[0]
    assert code_name(bank, bank.names()[-1]) == bank.names()[-1]
    with pytest.raises(ValueError, match="no code named 'nobody'; available: "):
        code_name(bank, "nobody")
    with pytest.raises(ValueError, match="bank is empty"):
        code_name(LatentBank(bank.z_dim), "")


def test_a_switch_blends_from_the_old_code_into_the_new_one_over_its_duration(engine) -> None:
    first, last = engine.bundle.bank.names()[0], engine.bundle.bank.names()[-1]
    appearances = Appearances(engine, {SINGLE_STREAM: first, "bob": first})
    assert appearances.projection(SINGLE_STREAM, 0.0) is engine.projection(first)  # steady: cached

    appearances.switch(SINGLE_STREAM, last, duration_s=2.0, now_s=10.0)
    start, middle, end = (appearances.projection(SINGLE_STREAM, t) for t in (10.0, 11.0, 12.0))
    assert torch.allclose(start, engine.projection(first), atol=1e-5)
    assert not torch.allclose(middle, engine.projection(first), atol=1e-3)
    assert not torch.allclose(middle, engine.projection(last), atol=1e-3)
    assert end is engine.projection(last)
    assert appearances.describe(SINGLE_STREAM, 11.0) == (last, "blending 50%")
    assert appearances.describe("bob", 11.0) == (first, "steady"), "a switch is one stream's only"


def test_a_reload_that_removes_the_current_code_keeps_its_appearance(engine) -> None:
    names = engine.bundle.bank.names()
    appearances = Appearances(engine, {SINGLE_STREAM: names[-1]})
    before = appearances.projection(SINGLE_STREAM, 0.0).clone()
    bank_file = engine.bundle.directory / BANK_FILE
    document = json.loads(bank_file.read_text())
    document["codes"] = [code for code in document["codes"] if code["name"] != names[-1]]
    bank_file.write_text(json.dumps(document))

    note = appearances.reload(duration_s=0.0, now_s=1.0)
    assert f"{names[-1]!r} is no longer in the bank" in note
    assert torch.equal(appearances.projection(SINGLE_STREAM, 1.0), before)
    assert appearances.describe(SINGLE_STREAM, 1.0)[0] == f"{names[-1]} (removed from the bank)"
    appearances.switch(SINGLE_STREAM, names[0], duration_s=0.0, now_s=2.0)
    assert appearances.projection(SINGLE_STREAM, 2.0) is engine.projection(names[0])


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("alice", "must be a list of names"),
        (["alice", "alice"], "must be unique"),
        (["9lives"], "not valid names"),
        (["a/b"], "not valid names"),
        ([f"p{i}" for i in range(MAX_STREAMS + 1)], f"at most {MAX_STREAMS}"),
    ],
)
def test_stream_names_are_refused_with_a_reason(value, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_streams(value)


def test_stream_names_default_to_the_single_stream() -> None:
    assert parse_streams(None) == parse_streams([]) == (SINGLE_STREAM,)
    assert parse_streams(["alice", "bob_2"]) == ("alice", "bob_2")


def test_render_settings_parse_what_ros2_param_set_may_send() -> None:
    assert parse_output_size([0, 0]) is None
    assert parse_output_size([]) is None
    assert parse_output_size(array("q", [480, 640])) == (480, 640)  # how rclpy hands integer arrays
    for bad in ([0, 64], [4000, 640], [96], "480x640", [96.0, 128.0]):
        with pytest.raises(ValueError, match="output_size"):
            parse_output_size(bad)
    assert parse_output_rate(30) == 30.0
    for bad in (-1.0, MAX_OUTPUT_RATE_HZ + 1, float("nan"), True, "30"):
        with pytest.raises(ValueError, match="output_rate_hz"):
            parse_output_rate(bad)
    with pytest.raises(ValueError, match="transition_s"):
        RenderSettings.from_parameters([0, 0], -0.5, 0.0)
