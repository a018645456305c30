"""Reading a dataset: `read_split` for every dataset the records of `adcorre.data.datasets` hold.

`read_split(dataset_name, data_dir, split)` reads the layout each dataset ships in
(docs/DESIGN.md, "On-disk formats") into a DataFrame with an `image` column (a file
path, or a uint8 array for the CSV datasets and SynthFER) and a `label` column
(canonical index, see `adcorre.labels`). Extra columns: `box` (the face box `(x, y, w, h)` of
AffectNet and of RAF-DB's original photos), `valence`, `arousal` (AffectNet), `usage`
(FER-2013 / FERPlus). `frame.attrs` records the dataset, split, class count, source file
and the rows dropped by the dataset's rules.

Each dataset's reader is in its own module (`adcorre/data/datasets/<name>.py`); this module
finds the record, checks the split and the options against it, and finds the data folder.
Only label files are read (and, for the datasets with face boxes, each photo's header, to check
its box against it): images are decoded later, by `pictures` (one picture) or
`input_pipeline` (tf.data). Reading needs no TensorFlow.

A missing label file, wrong columns, a malformed line or a label out of range raise
one `DatasetNotFoundError` (a `FileNotFoundError`) or `DatasetFormatError` (a
`ValueError`) naming the file, the line and the expected format.

Example:
>>> frame = read_split("synth", None, "train", n=16, image_size=48)
>>> list(frame.columns), len(frame)
(['image', 'label'], 16)
"""

import math
import os

import numpy as np

from adcorre import config
from adcorre.data import datasets
# Names that lived here before each dataset's reader moved to its own module: kept for callers.
from adcorre.data.datasets.ferplus import ferplus_label  # noqa: F401
from adcorre.data.datasets.rafdb import BOX_DIRS as RAFDB_BOX_DIRS  # noqa: F401
from adcorre.data.datasets.rafdb import BadBoxWarning, rafdb_box  # noqa: F401
from adcorre.errors import DatasetFormatError, DatasetNotFoundError, SettingError  # noqa: F401
from adcorre.labels import EXPRESSIONS_8

# `public_private_test`: FER-2013's PublicTest + PrivateTest, the official Ad-Corre test set.
SPLITS = ("train", "val", "test", "public_private_test")


def _split_name(split):
    """Canonical split name and the class count a DatasetType implies (or None)."""
    s = str(split).strip()
    lower = s.lower()
    forced = 7 if lower.endswith("_7") else None
    lower = lower[:-2] if forced else lower
    aliases = {"train": "train", "training": "train",
               "val": "val", "valid": "val", "validation": "val", "eval": "val",
               "publictest": "val", "test": "test", "privatetest": "test",
               "public_private_test": "public_private_test"}
    if lower not in aliases:
        raise SettingError(
            f"Unknown split {split!r}: use 'train', 'val' or 'test' ('public_private_test' for "
            f"{' and '.join(datasets.having_split('public_private_test'))}), or a dataset type: "
            f"{', '.join(config.DatasetType.all)}."
        )
    return aliases[lower], forced


def validation_split(frame, fraction, seed=0, setting="val_fraction"):
    """Carves a stratified, seeded validation split out of a (training) frame.

    Each class present gives `round(fraction x its count)` of its rows (halves round up), drawn
    at random under `seed`; the rest stay for training, in their original order. The split is
    made from the listing, before any image is opened, so the same dataset, fraction and seed
    always hold out the same faces.

    Args:
        frame: a `read_split` frame (the training split; never the test split).
        fraction: the share held out, 0 < fraction < 1.
        seed: the draw's seed (a run's `seed`).
        setting: how the caller names the setting in the message (`--val-fraction` for the CLI).

    Returns:
        `(train, val)`: two frames (index reset) whose rows partition `frame`'s;
        `val.attrs["split"]` is "val_from_train", and both record `val_fraction` and the rows'
        positions in `frame` (`attrs["rows"]`).

    Raises:
        SettingError: the fraction leaves a class without a validation face or without a
            training face (the message names the class, its count and the setting).

    Example:
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"image": [f"{i}.jpg" for i in range(8)],
    ...                       "label": [0, 0, 0, 0, 1, 1, 1, 1]})
    >>> train, val = validation_split(frame, 0.25, seed=0)
    >>> len(train), sorted(val["label"])
    (6, [0, 1])
    """
    if not 0.0 < float(fraction) < 1.0:
        raise SettingError(f"The validation share ({setting}) must be between 0 and 1, got "
                           f"{fraction!r}.")
    labels = frame["label"].to_numpy(np.int64)
    rng = np.random.default_rng([int(seed), 0x7A1])  # a stream of its own: not the epoch orders'
    held_out, short = [], []
    names = EXPRESSIONS_8
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        count = int(math.floor(fraction * len(rows) + 0.5))
        if count == 0 or count == len(rows):
            short.append(f"{names[label] if label < len(names) else label} ({len(rows)} faces: "
                         f"{count} for validation, {len(rows) - count} for training)")
            continue
        held_out.append(rng.choice(rows, count, replace=False))
    if short:
        raise SettingError(
            f"A validation share of {fraction:g} ({setting}) leaves a class without a "
            f"validation face or without a training face: {'; '.join(short)}. Every class needs both; choose a fraction "
            "that gives each class at least one face on each side.")
    val_rows = np.sort(np.concatenate(held_out))
    is_val = np.zeros(len(labels), bool)
    is_val[val_rows] = True
    train_rows = np.flatnonzero(~is_val)
    parts = []
    for rows, name in ((train_rows, frame.attrs.get("split", "train")), (val_rows, "val_from_train")):
        part = frame.iloc[rows].reset_index(drop=True)
        part.attrs = dict(frame.attrs, split=name, val_fraction=float(fraction), rows=rows)
        parts.append(part)
    return tuple(parts)


