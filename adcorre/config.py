"""The official module name `config`: the project's constants and settings, as users import them.

The checkout's config.py is this module itself (`import config` gives `adcorre.config`), and the
names users and the official code import from it live on here: `LearningConfig`, `RECIPES`,
`DatasetName`, `DatasetType`, `InputDataSize`, the label orders and maps... Each is defined by
the module of its concern and only re-exported here:

- the training settings, the values they take and their help: `adcorre.settings`;
- `LearningConfig`: `adcorre.learning_config`; the recipes: `adcorre.recipes`;
- the warning when Python's own `test` shadows the checkout's test.py: `adcorre.shadowing`;
- ImageNet's channel statistics: `adcorre.models.registry`;
- the label orders and every dataset's codes mapped into the canonical order (the one the
  official Ad-Corre code and its released weights use: 0 Neutral, 1 Happy, 2 Sad, 3 Surprise,
  4 Fear, 5 Disgust, 6 Anger, + 7 Contempt): `adcorre.labels`;
- what each dataset is (its splits, layout, reader) and its settings' checks: its record in
  `adcorre.data.datasets` (`DatasetName` keeps the official names of the shipped ones).

Defined here still: a few constants of the inference side (picture extensions, export formats, the upload
limit, the official input size). Nothing here is meant to be edited to change a run: pass
`TrainModel` / `TestModels` arguments or command-line options. No module here loads Keras.

Example:
>>> LearningConfig.from_recipe("synth_demo").arch, label_names(8)[-1]
('tiny', 'Contempt')
"""

# The label orders and each dataset's codes mapped into the canonical one live in `adcorre.labels`;
# re-exported here because users (and the official code) import them from config.
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


# Formats `TestModels.export` / `test.py --export` writes.
EXPORT_FORMATS = ("saved_model", "tflite", "onnx")
# Uploads above this many bytes are refused by `test.py --serve` with HTTP 413 (a 12 MP phone
# JPEG is 3-8 MB).
MAX_UPLOAD_BYTES = 20_000_000


class InputDataSize:
    """The input size the official models were trained and released at."""

    image_input_size = 224
