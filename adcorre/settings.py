"""Every training setting, declared once: its name, type, default, checks, help and option.

One `Setting` record per setting, in `SETTINGS`. Everything else reads them:

- `LearningConfig` (`learning_config`) has one field per record, with its default and checks;
  a recipe (`recipes.RECIPES`) changes some of the defaults, and each record lists each
  recipe's value (`Setting.recipe_values`);
- `adcorre train` (`cli.train_options`) has one option per record with a `flag`, its help
  ending with its true default (each recipe's, where they differ);
- `TrainModel` documents one keyword per record with a `keyword` (`keyword_docs`);
- docs/training.md's option table is `options_table()`.

tests/contract/test_settings.py checks that the four agree. A new setting is one record here
(and, if a recipe changes it, one entry in that recipe). This module also holds the values a
setting can take (`DatasetName`, `LR_SCHEDULES`, ...), and imports only `errors`, `recipes` and
the arch registry (none of them loads Keras, so `adcorre train --help` answers at once).

Example:
>>> epochs = setting("epochs")
>>> epochs.default, epochs.flag, epochs.recipe_values()
(30, '--epochs', {'adcorre': 30, 'synth_demo': 8, 'arm': 70})
>>> setting("learning_rate").keyword, setting("learning_rate").help_text(cli=True)
('lr', 'initial learning rate; default: 0.001')
>>> setting("batch_size").check(1)
Traceback (most recent call last):
...
adcorre.errors.SettingError: batch_size must be an integer >= 2, got 1.
"""

import dataclasses
import math
import numbers
import os
import textwrap

from adcorre.errors import SettingError
from adcorre.models.registry import ARCH_NAMES
from adcorre.recipes import RECIPE_DATASET_SETTINGS, RECIPES

# ----------------------------------------------------------------- the values settings take


class DatasetName:
    """The official API's names of the datasets that ship with the package.

    What `dataset_name=` / `--dataset` accept is `adcorre.data.datasets.DATASETS` (one module
    per dataset; a new module adds a name there without touching this class).
    tests/contract/test_datasets_table.py checks that every name here is a record there.
    """

    affectnet = "affectnet"
    rafdb = "rafdb"
    fer2013 = "fer2013"
    ferplus = "ferplus"
    folder = "folder"
    synth = "synth"
    # The official code's preprocessed layout: images/NAME.jpg + annotations/NAME_exp.npy.
    preprocessed = "preprocessed"

    all = (affectnet, rafdb, fer2013, ferplus, folder, synth, preprocessed)


class DatasetType:
    """The official API's dataset types (strings here, so they read well in logs).

    `train` / `eval` use all classes the dataset has (8 for AffectNet), the `_7`
    variants keep the 7 basic expressions. `test` is the held-out test split.
    """

    train = "train"
    train_7 = "train_7"
    eval = "eval"
    eval_7 = "eval_7"
    test = "test"

    all = (train, train_7, eval, eval_7, test)


# The networks `cnn_model.CNNModel().get_model(arch)` builds: one record each in
# `models.registry` (read without loading Keras, so the CLI can offer them).
ARCHES = ARCH_NAMES
LR_SCHEDULES = ("inverse_time", "step")
LOSS_ARITHMETICS = ("paper", "official")
# The Ad-Corre terms trained beside cross-entropy: all three (the paper's method) or the
# ablations' subsets (its Table of FD, MD, ED alone and in pairs); the others keep weight 0.
ADCORRE_TERMS = ("fd", "md", "ed")
ADCORRE_TERM_SETS = ("fd+md+ed", "fd+md", "fd+ed", "md+ed", "fd", "md", "ed")
# "auto": bf16 on a GPU, float32 on a CPU.
MIXED_PRECISION = ("auto", "bfloat16", "float16", "none")
# The ARM layer's affinity map in inference (`arm.AmendRepresentation`): a moving estimate, the
# official per-batch mean, or each picture's own.
ARM_AFFINITY_MODES = ("moving", "batch", "sample")
# Where FD, MD and ED see the batch under tf.distribute: all replicas' samples, or each its own.
ADCORRE_BATCHES = ("global", "local")
# RAF-DB's faces `rafdb_images=` trains on: Image/aligned/ when present, the aligned ones, or
# the original photos cropped by their box files.
RAFDB_IMAGES = ("auto", "aligned", "original")
# The splits `test_split=` scores each epoch on (`public_private_test`: FER-2013 / FERPlus only).
TEST_SPLITS = ("test", "val", "public_private_test")
# "adam": Keras' Adam (Ad-Corre's official code ran Keras 2's); "torch_adam": torch.optim.Adam's
# arithmetic with its coupled L2 weight decay (ARM's train_raf-db.py), see adam_optimizers.
OPTIMIZERS = ("adam", "torch_adam")

