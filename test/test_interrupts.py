import os
import signal

import pytest

from thermal_synth.common.interrupts import deferred_interrupt


def _interrupt_inside_block(finished: list[bool]) -> None:
    with deferred_interrupt():
        os.kill(os.getpid(), signal.SIGINT)
        finished.append(True)


def test_interrupt_inside_block_is_delivered_after_it_completes():
    finished: list[bool] = []
    with pytest.raises(KeyboardInterrupt):
        _interrupt_inside_block(finished)
    assert finished == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_block_without_interrupt_restores_handler_and_raises_nothing():
    with deferred_interrupt():
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
