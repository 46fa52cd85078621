"""The report's baselines are computed once: a second report reads DIR/.baselines/ and writes the
same bytes; a change of anything they depend on, or a damaged cache file, computes them again."""
import json

import pytest
from conftest import make_dataset
from test_report import write_trial

from zscrgan.model import baselines
from zscrgan.sweeps import baseline_cache
from zscrgan.sweeps import report as zr


@pytest.fixture
def computed(monkeypatch):
    """The (dataset name, K, seed) of every baselines.compare call."""
    calls, compare = [], baselines.compare

    def counting(dataset, k, seed, **parameters):
        calls.append((dataset.name, k, seed))
        return compare(dataset, k, seed, **parameters)

    monkeypatch.setattr(baselines, "compare", counting)
    return calls


def report_bytes(out):
    zr.write_report(str(out))
    return {name: (out / name).read_bytes() for name in ("results.csv", "summary.csv", "summary.md")}


def test_a_second_report_reads_the_cache_and_writes_the_same_bytes(tmp_path, computed, monkeypatch):
    for plot in ("plot_summary", "plot_curves"):  # the tables are what the cache may change
        monkeypatch.setattr(zr, plot, lambda *args: None)
    datasets, out = tmp_path / "datasets", tmp_path / "sweep"
    make_dataset(str(datasets / "A"), seed=1)
    for seed in (0, 1):
        write_trial(out, "A", seed, "finished", [0.3, 0.5], datasets_dir=datasets)
    first = report_bytes(out)
    assert sorted(computed) == [("A", 5, 0), ("A", 5, 1)]
    entries = sorted((out / ".baselines").iterdir())
    assert len(entries) == 2 and all(p.suffix == ".json" for p in entries)

    computed.clear()
    assert report_bytes(out) == first and computed == []  # from the cache, byte for byte

    entries[0].write_text("{not json")  # damaged: ignored, computed again, rewritten
    assert report_bytes(out) == first and len(computed) == 1
    assert json.loads(entries[0].read_text())["format"] == baseline_cache.FORMAT

    computed.clear()
    make_dataset(str(datasets / "A"), seed=2)  # other bytes: other baselines
    assert report_bytes(out)["summary.csv"] != first["summary.csv"] and len(computed) == 2
    computed.clear()
    make_dataset(str(datasets / "A"), seed=1)  # the first bytes again: their entries are still there
    assert report_bytes(out) == first and computed == []


def test_every_part_of_the_key_counts(tmp_path, computed, monkeypatch):
    """K, the seed and compare's parameters each make a new entry; the first call's is reused."""
    datasets = tmp_path / "datasets"
    make_dataset(str(datasets / "A"))
    cache = str(tmp_path / "cache")
    first = baseline_cache.Baselines(cache)(str(datasets), "A", 0, 5)
    assert baseline_cache.Baselines(cache)(str(datasets), "A", 0, 5) == first and len(computed) == 1
    baseline_cache.Baselines(cache)(str(datasets), "A", 0, 4)
    baseline_cache.Baselines(cache)(str(datasets), "A", 1, 5)
    monkeypatch.setitem(baseline_cache.PARAMETERS, "max_pairs", 7)
    baseline_cache.Baselines(cache)(str(datasets), "A", 0, 5)
    assert computed == [("A", 5, 0), ("A", 4, 0), ("A", 5, 1), ("A", 5, 0)]
    assert baseline_cache.Baselines(None)(str(datasets), "A", 0, 5)["chance"] == first["chance"]  # no cache
    assert len(computed) == 5
    note = baseline_cache.Baselines(cache)(str(tmp_path / "gone"), "A", 0, 5)
    assert note.startswith("no baselines: ") and len(computed) == 5
