"""The package's layout is the one docs/architecture.md draws, and the checkout keeps its faces.

docs/architecture.md puts every module of `adcorre` on a numbered row of "Who imports whom"; a
module may import only modules on rows above its own. The check reads every `import` of every
module, the ones inside functions too (a late import is still a dependency), and the module
table must name every module and exactly what it imports. Between subpackages imports flow one
way (training and inference never import each other). The root holds exactly the card's names,
each a face of the package; every module that loads Keras at its top quiets TensorFlow first.
A registry package (`data.datasets`, `models.loaders`) is a module on the graph too, and a
dataset or a file kind is one module: each module of `data.datasets` declares one record named
as itself, and no other module names one (but `data.dataset_readers`, which keeps the public
names that lived in it); each module of `models.loaders` declares one `Loader`, and no module
imports one of them.
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
# Packages whose `__init__.py` holds a record type and the registry its modules fill: each is a
# module of its own on the graph, under its package's name, above the modules that register
# into it (it finds them itself, by listing its folder, and names none of them).
REGISTRIES = ("data.datasets", "models.loaders")
# The card's names at the root, and nothing else that Python imports.
ROOT_FACES = {"train.py", "test.py", "config.py", "cnn_model.py", "custom_loss.py",
              "data_helper.py"}


def _page():
    with open(ARCHITECTURE, encoding="utf-8") as handle:
        return handle.read()


def _our_modules():
    """Dotted names relative to the package (`models.arm`), `__init__` and `__main__` left out
    but for the registries' `__init__` (named by their package)."""
    found = list(REGISTRIES)
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py") and name not in ("__init__.py", "__main__.py"):
                relative = os.path.relpath(os.path.join(folder, name[:-3]), PACKAGE)
                found.append(relative.replace(os.sep, "."))
    return sorted(found)


def _path(module):
    base = os.path.join(PACKAGE, *module.split("."))
    return os.path.join(base, "__init__.py") if module in REGISTRIES else base + ".py"


def _source(module):
    with open(_path(module), encoding="utf-8") as handle:
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
    registries = {os.path.join(PACKAGE, *name.split(".")) for name in REGISTRIES}
    for folder, _, files in os.walk(PACKAGE):
        if "__init__.py" not in files or folder in registries:
            continue  # a registry is a module on the graph, checked as the others are
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


# -------------------------------------------------------------------- a dataset is one module

DATASETS_PACKAGE = os.path.join(PACKAGE, "data", "datasets")


def _dataset_modules():
    return sorted(name[:-3] for name in os.listdir(DATASETS_PACKAGE)
                  if name.endswith(".py") and not name.startswith("_"))


def _declared_record(source, variable="DATASET", kind="Dataset"):
    """The `name=` of the one `DATASET = register(Dataset(name=..., ...))` at a module's top
    level (`LOADER = register(Loader(...))` with `variable` and `kind`), or a list of what was
    found instead."""
    found = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and "register(" in ast.unparse(node.value):
            call = node.value
            inner = call.args[0] if getattr(call, "args", None) else None
            names = [k.value.value for k in getattr(inner, "keywords", ())
                     if k.arg == "name" and isinstance(k.value, ast.Constant)]
            found.append((ast.unparse(node.targets[0]), getattr(call.func, "id", None),
                          getattr(getattr(inner, "func", None), "id", None), names))
    if len(found) == 1 and found[0][:3] == (variable, "register", kind) and found[0][3]:
        return found[0][3][0]
    return found


def test_each_dataset_module_declares_one_record_named_as_itself():
    declared = {module: _declared_record(_source(f"data.datasets.{module}"))
                for module in _dataset_modules()}
    assert declared == {module: module for module in declared}, declared
    from adcorre.data import datasets

    # The registry finds every module itself, and each record's reader and writer are its own.
    assert list(datasets.DATASETS) == list(datasets.names()) == _dataset_modules()
    for name, record in datasets.DATASETS.items():
        assert record.read.__module__ == f"adcorre.data.datasets.{name}", name
        assert record.write_synth is None or record.write_synth.__module__ == record.read.__module__


def test_nothing_but_the_registry_finds_a_dataset_module():
    """The registry names none of its modules (it lists its folder); outside the package only
    `data.dataset_readers` imports one, to keep the public names that lived there before."""
    ours = _our_modules()
    modules = {f"data.datasets.{name}" for name in _dataset_modules()}
    assert not _imports_of("data.datasets", ours) & modules
    outside = {module: sorted(_imports_of(module, ours) & modules) for module in ours
               if module not in modules and module != "data.datasets"}
    assert {module: found for module, found in outside.items() if found} == {
        "data.dataset_readers": ["data.datasets.ferplus", "data.datasets.rafdb"]}


# -------------------------------------------------------------------- a file kind is one module

LOADERS_PACKAGE = os.path.join(PACKAGE, "models", "loaders")


def _loader_modules():
    return sorted(name[:-3] for name in os.listdir(LOADERS_PACKAGE)
                  if name.endswith(".py") and not name.startswith("_"))


def test_each_loader_module_declares_one_loader():
    declared = {module: _declared_record(_source(f"models.loaders.{module}"), variable="LOADER",
                                         kind="Loader")
                for module in _loader_modules()}
    assert all(isinstance(name, str) for name in declared.values()), declared
    from adcorre.models import loaders

    # The registry finds every module itself; each record's sniff and load are its module's.
    assert sorted(loader.name for loader in loaders.LOADERS) == sorted(declared.values())
    for loader in loaders.LOADERS:
        module = loader.sniff.__module__.rsplit(".", 1)[-1]
        assert declared[module] == loader.name and loader.load.__module__ == loader.sniff.__module__


def test_nothing_but_the_registry_finds_a_loader_module():
    """The registry names none of its modules (it lists its folder), and no module imports a
    loader's: what two loaders share lives outside the package (file_probe, model_info...)."""
    ours = _our_modules()
    modules = {f"models.loaders.{name}" for name in _loader_modules()}
    assert not _imports_of("models.loaders", ours) & modules
    importing = {module: sorted(_imports_of(module, ours) & modules) for module in ours}
    assert {module: found for module, found in importing.items() if found} == {}
