"""Dataset readers: one split of a dataset, as it ships, into a pandas DataFrame.

`read_split(dataset_name, data_dir, split)` reads the layout each dataset ships in
(docs/DESIGN.md, "On-disk formats") into a DataFrame with an `image` column (a file
path, or a uint8 array for the CSV datasets and SynthFER) and a `label` column
(canonical index, see `config`). Extra columns: `box` (the face box `(x, y, w, h)` of
AffectNet and of RAF-DB's original photos), `valence`, `arousal` (AffectNet), `usage`
(FER-2013 / FERPlus). `frame.attrs` records the dataset, split, class count, source file
and the rows dropped by the dataset's rules.

Only label files are read here (and, for RAF-DB's original photos, each photo's header,
to check its face box lies inside it): images are decoded later, by `pictures` (one
picture) or `input_pipeline` (tf.data). Reading needs neither TensorFlow nor OpenCV.

A missing label file, wrong columns, a malformed line or a label out of range raise
one `DatasetNotFoundError` (a `FileNotFoundError`) or `DatasetFormatError` (a
`ValueError`) naming the file, the line and the expected format.

Example:
>>> frame = read_split("synth", None, "train", n=16, image_size=48)
>>> list(frame.columns), len(frame)
(['image', 'label'], 16)
"""

import contextlib
import csv
import math
import os
import warnings

import numpy as np
import pandas as pd

from adcorre import config
from adcorre.config import IMAGE_EXTENSIONS
from adcorre.data.pictures import BadImageWarning, picture_size
from adcorre.errors import DatasetFormatError, DatasetNotFoundError, SettingError

# `public_private_test`: FER-2013's PublicTest + PrivateTest, the official Ad-Corre test set.
SPLITS = ("train", "val", "test", "public_private_test")
# The datasets that have a `public_private_test` split.
PUBLIC_PRIVATE_DATASETS = config.PUBLIC_PRIVATE_DATASETS


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
               "publictest": "val", "test": "test", "privatetest": "test",
               "public_private_test": "public_private_test"}
    if lower not in aliases:
        raise SettingError(
            f"Unknown split {split!r}: use 'train', 'val' or 'test' ('public_private_test' for "
            f"FER-2013 and FERPlus), or a dataset type: "
            f"{', '.join(config.DatasetType.all)}."
        )
    return aliases[lower], forced


def _num_classes(num_classes, forced, dataset):
    if forced is not None and num_classes not in (None, forced):
        raise SettingError(f"{dataset}: the split asks for {forced} classes but num_classes={num_classes}.")
    n = forced or num_classes or 7
    if n not in (7, 8):
        raise SettingError(f"{dataset}: num_classes must be 7 or 8, got {num_classes}.")
    return n


@contextlib.contextmanager
def _text_file_errors(path, expected, line=lambda: None):
    """Errors of reading `path` as text or CSV -> one `DatasetFormatError` naming the file."""
    try:
        yield
    except UnicodeDecodeError as error:
        raise _format_error(path, None, f"it is not UTF-8 text (byte "
                            f"{error.object[error.start]:#04x} cannot be decoded)",
                            expected) from None
    except csv.Error as error:
        raise _format_error(path, line(), f"it cannot be read as CSV ({error})", expected) from None


