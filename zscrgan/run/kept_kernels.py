"""A process's traced kernels, kept for its next run of the same shape (sweep trials; opt-in).

Tracing the E- and M-steps and the evaluators' embeddings, and compiling (or loading) their
XLA executables, is most of a run's start. A sweep's worker runs trial after trial in one
process, mostly of one shape, so `reuse` keeps the last run's model and evaluators and hands
them to the next run whose functions would trace the same graphs, with every variable set to
what that run's own fresh build holds: the run neither traces nor compiles, and computes what
it would have computed with its own kernels.

The same graphs: the config equal apart from em.VALUE_ONLY, the same data in the sampler's and
evaluators' tensors, and the same variables (names, shapes, dtypes, in order). The state:
every variable the run's checkpoint holds (weights, optimizer slots, Adam's beta powers,
the sampler's order and cursors, the random generator's state), which is what a resumed
run restores to continue exactly (docs/algorithm.md §9.3).
"""
import numpy as np
import tensorflow as tf

from zscrgan.model.em import graph_settings

_kept = None  # (settings, model, evaluators) of the last run that asked


def held_arrays(model, evaluators):
    """The data the kept objects hold as numpy arrays: the sampler's tensors (captured by the
    steps) and each evaluator's queries, gallery and labels (evaluators: Evaluators or None)."""
    s = model.sampler
    arrays = [s.class_ids, s.images, s.texts, s.counts, s.offsets]
    for e in evaluators:
        arrays += [] if e is None else [e.texts, e.images, e.query_labels, e.gallery_labels]
    return [np.asarray(a) for a in arrays]


def state(model):
    """Every variable that a checkpoint of `model` holds, in a fixed order."""
    return [v for v in tf.train.TrackableView(model).descendants() if isinstance(v, tf.Variable)]


def _same_arrays(a, b):
    return len(a) == len(b) and all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a, b))


def _same_variables(a, b):
    return len(a) == len(b) and all((x.name, x.shape, x.dtype) == (y.name, y.shape, y.dtype) for x, y in zip(a, b))


def reuse(cfg, model, evaluators):
    """(model, evaluators): the kept ones holding `model`'s variable values when their graphs
    are those `model` and `evaluators` (freshly built, not traced) would trace; otherwise the
    fresh ones, which are kept for the next call.

    evaluators: the run's Evaluators (None for one it does not have: the validation classes'),
    which share `model`'s networks and generator.
    """
    global _kept
    key = graph_settings(cfg)
    if _kept is not None and _kept[0] == key:
        _, kept_model, kept_evaluators = _kept
        kept_vars, fresh_vars = state(kept_model), state(model)
        if (_same_variables(kept_vars, fresh_vars)
                and _same_arrays(held_arrays(kept_model, kept_evaluators), held_arrays(model, evaluators))):
            for kept, fresh in zip(kept_vars, fresh_vars):
                kept.assign(fresh)
            kept_model.cfg = cfg
            return kept_model, kept_evaluators
    _kept = (key, model, evaluators)
    return model, evaluators


def kept():
    """(model, evaluators) kept by the last call of `reuse`, or None."""
    return _kept and _kept[1:]


def forget():
    """Drop the kept model and evaluators."""
    global _kept
    _kept = None
