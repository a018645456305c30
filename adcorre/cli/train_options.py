"""The options of `python train.py`, parsed before TensorFlow loads.

`parse_args` answers `--help` at once and rejects a bad value (no epochs, a batch of one, a
folder that cannot be written...) with one usage error and exit status 2, before the seconds
TensorFlow takes to import. Every option's help gives its true default: a fixed value, or the
recipe's for each recipe of `config.RECIPES` (computed from them, so it cannot go stale).
`training_arguments` turns the parsed options into `train.TrainModel`'s keyword arguments.
This module imports `config`, `cli.common` and `cli.option_parser`.

Example:
>>> args = parse_args(["--epochs", "2"])
>>> sorted(training_arguments(args).items())[:3]
[('backup_every', 200), ('data_dir', None), ('dataset_name', 'synth')]
>>> training_arguments(args)["epochs"], args.arch    # the arch: None, the recipe's
(2, None)
"""

import argparse
import os
import tempfile

from adcorre.cli.common import check_data_dir, number
from adcorre.cli.option_parser import OptionParser
from adcorre.models import weights_table
from adcorre.config import (
    ADCORRE_BATCHES,
    ARCHES,
    LOSS_ARITHMETICS,
    LR_SCHEDULES,
    MIXED_PRECISION,
    RAFDB_IMAGES,
    RECIPE_DATASET_SETTINGS,
    RECIPES,
    SETTING_MINIMUMS,
    SYNTH_SPLIT_SIZES,
    TEST_SPLITS,
    DatasetName,
    DatasetType,
    LearningConfig,
    default_data_dir,
)
from adcorre.data import datasets

SWITCH = {"auto": "auto", "on": True, "off": False}


# ------------------------------------------------------------------------- value checks


def _setting(field, why=""):
    """An argparse type: an integer >= `field`'s `SETTING_MINIMUMS` entry, as `LearningConfig`
    checks it (the message says why, when there is a reason)."""
    minimum = SETTING_MINIMUMS[field]

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}{why}, got {text!r}")
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


# ------------------------------------------------------------------- defaults, truthfully


def _shown(value):
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def per_recipe(field, show=_shown):
    """`field`'s value in each recipe of `config.RECIPES`, as help text.

    Args:
        field: a `config.LearningConfig` field.
        show: turns a value into its help text.

    Returns:
        E.g. `"0.001"` when every recipe agrees, else `"adcorre 30, synth_demo 8, arm 70"`.
    """
    shown = {name: show(getattr(LearningConfig.from_recipe(name), field)) for name in RECIPES}
    if len(set(shown.values())) == 1:
        return next(iter(shown.values()))
    return ", ".join(f"{name} {value}" for name, value in shown.items())


def recipe_default(field, show=_shown):
    """`"default: 0.001"`, or `"default: the recipe's (adcorre 30, synth_demo 8, arm 70)"`."""
    values = per_recipe(field, show)
    return f"default: {values}" if "," not in values else f"default: the recipe's ({values})"


def _ce_weight_shown(value):
    # None derives the weight from the class count (config.official_ce_weight).
    return "50/C" if value is None else _shown(value)


def _augmentation_shown(value):
    if value is None:
        return "on"
    return "off" if value is False else f"{value!r}"


def _data_dir_default():
    where = default_data_dir("<dataset>")
    if os.environ.get("FER_DATA_ROOT"):
        return f"{where} ($FER_DATA_ROOT/<dataset>)"
    return f"{where} ($FER_DATA_ROOT/<dataset> when FER_DATA_ROOT is set)"


def per_dataset(field, show=_shown):
    """Where a recipe sets `field` for one dataset (`config.RECIPE_DATASET_SETTINGS`), as help text.

    Example:
    >>> per_dataset("test_split")
    'the adcorre recipe on fer2013: public_private_test'
    """
    found = [f"the {recipe} recipe on {dataset}: {show(settings[field])}"
             for recipe, datasets in RECIPE_DATASET_SETTINGS.items()
             for dataset, settings in datasets.items() if field in settings]
    return "; ".join(found) or "no recipe sets it per dataset"


def _recipes_where(field, value):
    return [name for name in RECIPES if getattr(LearningConfig.from_recipe(name), field) == value]


# ---------------------------------------------------------------------------- the parser


def build_parser(prog="train.py"):
    """The `python train.py` parser: options in four groups (data, model, recipe, run)."""
    demo = LearningConfig.from_recipe("synth_demo")
    parser = OptionParser(
        prog=prog,
        # argparse's own usage lists all 30 options, and repeats them above every error.
        usage="%(prog)s [options]   (--help: each option, its default, in four groups)",
        description=f"Train an Ad-Corre model. With no options: the CPU demo, recipe synth_demo "
                    f"(the {demo.arch} arch from scratch on SynthFER, {demo.input_size} px, "
                    f"{demo.epochs} epochs; about 2 minutes on 2 quiet cores). Options left out "
                    "take the recipe's value.",
        epilog="The same run from Python: TrainModel(dataset_name=..., <option>=...).train(), "
               "options in snake case (--lr is lr=); TrainModel(dataset_name='synth').train() "
               "is the demo.")
    _data_options(parser.add_argument_group("data"))
    _model_options(parser.add_argument_group("model"))
    _recipe_options(parser.add_argument_group(
        "recipe", "Loss, optimiser, schedule and data order. Left out: the recipe's values."))
    _run_options(parser.add_argument_group("run"))
    return parser


