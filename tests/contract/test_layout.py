"""The package's layout is the one docs/architecture.md draws, and the checkout keeps its faces.

docs/architecture.md puts every module of `adcorre` on a numbered row of "Who imports whom"; a
module may import only modules on rows above its own. The check reads every `import` of every
module, the ones inside functions too (a late import is still a dependency), and the module
table must name every module and exactly what it imports. Between subpackages imports flow one
way (training and inference never import each other). The root holds exactly the card's names,
each a face of the package; every module that loads Keras at its top quiets TensorFlow first.
"""

import ast
import os
import re
import subprocess

import pytest

from helpers import REPO_ROOT, python_command, python_env

PACKAGE = os.path.join(REPO_ROOT, "adcorre")
ARCHITECTURE = os.path.join(REPO_ROOT, "docs", "architecture.md")
# The subpackages in the order imports may flow (a later one may import an earlier one);
# `core` stands for the package's own top-level modules and `models.registry`.
LAYERS = ("core", "models", "data", "training", "inference", "serve", "reproduce", "cli")
# The card's names at the root, and nothing else that Python imports.
ROOT_FACES = {"train.py", "test.py", "config.py", "cnn_model.py", "custom_loss.py",
              "data_helper.py"}


def _page():
    with open(ARCHITECTURE, encoding="utf-8") as handle:
        return handle.read()


def _our_modules():
    """Dotted names relative to the package (`models.arm`), `__init__` and `__main__` left out."""
    found = []
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py") and name not in ("__init__.py", "__main__.py"):
                relative = os.path.relpath(os.path.join(folder, name[:-3]), PACKAGE)
                found.append(relative.replace(os.sep, "."))
    return sorted(found)


def _source(module):
    with open(os.path.join(PACKAGE, *module.split(".")) + ".py", encoding="utf-8") as handle:
        return handle.read()


def _imported_names(source):
    """Every absolute module name `source` imports, anywhere (top level or inside functions),
    `from a.b import c` counted as `a.b` and `a.b.c` (c may be a module)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(node.args[0].value)  # importlib.import_module("name"): a late import too
    return names


def _imports_in(source, ours):
    """The modules of `ours` (relative dotted names) that `source` imports."""
    relative = {name[len("adcorre."):] for name in _imported_names(source)
                if name.startswith("adcorre.")}
    return relative & set(ours)


def _imports_of(module, ours):
    return _imports_in(_source(module), ours) - {module}


def _import_rows(page):
    block = page.split("## Who imports whom", 1)[1].split("```", 2)[1]
    rows, row = {}, None
    for line in block.strip("\n").splitlines():
        numbered = re.match(r"^(\d+)\s+(.*)$", line)
        if numbered:
            row, line = int(numbered.group(1)), numbered.group(2)
        for name in line.split():
            rows[name] = row
    return rows


def _module_table(page):
    """`{module: the set its "imports of ours" column names}` of the page's module table."""
    table = page.split("## Modules", 1)[1].split("## Who imports whom", 1)[0]
    rows = {}
    for module, imports in re.findall(r"^\|[^|\n]*\| `([\w/]+)` \|.*\| ([^|\n]*) \|$", table,
                                      re.M):
        rows[module.replace("/", ".")] = (set() if imports == "none"
                                          else set(re.split(r",\s*", imports)))
    return rows


def _layer(module):
    head = module.split(".")[0]
    return "core" if head not in LAYERS or module == "models.registry" else head


def test_every_module_sits_on_one_row_of_the_import_graph():
    assert sorted(_import_rows(_page())) == _our_modules()


def test_modules_import_only_the_rows_above_their_own():
    rows = _import_rows(_page())
    ours = _our_modules()
    upward = [f"{module} (row {rows[module]}) imports {other} (row {rows[other]})"
              for module in ours for other in sorted(_imports_of(module, ours))
              if rows[other] >= rows[module]]
    assert not upward, upward


