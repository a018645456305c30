"""Training, official API: `TrainModel(dataset_name=...).train(arch="xcp")`; `python train.py`.

This file is a face of the installed package: `train.TrainModel is adcorre.TrainModel`.
`python train.py [options]` is `adcorre train [options]` (with no options: the CPU demo,
recipe `synth_demo`); `python train.py --help` lists every option.
"""

import sys

if __name__ == "__main__":
    from adcorre.cli.train import main

    sys.exit(main(prog="train.py"))

from adcorre.shadowing import warn_if_shadowing_test_package  # noqa: E402
from adcorre.training.train_model import TrainModel  # noqa: E402

warn_if_shadowing_test_package()  # `from test import TestModels` would fail here: say why, once

__all__ = ["TrainModel"]
