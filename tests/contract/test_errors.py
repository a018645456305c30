"""Every error a user can cause is one of `adcorre.errors`' kinds; the bare built-in raises
left are guards against our own bugs, at most `MAX_GUARDS`, each saying so.

The check reads every module of the package (no import) and finds each `raise` of a built-in
exception class: `raise ValueError(...)`, `raise ValueError`, `raise builtins.ValueError(...)`,
and the re-raise of one by name (`error = ValueError(...)` or `except ValueError as error`,
then `raise error`). A bare `raise` passes the error on as it came and is not counted. Two
kinds of raise are Python's protocols rather than errors, and are not counted either: the
control-flow exceptions that are not `Exception`s (`KeyboardInterrupt` standing in for a
SIGTERM, `SystemExit`), and the `AttributeError` of a `__getattr__` (`hasattr`, `getattr`'s
default and pickling need exactly that type).

A guard carries the comment `# guard: <why no user can cause it>` on the raise's first line or
in the comment block just above it.
"""

import ast
import builtins
import os

import pytest

from helpers import REPO_ROOT

from adcorre import errors

PACKAGE = os.path.join(REPO_ROOT, "adcorre")
MAX_GUARDS = 12
GUARD_MARK = "# guard:"

BUILTIN_ERRORS = {name for name, value in vars(builtins).items()
                  if isinstance(value, type) and issubclass(value, Exception)}


def _package_files():
    for folder, _, files in sorted(os.walk(PACKAGE)):
        for file in sorted(files):
            if file.endswith(".py"):
                yield os.path.join(folder, file)


def _builtin_name(node):
    """The built-in exception class `node` names (`ValueError`, `builtins.ValueError`), or None."""
    if isinstance(node, ast.Name) and node.id in BUILTIN_ERRORS:
        return node.id
    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "builtins" and node.attr in BUILTIN_ERRORS):
        return node.attr
    return None


def _made_of(node):
    """The built-in class an expression makes (`ValueError(...)`, `ValueError`, either branch
    of `a if c else b`), or None."""
    if isinstance(node, ast.Call):
        return _builtin_name(node.func)
    if isinstance(node, ast.IfExp):
        return _made_of(node.body) or _made_of(node.orelse)
    return _builtin_name(node)


def _caught(handler):
    """The built-in classes an `except` clause names."""
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return [name for name in map(_builtin_name, kinds) if name]


class _RaiseFinder(ast.NodeVisitor):
    """`(line, class name, function)` of each raise of a built-in error in one module."""

    def __init__(self):
        self.found = []
        self.functions = ["<module>"]
        self.bound = [{}]  # per function: name -> the built-in class it was made or caught as

    def _visit_function(self, node):
        made = {}
        for inner in ast.walk(node):
            if isinstance(inner, ast.Assign) and _made_of(inner.value):
                for target in inner.targets:
                    if isinstance(target, ast.Name):
                        made[target.id] = _made_of(inner.value)
        self.functions.append(node.name)
        self.bound.append(made)
        self.generic_visit(node)
        self.functions.pop()
        self.bound.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _visit_function

    def visit_ExceptHandler(self, node):
        caught = _caught(node) if node.type is not None and node.name else []
        saved = dict(self.bound[-1])
        if caught:
            self.bound[-1][node.name] = caught[0]
        self.generic_visit(node)
        self.bound[-1] = saved

    def visit_Raise(self, node):
        if node.exc is not None:
            name = _made_of(node.exc)
            if name is None and isinstance(node.exc, ast.Name):
                name = self.bound[-1].get(node.exc.id)
            protocol = name == "AttributeError" and self.functions[-1] == "__getattr__"
            if name and not protocol:
                self.found.append((node.lineno, name, self.functions[-1]))
        self.generic_visit(node)


def _has_guard_comment(lines, lineno):
    """The raise's first line carries `# guard:`, or the comment block just above starts so."""
    if GUARD_MARK in lines[lineno - 1]:
        return True
    above = lineno - 2
    block = []
    while above >= 0 and lines[above].lstrip().startswith("#"):
        block.insert(0, lines[above].strip())
        above -= 1
    return bool(block) and block[0].startswith(GUARD_MARK)