def test_the_module_table_names_every_module_and_what_it_imports():
    table = _module_table(_page())
    ours = _our_modules()
    assert sorted(table) == ours
    wrong = {module: (listed, _imports_of(module, ours)) for module, listed in table.items()
             if listed != _imports_of(module, ours)}
    assert not wrong, wrong  # module: (the page's column, the code's imports)


def test_imports_flow_one_way_between_subpackages():
    ours = _our_modules()
    backward = [f"{module} imports {other}" for module in ours
                for other in sorted(_imports_of(module, ours))
                if LAYERS.index(_layer(other)) > LAYERS.index(_layer(module))
                or {_layer(module), _layer(other)} == {"training", "inference"}]
    assert not backward, backward


def test_package_inits_import_nothing_of_ours_eagerly():
    for folder, _, files in os.walk(PACKAGE):
        if "__init__.py" not in files:
            continue
        with open(os.path.join(folder, "__init__.py"), encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        eager = [ast.unparse(node) for node in tree.body
                 if isinstance(node, (ast.Import, ast.ImportFrom))
                 and "adcorre" in ast.unparse(node)]
        assert not eager, (folder, eager)


def test_modules_that_load_keras_quiet_tensorflow_first():
    """`from adcorre.X import Y` is as quiet as the commands: `adcorre.runtime` comes first."""
    loud = []
    for module in _our_modules():
        body = ast.parse(_source(module)).body
        names = [ast.unparse(node) for node in body if isinstance(node, (ast.Import, ast.ImportFrom))]
        heavy = [i for i, text in enumerate(names)
                 if re.match(r"(import|from) (keras|tensorflow)\b", text)]
        quiet = [i for i, text in enumerate(names) if text == "from adcorre import runtime"]
        if heavy and (not quiet or quiet[0] > heavy[0]):
            loud.append(module)
    assert not loud, loud


def test_the_root_keeps_exactly_the_cards_faces():
    python_files = {name for name in os.listdir(REPO_ROOT) if name.endswith(".py")}
    assert python_files == ROOT_FACES
    for name in ("trained_models", "requirements.txt", "pyproject.toml"):
        assert os.path.exists(os.path.join(REPO_ROOT, name)), name


@pytest.mark.parametrize("face, module", [("config", "adcorre.config"),
                                          ("cnn_model", "adcorre.models.cnn_model"),
                                          ("custom_loss", "adcorre.training.custom_loss"),
                                          ("data_helper", "adcorre.data")])
def test_module_faces_are_the_modules_themselves(face, module):
    code = f"""
import importlib, {face}
target = importlib.import_module("{module}")
assert {face} is target, ({face}, target)
print("SAME")
"""
    run = subprocess.run(python_command(code), cwd=REPO_ROOT, env=python_env(),
                         capture_output=True, text=True, timeout=120, check=False)
    assert "SAME" in run.stdout, run.stderr[-2000:]


def test_class_faces_are_the_packages_objects():
    code = """
import adcorre, train, test
assert train.TrainModel is adcorre.TrainModel
assert test.TestModels is adcorre.TestModels
print("SAME")
"""
    run = subprocess.run(python_command(code), cwd=REPO_ROOT, env=python_env(),
                         capture_output=True, text=True, timeout=300, check=False)
    assert "SAME" in run.stdout, run.stderr[-2000:]


def test_the_check_sees_late_dotted_and_module_imports():
    source = ("import numpy as np\n"
              "from adcorre import config\n"
              "def f():\n    from adcorre.models import weights_io\n"
              "    from adcorre.training.trainer import EpochEnd\n"
              "    from keras import ops\n"
              "    return importlib.import_module('adcorre.serve.server'), importlib.import_module(n)\n")
    ours = ["config", "models.weights_io", "training.trainer", "serve.server", "data.pictures"]
    assert _imports_in(source, ours) == {"config", "models.weights_io", "training.trainer",
                                         "serve.server"}
