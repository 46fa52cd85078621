"""Devices: a process's GPU set-up (zscrgan/run/devices.py) and `zscrgan devices` (zscrgan/tools/devices.py)."""
import json
import os
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, run_tool, tiny_config
from zscrgan.model import golden
from zscrgan.run import devices
from zscrgan.tools import devices as tool


@pytest.fixture
def tf32_restored():
    before = tf.config.experimental.tensor_float_32_execution_enabled()
    yield
    tf.config.experimental.enable_tensor_float_32_execution(before)


def test_configure_sets_tf32_from_the_config(tf32_restored):
    for on in (True, False):
        devices.configure(tiny_config(tf32=on))
        assert tf.config.experimental.tensor_float_32_execution_enabled() is on


def test_configure_turns_memory_growth_on_for_every_gpu_before_first_use(monkeypatch, capsys, tf32_restored):
    """Two fake GPUs, the second already in use without growth: the first gets it, the second is reported."""
    fake = [types.SimpleNamespace(name=f"/physical_device:GPU:{i}") for i in range(2)]
    growth = {}

    def set_growth(gpu, on):
        if gpu is fake[1]:
            raise RuntimeError("Physical devices cannot be modified after being initialized")
        growth[gpu.name] = on

    monkeypatch.setattr(devices, "gpus", lambda: fake)
    monkeypatch.setattr(tf.config.experimental, "get_memory_growth", lambda gpu: growth.get(gpu.name, False))
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", set_growth)
    devices.configure(tiny_config())
    assert growth == {"/physical_device:GPU:0": True}
    assert capsys.readouterr().err == ("warning: memory growth is off on GPU:1: TensorFlow had already started "
                                       "in this process\n")
    devices.configure(tiny_config())  # a later run in the same process: GPU:0 is left as it is
    assert growth == {"/physical_device:GPU:0": True}


def test_keras_is_left_alone_once_tensorflow_started():
    """A process that started TensorFlow (this one, or a library user's) keeps Keras importable.
    That our own processes start without it is checked by every process the tests start
    (conftest.no_keras_path)."""
    before = sys.modules.get("keras.src.optimizers", "absent")
    devices.start_without_keras()
    assert sys.modules.get("keras.src.optimizers", "absent") is before


def test_a_process_without_a_gpu_runs_on_the_cpu():
    found = devices.gpus()
    assert devices.process_device() == (devices.describe(found[0]) if found else "CPU")


# --------------------------------------------------------------------------- zscrgan devices


def test_first_difference_compares_bits():
    a = {"round 1 d_loss": np.float32(0.5), "g1/kernel": np.zeros((2, 3), np.float32), "nan": np.float32("nan")}
    assert tool.first_difference(a, {k: np.copy(v) for k, v in a.items()}) is None  # NaN has the same bits
    b = {**a, "g1/kernel": np.array([[0, 0, 0], [0, -0.0, 0]], np.float32)}
    assert tool.first_difference(a, b) == "g1/kernel[1, 1]: 0.0 vs -0.0"
    assert tool.first_difference(a, {**a, "round 1 d_loss": np.float32(0.25)}) == "round 1 d_loss: 0.5 vs 0.25"
    assert tool.first_difference(a, {**a, "nan": np.zeros(2, np.float32)}) == "nan: float32[] vs float32[2]"


def devices_tool(capsys, *flags):
    """`zscrgan devices` in this process: (exit status, stdout, stderr)."""
    status = run_tool("devices", flags)
    return (status, *capsys.readouterr())


@pytest.fixture
def quick(monkeypatch):
    """`devices` without its slow parts: no timed round, and the tiny run stubbed by the test."""
    monkeypatch.setattr(tool, "round_seconds", lambda cfg, dataset: 0.0)


