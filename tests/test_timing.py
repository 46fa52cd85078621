"""One steady round's seconds (zscrgan/run/timing.py), with a clock that counts steps: no timed test."""
import types

import tensorflow as tf

from zscrgan.run import timing


def test_a_steady_round_is_timed_after_a_warm_up_round(monkeypatch):
    """The clock reads how many steps ran: the timed span holds exactly one E-step and one M-step."""
    calls = []
    outputs = {"loss": tf.constant(1.0)}
    model = types.SimpleNamespace(e_step=lambda e, n: calls.append(("e", e, n)) or outputs,
                                  m_step=lambda m: calls.append(("m", m)) or outputs)
    monkeypatch.setattr(timing.time, "perf_counter", lambda: float(len(calls)))
    assert timing.steady_round_s(model, (3, 2, 1)) == 2.0
    assert calls == [("e", 3, 2), ("m", 1)] * 2
