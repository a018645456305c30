"""Where a run's steps run: the `tf.distribute` strategy for this machine, the worker that writes
the run's files, and the precision and compilation for its device.

Several GPUs train under `MirroredStrategy`, a multi-worker `TF_CONFIG` under
`MultiWorkerMirroredStrategy`; every worker trains, the chief alone writes files.
"""

import json
import os

from adcorre import runtime  # noqa: F401  (Keras loads without TensorFlow's start-up noise)
import keras


def _tf_config():
    """The parsed TF_CONFIG environment variable ({} when unset or empty)."""
    return json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")


def choose_strategy():
    """`MultiWorkerMirroredStrategy` when TF_CONFIG names several workers,
    `MirroredStrategy` with several GPUs, the default strategy otherwise."""
    import tensorflow as tf

    cluster = _tf_config().get("cluster", {})
    if len(cluster.get("worker", [])) + len(cluster.get("chief", [])) > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def strategy_name(strategy):
    """The public class name (TF names its multi-worker class CollectiveAllReduceStrategy)."""
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "MirroredStrategy"
    return type(strategy).__name__.lstrip("_")


def is_chief():
    """True on the worker that writes files (the only one, outside multi-worker runs)."""
    tf_config = _tf_config()
    task, cluster = tf_config.get("task", {}), tf_config.get("cluster", {})
    if not task:
        return True
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def configure_devices(jit_compile, mixed_precision):
    """Sets Keras' global precision policy for this machine and says whether to compile with XLA.

    Args:
        jit_compile: `"auto"` (XLA on a GPU, graph mode on a CPU) or a bool.
        mixed_precision: `"auto"` (bf16 on a GPU, float32 on a CPU), `"bfloat16"`, `"float16"`
            or `"none"` (the names `LearningConfig` checked).

    Returns:
        The `jit_compile` value for `Model.compile`.
    """
    on_gpu = bool(runtime.physical_gpus())  # the first look keeps quiet (cuInit's error line)
    jit = on_gpu if jit_compile == "auto" else bool(jit_compile)
    policy = {"auto": "mixed_bfloat16" if on_gpu else "float32", "bfloat16": "mixed_bfloat16",
              "float16": "mixed_float16", "none": "float32"}[mixed_precision]
    keras.mixed_precision.set_global_policy(policy)
    return jit
