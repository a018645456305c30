"""The `>>>` examples in the modules' docstrings run and print what they show.

One test per top-level module with examples. Each runs every docstring example of its module
with `doctest` (NORMALIZE_WHITESPACE, ELLIPSIS), in an empty working folder, with `np`, `keras`
and the module's own names at hand; anything else an example imports itself. Every `>>>` line
of the module's file must belong to an example doctest found, so none is left unrun: examples
that need a dataset, a release file, a photo or minutes of training are plain code blocks.
"""

import doctest
import importlib
import os
import re

import keras
import numpy as np
import pytest

from helpers import REPO_ROOT

PROMPT = re.compile(r"^\s*>>>", re.MULTILINE)


def _source_path(name):
    return os.path.join(REPO_ROOT, name + ".py")


def _prompt_count(name):
    with open(_source_path(name), encoding="utf-8") as handle:
        return len(PROMPT.findall(handle.read()))


MODULES = sorted(
    name[:-3] for name in os.listdir(REPO_ROOT)
    if name.endswith(".py") and _prompt_count(name[:-3])
)


def test_modules_with_examples_are_found():
    assert {"config", "reports", "synth_faces"} <= set(MODULES), MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    module = importlib.import_module(name)
    # `test` is also a standard-library package: make sure this is the project's file.
    assert os.path.samefile(module.__file__, _source_path(name)), module.__file__
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    globs = {"np": np, "keras": keras, **vars(module)}
    doctests = doctest.DocTestFinder().find(module, globs=globs)
    found = sum(len(test.examples) for test in doctests)
    assert found == _prompt_count(name), (
        f"{name}.py has {_prompt_count(name)} '>>>' lines but doctest finds {found} examples: "
        "a '>>>' outside a docstring example is never run")
    runner = doctest.DocTestRunner(
        verbose=False, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    report = []
    failed = sum(runner.run(test, out=report.append).failed for test in doctests)
    assert failed == 0, "".join(report)
