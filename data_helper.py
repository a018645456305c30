"""Dataset readers and the `tf.data` input pipeline.

Two halves:

1. `read_split(dataset_name, data_dir, split)` reads one split of a dataset, in
   the layout the dataset ships in (docs/DESIGN.md), into a pandas DataFrame with
   an `image` column (a file path, or a uint8 array for the CSV datasets and
   SynthFER) and a `label` column (canonical index, see `config`). Extra
   columns: `box` (AffectNet face box `(x, y, w, h)`), `valence`, `arousal`
   (AffectNet), `usage` (FER-2013 / FERPlus). `frame.attrs` records the
   dataset, split, class count, source file and the rows dropped by the
   dataset's rules. Reading needs no TensorFlow.
2. `make_dataset(frame, ...)` turns such a frame into a `tf.data.Dataset` of
   `(images, labels)` batches: images float32 RGB in [0, 1] at
   `input_size` x `input_size`, labels int32. Backbone-specific scaling
   (Xception's [-1, 1], ResNet's caffe means) is *not* applied here: every
   model of this project scales its own input.

Bad input:
- A listed image that is missing, empty, not an image or truncated is skipped
  and counted with one warning (`BadImageWarning`) that names the first few
  files; it never raises mid-epoch. The list is in `dataset.skipped`.
- A missing label file, wrong columns, a malformed line or a label out of
  range raise one `DatasetNotFoundError` (a `FileNotFoundError`) or
  `DatasetFormatError` (a `ValueError`) naming the file, the line and the
  expected format.

Example:

```python
import data_helper
train = data_helper.read_split("rafdb", "data/rafdb", "train")
ds = data_helper.make_dataset(train, input_size=224, training=True, batch_size=32, seed=1)
for images, labels in ds.take(1):
    print(images.shape, labels.shape)  # (32, 224, 224, 3) (32,)
```
"""

import concurrent.futures
import csv
import dataclasses
import math
import os
import warnings

import cv2
import numpy as np
import pandas as pd

import config

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif")
SPLITS = ("train", "val", "test")
# ImageNet mean RGB: the value torchvision's RandomErasing writes after normalisation
# (value=0), i.e. what ARM's training erased with, expressed in [0, 1] RGB.
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
# Number of file names a bad-image warning lists.
_WARN_NAMES = 5


class DatasetNotFoundError(FileNotFoundError):
    """A dataset directory or label file is not where the layout says."""


class DatasetFormatError(ValueError):
    """A label file does not follow its dataset's format."""


class ImageDecodeError(ValueError):
    """An image is empty, truncated or not an image (raised by `load_image`)."""


class BadImageWarning(UserWarning):
    """Some listed images were skipped because they are missing or unreadable."""


# --------------------------------------------------------------------------------------
# Helpers shared by the readers.


def _format_error(path, line, problem, expected):
    where = f"{path}, line {line}" if line is not None else f"{path}"
    return DatasetFormatError(f"{where}: {problem}. Expected {expected}.")


def _require_file(path, what, expected):
    if not os.path.isfile(path):
        raise DatasetNotFoundError(f"{what} not found: {path}. Expected {expected}.")


def _split_name(split):
    """Canonical split name and the class count a DatasetType implies (or None)."""
    s = str(split).strip()
    lower = s.lower()
    forced = 7 if lower.endswith("_7") else None
    lower = lower[:-2] if forced else lower
    aliases = {"train": "train", "training": "train",
               "val": "val", "valid": "val", "validation": "val", "eval": "val",
               "publictest": "val", "test": "test", "privatetest": "test"}
    if lower not in aliases:
        raise ValueError(
            f"Unknown split {split!r}: use 'train', 'val' or 'test' (or a config.DatasetType: "
            f"{', '.join(config.DatasetType.all)})."
        )
    return aliases[lower], forced


def _num_classes(num_classes, forced, dataset):
    if forced is not None and num_classes not in (None, forced):
        raise ValueError(f"{dataset}: the split asks for {forced} classes but num_classes={num_classes}.")
    n = forced or num_classes or 7
    if n not in (7, 8):
        raise ValueError(f"{dataset}: num_classes must be 7 or 8, got {num_classes}.")
    return n


def _read_csv_rows(path, required, expected, optional=()):
    """The `required` then `optional` fields of each CSV row, plus the rows' line numbers.

    Checks the header has every `required` column; an `optional` column the header lacks
    reads as "" in every row.
    """
    # utf-8-sig drops a byte-order mark; newline="" lets csv handle CRLF and LF alike.
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise _format_error(path, 1, "the file is empty", expected) from None
        missing = [c for c in required if c not in header]
        if missing:
            raise _format_error(path, 1, f"missing column(s) {missing}; the header has {header}",
                                expected)
        index = {c: header.index(c) for c in required}
        present = [c for c in optional if c in header]
        index.update({c: header.index(c) for c in present})
        rows, lines = [], []
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                raise _format_error(path, reader.line_num,
                                    f"{len(row)} fields where the header has {len(header)}", expected)
            rows.append([row[index[c]].strip() for c in required]
                        + [row[index[c]].strip() if c in index else "" for c in optional])
            lines.append(reader.line_num)
    return rows, lines


def _int_field(value, path, line, name, low, high, expected):
    try:
        number = float(value)
        if not number.is_integer():
            raise ValueError
        number = int(number)
    except ValueError:
        raise _format_error(path, line, f"{name} {value!r} is not an integer", expected) from None
    if not low <= number <= high:
        raise _format_error(path, line, f"{name} {number} is out of range {low}..{high}", expected)
    return number


