"""Running the compiled E- and M-steps in a process: its TensorFlow set-up (threads,
determinism), the first round's tracing beside compiling, recovery from a compile-cache entry
that cannot be loaded, and the heap the rounds keep frozen. Shared by the one loop, a group's
memory probe and the benchmarks.
"""
import concurrent.futures
import contextlib
import gc
import sys
import time

from zscrgan.run import compile_cache, devices


def set_threads(n):
    """Use n CPU threads for TensorFlow's op pools (0: TensorFlow's choice). Only possible
    before TensorFlow's runtime starts; afterwards a differing request is reported."""
    import tensorflow as tf
    if not n:
        return
    if tf.config.threading.get_intra_op_parallelism_threads() == n:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:
        print(f"warning: threads = {n} ignored: TensorFlow had already started in this process",
              file=sys.stderr)


def setup_tensorflow(cfg):
    """What every process that builds a model sets before TensorFlow's runtime starts."""
    import tensorflow as tf
    set_threads(cfg.threads)
    devices.configure(cfg)
    tf.config.experimental.enable_op_determinism()


def checkpoint_of(model):
    """The tf.train.Checkpoint of a run: its model (a ZSCRGAN), the round and the best score."""
    import tensorflow as tf
    rounds_done = tf.Variable(0, dtype=tf.int64, name="round")
    best = tf.Variable(-1.0, dtype=tf.float64, name="best")
    return tf.train.Checkpoint(model=model, best=best, round=rounds_done)


def compiled(model, step):
    """step(model), where step calls model.e_step or model.m_step. When XLA cannot load the
    step from the compile cache (an entry damaged in a way only loading shows), the cache is
    emptied and the steps traced and compiled again: loading fails before the step runs, so
    nothing changed."""
    import tensorflow as tf
    from tqdm import tqdm
    try:
        return step(model)
    except tf.errors.OpError as e:
        said = compile_cache.drop_after_failure(e)
        if not said:
            raise
    tqdm.write(said, file=sys.stderr)
    model.new_steps()
    return step(model)


@contextlib.contextmanager
def frozen_heap():
    """Keep Python's cycle collector off the objects alive when the rounds start (TensorFlow's
    ~450k among them): tracing the steps allocates enough to trigger full collections, which
    rescanned them all (a third of the tracing time). Given back to the collector afterwards."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def e_step_tracing_m_step(model, e_steps, n_critic, m_steps, startup=None):
    """model.e_step(e_steps, n_critic); before the M-step's first trace, the M-step is traced
    in a second thread meanwhile: tracing is Python, while the E-step's compile (or load) and
    run are not. The E-step is traced first and the M-step waited for before anything else, so
    the functions and their names are the same in every process (XLA's cache finds them).
    startup: a dict that gets trace_s, the seconds spent only tracing: the E-step's trace and
    any wait for the M-step's after the E-step ran."""
    if model.m_step.experimental_get_tracing_count():
        return model.e_step(e_steps, n_critic)
    t0 = time.perf_counter()
    model.e_step.get_concrete_function(e_steps, n_critic)
    traced = time.perf_counter() - t0
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        m_traced = pool.submit(model.m_step.get_concrete_function, m_steps)
        try:
            return model.e_step(e_steps, n_critic)
        finally:
            t1 = time.perf_counter()
            m_traced.result()
            if startup is not None:
                startup["trace_s"] = traced + time.perf_counter() - t1
