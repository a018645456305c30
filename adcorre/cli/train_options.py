"""The options of `adcorre train` / `python train.py`, parsed before TensorFlow loads.

Every option is a training setting declared in `adcorre.settings.SETTINGS`: its name, values,
checks, group and help come from there, and its help ends with its true default (a fixed
value, or each recipe's of `config.RECIPES`, computed from them so it cannot go stale).
`parse_args` answers `--help` at once and rejects a bad value (no epochs, a batch of one, a
folder that cannot be written...) with one usage error and exit status 2, before the seconds
TensorFlow takes to import. `training_arguments` turns the parsed options into
`train.TrainModel`'s keyword arguments. This module imports
`settings`, `recipes` (the demo's), `cli.common`, `cli.option_parser`, the dataset records (their
names) and the table of downloadable files.

Example:
>>> args = parse_args(["--epochs", "2"])
>>> sorted(training_arguments(args).items())[:3]
[('backup_every', 200), ('data_dir', None), ('dataset_name', 'synth')]
>>> training_arguments(args)["epochs"], args.arch    # the arch: None, the recipe's
(2, None)
"""

import argparse
import math
import os
import tempfile

from adcorre.cli.common import check_data_dir, number
from adcorre.cli.option_parser import OptionParser
from adcorre.data import datasets
from adcorre.models import weights_table
from adcorre.recipes import RECIPES
from adcorre.settings import FROM_RECIPE, GROUPS, SETTINGS, DatasetName

# What a group of `--help` (`settings.GROUPS`) says of its options, where it says anything.
GROUP_NOTES = {"recipe": "Loss, optimiser, schedule and data order. Left out: the recipe's values."}


# ------------------------------------------------------------------------- value checks


def _whole_number(declared):
    """An argparse type: an integer >= the setting's minimum, as `LearningConfig` checks it
    (the message says why, when there is a reason)."""
    minimum = declared.minimum

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}{declared.why}, got {text!r}")
        return value

    return parse

def _output_folder(text):
    """An argparse type: a folder the run can write to (made later if it does not exist yet).

    The deepest part of the path that exists must be a folder in which a file can be created;
    nothing is left behind by the check.
    """
    if not text:
        raise argparse.ArgumentTypeError("expected a folder to write the run to, got ''")
    existing = os.path.abspath(text)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise argparse.ArgumentTypeError(
            f"{text!r}: {existing} is a file, not a folder; expected a folder to write the run "
            "to (or a new one to make)")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise argparse.ArgumentTypeError(
            f"{text!r}: cannot write in {existing} ({error.strerror or error}); expected a "
            "folder you can write to") from None
    return text


# ---------------------------------------------------------------------------- the parser


def build_parser(prog="train.py"):
    """The `python train.py` parser: one option per declared setting with a flag, in four groups
    (data, model, recipe, run)."""
    demo = RECIPES["synth_demo"]
    parser = OptionParser(
        prog=prog,
        # argparse's own usage lists all 30 options, and repeats them above every error.
        usage="%(prog)s [options]   (--help: each option, its default, in four groups)",
        description=f"Train an Ad-Corre model. With no options: the CPU demo, recipe synth_demo "
                    f"(the {demo['arch']} arch from scratch on SynthFER, {demo['input_size']} px, "
                    f"{demo['epochs']} epochs; about 2 minutes on 2 quiet cores). Options left "
                    "out take the recipe's value.",
        epilog="The same run from Python: TrainModel(dataset_name=..., <option>=...).train(), "
               "options in snake case (--lr is lr=); TrainModel(dataset_name='synth').train() "
               "is the demo.")
    groups = {name: parser.add_argument_group(name, GROUP_NOTES.get(name)) for name in GROUPS}
    for declared in SETTINGS:
        if declared.flag:
            groups[declared.group].add_argument(declared.flag, **_option(declared))
    return parser


def _option(declared):
    """`add_argument`'s keywords for a declared setting."""
    option = {"default": declared.option_default, "help": declared.help_text(cli=True)}
    if declared.name == "dataset_name":  # one module per dataset: the records name them
        option["choices"] = datasets.names()
    elif declared.words:
        option["choices"] = tuple(declared.words)
    elif declared.is_switch:  # given, it sets `flag_sets` (`training_arguments`)
        option.update(action="store_true", default=False)
    elif declared.kind == "bool":  # --mrr / --no-mrr, left out: the recipe's
        option["action"] = argparse.BooleanOptionalAction
    elif declared.kind == "choice":
        option["choices"] = declared.choices
    elif declared.kind == "int":
        option["type"] = _whole_number(declared)
    elif declared.kind == "number":
        upper = math.inf if declared.maximum is None else declared.maximum
        option["type"] = number(declared.minimum, declared.minimum_inclusive,
                                why=_upper_bound(declared) + declared.why, maximum=upper)
    elif declared.kind == "folder":
        option["type"] = _output_folder
    return option


def _upper_bound(declared):
    return "" if declared.maximum is None else f" and < {declared.maximum:g}"


def parse_args(argv=None, prog="train.py"):
    """Parses `argv` (default `sys.argv[1:]`); a bad value exits with status 2 and one line.

    A dataset folder or weight file that is not there is such a value too: it is reported here,
    naming its flag, before TensorFlow loads.

    Args:
        argv: the options, as strings.
        prog: the command's name in usage and error lines.

    Returns:
        An `argparse.Namespace`.
    """
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.dataset != DatasetName.synth:
        check_data_dir(parser, args.dataset, args.data_dir)
    if args.rafdb_images != "auto" and args.dataset != DatasetName.rafdb:
        parser.error(f"argument --rafdb-images: {args.rafdb_images} is for --dataset rafdb, "
                     f"not {args.dataset}")
    weights = args.weights
    if (weights not in (None, "imagenet") and weights.lower() != "none"
            and not os.path.isfile(weights) and not weights_table.is_name(weights)):
        parser.error(f"argument --weights: no such file {weights!r}; expected imagenet, none, "
                     "a weight file (.h5, .weights.h5 or, for resnet18*, a PyTorch .pth) or a "
                     f"downloadable file's name ({', '.join(weights_table.names())})")
    return args


def training_arguments(args):
    """`train.TrainModel`'s keyword arguments for parsed options; those left out are not passed,
    so they take the recipe's value.

    Args:
        args: `parse_args`'s result.

    Returns:
        A dict for `TrainModel(**...)` (the arch goes to `.train(arch=args.arch)`).
    """
    settings = {}
    for declared in SETTINGS:
        if not (declared.flag and declared.keyword):
            continue
        value = getattr(args, declared.dest)
        if declared.words:
            value = declared.words[value]
        elif declared.is_switch:
            value = declared.flag_sets if value else declared.keyword_default
        elif value is None and declared.by_recipe:
            value = FROM_RECIPE
        if value is not FROM_RECIPE:
            settings[declared.keyword] = value
    return settings