def _read_csv_rows(path, required, expected, optional=()):
    """The `required` then `optional` fields of each CSV row, plus the rows' line numbers.

    Checks the header has every `required` column; an `optional` column the header lacks
    reads as "" in every row.
    """
    # utf-8-sig drops a byte-order mark; newline="" lets csv handle CRLF and LF alike.
    with open(path, newline="", encoding="utf-8-sig") as f, _text_file_errors(
            path, expected, lambda: reader.line_num):
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
    if split not in ("train", "test"):
        raise SettingError(f"RAF-DB has no {'validation' if split == 'val' else split} split: "
                           "use split='train' or 'test'.")
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
    box_dir = None if aligned else _rafdb_box_dir(data_dir)
    images, labels, listed = [], [], 0
    # Universal newlines: CRLF is fine.
    with open(label_file, encoding="utf-8-sig") as f, _text_file_errors(label_file, _RAFDB_EXPECTED):
        for line_no, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            listed += 1
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
    if not listed:
        raise _format_error(label_file, None, "the file is empty (no image listed)",
                            _RAFDB_EXPECTED)
    if not images:
        raise _format_error(label_file, None, f"it lists {listed} images and none of the "
                            f"{split} split (names starting with '{split}_')", _RAFDB_EXPECTED)
    attrs = dict(source=label_file, image_dir=image_dir)
    if aligned:
        return _frame(images, labels, attrs)
    boxes, skipped = _rafdb_boxes(images, box_dir, split)
    keep = [i for i, box in enumerate(boxes) if box is not None]
    if not keep:
        raise DatasetFormatError(
            f"None of the {len(images)} RAF-DB {split} photos in {image_dir} has a usable box "
            f"file in {box_dir} ({len(skipped)} skipped, first: {skipped[0][1]}). Expected "
            f"NAME_boundingbox.txt per photo: {_RAFDB_BOX_EXPECTED}.")
    attrs.update(box_dir=box_dir, box_skipped=skipped)
    return _frame([images[i] for i in keep], [labels[i] for i in keep], attrs,
                  box=pd.Series([boxes[i] for i in keep], dtype=object))


# Where the face boxes of RAF-DB's original photos are looked for, in this order: the archive's
# own place (basic/Annotation/boundingbox/), then the flat copy the official Ad-Corre config
# names (RafDBConf.orig_bounding_box = <RAF-DB>/boundingbox/).
RAFDB_BOX_DIRS = (os.path.join("Annotation", "boundingbox"), "boundingbox")
_RAFDB_BOX_EXPECTED = ("four numbers 'x1 y1 x2 y2' (separated by spaces, tabs, newlines or "
                       "commas; integers or decimals): the face's top-left and bottom-right "
                       "corners in pixels, x1 < x2 and y1 < y2, inside the photo")
# Bad box files named one line each, up to this many; the rest are counted in one more line.
_BOX_LINES = 10


class BadBoxWarning(BadImageWarning):
    """RAF-DB original photos were skipped: their box file is missing or unusable."""


def _rafdb_box_dir(data_dir):
    for relative in RAFDB_BOX_DIRS:
        if os.path.isdir(os.path.join(data_dir, relative)):
            return os.path.join(data_dir, relative)
    raise DatasetNotFoundError(
        f"RAF-DB face boxes not found: the original photos (Image/original/) are cropped by "
        f"their box, and neither {' nor '.join(os.path.join(data_dir, d) for d in RAFDB_BOX_DIRS)}"
        f" exists. Expected NAME_boundingbox.txt per photo holding {_RAFDB_BOX_EXPECTED}; or use "
        "the aligned faces (Image/aligned/, aligned=True).")


def rafdb_box(box_path, photo_size=None):
    """A RAF-DB box file's face box as `(x, y, w, h)` in whole pixels, or the reason it is unusable.

    The file holds `x1 y1 x2 y2`, the face's top-left and bottom-right corners in pixels (RAF-DB's
    `Annotation/boundingbox/NAME_boundingbox.txt`). Corners are rounded to the nearest pixel
    (`x = round(x1)`, `w = round(x2) - x`), so integer corners read back exactly.

    Args:
        box_path: the box file.
        photo_size: `(width, height)` of its photo, to check the box lies inside; None skips that.

    Returns:
        `(box, None)` or `(None, reason)`; the reason says what is wrong (empty, not four
        numbers, x2 <= x1, outside the photo...).

    Example:
    >>> with open("train_00001_boundingbox.txt", "w") as f:
    ...     _ = f.write("12.00 30.00 112.00 150.00")
    >>> rafdb_box("train_00001_boundingbox.txt", photo_size=(200, 180))
    ((12, 30, 100, 120), None)
    """
    try:
        with open(box_path, encoding="utf-8-sig") as f:
            text = f.read()
    except FileNotFoundError:
        return None, "missing"
    except (OSError, UnicodeDecodeError) as error:
        return None, f"cannot be read as text ({getattr(error, 'strerror', None) or error})"
    fields = text.replace(",", " ").split()
    if not fields:
        return None, "empty"
    try:
        numbers = [float(v) for v in fields]
    except ValueError:
        numbers = None
    if numbers is None or len(numbers) != 4 or not all(map(math.isfinite, numbers)):
        shown = text.strip()
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return None, f"holds {shown!r}, not four numbers"
    x1, y1, x2, y2 = numbers
    if x2 <= x1 or y2 <= y1:
        which = "x2 <= x1" if x2 <= x1 else "y2 <= y1"
        return None, f"{which} ({x1:g} {y1:g} {x2:g} {y2:g})"
    left, top, right, bottom = (math.floor(v + 0.5) for v in numbers)
    if right <= left or bottom <= top:
        return None, f"a box under one pixel ({x1:g} {y1:g} {x2:g} {y2:g})"
    if photo_size is not None:
        width, height = photo_size
        if left < 0 or top < 0 or right > width or bottom > height:
            return None, (f"the box {x1:g} {y1:g} {x2:g} {y2:g} is outside the {width}x{height} "
                          "photo")
    return (left, top, right - left, bottom - top), None