def bare_raises(files=None):
    """`[(path:line, class, function, guarded)]` of every built-in error raised in the package."""
    found = []
    for path in files or _package_files():
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
        finder = _RaiseFinder()
        finder.visit(ast.parse(source, path))
        lines = source.splitlines()
        relative = os.path.relpath(path, REPO_ROOT)
        found += [(f"{relative}:{line}", name, function, _has_guard_comment(lines, line))
                  for line, name, function in sorted(finder.found)]
    return found


def _listing(rows):
    return "\n".join(f"  {where}: raise {name} in {function}()" for where, name, function, _ in rows)


def test_at_most_a_dozen_bare_raises_remain():
    found = bare_raises()
    assert len(found) <= MAX_GUARDS, (
        f"{len(found)} raises of built-in errors, at most {MAX_GUARDS} allowed: raise the "
        f"adcorre.errors kind for what a user can cause:\n{_listing(found)}")


def test_every_bare_raise_is_a_commented_guard():
    unguarded = [row for row in bare_raises() if not row[3]]
    assert not unguarded, (
        f"raises of built-in errors without a `{GUARD_MARK} <why no user can cause it>` "
        f"comment: raise the adcorre.errors kind, or say why it is a guard:\n{_listing(unguarded)}")


def test_the_finder_counts_each_form_of_raise(tmp_path):
    """The forms counted and the forms let through, on a module written for the check."""
    module = tmp_path / "sample.py"
    module.write_text(
        "import builtins\n"
        "from adcorre.errors import SettingError\n"
        "def direct(x):\n"
        "    raise ValueError(f'bad {x}')\n"                       # 4: counted
        "def by_class():\n"
        "    raise TypeError\n"                                   # 6: counted
        "def qualified():\n"
        "    raise builtins.RuntimeError('x') from None\n"        # 8: counted
        "def made_first():\n"
        "    error = KeyError('x') if True else None\n"
        "    raise error\n"                                       # 11: counted
        "def caught():\n"
        "    try:\n"
        "        pass\n"
        "    except (OSError, SettingError) as error:\n"
        "        raise error\n"                                   # 16: counted
        "def guarded():\n"
        "    # guard: only our own code calls this,\n"
        "    # with a checked value.\n"
        "    raise IndexError('x')\n"                             # 20: counted, guarded
        "def passed_on(error):\n"
        "    try:\n"
        "        pass\n"
        "    except ValueError:\n"
        "        raise\n"                                         # bare: passes
        "    raise error\n"                                       # a parameter: passes
        "def ours():\n"
        "    raise SettingError('x')\n"                           # the family: passes
        "def stop():\n"
        "    raise KeyboardInterrupt()\n"                         # control flow: passes
        "def __getattr__(name):\n"
        "    raise AttributeError(name)\n")                       # protocol: passes
    found = [(where.rsplit(":", 1)[1], name, guarded)
             for where, name, _, guarded in bare_raises([str(module)])]
    assert found == [("4", "ValueError", False), ("6", "TypeError", False),
                     ("8", "RuntimeError", False), ("11", "KeyError", False),
                     ("16", "OSError", False), ("20", "IndexError", True)]


@pytest.mark.parametrize("kind", [value for value in vars(errors).values()
                                  if isinstance(value, type) and issubclass(value, Exception)],
                         ids=lambda kind: kind.__name__)
def test_each_kind_is_ours_and_a_builtin_besides(kind):
    """Every kind is caught by `except AdCorreError` and by the built-in it stands for."""
    assert issubclass(kind, errors.AdCorreError)
    if kind is not errors.AdCorreError:
        stands_for = [base for base in kind.__mro__
                      if base.__module__ == "builtins" and base not in (Exception, BaseException,
                                                                        object)]
        assert stands_for, f"{kind.__name__} stands for no built-in error"