def find_data_dir(dataset_name, data_dir=None, setting="data_dir="):
    """The folder a dataset is read from: `data_dir`, or `config.default_data_dir`'s.

    Args:
        dataset_name: a dataset whose record `needs_data_dir`.
        data_dir: the folder given, or None.
        setting: how the caller names the setting in the message (`--data-dir` for the CLI).

    Returns:
        The folder's path.

    Raises:
        DatasetNotFoundError: there is no such folder (the message names the setting).
    """
    record = datasets.get(dataset_name)
    if data_dir is None:
        data_dir = config.default_data_dir(dataset_name)
    if not os.path.isdir(data_dir):
        raise DatasetNotFoundError(
            f"{dataset_name} data folder not found: {data_dir}. Pass {setting} or set "
            f"$FER_DATA_ROOT to the folder that holds {dataset_name}/ (the default is "
            f"./data/{dataset_name}). It holds {record.title} as it ships: "
            f"{record.layout_text}.")
    return data_dir


def read_split(dataset_name, data_dir=None, split="train", **kwargs):
    """Reads one split of a dataset into a DataFrame.

    Args:
        dataset_name: a name of `datasets.names()`: "rafdb", "affectnet",
            "fer2013", "ferplus", "preprocessed", "folder", "synth", and any
            dataset module added to `adcorre/data/datasets/`.
        data_dir: the dataset's root folder (as the dataset ships it);
            `None` uses `config.default_data_dir(dataset_name)` (not used by
            "synth").
        split: "train", "val" or "test", or a `config.DatasetType` value
            ("train", "train_7", "eval", "eval_7", "test"). `eval` means val.
            Each dataset's record lists its splits; RAF-DB has train/test only. FER-2013 and FERPlus: train =
            Training, val = PublicTest, test = PrivateTest (the split most
            papers report), and "public_private_test" = PublicTest +
            PrivateTest in file order (the official Ad-Corre test set, 7,178
            faces). AffectNet: train = training.csv, val and test =
            validation.csv (its test set is not public).
        **kwargs: per dataset (its record's `options`; others are refused):
            - rafdb: `aligned=None` (True: Image/aligned, False:
              Image/original, None: aligned if present). The original photos
              get a `box` column read from `NAME_boundingbox.txt` (x1 y1 x2 y2)
              in `Annotation/boundingbox/` or `boundingbox/` (`rafdb_box`); a
              photo whose box file is missing or unusable is skipped (one
              `BadBoxWarning` for the missing ones, one for the bad files) and
              listed in `frame.attrs["box_skipped"]`.
            - affectnet, ferplus: `num_classes=7` (8 keeps Contempt). Splits
              ending in `_7` force 7. AffectNet drops expressions 8-10 (and 7
              with 7 classes); the counts are in `frame.attrs["dropped"]`.
              AffectNet's faces whose box is empty, inverted or outside their
              picture are skipped (one `BadBoxWarning`) and listed in
              `frame.attrs["box_skipped"]`, as RAF-DB's (`label_files.face_box`:
              one rule for both).
            - ferplus: `strict_majority=False`, see `ferplus_label`.
            - synth: `n` (default `config.SYNTH_SPLIT_SIZES`), `image_size=112`,
              `seed=0`, `class_prior=None`; train, val and test use separate
              seed streams and never overlap.

    Returns:
        A DataFrame with columns `image` (path str, or uint8 array: (48, 48)
        grey for FER-2013/FERPlus, (s, s, 3) RGB for synth) and `label`
        (canonical int), plus `box` (AffectNet and RAF-DB's original photos:
        (x, y, w, h) in whole pixels, inside the picture), `valence`, `arousal`
        (AffectNet) and `usage` (FER CSVs: each row's Usage).

    Raises:
        DatasetNotFoundError: the label file or image folder is missing.
        DatasetFormatError: the label file breaks its format (names the file,
            line and expected format).
        SettingError: unknown dataset, split or option (a `ValueError`).

    Example:

    >>> frame = read_split("synth", None, "train", n=16, image_size=48)
    >>> list(frame.columns), len(frame)
    (['image', 'label'], 16)
    """
    name = str(dataset_name).lower()
    record = datasets.get(name)
    canonical, forced = _split_name(split)
    _check_split(record, canonical)
    unknown = sorted(set(kwargs) - set(record.options))
    if unknown:
        raise SettingError(f"{name} takes no option {', '.join(unknown)}; its options: "
                           f"{', '.join(record.options) or 'none'}.")
    if record.needs_data_dir:
        data_dir = find_data_dir(name, data_dir)
    frame = record.read(data_dir, canonical, forced=forced, **kwargs)
    frame.attrs.update(dataset=name, split=canonical)
    frame.attrs.setdefault("num_classes", 8 if len(frame) and frame["label"].max() == 7 else 7)
    return frame


def _check_split(record, split):
    """Refuses a split the dataset has not, naming those it has."""
    if split in record.splits:
        return
    if split == "public_private_test":
        raise SettingError(
            f"The split 'public_private_test' (FER-2013's PublicTest + PrivateTest) exists for "
            f"{' and '.join(datasets.having_split(split))} only; {record.name} has "
            f"{_quoted(record.splits)}.")
    shown = "validation" if split == "val" else split
    raise SettingError(f"{record.title} has no {shown} split: use split="
                       f"{' or '.join(repr(s) for s in record.splits)}.")


def _quoted(splits):
    quoted = [repr(s) for s in splits]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"