def _rafdb_boxes(images, box_dir, split):
    """Each photo's box (None where it has none), and `[(photo, reason)]` of the skipped ones.

    A missing box file is counted and named in one warning for the split; an unusable one
    gets a line of its own (up to `_BOX_LINES`), naming the file and what is wrong.
    """
    boxes, missing, bad = [], [], []
    for image in images:
        stem = os.path.splitext(os.path.basename(image))[0]
        box_path = os.path.join(box_dir, f"{stem}_boundingbox.txt")
        if not os.path.isfile(box_path):
            boxes.append(None)
            missing.append(image)
            continue
        # A photo that cannot be read keeps its box unchecked: the image checks skip and
        # count it as missing or unreadable.
        box, reason = rafdb_box(box_path, picture_size(image))
        boxes.append(box)
        if reason is not None:
            bad.append((image, box_path, reason))
    if missing:
        shown = ", ".join(os.path.basename(p) for p in missing[:5])
        warnings.warn(
            f"Skipped {len(missing)} of {len(images)} RAF-DB {split} photos that have no box "
            f"file in {box_dir} (NAME_boundingbox.txt): {shown}{' ...' if len(missing) > 5 else ''}.",
            BadBoxWarning, stacklevel=4)
    for image, box_path, reason in bad[:_BOX_LINES]:
        warnings.warn(f"{box_path}: {reason}; expected {_RAFDB_BOX_EXPECTED}. Skipped its photo "
                      f"{os.path.basename(image)}.", BadBoxWarning, stacklevel=4)
    if len(bad) > _BOX_LINES:
        warnings.warn(f"... and {len(bad) - _BOX_LINES} more bad box files in {box_dir}; their "
                      "photos were skipped too (frame.attrs['box_skipped'] lists every one).",
                      BadBoxWarning, stacklevel=4)
    skipped = ([(image, "no box file") for image in missing]
               + [(image, f"bad box file {box_path}: {reason}") for image, box_path, reason in bad])
    return boxes, skipped


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
# The Usage values of each split; the official Ad-Corre test set is PublicTest + PrivateTest
# (its config.py: "both public&private test"), 7,178 faces of the real FER-2013.
_FER_USAGE = {"train": ("Training",), "val": ("PublicTest",), "test": ("PrivateTest",),
              "public_private_test": ("PublicTest", "PrivateTest")}
_FER_USAGES = ("Training", "PublicTest", "PrivateTest")
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
    if usage not in _FER_USAGES:
        raise _format_error(path, line, f"unknown Usage {usage!r}", expected)
    return usage in _FER_USAGE[split]


def _read_fer2013(data_dir, split):
    path, rows, lines = _read_fer_rows(data_dir)
    images, labels, usages = [], [], []
    for (emotion, pixels, row_usage), line in zip(rows, lines):
        code = _int_field(emotion, path, line, "emotion", 0, 6, _FER_EXPECTED)
        if not _in_split(row_usage, split, path, line, _FER_EXPECTED):
            continue
        images.append(_parse_pixels(pixels, path, line))
        labels.append(config.FER2013_TO_CANONICAL[code])
        usages.append(row_usage)
    return _frame(images, labels, dict(source=path, usage="+".join(_FER_USAGE[split])),
                  usage=usages)


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
    images, labels, usages, dropped = [], [], [], {}
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
        usages.append(row[0])
    return _frame(images, labels, dict(source=path, usage="+".join(_FER_USAGE[split]),
                                       num_classes=num_classes, dropped=dropped), usage=usages)


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