def _float_or_nan(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _frame(images, labels, attrs, **extra):
    frame = pd.DataFrame({"image": pd.Series(list(images), dtype=object),
                          "label": np.asarray(labels, np.int64), **extra})
    frame.attrs.update(attrs)
    return frame


# --------------------------------------------------------------------------------------
# Readers.

_RAFDB_EXPECTED = ("lines '<train|test>_NNNNN.jpg <code 1-7>' in EmoLabel/list_patition_label.txt "
                   "(1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral)")


def _read_rafdb(data_dir, split, aligned=None):
    if split == "val":
        raise ValueError("RAF-DB has no validation split: use split='train' or 'test'.")
    label_file = os.path.join(data_dir, "EmoLabel", "list_patition_label.txt")
    _require_file(label_file, "RAF-DB label file", _RAFDB_EXPECTED)
    aligned_dir = os.path.join(data_dir, "Image", "aligned")
    original_dir = os.path.join(data_dir, "Image", "original")
    if aligned is None:
        aligned = os.path.isdir(aligned_dir) or not os.path.isdir(original_dir)
    image_dir = aligned_dir if aligned else original_dir
    if not os.path.isdir(image_dir):
        raise DatasetNotFoundError(
            f"RAF-DB image folder not found: {image_dir}. Expected Image/aligned/NAME_aligned.jpg "
            f"or Image/original/NAME.jpg under {data_dir}.")
    images, labels = [], []
    with open(label_file, encoding="utf-8-sig") as f:  # universal newlines: CRLF is fine
        for line_no, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or not fields[0].lower().startswith(("train_", "test_")):
                raise _format_error(label_file, line_no, f"cannot parse {line.strip()!r}",
                                    _RAFDB_EXPECTED)
            name, code = fields
            code = _int_field(code, label_file, line_no, "label", 1, 7, _RAFDB_EXPECTED)
            if not name.lower().startswith(split + "_"):
                continue
            stem, ext = os.path.splitext(name)
            file_name = f"{stem}_aligned{ext}" if aligned else name
            images.append(os.path.join(image_dir, file_name))
            labels.append(config.RAFDB_TO_CANONICAL[code])
    return _frame(images, labels, dict(source=label_file, image_dir=image_dir))


_AFFECTNET_REQUIRED = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                       "expression")
_AFFECTNET_EXPECTED = ("a CSV with header subDirectory_filePath,face_x,face_y,face_width,face_height,"
                       "facial_landmarks,expression,valence,arousal; integer box values and "
                       "expression 0..10 (0 Neutral .. 7 Contempt, 8 None, 9 Uncertain, 10 No-Face)")


def _read_affectnet(data_dir, split, num_classes=None, forced=None):
    num_classes = _num_classes(num_classes, forced, "AffectNet")
    csv_name = "training.csv" if split == "train" else "validation.csv"
    path = os.path.join(data_dir, csv_name)
    _require_file(path, "AffectNet label file", _AFFECTNET_EXPECTED)
    image_root = os.path.join(data_dir, "Manually_Annotated_Images")
    if not os.path.isdir(image_root):
        # Some copies keep the archive's outer folder.
        nested = os.path.join(data_dir, "Manually_Annotated", "Manually_Annotated_Images")
        image_root = nested if os.path.isdir(nested) else image_root
    rows, lines = _read_csv_rows(path, _AFFECTNET_REQUIRED, _AFFECTNET_EXPECTED,
                                 optional=("valence", "arousal"))
    mapping = config.AFFECTNET_TO_CANONICAL_8 if num_classes == 8 else config.AFFECTNET_TO_CANONICAL_7
    images, labels, boxes, valence, arousal = [], [], [], [], []
    dropped = {}
    for row, line in zip(rows, lines):
        code = _int_field(row[5], path, line, "expression", 0, 10, _AFFECTNET_EXPECTED)
        if code not in mapping:
            dropped[code] = dropped.get(code, 0) + 1
            continue
        box = tuple(_int_field(v, path, line, name, -(1 << 30), 1 << 30, _AFFECTNET_EXPECTED)
                    for v, name in zip(row[1:5], _AFFECTNET_REQUIRED[1:5]))
        images.append(os.path.join(image_root, row[0].replace("\\", "/")))
        labels.append(mapping[code])
        boxes.append(box if box[2] > 0 and box[3] > 0 else None)
        valence.append(_float_or_nan(row[6]))
        arousal.append(_float_or_nan(row[7]))
    return _frame(images, labels,
                  dict(source=path, num_classes=num_classes,
                       dropped={f"expression {k}": v for k, v in sorted(dropped.items())}),
                  box=pd.Series(boxes, dtype=object), valence=valence, arousal=arousal)


_FER_EXPECTED = ("fer2013.csv with header emotion,pixels,Usage; emotion 0..6 (0 Angry, 1 Disgust, "
                 "2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral), pixels = 48x48 space-separated "
                 "grey values 0..255, Usage Training/PublicTest/PrivateTest")
_FER_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
_FER_SIDE = 48


def _parse_pixels(text, path, line):
    values = np.array(text.split(), dtype=np.int64) if text else np.zeros(0, np.int64)
    if len(values) != _FER_SIDE * _FER_SIDE:
        raise _format_error(path, line, f"pixels holds {len(values)} values, not {_FER_SIDE}x{_FER_SIDE}",
                            _FER_EXPECTED)
    if values.min() < 0 or values.max() > 255:
        raise _format_error(path, line, "pixel values must be in 0..255", _FER_EXPECTED)
    return values.astype(np.uint8).reshape(_FER_SIDE, _FER_SIDE)


def _read_fer_rows(data_dir):
    path = os.path.join(data_dir, "fer2013.csv")
    _require_file(path, "FER-2013 label file", _FER_EXPECTED)
    rows, lines = _read_csv_rows(path, ("emotion", "pixels", "Usage"), _FER_EXPECTED)
    return path, rows, lines


def _in_split(usage, split, path, line, expected):
    """Whether a FER-2013 / FERPlus row's Usage is `split`'s; an unknown Usage is a format error."""
    if usage not in _FER_USAGE.values():
        raise _format_error(path, line, f"unknown Usage {usage!r}", expected)
    return usage == _FER_USAGE[split]


def _read_fer2013(data_dir, split):
    path, rows, lines = _read_fer_rows(data_dir)
    usage = _FER_USAGE[split]
    images, labels = [], []
    for (emotion, pixels, row_usage), line in zip(rows, lines):
        code = _int_field(emotion, path, line, "emotion", 0, 6, _FER_EXPECTED)
        if not _in_split(row_usage, split, path, line, _FER_EXPECTED):
            continue
        images.append(_parse_pixels(pixels, path, line))
        labels.append(config.FER2013_TO_CANONICAL[code])
    return _frame(images, labels, dict(source=path, usage=usage), usage=usage)


_FERPLUS_EXPECTED = ("fer2013new.csv (row-aligned with fer2013.csv) with header Usage,Image name,"
                     + ",".join(config.FERPLUS_VOTE_COLUMNS) + " holding non-negative vote counts")


