"""Devices: a process's GPU set-up (zscrgan/run/devices.py) and `zscrgan devices` (zscrgan/tools/devices.py)."""
import types

import pytest
import tensorflow as tf

from conftest import tiny_config
from zscrgan.run import devices


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


def test_a_process_without_a_gpu_runs_on_the_cpu():
    found = devices.gpus()
    assert devices.process_device() == (devices.describe(found[0]) if found else "CPU")
