"""AffectNet (manually annotated): two CSVs of face boxes and expressions, the photos beside.

Layout: `training.csv` and `validation.csv` with the columns `COLUMNS`, the photos under
`Manually_Annotated_Images/<dir>/<name>.jpg` (some copies keep the archive's outer
`Manually_Annotated/` folder). Expressions 0..10: 0 Neutral .. 6 Anger, 7 Contempt (kept with
8 classes), 8 None, 9 Uncertain, 10 No-Face (always dropped). Its test set is not public:
`val` and `test` both read validation.csv. The reader and SynthFER's writer below share these
names.
"""

import csv
import hashlib
import os

import numpy as np

from adcorre import atomic_files
from adcorre.data.datasets import Dataset, register
from adcorre.data.label_files import (
    BOX_RULE,
    class_count,
    face_box,
    first_listings,
    float_or_nan,
    frame,
    int_field,
    read_csv_rows,
    require_file,
    warn_bad_boxes,
)
from adcorre.data.pictures import picture_sizes
from adcorre.errors import DatasetFormatError
from adcorre.labels import AFFECTNET_TO_CANONICAL_7, AFFECTNET_TO_CANONICAL_8

COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
           "facial_landmarks", "expression", "valence", "arousal")
# What the reader needs of each row; valence and arousal read as NaN where a copy lacks them.
REQUIRED_COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                    "expression")
OPTIONAL_COLUMNS = ("valence", "arousal")
CSV_FILES = {"train": "training.csv", "val": "validation.csv", "test": "validation.csv"}
IMAGE_ROOT = "Manually_Annotated_Images"
NESTED_IMAGE_ROOT = os.path.join("Manually_Annotated", IMAGE_ROOT)
# The expressions no class stands for: None, Uncertain, No-Face.
NOT_EXPRESSIONS = (8, 9, 10)

_EXPECTED = (f"a CSV with header {','.join(COLUMNS)}; integer box values and "
             "expression 0..10 (0 Neutral .. 7 Contempt, 8 None, 9 Uncertain, 10 No-Face)")
_BOX_EXPECTED = f"face_x, face_y, face_width, face_height in pixels: {BOX_RULE}"


def read(data_dir, split, forced=None, num_classes=None):
    """One split of AffectNet, with each face's `box`, `valence` and `arousal`.

    Args:
        data_dir: the dataset's root folder.
        split: "train" (training.csv), "val" or "test" (both validation.csv).
        forced: 7 when the split was a `_7` dataset type.
        num_classes: 7 (default) or 8 (Contempt kept).
    """
    classes = class_count(num_classes, forced, "AffectNet")
    path = os.path.join(data_dir, CSV_FILES[split])
    require_file(path, "AffectNet label file", _EXPECTED)
    image_root = os.path.join(data_dir, IMAGE_ROOT)
    if not os.path.isdir(image_root):
        nested = os.path.join(data_dir, NESTED_IMAGE_ROOT)
        image_root = nested if os.path.isdir(nested) else image_root
    rows, lines = read_csv_rows(path, REQUIRED_COLUMNS, _EXPECTED, optional=OPTIONAL_COLUMNS)
    codes = [int_field(row[5], path, line, "expression", 0, 10, _EXPECTED)
             for row, line in zip(rows, lines)]
    corners = [_corners(row, path, line) for row, line in zip(rows, lines)]
    # One face is one picture and one box: a picture listed twice with two boxes holds two faces.
    keys = [(row[0].replace("\\", "/"), *box) for row, box in zip(rows, corners)]
    mapping = AFFECTNET_TO_CANONICAL_8 if classes == 8 else AFFECTNET_TO_CANONICAL_7
    kept, dropped = [], {}
    for i in first_listings(keys, codes, lines, path, _EXPECTED):
        if codes[i] in mapping:
            kept.append(i)
        else:
            dropped[codes[i]] = dropped.get(codes[i], 0) + 1
    images = [os.path.join(image_root, keys[i][0]) for i in kept]
    boxes, bad = [], []
    for i, image, size in zip(kept, images, picture_sizes(images)):
        box, reason = face_box(*corners[i], size)
        boxes.append(box)
        if reason is not None:
            bad.append((i, image, reason))
    warn_bad_boxes([(f"line {lines[i]} ({keys[i][0]})", reason) for i, _, reason in bad],
                   len(kept), f"AffectNet {split} faces", path, _BOX_EXPECTED)
    usable = [n for n, box in enumerate(boxes) if box is not None]
    if bad and not usable:
        raise DatasetFormatError(
            f"None of the {len(kept)} faces {path} lists has a usable face box "
            f"({len(bad)} skipped, first: line {lines[bad[0][0]]}: {bad[0][2]}). Expected "
            f"{_BOX_EXPECTED}.")
    return frame([images[n] for n in usable], [mapping[codes[kept[n]]] for n in usable],
                 dict(source=path, num_classes=classes,
                      dropped={f"expression {k}": v for k, v in sorted(dropped.items())},
                      box_skipped=[(image, f"{path}, line {lines[i]}: {reason}")
                                   for i, image, reason in bad]),
                 box=[boxes[n] for n in usable],
                 valence=[float_or_nan(rows[kept[n]][6]) for n in usable],
                 arousal=[float_or_nan(rows[kept[n]][7]) for n in usable])


