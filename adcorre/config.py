"""Project-wide constants: dataset names and types, learning defaults, `LearningConfig`, `RECIPES`.

The label orders and each dataset's map into the canonical one live in `adcorre.labels` and are
re-exported here (`config.EXPRESSIONS_7`, `config.RAFDB_TO_CANONICAL`, ...). What each dataset is
(its splits, layout, reader) is its record in `adcorre.data.datasets`, which also checks a run's
dataset settings (`check_settings`): this core module cannot read the data layer.

Nothing here is meant to be edited to change a run: `LearningConfig` and
`InputDataSize` hold defaults that `TrainModel`, `TestModels` and the CLIs take as
keyword arguments / flags. This module imports only `errors`, `labels` and the arch registry of
ours (none loads Keras).
"""

import dataclasses
import importlib.util
import numbers
import os
import warnings

from adcorre.errors import SettingError
# The label orders and maps live in `adcorre.labels`; re-exported here because users (and the
# official code) import them from config.
from adcorre.labels import (  # noqa: F401
    AFFECTNET_TO_CANONICAL_7,
    AFFECTNET_TO_CANONICAL_8,
    EXPRESSIONS_7,
    EXPRESSIONS_8,
    FER2013_TO_CANONICAL,
    FERPLUS_TO_CANONICAL,
    FERPLUS_VOTE_COLUMNS,
    LABEL_ALIASES,
    LABEL_PRESETS,
    RAFDB_TO_CANONICAL,
    label_names,
)
from adcorre.models.registry import ARCH_NAMES


# Files the readers and the CLI take for pictures (any of them may hold any of these formats).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif")


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


# Formats `TestModels.export` / `test.py --export` writes.
EXPORT_FORMATS = ("saved_model", "tflite", "onnx")
# Uploads above this many bytes are refused by `test.py --serve` with HTTP 413 (a 12 MP phone
# JPEG is 3-8 MB).
MAX_UPLOAD_BYTES = 20_000_000


# SynthFER sizes when nothing else is asked for: the demo's (10000 faces train the tiny arch to
# 0.86-0.89 in 8 epochs; fewer leave it near the class prior longer, see docs/training.md).
SYNTH_SPLIT_SIZES = {"train": 10000, "val": 1000, "test": 1000}


# ImageNet's per-channel mean and standard deviation of RGB in [0, 1] (torchvision's Normalize):
# ScaleInputs("torchvision") subtracts this mean, and ARM's erasing fills with it, which that
# normalisation maps to torchvision's fill value 0.
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)

# The networks `cnn_model.CNNModel().get_model(arch)` builds: one record each in
# `models.registry` (read without loading Keras, so the CLI can offer them).
ARCHES = ARCH_NAMES


# The official train.py weights its CE (a mean over n x C entries) by 50; per sample that is 50 / C.
OFFICIAL_CE_LAMBDA = 50.0
LR_SCHEDULES = ("inverse_time", "step")
LOSS_ARITHMETICS = ("paper", "official")
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

# The whole-number training settings and the smallest value each takes, checked alike by
# `python train.py` (before TensorFlow loads) and by `LearningConfig`; the fields whose default
# is None also take None. batch_size >= 2: FD, MD and ED compare the samples of a batch.
SETTING_MINIMUMS = {
    "synth_train_size": 1, "synth_test_size": 1, "input_size": 1, "num_embeddings": 0,
    "embedding_size": 1, "batch_size": 2, "epochs": 1, "lr_decay_every": 1,
    "attention_window": 1, "seed": 0, "backup_every": 0, "steps_per_epoch": 1,
}