def test_a_perturbed_golden_vector_fails_naming_the_layer(tmp_path, monkeypatch, capsys, quick):
    g = golden.load()
    moved = np.max(np.abs(g["final/g2/kernel"] - g["init/g2/kernel"]))
    g["final/g2/kernel"] = g["final/g2/kernel"].copy()
    g["final/g2/kernel"][0, 0] += 0.01 * moved
    np.savez(tmp_path / "planted.npz", **g)
    monkeypatch.setenv(golden.VECTOR_ENV, str(tmp_path / "planted.npz"))
    monkeypatch.setattr(tool, "reproduces", lambda cfg, dataset: None)
    status, out, _ = devices_tool(capsys, "--json")
    report = json.loads(out)
    assert status == 1 and not report["ok"] and report["golden_vector"] == str(tmp_path / "planted.npz")
    cpu, = report["devices"]
    assert cpu["golden"]["bad_layers"] == ["g2/kernel"] and cpu["golden"]["worst_layer"] == "g2/kernel"
    assert cpu["failures"] == ["CPU:0: the golden check fails: g2/kernel differs from the reference by 1.00e-02 "
                               "of its update (limit 3e-04)"]


def test_a_missing_golden_vector_is_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(golden.VECTOR_ENV, str(tmp_path / "none.npz"))
    status, _, err = devices_tool(capsys)
    assert status == 2 and err == f"error: golden vector not found at {tmp_path / 'none.npz'} " \
                                  f"(${golden.VECTOR_ENV} names another)\n"


def test_the_same_run_twice_passes_or_names_the_first_difference(monkeypatch, capsys, quick):
    monkeypatch.setattr(tool, "tiny_run", lambda cfg, dataset: {"round 1 d_loss": np.float32(-0.5)})
    status, out, _ = devices_tool(capsys)
    lines = out.splitlines()
    assert status == 0 and lines[0].split() == ["device", "golden", "check", "(TF32", "off)", "TF32", "on",
                                                "(information)", "same", "run", "twice", "steady", "round"]
    cells = lines[1].split()
    assert cells[:4] == ["CPU:0", "ok", "(worst", "csem/kernel"] and cells[5:] == ["n/a", "identical", "0.00", "s"]
    assert "no GPU visible" in lines and lines[-1] == "every device reproduces the golden vector and itself"

    runs = []

    def tiny_run(cfg, dataset):  # the second run differs in one weight's last bit
        out = {"round 1 d_loss": np.float32(-0.5), "g1/kernel": np.full((2, 3), 0.25, np.float32)}
        if runs:
            out["g1/kernel"][1, 2] = np.nextafter(np.float32(0.25), np.float32(1))
        runs.append(out)
        return out

    monkeypatch.setattr(tool, "tiny_run", tiny_run)
    status, out, _ = devices_tool(capsys)
    lines = out.splitlines()
    assert status == 1 and len(runs) == 2 and "DIFFERS" in lines[1]
    assert lines[-1] == "CPU:0: the same run twice differs first at g1/kernel[1, 2]: 0.25 vs 0.25000003"


@pytest.mark.slow
def test_an_installed_copy_checks_its_devices_with_no_clone_beside_it(tmp_path):
    """pip installs a copy of the package's files into a venv that sees this Python's packages (so
    nothing is downloaded), and its `zscrgan devices --json` runs in an empty folder."""
    source, venv, elsewhere = tmp_path / "source", tmp_path / "venv", tmp_path / "elsewhere"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), source / name)
    for name in ("zscrgan", "configs"):
        shutil.copytree(os.path.join(ROOT, name), source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    str(source)], check=True, capture_output=True, timeout=600)
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_XLA_FLAGS", golden.VECTOR_ENV)}
    proc = subprocess.run([str(venv / "bin" / "zscrgan"), "devices", "--json"], cwd=str(elsewhere), env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["ok"] and report["golden_vector"].startswith(str(venv))  # the installed copy's own vector
    cpu = report["devices"][0]
    assert cpu["device"] == "CPU:0" and cpu["golden"]["ok"] and cpu["reproducible"] and cpu["round_s"] > 0
    assert report["gpus"] == len(report["devices"]) - 1 and not os.listdir(elsewhere)
