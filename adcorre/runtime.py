"""What a command does before TensorFlow loads: quiet its start-up noise, then name the device.

On a machine without a GPU, importing TensorFlow 2.21 prints, twice (two of its libraries
carry their own logger), "All log messages before absl::InitializeLog() is called are written
to STDERR", the oneDNN notice and "Could not find cuda drivers", and its first look at the
devices an error-level "failed call to cuInit". No environment variable silences the lines
written before absl is initialised, and an error line on a healthy machine reads as a failure.
So `quiet_keras` and `quiet_tensorflow` set `TF_CPP_MIN_LOG_LEVEL=2` (TensorFlow's own C++ info and warnings
off, its errors kept) and removes exactly those known lines while TensorFlow loads and first
looks for GPUs; everything else written meanwhile passes through. A `TF_CPP_MIN_LOG_LEVEL` of
the user's own (set and not empty) wins: then nothing is set and nothing is removed.
`device_line` then says in one line what the run uses.

Importing this module loads Keras that way (`quiet_keras`): every module of the package that
imports Keras at its top imports this one first, so `from adcorre.inference.test_models import
TestModels` is as quiet as the commands. The commands call `announce_device` (TensorFlow and its
first look for GPUs, quietly, then one line) after their options are read, so `--help` answers
at once:

```python
from adcorre import runtime       # loads Keras (and TensorFlow, its backend), quietly
import keras                      # already loaded: no start-up noise
runtime.announce_device()         # "Device: CPU (2 cores; no GPU found), TensorFlow 2.21.0"
```

This module imports nothing of ours.
"""

import contextlib
import os
import sys
import threading

LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
# 2: TensorFlow's C++ INFO and WARNING lines off, ERROR kept (3 would hide real errors too).
QUIET_LOG_LEVEL = "2"

# Lines TensorFlow writes on every start that say nothing about the run. The first three come
# before TensorFlow reads TF_CPP_MIN_LOG_LEVEL; cuInit's on the first device query of a machine
# without a GPU; the cuDNN / cuFFT / cuBLAS and placer ones on GPU machines whose CUDA libraries
# are loaded twice (tensorflow/tensorflow#62075; harmless by the maintainers' account).
START_UP_NOISE = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "Could not find cuda drivers on your machine",
    "failed call to cuInit",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "computation placer already registered",
    # LiteRT's interpreter (the BlazeFace face detector, exported models), on every
    # construction; the TFLite converter's summary of an int8 calibration.
    "Created TensorFlow Lite XNNPACK delegate",
    "fully_quantize: ",
)

_state = {"loaded": False, "tensorflow": False, "quieting": False, "announced": False,
          "gpus": None}


def _users_own_log_level():
    return bool(os.environ.get(LOG_LEVEL_VARIABLE, ""))


@contextlib.contextmanager
def _start_up_noise_removed():
    """Everything written to file descriptor 2 inside the block, less `START_UP_NOISE` lines.

    TensorFlow's C++ code writes to the descriptor, not to `sys.stderr`, so the descriptor is
    pointed at a pipe whose reader forwards each other line as it comes: nothing is held back,
    and what Python itself writes meanwhile (warnings) keeps its place.
    """
    if not _state["quieting"]:
        yield
        return
    # One thread at a time: a second thread's block would save the first one's pipe as "the
    # descriptor" and keep it open, and the first reader would wait for its end forever (two
    # BlazeFace workers making their interpreters did).
    with _FILTERING:
        yield from _filtered()


_FILTERING = threading.RLock()


def _filtered():
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no stderr descriptor (a detached process): nothing to filter
        yield
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    noise = tuple(line.encode() for line in START_UP_NOISE)

    def forward():
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not any(marker in line for marker in noise):
                    os.write(saved, line)

    reader = threading.Thread(target=forward, name="stderr-filter", daemon=True)
    reader.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the reader sees its end and stops
        reader.join()
        os.close(saved)


def start_up_noise_removed():
    """A context manager: `START_UP_NOISE` lines written to file descriptor 2 inside it are
    removed, everything else passes (nothing is removed when the user set their own
    `TF_CPP_MIN_LOG_LEVEL`). For the noise of a library loaded later (LiteRT's interpreter)."""
    return _start_up_noise_removed()


