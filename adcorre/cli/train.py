"""`adcorre train` / `python train.py`: trains as the options say (`train_options`).

The options are read and checked, a missing dataset folder or weight file reported (naming
the flag) and a named weight file fetched, before TensorFlow loads; then `TrainModel` runs. Exit status 0 when the run finished
(its best model on the "Best model:" line), 2 for a bad option, dataset or setting (one line
naming it), 1 when the run stopped on the disk (full, not writable) or memory.
"""

import os
import sys

from adcorre.cli import train_options
from adcorre.cli.common import quiet_broken_pipe, run_task
from adcorre.config import LearningConfig
from adcorre.models import named_weights


def _fetch_named_weights(args):
    """A file `--weights` names (`xcp.imagenet`, `adcorre-rafdb`...) is fetched, or refused in
    one error (another arch's, not fetchable), before TensorFlow loads."""
    weights = args.weights
    if weights is None or os.path.exists(weights) or not named_weights.is_name(weights):
        return
    arch = args.arch or LearningConfig.from_recipe(args.recipe, dataset_name=args.dataset).arch
    named_weights.initial_weights(arch, weights)


def _train(args):
    _fetch_named_weights(args)
    from adcorre import runtime  # TensorFlow loads here, once the options are known to be right
    from adcorre.training.train_model import TrainModel

    runtime.announce_device()
    TrainModel(**train_options.training_arguments(args)).train(arch=args.arch)
    return 0


def main(argv=None, prog="train.py"):
    """Runs `adcorre train` on `argv` (default `sys.argv[1:]`); returns the exit status.

    Args:
        argv: the options, as strings.
        prog: the command's name in usage and error lines.
    """
    def run():
        args = train_options.parse_args(argv, prog=prog)
        return run_task(_train, args, stopped="the run stopped: ")

    return quiet_broken_pipe(run)


if __name__ == "__main__":
    sys.exit(main())