def _corners(row, path, line):
    """A CSV row's face box as its edges `(left, top, right, bottom)` in pixels."""
    x, y, width, height = (int_field(v, path, line, name, -(1 << 30), 1 << 30, _EXPECTED)
                           for v, name in zip(row[1:5], REQUIRED_COLUMNS[1:5]))
    return x, y, x + width, y + height


# Typical valence/arousal per canonical class (+ Contempt), for plausible CSV rows.
_VALENCE_AROUSAL = ((0.0, 0.0), (0.7, 0.3), (-0.6, -0.2), (0.2, 0.7), (-0.5, 0.7), (-0.6, 0.4),
                    (-0.6, 0.6), (-0.4, 0.2))


def write_synth(out_dir, splits, seed, image_size, **_):
    """SynthFER faces as AffectNet: each face pasted into a larger photo, its box in the CSV.

    Each CSV also gets extra rows after the faces: about 5 % Contempt faces (expression 7) and
    one row each of expressions 8, 9 and 10, which 7-class readers drop.
    """
    import cv2  # noqa: PLC0415 - the writers draw with OpenCV, the reader needs none of it
    from adcorre.data.synth.drawing import generate  # noqa: PLC0415
    from adcorre.data.synth.params import CONTEMPT  # noqa: PLC0415
    from adcorre.data.synth.files import save_picture  # noqa: PLC0415

    rng = np.random.default_rng((int(seed), 211))
    for split in ("train", "test"):
        images, labels = splits[split]
        n_contempt = max(1, int(round(0.05 * len(labels))))
        contempt, _ = generate(n_contempt, image_size, seed=(int(seed), 1 + (split == "test")),
                               labels=np.full(n_contempt, CONTEMPT))
        others, _ = generate(len(NOT_EXPRESSIONS), image_size,
                             seed=(int(seed), 3 + (split == "test")))
        rows_images = list(images) + list(contempt) + list(others)
        codes = [int(c) for c in labels] + [CONTEMPT] * n_contempt + list(NOT_EXPRESSIONS)
        rows = []
        for i, (face, code) in enumerate(zip(rows_images, codes)):
            # Paste the face into a bigger "photo" at a random place: the reader crops it back.
            photo_size = int(image_size * rng.uniform(1.25, 1.8))
            photo = cv2.resize(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8),
                               (photo_size, photo_size), interpolation=cv2.INTER_CUBIC)
            x, y = rng.integers(0, photo_size - image_size + 1, 2)
            photo[y:y + image_size, x:x + image_size] = face
            digest = hashlib.sha1(f"{seed}-{split}-{i}".encode()).hexdigest()
            rel = f"{1 + i % 7}/{digest}.jpg"
            save_picture(os.path.join(out_dir, IMAGE_ROOT, rel), photo)
            marks = rng.uniform(0, image_size, 136) + np.tile([x, y], 68)
            valence, arousal = (-2.0, -2.0) if code > CONTEMPT else _VALENCE_AROUSAL[code]
            rows.append([rel, int(x), int(y), image_size, image_size,
                         ";".join(f"{v:.2f}" for v in marks), code,
                         round(valence + rng.normal(0, 0.1), 4) if code <= CONTEMPT else valence,
                         round(arousal + rng.normal(0, 0.1), 4) if code <= CONTEMPT else arousal])
        # Whole or not at all (atomically): a stopped writer never leaves part of a CSV.
        with (atomic_files.atomic_path(os.path.join(out_dir, CSV_FILES[split])) as temporary,
              open(temporary, "w", newline="") as f):
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            writer.writerows(rows)


def _run_options(settings, split):
    return {"num_classes": settings.num_classes}


DATASET = register(Dataset(
    name="affectnet",
    title="AffectNet",
    splits=tuple(CSV_FILES),
    label_map=AFFECTNET_TO_CANONICAL_8,
    layout=(f"`{CSV_FILES['train']}`, `{CSV_FILES['val']}`, `{IMAGE_ROOT}/` (faces cropped by "
            "the CSV box)"),
    read=read,
    required=(tuple(sorted(set(CSV_FILES.values()))),),
    split_sources={split: f"`{name}`" for split, name in CSV_FILES.items()},
    options=("num_classes",),
    full_classes=8,
    write_synth=write_synth,
    run_options=_run_options,
))
