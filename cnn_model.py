"""The network: `CNNModel().get_model(arch="xcp", num_classes=7, weights="imagenet")`.

The official module name, kept at the checkout's root as a face of the package: `import cnn_model`
gives the module `adcorre.models.cnn_model` itself (not a copy), so what is patched here is patched there.
"""

import importlib
import sys

from adcorre.shadowing import warn_if_shadowing_test_package

warn_if_shadowing_test_package()  # `from test import TestModels` would fail here: say why, once
sys.modules[__name__] = importlib.import_module("adcorre.models.cnn_model")
