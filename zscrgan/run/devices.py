"""The devices a process computes on (docs/gpu.md): its GPUs set up before their first use, and
the name of the device its models run on; and what TensorFlow loads as it starts.

TensorFlow takes all of a GPU's memory in the first process that uses it unless memory growth
is on, so trials that share a GPU (a sweep's fractional `gpus`) need it in every process. TF32
rounds float32 matmul inputs to a 10-bit mantissa on Ampere and newer GPUs: it is off unless
the config's `tf32` turns it on (docs/algorithm.md §10.5).
"""
import os
import sys


def start_without_keras():
    """Keep TensorFlow from importing Keras's optimizers as it starts (for Keras models'
    SavedModels; a third of `import tensorflow`, about 2 s here): zscrgan builds no Keras model.
    For a process of our own (a command, a sweep's trial worker) that has imported neither yet:
    the module is marked absent, and TensorFlow's start-up skips it on the ImportError, as it
    does where Keras is not installed. A library user's process is left alone."""
    if not {"tensorflow", "keras"} & set(sys.modules):
        sys.modules.setdefault("keras.src.optimizers", None)


def gpus():
    """The GPUs TensorFlow sees (PhysicalDevice objects); listing them starts no GPU."""
    import tensorflow as tf
    return tf.config.list_physical_devices("GPU")


def configure(cfg):
    """Turn memory growth on for every visible GPU and set TF32 as cfg["tf32"] says (off when absent). Growth can
    only be set before a GPU's first use: a GPU this process already uses without it is
    reported."""
    import tensorflow as tf
    for gpu in gpus():
        if tf.config.experimental.get_memory_growth(gpu):
            continue
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            print(f"warning: memory growth is off on {short_name(gpu)}: TensorFlow had already started "
                  "in this process", file=sys.stderr)
    tf.config.experimental.enable_tensor_float_32_execution(bool(cfg.get("tf32", False)))


def short_name(device):
    """'GPU:0' for the PhysicalDevice '/physical_device:GPU:0'."""
    return device.name.split("physical_device:")[-1]


def describe(device):
    """'GPU:0 (NVIDIA A100-SXM4-40GB)': a device's short name and, when TensorFlow knows it, its model."""
    import tensorflow as tf
    model = tf.config.experimental.get_device_details(device).get("device_name")
    return f"{short_name(device)} ({model})" if model else short_name(device)


def supports_tf32(device):
    """Whether a GPU has TF32 (compute capability 8.0 or higher: Ampere and newer)."""
    import tensorflow as tf
    capability = tf.config.experimental.get_device_details(device).get("compute_capability")
    return bool(capability) and capability >= (8, 0)


def process_device():
    """Where this process's models run: 'CPU', or the first visible GPU, on which TensorFlow
    places them, with the CUDA_VISIBLE_DEVICES that chose it (Ray sets it for a trial)."""
    found = gpus()
    if not found:
        return "CPU"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return describe(found[0]) + (f", CUDA_VISIBLE_DEVICES={visible}" if visible else "")
