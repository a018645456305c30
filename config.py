"""Project-wide constants: label orders and maps, dataset names, `LearningConfig`, `RECIPES`.

The official module name, kept at the checkout's root as a face of the package: `import config`
gives the module `adcorre.config` itself (not a copy), so what is patched here is patched there.
"""

import importlib
import sys

from adcorre.shadowing import warn_if_shadowing_test_package

warn_if_shadowing_test_package()  # `from test import TestModels` would fail here: say why, once
sys.modules[__name__] = importlib.import_module("adcorre.config")