def _read_synth(split, n=None, image_size=112, seed=0, class_prior=None):
    from adcorre.data import synth_faces  # noqa: PLC0415 - only SynthFER needs the generator

    n = config.SYNTH_SPLIT_SIZES[split] if n is None else int(n)
    # Each split draws from its own seed stream, so train and test never share a face.
    images, labels = synth_faces.generate(n, image_size=image_size,
                                          seed=(int(seed), _SYNTH_SPLIT_STREAM[split]),
                                          class_prior=class_prior)
    return _frame(list(images), labels, dict(source="synth", seed=seed, image_size=image_size))


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
    names = config.EXPRESSIONS_8
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
        dataset_name: a `config.DatasetName` other than "synth".
        data_dir: the folder given, or None.
        setting: how the caller names the setting in the message (`--data-dir` for the CLI).

    Returns:
        The folder's path.

    Raises:
        DatasetNotFoundError: there is no such folder (the message names the setting).
    """
    if data_dir is None:
        data_dir = config.default_data_dir(dataset_name)
    if not os.path.isdir(data_dir):
        raise DatasetNotFoundError(
            f"{dataset_name} data folder not found: {data_dir}. Pass {setting} or set "
            f"$FER_DATA_ROOT to the folder that holds {dataset_name}/ (the default is "
            f"./data/{dataset_name}).")
    return data_dir


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
            Training, val = PublicTest, test = PrivateTest (the split most
            papers report), and "public_private_test" = PublicTest +
            PrivateTest in file order (the official Ad-Corre test set, 7,178
            faces). AffectNet: train = training.csv, val and test =
            validation.csv (its test set is not public).
        **kwargs: per dataset:
            - rafdb: `aligned=None` (True: Image/aligned, False:
              Image/original, None: aligned if present). The original photos
              get a `box` column read from `NAME_boundingbox.txt` (x1 y1 x2 y2)
              in `Annotation/boundingbox/` or `boundingbox/` (`rafdb_box`); a
              photo whose box file is missing or unusable is skipped (one
              `BadBoxWarning` for the missing ones, one line per bad file) and
              listed in `frame.attrs["box_skipped"]`.
            - affectnet, ferplus: `num_classes=7` (8 keeps Contempt). Splits
              ending in `_7` force 7. AffectNet drops expressions 8-10 (and 7
              with 7 classes); the counts are in `frame.attrs["dropped"]`.
            - ferplus: `strict_majority=False`, see `ferplus_label`.
            - synth: `n` (default `config.SYNTH_SPLIT_SIZES`), `image_size=112`,
              `seed=0`, `class_prior=None`; train, val and test use separate
              seed streams and never overlap.

    Returns:
        A DataFrame with columns `image` (path str, or uint8 array: (48, 48)
        grey for FER-2013/FERPlus, (s, s, 3) RGB for synth) and `label`
        (canonical int), plus `box` (AffectNet: (x, y, w, h) or None; RAF-DB
        original photos: (x, y, w, h)), `valence`, `arousal` (AffectNet) and
        `usage` (FER CSVs: each row's Usage).

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
        raise SettingError(f"Unknown dataset {dataset_name!r}: use one of {config.DatasetName.all}.")
    canonical, forced = _split_name(split)
    if canonical == "public_private_test" and name not in PUBLIC_PRIVATE_DATASETS:
        raise SettingError(
            f"The split 'public_private_test' (FER-2013's PublicTest + PrivateTest) exists for "
            f"{' and '.join(PUBLIC_PRIVATE_DATASETS)} only; {name} has 'train', 'val' and 'test'.")
    if name == config.DatasetName.synth:
        frame = _read_synth(canonical, **kwargs)
    else:
        data_dir = find_data_dir(name, data_dir)
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