def ferplus_label(votes, num_classes=7, strict_majority=False):
    """The canonical label FERPlus votes give, or the reason the row is dropped.

    Default rule (plurality): the column with the most votes wins; the row is
    dropped if that maximum is shared (a tie), if the winner is `unknown` or
    `NF` (not a face), if it is `contempt` with 7 classes, or if there are no
    votes. With `strict_majority=True` the FERPlus authors' "majority" mode is
    used instead: single votes are discarded as outliers first, and the
    winner needs more than half of the remaining votes (else it counts as
    unknown and is dropped).

    Args:
        votes: 10 vote counts in `config.FERPLUS_VOTE_COLUMNS` order.
        num_classes: 7 or 8 (8 keeps contempt).
        strict_majority: see above.

    Returns:
        `(label, None)` or `(None, reason)` with reason one of "tie",
        "unknown", "NF", "contempt", "no votes".

    Example:

    >>> ferplus_label([6, 4, 0, 0, 0, 0, 0, 0, 0, 0])
    (0, None)
    """
    votes = np.asarray(votes, np.float64).copy()
    if strict_majority:
        votes[votes <= 1] = 0
    total = votes.sum()
    if total <= 0:
        return None, "no votes"
    top = votes.max()
    winners = np.flatnonzero(votes == top)
    if strict_majority and top <= 0.5 * total:
        return None, "unknown"
    if len(winners) > 1:
        return None, "tie"
    name = config.FERPLUS_VOTE_COLUMNS[int(winners[0])]
    if name in ("unknown", "NF"):
        return None, name
    label = config.FERPLUS_TO_CANONICAL[name]
    if label >= num_classes:
        return None, name
    return label, None


def _read_ferplus(data_dir, split, num_classes=None, forced=None, strict_majority=False):
    num_classes = _num_classes(num_classes, forced, "FERPlus")
    fer_path, fer_rows, fer_lines = _read_fer_rows(data_dir)
    path = os.path.join(data_dir, "fer2013new.csv")
    _require_file(path, "FERPlus label file", _FERPLUS_EXPECTED)
    columns = ("Usage", "Image name") + config.FERPLUS_VOTE_COLUMNS
    rows, lines = _read_csv_rows(path, columns, _FERPLUS_EXPECTED)
    if len(rows) != len(fer_rows):
        raise _format_error(path, None, f"{len(rows)} rows but {fer_path} has {len(fer_rows)}",
                            _FERPLUS_EXPECTED)
    usage = _FER_USAGE[split]
    images, labels, dropped = [], [], {}
    for row, line, fer_row, fer_line in zip(rows, lines, fer_rows, fer_lines):
        if not _in_split(row[0], split, path, line, _FERPLUS_EXPECTED):
            continue
        votes = [_int_field(v, path, line, f"votes for {c}", 0, 1000, _FERPLUS_EXPECTED)
                 for v, c in zip(row[2:], config.FERPLUS_VOTE_COLUMNS)]
        if not row[1]:  # the FERPlus authors excluded this image
            dropped["excluded"] = dropped.get("excluded", 0) + 1
            continue
        label, reason = ferplus_label(votes, num_classes, strict_majority)
        if label is None:
            dropped[reason] = dropped.get(reason, 0) + 1
            continue
        images.append(_parse_pixels(fer_row[1], fer_path, fer_line))
        labels.append(label)
    return _frame(images, labels, dict(source=path, usage=usage, num_classes=num_classes,
                                       dropped=dropped), usage=usage)


_PREPROCESSED_EXPECTED = ("SPLIT/images/NAME.jpg with SPLIT/annotations/NAME_exp.npy holding one "
                          "canonical label 0..7 (SPLIT: train_set, test_set, eval_set, ...)")
_PREPROCESSED_DIRS = {"train": ("train_set", "train"),
                      "test": ("test_set", "private_test_set", "test"),
                      "val": ("eval_set", "public_test_set", "val", "eval")}


def _read_preprocessed(data_dir, split, forced=None):
    candidates = [d + ("_7" if forced else "") for d in _PREPROCESSED_DIRS[split]]
    split_dir = next((os.path.join(data_dir, d) for d in candidates
                      if os.path.isdir(os.path.join(data_dir, d, "images"))), None)
    if split_dir is None and os.path.isdir(os.path.join(data_dir, "images")):
        split_dir = data_dir  # data_dir is itself a split folder
    if split_dir is None:
        raise DatasetNotFoundError(
            f"No preprocessed {split} split under {data_dir}: looked for "
            f"{', '.join(os.path.join(c, 'images') for c in candidates)}. Expected {_PREPROCESSED_EXPECTED}.")
    image_dir = os.path.join(split_dir, "images")
    annotation_dir = os.path.join(split_dir, "annotations")
    if not os.path.isdir(annotation_dir):
        raise DatasetNotFoundError(f"Annotation folder not found: {annotation_dir}. "
                                   f"Expected {_PREPROCESSED_EXPECTED}.")
    images, labels = [], []
    for name in sorted(os.listdir(image_dir)):
        stem, ext = os.path.splitext(name)
        if ext.lower() not in IMAGE_EXTENSIONS or name.startswith("."):
            continue
        annotation = os.path.join(annotation_dir, stem + "_exp.npy")
        if not os.path.isfile(annotation):
            raise DatasetNotFoundError(f"Label file not found: {annotation} (for image {name}). "
                                       f"Expected {_PREPROCESSED_EXPECTED}.")
        try:
            value = np.load(annotation, allow_pickle=False)
            value = np.asarray(value).reshape(-1)
            if value.size != 1:
                raise ValueError(f"holds {value.size} values")
            label = _int_field(str(value[0]), annotation, None, "label", 0, 7, _PREPROCESSED_EXPECTED)
        except DatasetFormatError:
            raise
        except (ValueError, OSError) as e:
            raise _format_error(annotation, None, f"not a one-value .npy label file ({e})",
                                _PREPROCESSED_EXPECTED) from None
        images.append(os.path.join(image_dir, name))
        labels.append(label)
    return _frame(images, labels, dict(source=annotation_dir))


_FOLDER_DIRS = {"train": ("train", "training", "Train", "Training"),
                "val": ("val", "valid", "validation", "eval", "Val", "Validation"),
                "test": ("test", "Test", "testing")}
_FOLDER_EXPECTED = ("DATA_DIR/<train|val|test>/<class>/IMAGE files, class folders named like "
                    f"{', '.join(config.EXPRESSIONS_8)} (any case, also {', '.join(sorted(config.LABEL_ALIASES))})"
                    " or by canonical index 0..7")


def _folder_label(name):
    key = name.strip().lower()
    if key in config.LABEL_ALIASES:
        return config.LABEL_ALIASES[key]
    if key.isdigit() and 0 <= int(key) <= 7:
        return int(key)
    return None


