"""The module layout the README draws is the one the code has.

README's "Who imports whom" block puts every top-level module on a numbered row; a module may
import only modules on rows above its own (no cycles, data and core below training and
inference). The check reads every `import` of every module, the ones inside functions too
(a late import is still a dependency), and the README's module table must name every module.
"""

import ast
import os
import re

from helpers import REPO_ROOT


def _readme():
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as handle:
        return handle.read()


def _import_rows(readme):
    block = readme.split("Who imports whom", 1)[1].split("```", 2)[1]
    rows, row = {}, None
    for line in block.strip("\n").splitlines():
        numbered = re.match(r"^(\d+)\s+(.*)$", line)
        if numbered:
            row, line = int(numbered.group(1)), numbered.group(2)
        for name in line.split("(")[0].split():  # "(nothing of ours)" is a remark
            rows[name] = row
    return rows


def _our_modules():
    return sorted(name[:-3] for name in os.listdir(REPO_ROOT) if name.endswith(".py"))


def _imports_in(source, ours):
    """The modules of `ours` that `source` imports anywhere (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):
            names = [node.args[0].value]  # importlib.import_module("name"): a late import too
        else:
            continue
        found.update(name.split(".")[0] for name in names)
    return found & set(ours)


def _imports_of(module, ours):
    with open(os.path.join(REPO_ROOT, module + ".py"), encoding="utf-8") as handle:
        return _imports_in(handle.read(), ours) - {module}


def test_every_module_sits_on_one_row_of_the_import_graph():
    rows = _import_rows(_readme())
    assert sorted(rows) == _our_modules()


def test_modules_import_only_the_rows_above_their_own():
    rows = _import_rows(_readme())
    ours = _our_modules()
    upward = [f"{module} (row {rows[module]}) imports {other} (row {rows[other]})"
              for module in ours for other in sorted(_imports_of(module, ours))
              if rows[other] >= rows[module]]
    assert not upward, upward


def _module_table(readme):
    """`{module: the set its "imports of ours" column names}` of the README's module table."""
    table = readme.split("## Architecture", 1)[1].split("Who imports whom", 1)[0]
    rows = {}
    for module, imports in re.findall(r"^\|[^|\n]*\| `(\w+)\.py` \|.*\| ([^|\n]*) \|$", table,
                                      re.M):
        rows[module] = set() if imports == "none" else set(re.split(r",\s*", imports))
    return rows


def test_the_module_table_names_every_module_and_what_it_imports():
    table = _module_table(_readme())
    assert sorted(table) == _our_modules()
    ours = _our_modules()
    wrong = {module: (listed, _imports_of(module, ours)) for module, listed in table.items()
             if listed != _imports_of(module, ours)}
    assert not wrong, wrong  # module: (the README's column, the code's imports)


def test_the_check_sees_late_and_dotted_imports():
    source = ("import numpy as np\n"
              "def f():\n    import train\n    from inference import TestModels\n"
              "    from keras import ops\n    import tests.helpers\n"
              "    return importlib.import_module('config'), importlib.import_module(name)\n")
    assert _imports_in(source, ["train", "inference", "config", "tests", "server"]) == {
        "train", "inference", "tests", "config"}