def quiet_keras():
    """Loads Keras (and its backend) without TensorFlow's start-up noise; a no-op after the first.

    Sets `TF_CPP_MIN_LOG_LEVEL=2` unless the user set it, then imports Keras with the known
    lines removed. Under the TensorFlow backend that loads TensorFlow; under JAX it does not
    (the `keras.ops` core runs where TensorFlow is not installed). Importing this module calls
    it; it helps only before anything else has imported Keras or TensorFlow (their start-up
    lines are out by then).
    """
    if _state["loaded"]:
        return
    _state["loaded"] = True
    if not _users_own_log_level():
        os.environ[LOG_LEVEL_VARIABLE] = QUIET_LOG_LEVEL
        _state["quieting"] = True
    with _start_up_noise_removed():
        import keras  # noqa: F401  (loads its backend, TensorFlow unless KERAS_BACKEND says not)


def quiet_tensorflow():
    """`quiet_keras`, then TensorFlow itself (tf.data needs it under any backend) and its first
    look for GPUs, all without their start-up noise; a no-op after the first call."""
    quiet_keras()
    if _state["tensorflow"]:
        return
    _state["tensorflow"] = True
    with _start_up_noise_removed():
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            pass
    # The first look for GPUs prints cuInit's error on a machine without one: take it here,
    # quietly (it initialises no device, so `tf.config.set_visible_devices` still works).
    physical_gpus()


def physical_gpus():
    """TensorFlow's GPUs as `(name, device)` pairs; the first look for them keeps quiet too.

    Returns:
        A list, empty on a machine without a GPU or without TensorFlow.
    """
    if _state["gpus"] is None:
        quiet_tensorflow()
        try:
            import tensorflow as tf
        except ImportError:
            _state["gpus"] = []
            return []
        with _start_up_noise_removed():
            devices = tf.config.list_physical_devices("GPU")
        names = []
        for device in devices:
            details = tf.config.experimental.get_device_details(device)
            names.append((details.get("device_name") or device.name, device))
        _state["gpus"] = names
    return list(_state["gpus"])


def _cpu_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def device_line(use_gpu=True):
    """One line naming the device a run uses.

    Args:
        use_gpu: False when the run was told to keep off the GPUs (`test.py --cpu`).

    Returns:
        E.g. `"Device: CPU (2 cores; no GPU found), TensorFlow 2.21.0"` or
        `"Device: 1 GPU (NVIDIA H100 80GB HBM3), TensorFlow 2.21.0"`.
    """
    quiet_tensorflow()
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        accelerators = [d for d in jax.devices() if d.platform != "cpu"]
        framework = f"JAX {jax.__version__} (Keras backend)"
        names = [getattr(d, "device_kind", d.platform) for d in accelerators]
    else:
        import tensorflow as tf

        framework = f"TensorFlow {tf.__version__}"
        names = [name for name, _ in physical_gpus()]
    if names and use_gpu:
        kinds = sorted(set(names))
        label = ", ".join(f"{kind} x{names.count(kind)}" if names.count(kind) > 1 else kind
                          for kind in kinds)
        return f"Device: {len(names)} GPU{'s' if len(names) > 1 else ''} ({label}), {framework}"
    why = "no GPU found" if not names else "GPU not used"
    cores = _cpu_cores()
    return f"Device: CPU ({cores} core{'s' if cores != 1 else ''}; {why}), {framework}"


def announce_device(use_gpu=True, stream=None):
    """Prints `device_line(use_gpu)` once per process, to stderr (stdout may carry results).

    Args:
        use_gpu: as in `device_line`.
        stream: where to print (default `sys.stderr`).
    """
    if _state["announced"]:
        return
    _state["announced"] = True
    print(device_line(use_gpu), file=stream or sys.stderr, flush=True)


def _quiet_start():
    quiet_keras()
    import keras

    if keras.backend.backend() == "tensorflow":  # loaded with Keras: its GPU look, quietly too
        quiet_tensorflow()


# The point of importing this module (see the module docstring).
_quiet_start()
