"""A whole model session (load, one inference, close) on a simulated Pi 3 with each of its
mailbox calls failing in turn, by timing out or by answering garbage, with GPU memory from
/dev/vcsm-cma or from the firmware (issue 14): every run ends
in a one-line vc4infer or driver error or in the right answer, and leaves the board with no GPU
memory held and the QPUs powered down."""
import logging

import numpy as np
import pytest

import vc4infer
from hostside.driver import simboard
from vc4infer.device import DriverError
from vc4infer.errors import Vc4InferError



@pytest.mark.slow
@pytest.mark.parametrize("memory", ["vcsm-cma", "mailbox"])
@pytest.mark.parametrize("mode", ["timeout", "garbage"])
def test_every_mailbox_call_of_a_model_session_failing_in_turn(small_v2, mode, memory, caplog):
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    expected = vc4infer.load(small_v2, backend="neon").run(x)

    def session(firmware):
        options = {"board": firmware, "memory": memory}
        with vc4infer.load(small_v2, backend="hw", driver_options=options) as model:
            return model.run(x)

    clean = simboard.firmware_for("pi3")
    np.testing.assert_allclose(session(clean), expected, rtol=1e-4, atol=1e-3)
    assert clean.calls_made > 30
    outcomes = []
    caplog.set_level(logging.ERROR)                  # the driver's warnings are expected here
    for i in range(clean.calls_made):
        firmware = simboard.firmware_for("pi3")
        firmware.fail_call, firmware.fail_mode = i, mode
        try:
            np.testing.assert_allclose(session(firmware), expected, rtol=1e-4, atol=1e-3)
            outcomes.append("ok")
        except (DriverError, Vc4InferError) as exc:
            assert "\n" not in str(exc), (i, str(exc))
            outcomes.append(type(exc).__name__)
        call = clean.recent_calls[i]
        assert firmware.live_handles() == {}, (i, call, outcomes[-1])
        assert not firmware.qpu_enabled, (i, call, outcomes[-1])
    assert "ok" in outcomes and len(set(outcomes)) > 2, outcomes