def _data_options(data):
    data.add_argument("--dataset", default=DatasetName.synth, choices=datasets.names(),
                      help="synth: SynthFER, drawn in memory (default: synth)")
    data.add_argument("--data-dir", default=None,
                      help=f"the dataset's root folder as it ships (default: "
                           f"{_data_dir_default()}; not used by synth)")
    data.add_argument("--ds-type", default=DatasetType.train, choices=DatasetType.all,
                      help="the official API's dataset type: for AffectNet, train and eval keep "
                           "its 8 classes (Contempt too), train_7, eval_7 and test the 7 basic "
                           "ones; the other datasets have 7 (default: train)")
    data.add_argument("--rafdb-images", default="auto", choices=RAFDB_IMAGES,
                      help="RAF-DB's faces: aligned (Image/aligned/), original (the photos of "
                           "Image/original/ cropped by their box files, Annotation/boundingbox/ "
                           "or boundingbox/, as the official config names them); auto "
                           "(default): aligned when that folder is there")
    data.add_argument("--test-split", default=None, choices=TEST_SPLITS,
                      help="the split each epoch is scored on; public_private_test: FER-2013 / "
                           "FERPlus PublicTest + PrivateTest (the official Ad-Corre test set), "
                           f"val: their PublicTest; default: test ({per_dataset('test_split')})")
    data.add_argument("--val-fraction", type=number(0, inclusive=False,
                                                     why=" and < 1", maximum=1),
                      default=None,
                      help="hold out this share of the training split (stratified, seeded by "
                           "--seed) as a validation split that selects the best epoch, whose "
                           "test accuracy is then reported; default: none, the best epoch is the "
                           "one with the best test accuracy (an optimistic figure)")
    data.add_argument("--synth-train-size", type=_setting("synth_train_size"), default=None,
                      help=f"SynthFER faces drawn for training "
                           f"(default: {SYNTH_SPLIT_SIZES['train']})")
    data.add_argument("--synth-test-size", type=_setting("synth_test_size"), default=None,
                      help=f"SynthFER faces drawn for testing (default: {SYNTH_SPLIT_SIZES['test']})")


def _model_options(model):
    model.add_argument("--arch", default=None, choices=ARCHES,
                       help=f"the network; {recipe_default('arch')}")
    model.add_argument("--weights", default=None,
                       help="imagenet (the backbone's ImageNet weights; for resnet18*: "
                            "torchvision's file), none (from scratch), a weight file, or a "
                            "downloadable file by name (arch.tag or alias, e.g. xcp.imagenet = "
                            "imagenet for xcp, adcorre-rafdb: a released model of the arch to "
                            "start from; adcorre weights lists them), fetched once into the "
                            f"cache; {recipe_default('weights')}")
    model.add_argument("--input-size", type=_setting("input_size"), default=None,
                       help="side of the square input in pixels (each arch has a minimum, e.g. "
                            f"71 for xcp); {recipe_default('input_size')}")
    model.add_argument("--num-embeddings", type=_setting("num_embeddings"), default=None,
                       help="k, the embedding heads (0: none, features straight to the "
                            f"classifier); {recipe_default('num_embeddings')}")
    model.add_argument("--embedding-size", type=_setting("embedding_size"), default=None,
                       help=f"d, each head's size; {recipe_default('embedding_size')}")