# SynthFER sizes when nothing else is asked for: the demo's (10000 faces train the tiny arch to
# 0.858-0.882 over seeds 0-2 in 8 epochs; fewer leave it near the class prior longer, see
# docs/training.md).
SYNTH_SPLIT_SIZES = {"train": 10000, "val": 1000, "test": 1000}

# The official train.py weights its CE (a mean over n x C entries) by 50; per sample that is 50 / C.
OFFICIAL_CE_LAMBDA = 50.0


def official_ce_weight(num_classes):
    """The weight of the per-sample mean CE that gives the official code's balance of terms.

    The official loss is `50 * mean over n x C of -onehot * log p` = `(50 / C) * CE` with CE
    the per-sample mean used here, so the weight is derived from the class count.

    Args:
        num_classes: C.

    Returns:
        50 / C (50/7 for the 7 basic expressions, 50/8 for AffectNet with Contempt).

    Example:
    >>> official_ce_weight(7) == 50 / 7, official_ce_weight(8)
    (True, 6.25)
    """
    return OFFICIAL_CE_LAMBDA / int(num_classes)


def default_data_dir(dataset_name):
    """Where a dataset is looked for when no `data_dir` is given.

    `$FER_DATA_ROOT/<name>` if the variable is set, else `./data/<name>`.
    """
    root = os.environ.get("FER_DATA_ROOT", os.path.join(".", "data"))
    return os.path.join(root, dataset_name)


def check_choice(name, value, choices, meaning=""):
    """Refuses a `value` of setting `name` that is not one of `choices`: one wording for every
    setting that takes one of a few values, naming it and listing them.

    Raises:
        SettingError: `value` is not in `choices`.

    Example:
    >>> check_choice("optimizer", "sgd", ("adam", "torch_adam"))
    Traceback (most recent call last):
    ...
    adcorre.errors.SettingError: optimizer must be one of ('adam', 'torch_adam'), got 'sgd'.
    """
    if value not in choices:
        raise SettingError(f"{name} must be one of {tuple(choices)}{meaning}, got {value!r}.")


class _FromRecipe:
    """Marks an argument left to the recipe (`TrainModel`'s defaults), shown as such in help()."""

    def __repr__(self):
        return "<from the recipe>"


FROM_RECIPE = _FromRecipe()
_DERIVED = object()  # a Setting's flag or keyword spelled after its name

# ------------------------------------------------------------------------- the record

KINDS = ("choice", "int", "number", "bool", "text", "folder", "object")
GROUPS = ("data", "model", "recipe", "run")  # the option groups of `adcorre train --help`


