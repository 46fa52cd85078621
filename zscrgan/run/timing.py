"""The seconds of one steady round: shared by `zscrgan devices` and the benchmarks."""
import time


def steady_round_s(model, steps):
    """Seconds of one E-step and M-step (docs/algorithm.md §5) after a warm-up round, so that
    tracing, compiling and first-call costs are left out. Evaluation is not timed.

    model: anything with compiled `e_step(e_steps, n_critic)` and `m_step(m_steps)` returning
    mappings of tensors (a ZSCRGAN, or several stacked); steps: (e_steps, n_critic, m_steps) as
    scalar tensors, so the timed round runs the warm-up's trace. The round's outputs are read
    back, so the time includes waiting for the device to finish. The model is left two rounds on.
    """
    def one_round():
        out = {**model.e_step(steps[0], steps[1]), **model.m_step(steps[2])}
        return [value.numpy() for value in out.values()]

    one_round()
    t0 = time.perf_counter()
    one_round()
    return time.perf_counter() - t0
