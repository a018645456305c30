"""Inference, official API: `TestModels(h5_address=...).recognize_fer(img_path=...)`.

This file is a face of the installed package: `test.TestModels is adcorre.TestModels`.
`python test.py --weights W --image photo.jpg` is `adcorre test ...`; `python test.py --help`
lists every task (pictures, datasets, exports, videos, webcams, the web app).
"""

import sys

if __name__ == "__main__":
    from adcorre.cli.test import main

    sys.exit(main(prog="test.py"))

from adcorre.shadowing import warn_if_shadowing_test_package  # noqa: E402
from adcorre.inference.test_models import TestModels  # noqa: E402

warn_if_shadowing_test_package()  # `from test import TestModels` would fail here: say why, once

__all__ = ["TestModels"]
