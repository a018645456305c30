"""The warning when Python's own `test` package shadows the checkout's test.py.

`from test import TestModels` (the official API's spelling) finds whichever `test` comes first on
`sys.path`; the checkout's faces (train.py, config.py, ...) call `warn_if_shadowing_test_package`
so that whoever uses the official names from a checkout placed after the standard library hears
why that import fails, and how to fix it. This module imports nothing of the project.
"""

import importlib.util
import os
import warnings


class ShadowedTestModuleWarning(UserWarning):
    """Python's own `test` package comes before the checkout's test.py on `sys.path`."""


def _checkout():
    """The folder holding the package: a checkout (or an editable install) has test.py there."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shadowing_test_package():
    """Where Python's standard-library `test` package would be imported instead of our test.py.

    `from test import TestModels` (the official API's spelling) finds whichever `test` comes
    first on `sys.path`. From the checkout's root, or with the checkout first on the path, that
    is ours; with the checkout appended after the standard library it is Python's own
    regression-test package, and the import fails with "cannot import name 'TestModels'".

    Returns:
        The path of the `test` that would be imported instead of ours, or None when ours wins
        (or no other `test` exists, or the package was installed without the checkout's test.py).
    """
    ours = os.path.join(_checkout(), "test.py")
    if not os.path.isfile(ours):
        return None
    try:
        spec = importlib.util.find_spec("test")
    except (ImportError, ValueError):  # a `test` in sys.modules without a spec: not ours to judge
        return None
    found = getattr(spec, "origin", None)
    if not found or not os.path.exists(found) or os.path.samefile(found, ours):
        return None
    return found


_SHADOWING_SAID = []


def warn_if_shadowing_test_package():
    """Warns (`ShadowedTestModuleWarning`), once per process, when `shadowing_test_package`
    finds one. The checkout's faces (train.py, config.py, ...) call it: whoever uses the
    official names from a checkout that comes after the standard library hears it."""
    if _SHADOWING_SAID:
        return
    found = shadowing_test_package()
    if found is None:
        return
    _SHADOWING_SAID.append(found)
    checkout = _checkout()
    warnings.warn(
        f"`from test import TestModels` will fail here: Python's own `test` package ({found}) "
        f"comes before this checkout's test.py ({checkout}) on sys.path. Import the same class "
        "as `from adcorre import TestModels`, run from the checkout's root, or put it first "
        f"(sys.path.insert(0, {checkout!r})).",
        ShadowedTestModuleWarning, stacklevel=3)
