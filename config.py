"""Project-wide constants: dataset names, label orders and maps, learning defaults.

Every dataset's own label codes are mapped into one canonical order (the one the
official Ad-Corre code and its released weights use):

    0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger (+ 7 Contempt)

Nothing here is meant to be edited to change a run: `LearningConfig` and
`InputDataSize` hold defaults that `TrainModel`, `TestModels` and the CLIs take as
keyword arguments / flags. This module imports nothing of ours (docs/DESIGN.md).
"""

import dataclasses
import os


class DatasetName:
    """Names accepted by `dataset_name=` / `--dataset`."""

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
    raise ValueError(
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


@dataclasses.dataclass
class LearningConfig:
    """Training defaults (the official values where the paper gives them).

    Override by passing arguments to `TrainModel`, never by editing this file.
    """

    batch_size: int = 50
    epochs: int = 30
    embedding_size: int = 256
    num_embeddings: int = 7
    num_classes: int = 7
    learning_rate: float = 1e-3
    lr_decay_every: int = 5
    lr_decay_factor: float = 0.1
    ce_weight: float = 50.0 / 7.0
    dropout: float = 0.5


class InputDataSize:
    """The input size the official models were trained and released at."""

    image_input_size = 224


def default_data_dir(dataset_name):
    """Where a dataset is looked for when no `data_dir` is given.

    `$FER_DATA_ROOT/<name>` if the variable is set, else `./data/<name>`.
    """
    root = os.environ.get("FER_DATA_ROOT", os.path.join(".", "data"))
    return os.path.join(root, dataset_name)