def _read_folder(data_dir, split):
    split_dir = next((os.path.join(data_dir, d) for d in _FOLDER_DIRS[split]
                      if os.path.isdir(os.path.join(data_dir, d))), None)
    if split_dir is None:
        raise DatasetNotFoundError(f"No {split} folder under {data_dir}: looked for "
                                   f"{', '.join(_FOLDER_DIRS[split])}. Expected {_FOLDER_EXPECTED}.")
    images, labels, ignored = [], [], 0
    for class_name in sorted(os.listdir(split_dir)):
        class_dir = os.path.join(split_dir, class_name)
        if class_name.startswith(".") or not os.path.isdir(class_dir):
            continue
        label = _folder_label(class_name)
        if label is None:
            raise _format_error(class_dir, None, f"unknown class folder {class_name!r}",
                                _FOLDER_EXPECTED)
        for name in sorted(os.listdir(class_dir)):
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                ignored += 1
                continue
            images.append(os.path.join(class_dir, name))
            labels.append(label)
    return _frame(images, labels, dict(source=split_dir, ignored_files=ignored))


_SYNTH_SPLIT_STREAM = {"train": 0, "val": 1, "test": 2}
_SYNTH_DEFAULT_N = {"train": 2000, "val": 500, "test": 500}


def _read_synth(split, n=None, image_size=112, seed=0, class_prior=None):
    import synth_faces  # noqa: PLC0415 - only SynthFER needs the generator

    n = _SYNTH_DEFAULT_N[split] if n is None else int(n)
    # Each split draws from its own seed stream, so train and test never share a face.
    images, labels = synth_faces.generate(n, image_size=image_size,
                                          seed=(int(seed), _SYNTH_SPLIT_STREAM[split]),
                                          class_prior=class_prior)
    return _frame(list(images), labels, dict(source="synth", seed=seed, image_size=image_size))


def read_split(dataset_name, data_dir=None, split="train", **kwargs):
    """Reads one split of a dataset into a DataFrame.

    Args:
        dataset_name: one of `config.DatasetName.all`: "rafdb", "affectnet",
            "fer2013", "ferplus", "preprocessed", "folder", "synth".
        data_dir: the dataset's root folder (as the dataset ships it);
            `None` uses `config.default_data_dir(dataset_name)` (not used by
            "synth").
        split: "train", "val" or "test", or a `config.DatasetType` value
            ("train", "train_7", "eval", "eval_7", "test"). `eval` means val.
            RAF-DB has train/test only. FER-2013 and FERPlus: train =
            Training, val = PublicTest, test = PrivateTest. AffectNet: train =
            training.csv, val and test = validation.csv (its test set is not
            public).
        **kwargs: per dataset:
            - rafdb: `aligned=None` (True: Image/aligned, False:
              Image/original, None: aligned if present).
            - affectnet, ferplus: `num_classes=7` (8 keeps Contempt). Splits
              ending in `_7` force 7. AffectNet drops expressions 8-10 (and 7
              with 7 classes); the counts are in `frame.attrs["dropped"]`.
            - ferplus: `strict_majority=False`, see `ferplus_label`.
            - synth: `n` (default 2000 train, 500 val/test), `image_size=112`,
              `seed=0`, `class_prior=None`; train, val and test use separate
              seed streams and never overlap.

    Returns:
        A DataFrame with columns `image` (path str, or uint8 array: (48, 48)
        grey for FER-2013/FERPlus, (s, s, 3) RGB for synth) and `label`
        (canonical int), plus `box` (AffectNet: (x, y, w, h) or None),
        `valence`, `arousal` (AffectNet) and `usage` (FER CSVs).

    Raises:
        DatasetNotFoundError: the label file or image folder is missing.
        DatasetFormatError: the label file breaks its format (names the file,
            line and expected format).
        ValueError: unknown dataset or split.

    Example:

    >>> frame = read_split("synth", None, "train", n=16, image_size=48)
    >>> list(frame.columns), len(frame)
    (['image', 'label'], 16)
    """
    name = str(dataset_name).lower()
    if name not in config.DatasetName.all:
        raise ValueError(f"Unknown dataset {dataset_name!r}: use one of {config.DatasetName.all}.")
    canonical, forced = _split_name(split)
    if name == config.DatasetName.synth:
        frame = _read_synth(canonical, **kwargs)
    else:
        if data_dir is None:
            data_dir = config.default_data_dir(name)
        if not os.path.isdir(data_dir):
            raise DatasetNotFoundError(f"{name} data folder not found: {data_dir}. Pass data_dir= or "
                                       f"set $FER_DATA_ROOT (see config.default_data_dir).")
        if name == config.DatasetName.rafdb:
            frame = _read_rafdb(data_dir, canonical, **kwargs)
        elif name == config.DatasetName.affectnet:
            frame = _read_affectnet(data_dir, canonical, forced=forced, **kwargs)
        elif name == config.DatasetName.fer2013:
            frame = _read_fer2013(data_dir, canonical, **kwargs)
        elif name == config.DatasetName.ferplus:
            frame = _read_ferplus(data_dir, canonical, forced=forced, **kwargs)
        elif name == config.DatasetName.preprocessed:
            frame = _read_preprocessed(data_dir, canonical, forced=forced, **kwargs)
        else:
            frame = _read_folder(data_dir, canonical, **kwargs)
    frame.attrs.update(dataset=name, split=canonical)
    frame.attrs.setdefault("num_classes", 8 if len(frame) and frame["label"].max() == 7 else 7)
    return frame


# --------------------------------------------------------------------------------------
# Single images.


def _sniff(head, tail, size):
    """Why these bytes are not a complete JPEG/PNG/BMP/GIF image, or None if they look fine.

    `head` is the file's first bytes, `tail` its last few KB. Decoders are lenient
    (OpenCV returns a grey-padded picture for a JPEG cut short), so completeness is
    checked on the end markers.
    """
    if size == 0:
        return "empty file"
    if head[:3] == b"\xff\xd8\xff":
        # EOI may be followed by padding or a vendor trailer; it must be in the last KBs.
        return None if b"\xff\xd9" in tail else "truncated JPEG (no end-of-image marker)"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return None if b"IEND" in tail else "truncated PNG (no IEND chunk)"
    if head[:2] == b"BM" and len(head) >= 6:
        declared = int.from_bytes(head[2:6], "little")
        return None if declared <= size else f"truncated BMP ({size} of {declared} bytes)"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return None if tail.rstrip(b"\x00").endswith(b";") else "truncated GIF"
    return f"not a JPEG, PNG, BMP or GIF image (starts with {head[:8]!r})"


_TAIL = 4096