def _recipe_options(recipe):
    recipe.add_argument("--recipe", default=None, choices=tuple(RECIPES),
                        help="named settings (config.RECIPES); default: synth_demo for "
                             "--dataset synth, adcorre otherwise")
    recipe.add_argument("--epochs", type=_setting("epochs"), default=None,
                        help=f"passes over the training split; {recipe_default('epochs')}")
    recipe.add_argument("--batch-size", type=_setting("batch_size", " (FD, MD and ED compare the samples "
                                                         "of a batch)"), default=None,
                        help=f"the global batch, >= 2; {recipe_default('batch_size')}")
    recipe.add_argument("--lr", type=number(0, inclusive=False), default=None,
                        help=f"initial learning rate; {recipe_default('learning_rate')}")
    recipe.add_argument("--lr-schedule", default=None, choices=LR_SCHEDULES,
                        help="inverse_time: lr / (1 + lr_decay * step), the official Keras 2 "
                             "decay; step: x a factor every --lr-decay-every epochs "
                             f"({per_recipe('lr_decay_factor')}); {recipe_default('lr_schedule')}")
    recipe.add_argument("--lr-decay", type=number(0, inclusive=True), default=None,
                        help=f"per-step decay of the inverse_time schedule; "
                             f"{recipe_default('lr_decay')}")
    recipe.add_argument("--lr-decay-every", type=_setting("lr_decay_every"), default=None,
                        help=f"epochs between the step schedule's steps; "
                             f"{recipe_default('lr_decay_every')}")
    recipe.add_argument("--ce-weight", type=number(0, inclusive=True), default=None,
                        help="weight of the cross-entropy term; 50/C (C classes: 50/7 = "
                             "7.14) is the official code's balance; "
                             f"{recipe_default('ce_weight', _ce_weight_shown)}")
    ce_only = ", ".join(_recipes_where("use_adcorre", False)) or "none"
    recipe.add_argument("--ce-only", action="store_true",
                        help="cross-entropy alone: FD, MD and ED are logged with weight 0 (the "
                             f"official gradient); default: off (recipes that always train so: "
                             f"{ce_only})")
    recipe.add_argument("--loss-arithmetic", default=None, choices=LOSS_ARITHMETICS,
                        help="paper: docs/DESIGN.md's FD, MD, ED; official: the official "
                             "code's (no FD weights, MD / k C^2, ED / k^2); "
                             f"{recipe_default('loss_arithmetic')}")
    recipe.add_argument("--attention-window", type=_setting("attention_window"), default=None,
                        help="recompute omega every step from the last N training predictions "
                             "(the official code: 1000); default: once per epoch")
    recipe.add_argument("--adcorre-batch", default=None, choices=ADCORRE_BATCHES,
                        help="FD, MD, ED over the all-gathered global batch or each replica's "
                             f"own (several devices only); {recipe_default('adcorre_batch')}")
    recipe.add_argument("--mrr", action=argparse.BooleanOptionalAction, default=None,
                        help="class-balanced sampling: minimal random resampling (ARM) tops "
                             "every class up to the largest one each epoch; --no-mrr turns it "
                             f"off; {recipe_default('mrr')} ({per_dataset('mrr')})")
    recipe.add_argument("--augment", default="auto", choices=("auto", "on", "off"),
                        help="training augmentation (on: flip, small rotation / zoom / "
                             "shift, colour jitter, random erasing; 'arm': ARM's flip or noise "
                             "+ erasing); auto (default): the recipe's "
                             f"({per_recipe('augmentation', _augmentation_shown)}; SynthFER "
                             "draws its own pose, light and occluders)")


def _run_options(run):
    run.add_argument("--seed", type=_setting("seed"), default=0,
                     help="fixes the data order, augmentation, initialisation and SynthFER's "
                          "faces; a rerun on the same machine gives the same numbers (default: 0)")
    run.add_argument("--save-dir", type=_output_folder, default=None,
                     help="output folder (default: runs/<dataset>_<arch>_<date>-<time>); one "
                          "holding a killed run's backup resumes it")
    run.add_argument("--steps-per-epoch", type=_setting("steps_per_epoch"), default=None,
                     help="cap on an epoch's steps, for quick runs (default: the whole "
                          "training split)")
    run.add_argument("--backup-every", type=_setting("backup_every"), default=200,
                     help="steps between mid-epoch backups, 0: at epoch ends only (default: 200)")
    run.add_argument("--keep-all", action="store_true",
                     help="keep every epoch's .h5 (default: the best and the latest)")
    run.add_argument("--mixed-precision", default="auto", choices=MIXED_PRECISION,
                     help="auto (default): bf16 on a GPU, float32 on a CPU")
    run.add_argument("--jit-compile", default="auto", choices=tuple(SWITCH),
                     help="XLA; auto (default): on a GPU, off (graph mode) on a CPU")


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
    chosen = dict(
        weights=args.weights, lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
        input_size=args.input_size, ce_weight=args.ce_weight,
        num_embeddings=args.num_embeddings, embedding_size=args.embedding_size,
        adcorre_batch=args.adcorre_batch, lr_decay_every=args.lr_decay_every,
        lr_schedule=args.lr_schedule, lr_decay=args.lr_decay,
        loss_arithmetic=args.loss_arithmetic, attention_window=args.attention_window,
        synth_train_size=args.synth_train_size, synth_test_size=args.synth_test_size)
    settings = {name: value for name, value in chosen.items() if value is not None}
    if args.ce_only:
        settings["use_adcorre"] = False
    if args.mrr is not None:
        settings["mrr"] = args.mrr
    if args.rafdb_images != "auto":
        settings["rafdb_images"] = args.rafdb_images
    if args.test_split is not None:
        settings["test_split"] = args.test_split
    if args.val_fraction is not None:
        settings["val_fraction"] = args.val_fraction
    if args.augment != "auto":
        settings["augmentation"] = None if args.augment == "on" else False
    settings.update(
        dataset_name=args.dataset, ds_type=args.ds_type, data_dir=args.data_dir,
        save_dir=args.save_dir, mixed_precision=args.mixed_precision,
        jit_compile=SWITCH[args.jit_compile], seed=args.seed, backup_every=args.backup_every,
        keep_all=args.keep_all, steps_per_epoch=args.steps_per_epoch, recipe=args.recipe)
    return settings
