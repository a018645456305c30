"""The `>>>` examples in the modules' docstrings run and print what they show.

One test per module of the package with examples. Each runs every docstring example of its module
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


PACKAGE = os.path.join(REPO_ROOT, "adcorre")


def _package_modules():
    """`{dotted name: file}` of every module of the package (`__init__` files as the package)."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for file in files:
            if file.endswith(".py") and file != "__main__.py":
                path = os.path.join(folder, file)
                relative = os.path.relpath(path, REPO_ROOT)[:-3].replace(os.sep, ".")
                found[relative.removesuffix(".__init__")] = path
    return found


def _prompt_count(path):
    with open(path, encoding="utf-8") as handle:
        return len(PROMPT.findall(handle.read()))


SOURCES = _package_modules()
MODULES = sorted(name for name, path in SOURCES.items() if _prompt_count(path))


def test_modules_with_examples_are_found():
    assert {"adcorre.config", "adcorre.reports", "adcorre.errors", "adcorre.models.registry",
            "adcorre.cli.common"} <= set(MODULES), MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    module = importlib.import_module(name)
    # The checkout's file, not another installed copy.
    assert os.path.samefile(module.__file__, SOURCES[name]), module.__file__
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    globs = {"np": np, "keras": keras, **vars(module)}
    doctests = doctest.DocTestFinder().find(module, globs=globs)
    found = sum(len(test.examples) for test in doctests)
    assert found == _prompt_count(SOURCES[name]), (
        f"{name} has {_prompt_count(SOURCES[name])} '>>>' lines but doctest finds {found} examples: "
        "a '>>>' outside a docstring example is never run")
    runner = doctest.DocTestRunner(
        verbose=False, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    report = []
    failed = sum(runner.run(test, out=report.append).failed for test in doctests)
    assert failed == 0, "".join(report)