@dataclasses.dataclass
class LearningConfig:
    """Every setting of one training run. `TrainModel` builds one and writes it to the run folder.

    The field defaults are the Ad-Corre recipe; `RECIPES` names the settings other recipes
    change, and `LearningConfig.from_recipe` applies one under the caller's own settings.
    Override by passing arguments to `TrainModel` (or CLI flags), never by editing this file.

    Example:
    >>> LearningConfig.from_recipe("synth_demo").arch
    'tiny'
    """

    # What to train on.
    dataset_name: str = "synth"
    ds_type: str = "train"
    data_dir: str = None
    synth_train_size: int = SYNTH_SPLIT_SIZES["train"]
    synth_test_size: int = SYNTH_SPLIT_SIZES["test"]
    # RAF-DB's faces (RAFDB_IMAGES): "auto" the aligned ones when Image/aligned/ is there, else
    # the original photos; "original": the photos cropped by their box files, as the official
    # config names them (RafDBConf.orig_image_path, orig_bounding_box).
    rafdb_images: str = "auto"
    # The network.
    arch: str = "xcp"
    weights: object = "imagenet"  # "imagenet", None (from scratch) or a weight file
    input_size: int = 224
    num_embeddings: int = 7
    embedding_size: int = 256
    dropout: float = 0.5
    # The recipe: loss, optimiser, schedule, data order and augmentation.
    recipe: str = "adcorre"
    batch_size: int = 50
    # 30 passes over the original images = 6 official epochs over its ~5x augmented copy; the
    # official run went up to 300 of those (docs/reproduction.md, "Where this differs").
    epochs: int = 30
    learning_rate: float = 1e-3
    # "inverse_time": lr / (1 + lr_decay * t), t = optimizer steps (the official Keras 2
    # Adam(1e-3, decay=1e-5)); "step": x lr_decay_factor every lr_decay_every epochs.
    lr_schedule: str = "inverse_time"
    lr_decay: float = 1e-5
    lr_decay_every: int = 5
    lr_decay_factor: float = 0.1
    optimizer: str = "adam"
    # torch's Adam(weight_decay=...): wd * w added to every gradient (L2, "coupled"), not Keras'
    # decoupled AdamW kind; needs optimizer="torch_adam".
    weight_decay: float = 0.0
    ce_weight: float = None  # None: 50 / num_classes (the official 50 x CE averaged over n x C)
    use_adcorre: bool = True
    adcorre_batch: str = "global"
    # "paper": docs/DESIGN.md's equations; "official": the official code's FD / MD / ED arithmetic.
    loss_arithmetic: str = "paper"
    # None: omega refreshed once per epoch; N: every step from the last N training predictions
    # (the official code keeps 1000).
    attention_window: int = None
    mrr: bool = False
    # The split each epoch is scored on (TEST_SPLITS); the recipe may pick it per dataset
    # (RECIPE_DATASET_SETTINGS: Ad-Corre scores FER-2013 on PublicTest + PrivateTest).
    test_split: str = "test"
    # None: the best epoch is the one with the best test accuracy (optimistic); F in (0, 1): a
    # stratified, seeded validation split of F of the training split selects it.
    val_fraction: float = None
    # None: input_pipeline.Augmentation(), False: none, an Augmentation, or the name of one of
    # input_pipeline.AUGMENTATIONS ("arm": ARM's train_raf-db.py transforms).
    augmentation: object = None
    # How the run goes.
    seed: int = 0
    mixed_precision: str = "auto"
    jit_compile: object = "auto"
    save_dir: str = None
    backup_every: int = 200
    keep_all: bool = False
    steps_per_epoch: int = None
    verbose: object = "auto"

    def __post_init__(self):
        # What depends on the dataset (its name, its splits, the settings only it reads) is
        # checked against its record by `adcorre.data.datasets.check_settings`, which TrainModel
        # calls on this config: the records live in the data layer, above this module.
        check_choice("ds_type", self.ds_type, DatasetType.all)
        check_choice("recipe", self.recipe, RECIPES)
        # The API takes what the CLI's option types take (batch_size >= 2 for the correlation
        # terms, which compare the samples of a batch).
        for name, minimum in SETTING_MINIMUMS.items():
            value = getattr(self, name)
            if value is None and name in ("steps_per_epoch", "attention_window"):
                continue  # the whole split; omega per epoch
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
                allowed = {"steps_per_epoch": "None (the whole split) or ",
                           "attention_window": "None (per epoch) or "}.get(name, "")
                raise SettingError(f"{name} must be {allowed}an integer >= {minimum}, got {value!r}.")
        if not self.learning_rate > 0:
            raise SettingError(f"learning_rate must be > 0, got {self.learning_rate!r}.")
        for name in ("lr_decay", "ce_weight"):  # as the CLI's --lr-decay and --ce-weight
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise SettingError(f"{name} must be a number >= 0, got {value!r}.")
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.weight_decay < 0 or (self.weight_decay and self.optimizer != "torch_adam"):
            raise SettingError(f"weight_decay={self.weight_decay!r}: expected 0, or a value >= 0 "
                             "with optimizer='torch_adam' (torch's coupled L2).")
        check_choice("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        check_choice("adcorre_batch", self.adcorre_batch, ADCORRE_BATCHES)
        check_choice("loss_arithmetic", self.loss_arithmetic, LOSS_ARITHMETICS)
        check_choice("rafdb_images", self.rafdb_images, RAFDB_IMAGES)
        check_choice("test_split", self.test_split, TEST_SPLITS,
                      meaning=" (the split each epoch is scored on)")
        fraction = self.val_fraction
        if fraction is not None and (isinstance(fraction, bool)
                                     or not isinstance(fraction, numbers.Real)
                                     or not 0.0 < fraction < 1.0):
            raise SettingError(f"val_fraction must be None or a number between 0 and 1 (the share "
                               f"of the training split held out to select the best epoch), got "
                               f"{fraction!r}.")

    @property
    def num_classes(self):
        """8 for AffectNet's `train` / `eval` types (Contempt kept), else 7.

        The dataset's record says the same (`Dataset.num_classes(ds_type)`; a contract test
        checks they agree for every record): this core module cannot read the records.
        """
        eight = self.dataset_name == DatasetName.affectnet and self.ds_type in (
            DatasetType.train, DatasetType.eval)
        return 8 if eight else 7

    @property
    def cross_entropy_weight(self):
        """`ce_weight`, or 50 / num_classes when it is None (see `official_ce_weight`)."""
        return official_ce_weight(self.num_classes) if self.ce_weight is None else self.ce_weight

    @classmethod
    def from_recipe(cls, recipe=None, **settings):
        """The recipe's settings under the caller's own.

        Args:
            recipe: a key of `RECIPES`; `None` picks `default_recipe(dataset_name)`.
            **settings: fields set explicitly; they win over the recipe's.

        Returns:
            A `LearningConfig`.
        """
        if recipe is None:
            recipe = default_recipe(settings.get("dataset_name", cls.dataset_name))
        check_choice("recipe", recipe, RECIPES)
        unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise SettingError(f"Unknown training setting(s) {unknown}.")
        dataset = settings.get("dataset_name", RECIPES[recipe].get("dataset_name", cls.dataset_name))
        for_dataset = RECIPE_DATASET_SETTINGS.get(recipe, {}).get(dataset, {})
        return cls(**{**RECIPES[recipe], **for_dataset, **settings, "recipe": recipe})

    def to_dict(self):
        """The settings as JSON-ready values (an augmentation as its own fields)."""
        return dataclasses.asdict(self)


# Named recipes: the fields each changes from LearningConfig's defaults (which are Ad-Corre's).
RECIPES = {
    # The paper's setting: Xception from ImageNet weights, k = 7 heads, FD + MD + ED + CE, trained
    # as the official train.py did (Adam 1e-3, per-step decay 1e-5, batch 50, CE x 50 / C); every
    # departure from the paper and that code: docs/reproduction.md, "Where this differs".
    "adcorre": {},
    # The CPU demo (`python train.py`): the tiny CNN from scratch on SynthFER at 40 px, in batches
    # of 25. From random weights a network sits at the class prior for a few hundred steps before
    # it learns, so the rate steps after epoch 6, not 5; SynthFER draws its own pose, light and
    # occluders, and fresh faces cost less than augmenting old ones, so no augmentation. 40 px
    # costs 0.4 of 64 px's arithmetic and learns as well; a batch of 25 costs what half of one of
    # 50 does on a CPU and gives twice the steps, so the plateau ends an epoch sooner
    # (docs/training.md, "Training from scratch"). Its rate keeps the x0.1 step (not Ad-Corre's
    # inverse-time decay).
    "synth_demo": dict(arch="tiny", weights=None, input_size=40, batch_size=25, epochs=8,
                       lr_schedule="step", lr_decay_every=6, augmentation=False),
    # ARM's own run, sunmusik/Amend-Representation-Module src/train_raf-db.py: ResNet18_ARM___RAF
    # from torchvision's ImageNet ResNet-18, CE alone (torch's CrossEntropyLoss, weight 1, no
    # heads), torch's Adam(lr 1e-3, weight_decay 1e-4), ExponentialLR(0.9) stepped per epoch,
    # batch 256, 70 epochs, 224 px, their flip / noise + RandomErasing(0.02-0.1). Sources line by
    # line and what differs: docs/reproduction.md, "ARM as its authors built it".
    "arm": dict(arch="resnet18_arm", weights="imagenet", input_size=224, num_embeddings=0,
                use_adcorre=False, ce_weight=1.0, optimizer="torch_adam", learning_rate=1e-3,
                weight_decay=1e-4, lr_schedule="step", lr_decay_every=1, lr_decay_factor=0.9,
                batch_size=256, epochs=70, augmentation="arm", mrr=False),
}


# What a recipe sets for one dataset only, over its RECIPES entry (the caller's settings still win).
RECIPE_DATASET_SETTINGS = {
    "adcorre": {
        # The official test set of FER-2013 is PublicTest + PrivateTest (config.py: "both
        # public&private test", 7,178 faces); the 72.03 % was measured on it.
        DatasetName.fer2013: dict(test_split="public_private_test"),
        # The official AffectNet run trained on an offline augmented copy (config.py sizes the
        # 8-class one at 2,420,940 against 287,651 hand-labelled faces) that evens out the
        # classes; MRR tops every class up to the largest each epoch, every re-draw augmented
        # afresh (docs/reproduction.md, "Where this differs").
        DatasetName.affectnet: dict(mrr=True),
    },
}


def default_recipe(dataset_name):
    """The recipe a run uses when none is named: the demo on SynthFER, Ad-Corre otherwise."""
    return "synth_demo" if dataset_name == DatasetName.synth else "adcorre"


class InputDataSize:
    """The input size the official models were trained and released at."""

    image_input_size = 224


def default_data_dir(dataset_name):
    """Where a dataset is looked for when no `data_dir` is given.

    `$FER_DATA_ROOT/<name>` if the variable is set, else `./data/<name>`.
    """
    root = os.environ.get("FER_DATA_ROOT", os.path.join(".", "data"))
    return os.path.join(root, dataset_name)


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