def _check_file(path, decode=False):
    """None if `path` looks like a complete image, else the reason it is skipped."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            if decode:
                return _decode_bytes(f.read())[1]
            head = f.read(16)
            f.seek(max(0, size - _TAIL))
            tail = f.read()
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    return _sniff(head, tail, size)


def _decode_bytes(data):
    """`(image, None)` with OpenCV's decode (BGR(A) order), or `(None, reason)` for bad bytes."""
    reason = _sniff(data[:16], data[-_TAIL:], len(data))
    if reason is not None:
        return None, reason
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return (None, "could not be decoded") if image is None else (image, None)


def _to_rgb_uint8(image, name="array"):
    """Grey / RGB / RGBA, uint8 / uint16 / float in [0, 1] -> uint8 RGB (h, w, 3)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (3, 4)) or image.size == 0:
        raise ImageDecodeError(f"{name}: expected an image array (h, w), (h, w, 3) or (h, w, 4), "
                               f"got shape {image.shape}.")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)  # as tf.image.convert_image_dtype does
    elif np.issubdtype(image.dtype, np.floating):
        image = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageDecodeError(f"{name}: expected uint8, uint16 or float pixels, got {image.dtype}.")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.shape[-1] == 4:
        image = image[..., :3]
    return np.ascontiguousarray(image)


def load_image(source):
    """Loads one image as uint8 RGB, whatever its file extension.

    Args:
        source: a file path, the encoded bytes of a JPEG/PNG/BMP/GIF, or an
            array (grey, RGB or RGBA; uint8, uint16 or float in [0, 1]; arrays
            are taken as RGB).

    Returns:
        uint8 array (h, w, 3), RGB. Grey is repeated, alpha dropped, 16-bit
        reduced to 8-bit.

    Raises:
        FileNotFoundError: the path does not exist.
        ImageDecodeError: empty, truncated or not an image (the message names
            the file).

    Example:

    >>> load_image(np.zeros((4, 5), np.uint8)).shape
    (4, 5, 3)
    """
    if isinstance(source, np.ndarray):
        return _to_rgb_uint8(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), "image bytes"
    else:
        name = os.fspath(source)
        if not os.path.isfile(name):
            raise FileNotFoundError(f"Image not found: {name}.")
        with open(name, "rb") as f:
            data = f.read()
    image, reason = _decode_bytes(data)
    if reason is not None:
        raise ImageDecodeError(f"{name}: {reason}; expected a JPEG, PNG, BMP or GIF image.")
    if image.ndim == 3 and image.shape[-1] >= 3:
        image = image[..., [2, 1, 0] + ([3] if image.shape[-1] == 4 else [])]  # BGR(A) -> RGB(A)
    return _to_rgb_uint8(image, name)


# --------------------------------------------------------------------------------------
# Validation of a frame's images.


def validate_images(frame, mode="header", num_threads=8, warn=True):
    """Splits a frame into readable rows and skipped ones.

    Args:
        frame: a `read_split` frame.
        mode: "header" checks each file exists, is not empty, starts like a
            JPEG/PNG/BMP/GIF and ends with its end marker (a truncated file is
            caught; it reads 4 KB per file). "decode" also decodes every file
            with OpenCV (slower: a full pass over the data). "none" checks
            nothing (the pipeline still drops undecodable files, uncounted).
            Arrays are checked for a valid image shape and dtype.
        num_threads: threads for the file checks (I/O bound).
        warn: emit one `BadImageWarning` naming the first few skipped files.

    Returns:
        `(good_frame, skipped)`: the readable rows (index reset; `attrs`
        kept, plus `attrs["skipped"]`), and a list of `(image, reason)`.

    Example:

    >>> good, skipped = validate_images(read_split("synth", None, "test", n=4, image_size=32))
    >>> len(good), skipped
    (4, [])
    """
    if mode not in ("header", "decode", "none"):
        raise ValueError(f"mode must be 'header', 'decode' or 'none', got {mode!r}.")
    items = list(frame["image"])
    if mode == "none" or not items:
        reasons = [None] * len(items)
    else:
        def check(item):
            if isinstance(item, np.ndarray):
                try:
                    _to_rgb_uint8(item)
                    return None
                except ImageDecodeError as e:
                    return str(e)
            if isinstance(item, (bytes, bytearray)):
                return _sniff(item[:16], item[-_TAIL:], len(item))
            return _check_file(os.fspath(item), decode=mode == "decode")

        if len(items) > 64 and not isinstance(items[0], np.ndarray):
            with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
                reasons = list(pool.map(check, items, chunksize=64))
        else:
            reasons = [check(item) for item in items]
    bad = [i for i, r in enumerate(reasons) if r is not None]
    skipped = [(_describe(items[i]), reasons[i]) for i in bad]
    good = frame.drop(index=frame.index[bad]).reset_index(drop=True) if bad else frame.reset_index(drop=True)
    good.attrs = dict(frame.attrs, skipped=skipped)
    if skipped and warn:
        listed = "; ".join(f"{name} ({reason})" for name, reason in skipped[:_WARN_NAMES])
        more = f" and {len(skipped) - _WARN_NAMES} more" if len(skipped) > _WARN_NAMES else ""
        warnings.warn(f"Skipped {len(skipped)} of {len(items)} images that are missing or unreadable: "
                      f"{listed}{more}.", BadImageWarning, stacklevel=3)
    return good, skipped


def _describe(item):
    if isinstance(item, np.ndarray):
        return f"array{item.shape}"
    if isinstance(item, (bytes, bytearray)):
        return f"<{len(item)} bytes>"
    return os.fspath(item)


# --------------------------------------------------------------------------------------
# The tf.data pipeline.


@dataclasses.dataclass
class Augmentation:
    """Training augmentation, applied at the model's input size.

    The defaults follow the FER practice ARM trains with: horizontal flip,
    a small random rotation / scale / shift (on half the images), colour
    jitter, and random erasing
    (p 0.5, 2-25 % of the area, aspect 0.3-3.3, filled with the ImageNet mean
    colour as torchvision's `RandomErasing` does after normalisation).
    """

    flip: float = 0.5               # probability of a horizontal flip
    geometry: float = 0.5           # probability of the rotation / zoom / shift warp
    rotation: float = 10.0          # max degrees either way
    scale: tuple = (0.9, 1.1)       # zoom range
    shift: float = 0.08             # max shift, fraction of the side
    brightness: float = 0.15        # max additive change in [0, 1] units
    contrast: float = 0.2           # factor in [1 - c, 1 + c]
    saturation: float = 0.2         # factor in [1 - s, 1 + s]
    erase_prob: float = 0.5
    erase_area: tuple = (0.02, 0.25)
    erase_ratio: tuple = (0.3, 3.3)
    erase_value: tuple = IMAGENET_MEAN_RGB


def _stack_arrays(items, input_size):
    """Arrays of a frame -> one uint8 (n, h, w, 3) block (resized to input_size if sizes differ)."""
    images = [_to_rgb_uint8(item) for item in items]
    shapes = {image.shape for image in images}
    if len(shapes) > 1:
        images = [cv2.resize(image, (input_size, input_size), interpolation=cv2.INTER_AREA)
                  for image in images]
    if not images:
        return np.zeros((0, input_size, input_size, 3), np.uint8)
    return np.stack(images)


def _boxes(frame):
    if "box" not in frame.columns:
        return np.full((len(frame), 4), -1, np.int32)
    out = np.full((len(frame), 4), -1, np.int32)
    for i, box in enumerate(frame["box"]):
        if box is not None and not (isinstance(box, float) and np.isnan(box)):
            out[i] = np.asarray(box, np.int64)[:4]
    return out


def _seed_or_fresh(seed):
    """`seed` as an int, or a fresh random one (in int32 range, as tf.data wants) when None."""
    return int(np.random.SeedSequence().entropy % (2**31)) if seed is None else int(seed)


def _epoch_indices(tf, labels_np, class_counts, base_seed, epoch_seed, shuffle, mrr):
    """This epoch's order of row indices (int64, all shards), keyed by (base_seed, epoch_seed).

    `class_counts[c]` is the number of rows labelled c, for the classes MRR tops up.
    """
    n = len(labels_np)
    key = tf.stack([tf.constant(base_seed, tf.int64), epoch_seed])
    if mrr:
        # Minimal random resampling: every present class topped up by random re-draws
        # (with replacement) to the size of the largest class.
        largest = int(class_counts.max())
        parts = []
        for c in np.flatnonzero(class_counts).tolist():
            members = tf.constant(np.flatnonzero(labels_np == c).astype(np.int64))
            extra = largest - int(members.shape[0])
            parts.append(members)
            if extra:
                draw = tf.random.stateless_uniform([extra], seed=key + [0, 1000 + c], minval=0,
                                                   maxval=int(members.shape[0]), dtype=tf.int64)
                parts.append(tf.gather(members, draw))
        order = tf.concat(parts, 0)
        shuffle = True  # the top-ups must not come grouped by class
    else:
        order = tf.range(n, dtype=tf.int64)
    if shuffle:
        keys = tf.random.stateless_uniform(tf.shape(order), seed=key + [0, 1])
        order = tf.gather(order, tf.argsort(keys))
    return order


def _decode(tf, contents, box):
    """Decodes JPEG/PNG/BMP/GIF bytes to uint8 RGB and crops `box` (x, y, w, h; -1: none)."""

    def jpeg():
        # JPEGs decode only the crop window, which saves time on big AffectNet photos.
        shape = tf.cast(tf.image.extract_jpeg_shape(contents), tf.int32)
        return tf.image.decode_and_crop_jpeg(contents, _window(tf, box, shape[0], shape[1]), channels=3)

    def other():
        image = tf.io.decode_image(contents, channels=3, expand_animations=False, dtype=tf.uint8)
        return _crop_array(tf, image, box)

    image = tf.cond(tf.io.is_jpeg(contents), jpeg, other)
    image.set_shape([None, None, 3])
    return image


def _window(tf, box, height, width):
    """[y, x, h, w] of `box` clipped to the image; the whole image if box[2] <= 0."""
    has_box = box[2] > 0
    x0 = tf.clip_by_value(box[0], 0, width - 1)
    y0 = tf.clip_by_value(box[1], 0, height - 1)
    x1 = tf.clip_by_value(box[0] + box[2], x0 + 1, width)
    y1 = tf.clip_by_value(box[1] + box[3], y0 + 1, height)
    return tf.where(has_box, tf.stack([y0, x0, y1 - y0, x1 - x0]), tf.stack([0, 0, height, width]))


def _crop_array(tf, image, box):
    shape = tf.shape(image)
    w = _window(tf, box, shape[0], shape[1])
    return image[w[0]:w[0] + w[2], w[1]:w[1] + w[3]]


def _to_unit(tf, image, size):
    """uint8 image of any size -> float32 [0, 1] at size x size (bilinear, antialiased)."""
    if tuple(image.shape[:2]) == (size, size):  # already at size: pixels pass through exactly
        return tf.cast(image, tf.float32) / 255.0
    shape = tf.shape(image)
    # Antialiasing only matters when shrinking, and costs twice plain bilinear.
    image = tf.cond(tf.reduce_any(shape[:2] > size),
                    lambda: tf.image.resize(image, [size, size], antialias=True),
                    lambda: tf.image.resize(image, [size, size]))
    return tf.clip_by_value(image / 255.0, 0.0, 1.0)


def _array_loader(tf, block, boxes):
    """index -> uint8 image (cropped to its box), from a uint8 (n, h, w, 3) block."""
    images_t = tf.constant(block)
    boxes_t = tf.constant(boxes)
    has_boxes = bool(np.any(boxes[:, 2] > 0))

    def load(index):
        return _crop_array(tf, images_t[index], boxes_t[index]) if has_boxes else images_t[index]

    return load


def _file_loader(tf, items, boxes):
    """index -> uint8 image (cropped to its box), decoding a file (or encoded bytes)."""
    is_bytes = isinstance(items[0], (bytes, bytearray))
    sources_t = tf.constant([bytes(i) if is_bytes else os.fspath(i) for i in items])
    boxes_t = tf.constant(boxes)

    def load(index):
        contents = sources_t[index] if is_bytes else tf.io.read_file(sources_t[index])
        return _decode(tf, contents, boxes_t[index])

    return load


def _augment(tf, image, seed, size, aug):
    """Augments a uint8 image of any size into float32 [0, 1] at size x size.

    Geometry (with probability `aug.geometry`): flip, rotation, zoom and shift
    are folded with the resize into one projective warp from the source
    pixels; otherwise a plain resize and flip. Then colour jitter (one 3x3
    colour matrix) and random erasing.
    """
    u = tf.random.stateless_uniform([16], seed=seed)
    flip = u[0] < aug.flip

    def warped():
        # Output pixel -> source pixel, for out = s R F (in - c) + c + t at the output
        # size, then the half-pixel-centre map from the output size to the source size.
        shape = tf.cast(tf.shape(image), tf.float32)
        sy, sx = shape[0] / size, shape[1] / size
        sign = tf.where(flip, -1.0, 1.0)
        angle = (2.0 * u[1] - 1.0) * aug.rotation * math.pi / 180.0
        zoom = aug.scale[0] + (aug.scale[1] - aug.scale[0]) * u[2]
        ox = (size - 1) / 2.0 + (2.0 * u[3] - 1.0) * aug.shift * size
        oy = (size - 1) / 2.0 + (2.0 * u[4] - 1.0) * aug.shift * size
        c = (size - 1) / 2.0
        cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
        a0, a1, b0, b1 = sign * cos, sign * sin, -sin, cos
        a2, b2 = c - a0 * ox - a1 * oy, c - b0 * ox - b1 * oy
        transform = tf.stack([a0 * sx, a1 * sx, (a2 + 0.5) * sx - 0.5,
                              b0 * sy, b1 * sy, (b2 + 0.5) * sy - 0.5, 0.0, 0.0])
        out = tf.raw_ops.ImageProjectiveTransformV3(
            images=tf.cast(image, tf.float32)[None], transforms=transform[None],
            output_shape=[size, size], interpolation="BILINEAR", fill_mode="CONSTANT",
            fill_value=0.0)[0]  # black borders, as torchvision's rotation and padded crop
        return out / 255.0

    def plain():
        out = _to_unit(tf, image, size)
        return tf.where(flip, tf.reverse(out, axis=[1]), out)

    out = tf.cond(u[5] < aug.geometry, warped, plain)
    out.set_shape([size, size, 3])
    # Colour jitter: brightness b, contrast k (about the image mean), saturation s (about
    # the grey value). The three are affine, so they fold into
    # out = k * (x @ M) + (b - mean_b) * k + mean_b with M = s I + (1 - s) w 1^T.
    b = (2.0 * u[6] - 1.0) * aug.brightness
    k = 1.0 + (2.0 * u[7] - 1.0) * aug.contrast
    s = 1.0 + (2.0 * u[8] - 1.0) * aug.saturation
    luma = tf.constant([[0.299], [0.587], [0.114]])
    matrix = s * tf.eye(3) + (1.0 - s) * luma * tf.ones([1, 3])
    mean_b = tf.reduce_mean(out) + b
    out = tf.reshape(tf.matmul(tf.reshape(out, [-1, 3]), matrix), [size, size, 3])
    out = tf.clip_by_value(out * k + ((b - mean_b) * k + mean_b), 0.0, 1.0)
    # Random erasing: one rectangle of random area and aspect, filled with the ImageNet mean.
    area = (aug.erase_area[0] + (aug.erase_area[1] - aug.erase_area[0]) * u[9]) * size * size
    low, high = math.log(aug.erase_ratio[0]), math.log(aug.erase_ratio[1])
    ratio = tf.exp(low + (high - low) * u[10])
    h = tf.minimum(tf.sqrt(area * ratio), float(size))
    w = tf.minimum(tf.sqrt(area / ratio), float(size))
    y0 = u[11] * (size - h)
    x0 = u[12] * (size - w)
    grid = tf.range(size, dtype=tf.float32)
    rows = (grid >= y0) & (grid < y0 + h) & (u[13] < aug.erase_prob)
    cols = (grid >= x0) & (grid < x0 + w)
    mask = rows[:, None, None] & cols[None, :, None]
    return tf.where(mask, tf.constant(aug.erase_value, tf.float32), out)


def make_dataset(frame, input_size=config.InputDataSize.image_input_size, training=False,
                 batch_size=32, augment=None, shuffle=None, mrr=False, seed=None,
                 deterministic=None, cache=False, drop_remainder=False, num_parallel_calls=None,
                 repeat=False, validate="header", shard=None, augmentation=None,
                 num_classes=None, prefetch=True):
    """Builds the `tf.data` input pipeline for a `read_split` frame.

    Each element of a row: decode the image whatever its extension (JPEG, PNG,
    BMP, GIF; grey and RGBA become RGB), crop the `box` if the frame has one,
    resize to `input_size` (bilinear, antialiased), augment when training,
    scale to float32 RGB in [0, 1]. Backbone-specific scaling is left to the
    model (every model of this project scales its own input).

    Every random choice is a stateless function of `(seed, epoch, position)`,
    so parallel decoding never changes the result. Each iteration of the
    dataset (a Keras epoch) draws a new epoch key from `seed`, so shuffling,
    MRR re-draws and augmentation differ per epoch yet repeat run to run.

    Args:
        frame: a `read_split` frame (`image`, `label`, optional `box`).
        input_size: output side in pixels.
        training: default for `augment` and `shuffle`.
        batch_size: the (global) batch size; under `tf.distribute` see
            `distribute_dataset`, which splits it per replica.
        augment: apply `augmentation` (default: `training`).
        shuffle: reshuffle every epoch (default: `training`).
        mrr: minimal random resampling (ARM): every epoch each class is
            topped up by random re-draws (with replacement) to the size of the
            largest class; implies shuffling.
        seed: integer seed; `None` draws one (and with `deterministic=True`
            means 0).
        deterministic: keep the element order fixed under parallel map (the
            content is reproducible from `seed` either way). Default: True
            when not shuffling (evaluation keeps the frame's row order),
            False when shuffling (a little faster).
        cache: decode and resize every image once, keep the uint8 result in
            memory (`n * input_size**2 * 3` bytes), augment on top of it.
        drop_remainder: drop the last incomplete batch.
        num_parallel_calls: map parallelism (default `tf.data.AUTOTUNE`).
        repeat: repeat forever (each pass a new epoch key); else one epoch
            per iteration.
        validate: "header", "decode" or "none": how images are checked
            before the pipeline is built (see `validate_images`). Files
            failing only at decode time are dropped by `ignore_errors`.
        shard: `(num_shards, index)`: keep every `num_shards`-th element of
            each epoch's order, starting at `index` (shards of one seed are
            disjoint).
        augmentation: an `Augmentation` (default `Augmentation()`).
        num_classes: class count for MRR (default: max label + 1).
        prefetch: add `prefetch(AUTOTUNE)`.

    Returns:
        A `tf.data.Dataset` of `(images, labels)`: float32 (b, input_size,
        input_size, 3) in [0, 1] and int32 (b,). Attributes: `skipped` (list of
        `(image, reason)`), `num_examples` (elements per epoch for this shard),
        `steps_per_epoch`, `class_counts` (per class, per epoch).

    Example:

    >>> frame = read_split("synth", None, "train", n=8, image_size=48)
    >>> ds = make_dataset(frame, input_size=32, training=True, batch_size=4, seed=0)
    >>> [tuple(x.shape) for x in next(iter(ds))]
    [(4, 32, 32, 3), (4,)]
    """
    import tensorflow as tf  # noqa: PLC0415 - readers above work without TensorFlow

    augment = training if augment is None else augment
    shuffle = training if shuffle is None else shuffle
    aug = augmentation or Augmentation()
    if deterministic is None:
        deterministic = not (shuffle or mrr)
    if deterministic and seed is None:
        seed = 0
    base_seed = _seed_or_fresh(seed)
    if shard is not None:
        shard = (int(shard[0]), int(shard[1]))
        if not 0 <= shard[1] < shard[0]:
            raise ValueError(f"shard must be (num_shards, index) with 0 <= index < num_shards, got {shard}.")
    if "image" not in frame.columns or "label" not in frame.columns:
        raise ValueError(f"frame needs 'image' and 'label' columns, has {list(frame.columns)}.")

    good, skipped = validate_images(frame, mode=validate)
    if len(good) == 0:
        raise ValueError(f"No usable images: {len(skipped)} skipped, first: {skipped[:3]}.")
    labels_np = good["label"].to_numpy(np.int64)
    n_classes = int(num_classes or labels_np.max() + 1)
    class_counts = np.bincount(labels_np, minlength=n_classes)
    boxes_np = _boxes(good)
    items = list(good["image"])
    kinds = {type(item) for item in items}
    if any(issubclass(k, np.ndarray) for k in kinds) and len(kinds) > 1:
        raise ValueError("frame['image'] mixes arrays and paths; use one kind per frame.")
    from_arrays = isinstance(items[0], np.ndarray)
    parallel = tf.data.AUTOTUNE if num_parallel_calls is None else num_parallel_calls

    labels_t = tf.constant(labels_np.astype(np.int32))
    if from_arrays:
        load = _array_loader(tf, _stack_arrays(items, input_size), boxes_np)
    else:
        load = _file_loader(tf, items, boxes_np)
    if cache:
        # Decode, crop and resize once, in order, into a uint8 block; every epoch indexes it.
        plain = (tf.data.Dataset.range(len(items))
                 .map(lambda i: _to_unit(tf, load(i), input_size), num_parallel_calls=parallel,
                      deterministic=True)
                 .map(lambda x: tf.cast(tf.round(x * 255.0), tf.uint8)).batch(256))
        block = np.concatenate(list(plain.as_numpy_iterator()))
        load = _array_loader(tf, block, np.full_like(boxes_np, -1))
        from_arrays = True

    def element(index, elem_seed):
        image = load(index)
        if augment:
            image = _augment(tf, image, elem_seed, input_size, aug)
        else:
            image = _to_unit(tf, image, input_size)
        return image, labels_t[index]

    def epoch(epoch_seed):
        order = _epoch_indices(tf, labels_np, class_counts[:n_classes], base_seed, epoch_seed,
                               shuffle, mrr)
        # Augmentation seeds come from the position in the whole epoch (before sharding),
        # so no two shards share one.
        positions = tf.range(tf.shape(order, out_type=tf.int64)[0], dtype=tf.int64)
        elem_seeds = tf.stack([tf.fill(tf.shape(positions), epoch_seed), positions], axis=1)
        if shard is not None:
            order, elem_seeds = order[shard[1]::shard[0]], elem_seeds[shard[1]::shard[0]]
        return tf.data.Dataset.from_tensor_slices((order, elem_seeds))

    if mrr:  # every present class topped up to the largest
        present_counts = class_counts[:n_classes]
        counts = np.where(present_counts > 0, present_counts.max(), 0)
    else:
        counts = class_counts
    total = int(counts.sum())
    per_shard = total if shard is None else len(range(shard[1], total, shard[0]))

    # One epoch key per iteration of the dataset: fixed by `seed`, new each epoch.
    keys = tf.data.Dataset.random(seed=base_seed, rerandomize_each_iteration=True)
    keys = keys if repeat else keys.take(1)
    ds = keys.flat_map(epoch)
    if not repeat:
        # flat_map hides the epoch length; state it so Keras knows the steps per epoch.
        ds = ds.apply(tf.data.experimental.assert_cardinality(per_shard))
    ds = ds.map(element, num_parallel_calls=parallel, deterministic=deterministic)
    if not from_arrays:
        # A file that passed the checks but still fails to decode is dropped, never raised;
        # the epoch's length is then unknown to Keras (it warns when an epoch ends).
        ds = ds.ignore_errors(log_warning=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=parallel,
                  deterministic=deterministic)
    if prefetch:
        ds = ds.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    ds = ds.with_options(options)

    ds.skipped = skipped
    ds.num_examples = per_shard
    ds.steps_per_epoch = (per_shard // batch_size if drop_remainder
                          else -(-per_shard // batch_size))
    ds.class_counts = counts
    return ds


def distribute_dataset(strategy, frame, batch_size=32, seed=None, **kwargs):
    """A distributed dataset for `strategy`, one input pipeline per worker.

    `batch_size` is the global batch: each replica gets
    `batch_size // strategy.num_replicas_in_sync` elements per step (it must
    divide evenly). Each input pipeline keeps its own shard of every epoch's
    order (`make_dataset(shard=(num_input_pipelines, pipeline_id))`); all use
    the same seed, so shards are disjoint. With several workers pass an
    explicit `seed` (each process draws its own otherwise).

    Args:
        strategy: a `tf.distribute.Strategy`.
        frame: a `read_split` frame, or a callable `make_fn(input_context)`
            returning a per-replica-batched dataset (used as is).
        batch_size: global batch size.
        seed: shared seed (drawn once here when None).
        **kwargs: passed to `make_dataset`.

    Returns:
        A distributed dataset; `.skipped` and `.num_examples` (global, per
        epoch) are attached when it allows attributes.

    Example:

    >>> # strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    >>> # dist = distribute_dataset(strategy, frame, batch_size=64, training=True)
    """
    if callable(frame) and not isinstance(frame, pd.DataFrame):
        return strategy.distribute_datasets_from_function(frame)
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(f"batch_size {batch_size} does not split evenly over {replicas} replicas.")
    seed = _seed_or_fresh(seed)
    validate = kwargs.pop("validate", "header")
    good, skipped = validate_images(frame, mode=validate)

    def make_fn(input_context):
        per_replica = input_context.get_per_replica_batch_size(batch_size)
        shard = None
        if input_context.num_input_pipelines > 1:
            shard = (input_context.num_input_pipelines, input_context.input_pipeline_id)
        return make_dataset(good, batch_size=per_replica, seed=seed, shard=shard, validate="none",
                            **kwargs)

    dist = strategy.distribute_datasets_from_function(make_fn)
    try:
        dist.skipped = skipped
        dist.num_examples = len(good)
    except AttributeError:
        pass
    return dist
