"""The golden test: the project's updates reproduce the authors' TF1 code.

The vector and the comparison with its tolerances are the package's (zscrgan/model/golden.py,
shared with `zscrgan devices`): zscrgan/model/golden_vector/reference_steps.npz (its README.md),
or another vector of the same format named by $ZSCRGAN_GOLDEN. The three losses must agree
before and after the vector's updates, and every layer's final weights within
golden.MAX_RELATIVE_ERROR of how far the reference moved that layer.
"""
import os

import pytest

from zscrgan.model import golden


@pytest.fixture(scope="module")
def vector():
    path = golden.vector_path()
    assert os.path.isfile(path), f"golden vector not found at {path} (ZSCRGAN_GOLDEN names another)"
    return path, golden.load(path)


def test_updates_reproduce_the_reference(vector, record_property):
    path, g = vector
    result = golden.check(g)
    assert not result.bad_losses("init"), {k: result.losses[k] for k in result.bad_losses("init")}
    report = result.report()
    print(f"\n{path}: weight error / reference movement per layer (limit {golden.MAX_RELATIVE_ERROR:.0e})\n{report}")
    for key, err in result.errors.items():
        record_property(f"relative_error/{key}", err)
    bad = result.bad_layers()
    assert not bad, f"{', '.join(bad)} differ from the reference by more than {golden.MAX_RELATIVE_ERROR:.0e} " \
                    f"of their update:\n{report}"
    assert not result.bad_losses("final"), {k: result.losses[k] for k in result.bad_losses("final")}
