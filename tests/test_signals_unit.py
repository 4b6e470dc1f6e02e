"""The deferral of SIGINT/SIGTERM to safe points (hptune._signals), in this process."""

import os
import signal

import pytest

from hptune._signals import deferred_interrupts, raise_if_interrupted
from hptune.exceptions import Interrupted


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_is_raised_at_the_next_safe_point_and_a_second_at_once(number) -> None:
    before = signal.getsignal(number)
    with deferred_interrupts():
        raise_if_interrupted()  # nothing received yet
        os.kill(os.getpid(), number)  # recorded only: this line goes on
        with pytest.raises(Interrupted) as raised:
            raise_if_interrupted()
        assert raised.value.signal_number == number
        assert raised.value.signal_name == signal.Signals(number).name
        with pytest.raises(Interrupted):  # a second signal does not wait
            os.kill(os.getpid(), number)
    assert signal.getsignal(number) is before  # restored
    raise_if_interrupted()  # and forgotten: the next run starts clean


def test_interrupted_unwinds_like_ctrl_c() -> None:
    assert issubclass(Interrupted, KeyboardInterrupt)