@dataclasses.dataclass(frozen=True)
class Setting:
    """One training setting: a `LearningConfig` field, a `TrainModel` keyword, an option.

    Args:
        name: the `LearningConfig` field.
        default: its value when neither the caller nor the recipe sets it.
        help: what it sets, in a phrase that reads after the option and after the keyword;
            `{other}` names another setting (its option on the command line, its keyword in
            Python). The default is added to it (`help_text`), never written in it.
        group: where `--help` lists its option (`GROUPS`).
        kind: the values it takes (`KINDS`): `choice` (one of `choices`), `int` (a whole
            number >= `minimum`), `number` (a finite number from `minimum`, above it unless
            `minimum_inclusive`, and below `maximum`), `bool`, `text`, `folder` (a folder to
            write to), `object` (anything `TrainModel` takes; the option maps `words`).
        choices, minimum, minimum_inclusive, maximum: the checks of its kind.
        none_means: `None` is a value too, meaning this (a phrase, or a function that gives
            one when help is written).
        why: the reason given after the bound when a value is refused.
        by_recipe: left out, it takes the recipe's value: `TrainModel`'s default is
            `FROM_RECIPE` and the option's `None`.
        flag: its `adcorre train` option (`--` and the name, dashed); `None`: no option.
        keyword: its `TrainModel` keyword (the name); `None`: not one.
        flag_sets: the value a switch option sets when given (`--ce-only` sets
            `use_adcorre=False`); left as is, the option takes a value.
        words: for an `object` setting, the option's words and the values they stand for
            (`FROM_RECIPE`: the recipe's).
        api_default: `TrainModel`'s (and the option's) default where it is not the one
            `by_recipe` implies (`recipe=None`: the recipe for the dataset).
        left_out: what leaving it out means, where no value says it (help's default).
    """

    name: str
    default: object
    help: str
    group: str
    kind: str = "text"
    choices: tuple = ()
    minimum: float = None
    minimum_inclusive: bool = True
    maximum: float = None
    none_means: object = None
    why: str = ""
    by_recipe: bool = False
    flag: object = _DERIVED
    keyword: object = _DERIVED
    flag_sets: object = _DERIVED
    words: dict = None
    api_default: object = _DERIVED
    left_out: str = None

    def __post_init__(self):
        if self.kind not in KINDS or self.group not in GROUPS:  # a guard against our own typos
            raise SettingError(f"Setting {self.name!r}: kind {self.kind!r} / group "
                               f"{self.group!r}; expected one of {KINDS} / {GROUPS}.")
        if self.flag is _DERIVED:
            object.__setattr__(self, "flag", "--" + self.name.replace("_", "-"))
        if self.keyword is _DERIVED:
            object.__setattr__(self, "keyword", self.name)

    # -- values -------------------------------------------------------------------------
    @property
    def dest(self):
        """The attribute of the parsed options (argparse's, from the option's name)."""
        return self.flag[2:].replace("-", "_") if self.flag else None

    @property
    def is_switch(self):
        """An option given without a value (`--keep-all`, `--ce-only`)."""
        return self.flag_sets is not _DERIVED

    @property
    def keyword_default(self):
        """`TrainModel`'s default: `FROM_RECIPE`, `api_default` or `default`."""
        if self.api_default is not _DERIVED:
            return self.api_default
        return FROM_RECIPE if self.by_recipe else self.default

    @property
    def option_default(self):
        """The parsed option's value when the option is left out."""
        value = self.keyword_default
        if self.words:
            return self.word_for(value)
        return None if value is FROM_RECIPE else value

    def word_for(self, value):
        """The option's word for `value` (`words`), or None."""
        for word, meant in (self.words or {}).items():
            if meant is value or (type(meant) is type(value) and meant == value):
                return word
        return None

    def recipe_values(self):
        """Its value in each recipe of `RECIPES`: `{recipe: value}` (a recipe's `recipe` is its
        own name)."""
        return {recipe: recipe if self.name == "recipe" else values.get(self.name, self.default)
                for recipe, values in RECIPES.items()}

    def dataset_values(self):
        """Where a recipe sets it for one dataset: `[(recipe, dataset, value), ...]`."""
        return [(recipe, dataset, values[self.name])
                for recipe, datasets in RECIPE_DATASET_SETTINGS.items()
                for dataset, values in datasets.items() if self.name in values]

    # -- checks -------------------------------------------------------------------------
    def bound(self):
        """The bound of an `int` or `number`, as messages say it (`">= 2"`, `"between 0 and 1"`)."""
        if self.maximum is not None and not self.minimum_inclusive:
            return f"between {self.minimum:g} and {self.maximum:g}"
        shown = f"{'>=' if self.minimum_inclusive else '>'} {self.minimum:g}"
        return shown + (f" and < {self.maximum:g}" if self.maximum is not None else "")

    def check(self, value):
        """Refuses a value this setting cannot take (`SettingError`, naming the setting)."""
        if value is None and self.none_means is not None:
            return
        if self.kind == "choice":
            check_choice(self.name, value, self.choices, meaning=self.why)
        elif self.kind == "int" and (isinstance(value, bool)
                                     or not isinstance(value, numbers.Integral)
                                     or value < self.minimum):
            raise SettingError(f"{self.name} must be {self._or_none()}an integer >= "
                               f"{self.minimum}, got {value!r}.")
        elif self.kind == "number" and not self._in_bounds(value):
            raise SettingError(f"{self.name} must be {self._or_none()}a number {self.bound()}"
                               f"{self.why}, got {value!r}.")

    def _in_bounds(self, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        above = value >= self.minimum if self.minimum_inclusive else value > self.minimum
        below = self.maximum is None or value < self.maximum
        return math.isfinite(value) and above and below

    def _or_none(self):
        return f"None ({self.meaning_of_none()}) or " if self.none_means is not None else ""

    def meaning_of_none(self):
        """What `None` stands for (`none_means`, worked out now when it is a function)."""
        return self.none_means() if callable(self.none_means) else self.none_means

    # -- help ---------------------------------------------------------------------------
    def shown(self, value, cli=False):
        """A value as help says it: as typed on the command line, or as written in Python."""
        if value is None and self.none_means is not None:
            return self.meaning_of_none() if cli else f"None ({self.meaning_of_none()})"
        if not cli:
            return repr(value)
        if self.is_switch:
            return "on" if value == self.flag_sets else "off"
        if self.word_for(value) is not None:
            return self.word_for(value)
        if value is None or isinstance(value, bool):
            return {None: "none", True: "on", False: "off"}[value]
        return f"{value:g}" if isinstance(value, float) else str(value)

    def each_recipe(self, cli=False):
        """Its value in each recipe, as help says it: `"adcorre 30, synth_demo 8, arm 70"`."""
        return ", ".join(f"{recipe} {self.shown(value, cli)}"
                         for recipe, value in self.recipe_values().items())

    def default_text(self, cli=False):
        """`"default: 0"`, or `"default: the recipe's (adcorre 30, synth_demo 8, arm 70)"`, with
        the recipes that set it for one dataset."""
        cli = cli and bool(self.flag)  # a setting without an option is said as in Python
        if self.left_out:
            return f"default: {self.left_out}"
        if not self.by_recipe:
            return f"default: {self.shown(self.keyword_default, cli)}"
        shown = {self.shown(value, cli) for value in self.recipe_values().values()}
        text = shown.pop() if len(shown) == 1 else f"the recipe's ({self.each_recipe(cli)})"
        if cli and self.words and self.option_default is not None:
            text = f"{self.option_default}, {text}"  # the word that leaves it to the recipe
        by_dataset = [f"the {recipe} recipe on {dataset}: {self.shown(value, cli)}"
                      for recipe, dataset, value in self.dataset_values()]
        return f"default: {text}" + (f" ({'; '.join(by_dataset)})" if by_dataset else "")

    def what_it_sets(self, cli=False, choices=None):
        """The help, other settings named as `cli` or Python spells them, and (by default in
        Python only: argparse lists an option's own) the choices."""
        text = self.help.format_map(_Names(cli))
        if self.kind == "choice" and (not cli if choices is None else choices):
            text += f" (one of {', '.join(self.shown(choice, cli) for choice in self.choices)})"
        if self.words and not cli:  # what the option's words are in Python
            text += " (" + ", ".join(f"{word}: {value!r}" for word, value in self.words.items()
                                     if value is not FROM_RECIPE) + ")"
        return text

    def help_text(self, cli=False):
        """`what_it_sets` and the default: an option's help, a keyword's documentation."""
        return f"{self.what_it_sets(cli)}; {self.default_text(cli)}"


class _Names(dict):
    """`{other}` in a help: the other setting's option (or, without one, its keyword and each
    recipe's value) on the command line, its keyword in Python."""

    def __init__(self, cli):
        super().__init__()
        self.cli = cli

    def __missing__(self, name):
        other = setting(name)
        if not self.cli:
            return f"`{other.keyword or other.name}`"
        if other.flag:
            return other.flag
        return f"{other.name} ({other.each_recipe()})"


def _data_dir_default():
    where = default_data_dir("<dataset>")
    if os.environ.get("FER_DATA_ROOT"):
        return f"{where}, that is $FER_DATA_ROOT/<dataset>"
    return f"{where}, or $FER_DATA_ROOT/<dataset> when FER_DATA_ROOT is set"


# ---------------------------------------------------------------------- the declarations
# In the order `adcorre train --help` lists them, group by group; `LearningConfig`'s fields
# follow this order too.

SETTINGS = (
    # What to train on.
    # Its values are the names of `adcorre.data.datasets.DATASETS` (one module each): checked
    # against the records by `datasets.check_settings` and the option's choices, not here (this
    # core module cannot read the data layer).
    Setting("dataset_name", DatasetName.synth, group="data", flag="--dataset",
            help="the dataset (a name of adcorre.data.datasets.DATASETS): synth is SynthFER, "
                 "drawn in memory; the others are read as they ship from {data_dir} "
                 "(docs/training.md, Datasets)"),
    Setting("data_dir", None, group="data", none_means=_data_dir_default,
            help="the dataset's root folder as it ships (not used by synth)"),
    Setting("ds_type", DatasetType.train, group="data", kind="choice", choices=DatasetType.all,
            help="the official API's dataset type: for AffectNet, train and eval keep its 8 "
                 "classes (Contempt too), train_7, eval_7 and test the 7 basic ones; the other "
                 "datasets have 7"),
    Setting("rafdb_images", "auto", group="data", kind="choice", choices=RAFDB_IMAGES,
            help="RAF-DB's faces: aligned (Image/aligned/), original (the photos of "
                 "Image/original/ cropped by their box files, Annotation/boundingbox/ or "
                 "boundingbox/, as the official config names them), or auto: aligned when "
                 "that folder is there"),
    Setting("test_split", "test", group="data", kind="choice", choices=TEST_SPLITS,
            by_recipe=True, why=" (the split each epoch is scored on)",
            help="the split each epoch is scored on; public_private_test: FER-2013 / FERPlus "
                 "PublicTest + PrivateTest (the official Ad-Corre test set), val: their "
                 "PublicTest"),
    Setting("val_fraction", None, group="data", kind="number", minimum=0.0,
            minimum_inclusive=False, maximum=1.0, none_means="no validation split",
            why=" (the share of the training split held out to select the best epoch)",
            help="hold out this share of the training split (stratified, seeded by {seed}; "
                 "never test faces) as a validation split that selects the best epoch, whose "
                 "test accuracy is then reported; without one the best epoch is the one with "
                 "the best test accuracy, an optimistic figure"),
    Setting("synth_train_size", SYNTH_SPLIT_SIZES["train"], group="data", kind="int",
            minimum=1, by_recipe=True, help="SynthFER faces drawn for training"),
    Setting("synth_test_size", SYNTH_SPLIT_SIZES["test"], group="data", kind="int", minimum=1,
            by_recipe=True, help="SynthFER faces drawn for testing"),
    # The network.
    Setting("arch", "xcp", group="model", kind="choice", choices=ARCHES, by_recipe=True,
            keyword=None, help="the network (in Python: train(arch=...))"),
    Setting("weights", "imagenet", group="model", by_recipe=True,
            help="imagenet (the backbone's ImageNet weights; for resnet18*: torchvision's "
                 "file), none (from scratch), a weight file, or a downloadable file by name "
                 "(arch.tag or alias, e.g. xcp.imagenet = imagenet for xcp, adcorre-rafdb: a "
                 "released model of the arch to start from; adcorre weights lists them), "
                 "fetched once into the cache"),
    Setting("input_size", 224, group="model", kind="int", minimum=1, by_recipe=True,
            help="side of the square input in pixels (each arch has a minimum, e.g. 71 for "
                 "xcp)"),
    Setting("num_embeddings", 7, group="model", kind="int", minimum=0, by_recipe=True,
            help="k, the embedding heads (0: none, features straight to the classifier)"),
    Setting("embedding_size", 256, group="model", kind="int", minimum=1, by_recipe=True,
            help="d, each head's size"),
    Setting("dropout", 0.5, group="model", kind="number", minimum=0.0, maximum=1.0, flag=None,
            keyword=None, help="the dropout rate before the classifier"),
    # The recipe: loss, optimiser, schedule, data order and augmentation.
    Setting("recipe", "adcorre", group="recipe", kind="choice", choices=tuple(RECIPES),
            api_default=None, left_out="synth_demo on SynthFER, adcorre otherwise",
            help="named settings (config.RECIPES, docs/training.md): adcorre, the paper's as "
                 "the official code trained it; arm, ARM's train_raf-db.py (docs/reproduction.md"
                 ", ARM as its authors built it); synth_demo, the CPU demo"),
    # 30 passes over the original images = 6 official epochs over its ~5x augmented copy; the
    # official run went up to 300 of those (docs/reproduction.md, "Where this differs").
    Setting("epochs", 30, group="recipe", kind="int", minimum=1, by_recipe=True,
            help="passes over the training split"),
    Setting("batch_size", 50, group="recipe", kind="int", minimum=2, by_recipe=True,
            why=" (FD, MD and ED compare the samples of a batch)",
            help="the global batch (all replicas together), >= 2"),
    Setting("learning_rate", 1e-3, group="recipe", kind="number", minimum=0.0,
            minimum_inclusive=False, by_recipe=True, flag="--lr", keyword="lr",
            help="initial learning rate"),
    Setting("lr_schedule", "inverse_time", group="recipe", kind="choice", choices=LR_SCHEDULES,
            by_recipe=True,
            help="inverse_time: lr / (1 + decay x t) after t optimizer steps ({lr_decay}), "
                 "the official Keras 2 Adam(1e-3, decay=1e-5); step: x {lr_decay_factor} "
                 "every {lr_decay_every} epochs"),
    Setting("lr_decay", 1e-5, group="recipe", kind="number", minimum=0.0, by_recipe=True,
            help="per-step decay of the inverse_time schedule"),
    Setting("lr_decay_every", 5, group="recipe", kind="int", minimum=1, by_recipe=True,
            help="epochs between the step schedule's steps"),
    Setting("lr_decay_factor", 0.1, group="recipe", kind="number", minimum=0.0,
            minimum_inclusive=False, by_recipe=True, flag=None,
            help="the step schedule's factor"),
    Setting("optimizer", "adam", group="recipe", kind="choice", choices=OPTIMIZERS,
            by_recipe=True, flag=None,
            help="adam: Keras' Adam (Ad-Corre's); torch_adam: torch's Adam arithmetic "
                 "(ARM's; adam_optimizers.TorchAdam)"),
    Setting("weight_decay", 0.0, group="recipe", kind="number", minimum=0.0, by_recipe=True,
            flag=None,
            help="torch's coupled L2 (wd x w added to every gradient, not AdamW's decoupled "
                 "kind), with optimizer torch_adam only"),
    Setting("ce_weight", None, group="recipe", kind="number", minimum=0.0, by_recipe=True,
            none_means="50/C",
            help="weight of the cross-entropy term; 50/C (C classes: 50/7 = 7.14) is the "
                 "official code's balance (its 50 x CE averaged over n x C)"),
    Setting("use_adcorre", True, group="recipe", kind="bool", by_recipe=True,
            flag="--ce-only", flag_sets=False,
            help="cross-entropy alone, FD, MD and ED logged with weight 0 (the official "
                 "gradient): --ce-only, use_adcorre=False"),
    Setting("adcorre_terms", "fd+md+ed", group="recipe", kind="choice",
            choices=ADCORRE_TERM_SETS, by_recipe=True,
            help="the Ad-Corre terms trained beside cross-entropy (the ablations train one or "
                 "two); the others are logged with weight 0, and {use_adcorre} leaves none"),
    Setting("loss_arithmetic", "paper", group="recipe", kind="choice",
            choices=LOSS_ARITHMETICS, by_recipe=True,
            help="paper: docs/DESIGN.md's FD, MD, ED; official: the official code's (no FD "
                 "weights, MD / k C^2, ED / k^2; custom_loss.AdCorreLoss)"),
    Setting("attention_window", None, group="recipe", kind="int", minimum=1, by_recipe=True,
            none_means="once per epoch",
            help="recompute omega every step from the last N training predictions (rounded "
                 "up to whole batches; the official code keeps 1000)"),
    Setting("adcorre_batch", "global", group="recipe", kind="choice", choices=ADCORRE_BATCHES,
            by_recipe=True,
            help="FD, MD, ED over the all-gathered global batch or each replica's own "
                 "(several devices only; train_step.AdCorreTrainer)"),
    Setting("mrr", False, group="recipe", kind="bool", by_recipe=True,
            help="class-balanced sampling: minimal random resampling (ARM) tops every class "
                 "of the training split up to the largest one each epoch, each re-draw "
                 "augmented afresh (off in every recipe: no official file shows a balanced "
                 "AffectNet copy)"),
    Setting("augmentation", None, group="recipe", kind="object", by_recipe=True,
            none_means="on", flag="--augment",
            words={"auto": FROM_RECIPE, "on": None, "off": False},
            help="training augmentation: on (flip, small rotation / zoom / shift, colour "
                 "jitter, random erasing), off, a name of input_pipeline.AUGMENTATIONS ('arm': "
                 "ARM's flip or noise + erasing) or, in Python, an input_pipeline.Augmentation; "
                 "SynthFER draws its own pose, light and occluders"),
    # How the run goes.
    Setting("seed", 0, group="run", kind="int", minimum=0,
            help="fixes the data order, augmentation, initialisation and SynthFER's faces; a "
                 "rerun on the same machine gives the same numbers"),
    Setting("save_dir", None, group="run", kind="folder",
            none_means="runs/<dataset>_<arch>_<date>-<time>",
            help="where the epoch files, logs and backup go (a folder made when it is not "
                 "there); one holding a killed run's backup resumes it"),
    Setting("steps_per_epoch", None, group="run", kind="int", minimum=1,
            none_means="the whole training split",
            help="cap on an epoch's steps, for quick runs"),
    Setting("backup_every", 200, group="run", kind="int", minimum=0,
            help="steps between mid-epoch backups, 0: at epoch ends only"),
    Setting("keep_all", False, group="run", kind="bool", flag_sets=True,
            help="keep every epoch's .h5 (without it: the best and the latest)"),
    Setting("mixed_precision", "auto", group="run", kind="choice", choices=MIXED_PRECISION,
            help="auto: bf16 on a GPU, float32 on a CPU"),
    Setting("jit_compile", "auto", group="run", kind="object",
            words={"auto": "auto", "on": True, "off": False, "eager": "eager"},
            help="XLA compilation; auto: on a GPU, off (graph mode) on a CPU; eager: no graph "
                 "at all, each step run op by op (a few steps of a large network cost less "
                 "than tracing it)"),
    Setting("verbose", "auto", group="run", kind="object", flag=None,
            help="Keras' progress output (auto: a bar on a terminal, a line per epoch "
                 "otherwise; or Keras' 0, 1, 2)"),
)

_BY_NAME = {declared.name: declared for declared in SETTINGS}

# The whole-number settings and the smallest value each takes, checked alike by the options
# (before TensorFlow loads) and by `LearningConfig`.
SETTING_MINIMUMS = {s.name: s.minimum for s in SETTINGS if s.kind == "int"}


def setting(name):
    """The declaration of setting `name` (`SettingError` for an unknown name)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise SettingError(f"Unknown training setting {name!r}; expected one of "
                           f"{sorted(_BY_NAME)}.") from None


def keyword_docs(indent=8, width=100):
    """`TrainModel`'s keywords as the Args section of its docstring, one entry per setting.

    Args:
        indent: the spaces before each entry (the continuation lines get 4 more).
        width: the longest line.

    Returns:
        The entries, one per setting with a `keyword`, in declaration order.
    """
    lines = []
    for declared in SETTINGS:
        if declared.keyword:
            lines += textwrap.wrap(f"{declared.keyword}: {declared.help_text()}.", width,
                                   initial_indent=" " * indent,
                                   subsequent_indent=" " * (indent + 4))
    return "\n".join(lines)


def options_table():
    """docs/training.md's option table: one row per setting with an option or a keyword."""
    rows = ["| option | `TrainModel` | what it sets | default |", "| --- | --- | --- | --- |"]
    for declared in SETTINGS:
        if not (declared.flag or declared.keyword):
            continue
        cli = bool(declared.flag)
        option = f"`{declared.flag}`" if declared.flag else "—"
        keyword = f"`{declared.keyword}=`" if declared.keyword else "—"
        what = _cell(declared.what_it_sets(cli, choices=True))
        default = _cell(declared.default_text(cli).removeprefix("default: "))
        rows.append(f"| {option} | {keyword} | {what} | {default} |")
    return "\n".join(rows)


def _cell(text):
    """`text` in a Markdown table cell: `|` would end the cell, `<dataset>` read as HTML."""
    return text.replace("|", "\\|").replace("<", "\\<")
