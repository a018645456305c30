"""RAF-DB (basic): its label file, aligned faces or original photos with their face boxes.

Layout (as the archive ships it): `EmoLabel/list_patition_label.txt` holds `train_00001.jpg 5`
per line (the misspelling is the dataset's; codes 1..7, `labels.RAFDB_TO_CANONICAL`), the faces
are `Image/aligned/train_00001_aligned.jpg`, or the photos `Image/original/train_00001.jpg`,
each cropped by its box `Annotation/boundingbox/train_00001_boundingbox.txt` (`x1 y1 x2 y2`).
The reader and SynthFER's writer below share these names.
"""

import math
import os
import warnings

import numpy as np

from adcorre import atomic_files
from adcorre.data.datasets import Dataset, register
from adcorre.data.label_files import (
    BOX_RULE,
    BadBoxWarning,
    face_box,
    first_listings,
    format_error,
    frame,
    int_field,
    require_file,
    text_file_errors,
    warn_bad_boxes,
)
from adcorre.data.pictures import picture_sizes
from adcorre.errors import DatasetFormatError, DatasetNotFoundError
from adcorre.labels import RAFDB_TO_CANONICAL

LABEL_FILE = os.path.join("EmoLabel", "list_patition_label.txt")
ALIGNED_DIR = os.path.join("Image", "aligned")
ORIGINAL_DIR = os.path.join("Image", "original")
ALIGNED_SUFFIX = "_aligned"  # Image/aligned/NAME_aligned.jpg
BOX_SUFFIX = "_boundingbox.txt"  # Annotation/boundingbox/NAME_boundingbox.txt
# Where the face boxes of RAF-DB's original photos are looked for, in this order: the archive's
# own place (basic/Annotation/boundingbox/), then the flat copy the official Ad-Corre config
# names (RafDBConf.orig_bounding_box = <RAF-DB>/boundingbox/).
BOX_DIRS = (os.path.join("Annotation", "boundingbox"), "boundingbox")
# The splits the label file lists (names start with "train_" or "test_"), and the digits of
# each split's numbers as the archive writes them (train_00001, test_0001).
NAME_DIGITS = {"train": 5, "test": 4}

_EXPECTED = (f"lines '<train|test>_NNNNN.jpg <code 1-7>' in {LABEL_FILE} "
             "(1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral)")
_BOX_EXPECTED = ("four numbers 'x1 y1 x2 y2' (separated by spaces, tabs, newlines or "
                 "commas; integers or decimals): the face's top-left and bottom-right "
                 f"corners in pixels, {BOX_RULE}")


def read(data_dir, split, forced=None, aligned=None):
    """One split of RAF-DB: the aligned faces, or the original photos with a `box` column.

    Args:
        data_dir: the dataset's root folder.
        split: "train" or "test".
        forced: ignored (RAF-DB has 7 classes).
        aligned: True: Image/aligned, False: Image/original, None: aligned if present.
    """
    label_file = os.path.join(data_dir, LABEL_FILE)
    require_file(label_file, "RAF-DB label file", _EXPECTED)
    aligned_dir = os.path.join(data_dir, ALIGNED_DIR)
    original_dir = os.path.join(data_dir, ORIGINAL_DIR)
    if aligned is None:
        aligned = os.path.isdir(aligned_dir) or not os.path.isdir(original_dir)
    image_dir = aligned_dir if aligned else original_dir
    if not os.path.isdir(image_dir):
        raise DatasetNotFoundError(
            f"RAF-DB image folder not found: {image_dir}. Expected {ALIGNED_DIR}/NAME"
            f"{ALIGNED_SUFFIX}.jpg or {ORIGINAL_DIR}/NAME.jpg under {data_dir}.")
    box_dir = None if aligned else _box_dir(data_dir)
    images, labels = _listed(label_file, split, image_dir, aligned)
    attrs = dict(source=label_file, image_dir=image_dir)
    if aligned:
        return frame(images, labels, attrs)
    boxes, skipped = _boxes(images, box_dir, split)
    keep = [i for i, box in enumerate(boxes) if box is not None]
    if not keep:
        raise DatasetFormatError(
            f"None of the {len(images)} RAF-DB {split} photos in {image_dir} has a usable box "
            f"file in {box_dir} ({len(skipped)} skipped, first: {skipped[0][1]}). Expected "
            f"NAME{BOX_SUFFIX} per photo: {_BOX_EXPECTED}.")
    attrs.update(box_dir=box_dir, box_skipped=skipped)
    return frame([images[i] for i in keep], [labels[i] for i in keep], attrs,
                 box=[boxes[i] for i in keep])


def _listed(label_file, split, image_dir, aligned):
    """The image paths and canonical labels the label file lists for `split` (an image listed
    twice is read once, `first_listings`)."""
    names, codes, lines = [], [], []
    # Universal newlines: CRLF is fine.
    with open(label_file, encoding="utf-8-sig") as f, text_file_errors(label_file, _EXPECTED):
        for line_no, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or not fields[0].lower().startswith(
                    tuple(f"{s}_" for s in NAME_DIGITS)):
                raise format_error(label_file, line_no, f"cannot parse {line.strip()!r}",
                                   _EXPECTED)
            names.append(fields[0])
            codes.append(int_field(fields[1], label_file, line_no, "label", 1, 7, _EXPECTED))
            lines.append(line_no)
    if not names:
        raise format_error(label_file, None, "the file is empty (no image listed)", _EXPECTED)
    images, labels = [], []
    for row in first_listings(names, codes, lines, label_file, _EXPECTED):
        name = names[row]
        if not name.lower().startswith(split + "_"):
            continue
        stem, ext = os.path.splitext(name)
        file_name = f"{stem}{ALIGNED_SUFFIX}{ext}" if aligned else name
        images.append(os.path.join(image_dir, file_name))
        labels.append(RAFDB_TO_CANONICAL[codes[row]])
    if not images:
        raise format_error(label_file, None, f"it lists {len(names)} images and none of the "
                           f"{split} split (names starting with '{split}_')", _EXPECTED)
    return images, labels


def _box_dir(data_dir):
    for relative in BOX_DIRS:
        if os.path.isdir(os.path.join(data_dir, relative)):
            return os.path.join(data_dir, relative)
    raise DatasetNotFoundError(
        f"RAF-DB face boxes not found: the original photos ({ORIGINAL_DIR}/) are cropped by "
        f"their box, and neither {' nor '.join(os.path.join(data_dir, d) for d in BOX_DIRS)}"
        f" exists. Expected NAME{BOX_SUFFIX} per photo holding {_BOX_EXPECTED}; or use "
        f"the aligned faces ({ALIGNED_DIR}/, aligned=True).")


def rafdb_box(box_path, photo_size=None):
    """A RAF-DB box file's face box as `(x, y, w, h)` in whole pixels, or the reason it is unusable.

    The file holds `x1 y1 x2 y2`, the face's top-left and bottom-right corners in pixels (RAF-DB's
    `Annotation/boundingbox/NAME_boundingbox.txt`). Corners are rounded to the nearest pixel
    (`x = round(x1)`, `w = round(x2) - x`), so integer corners read back exactly; the box then
    meets every dataset's rule, `label_files.face_box` (not empty, not inverted, at least half
    of it inside the photo, the rest cut off).

    Args:
        box_path: the box file.
        photo_size: `(width, height)` of its photo, to check the box against; None skips that.

    Returns:
        `(box, None)` or `(None, reason)`; the reason says what is wrong (empty, not four
        numbers, inverted, outside the photo...).

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
    box, reason = face_box(*(math.floor(v + 0.5) for v in numbers), photo_size)
    if reason is not None:
        reason = f"{reason}: x1 y1 x2 y2 = {' '.join(f'{v:g}' for v in numbers)}"
    return box, reason


def _boxes(images, box_dir, split):
    """Each photo's box (None where it has none), and `[(photo, reason)]` of the skipped ones.

    Missing box files are counted and named in one warning for the split; unusable ones in
    another (`label_files.warn_bad_boxes`), naming each file and what is wrong.
    """
    boxes, missing, bad = [], [], []
    box_paths = [os.path.join(box_dir, f"{os.path.splitext(os.path.basename(image))[0]}"
                                       f"{BOX_SUFFIX}") for image in images]
    # A photo that cannot be read keeps its box unchecked: the image checks skip and count it
    # as missing or unreadable.
    boxed = [image for image, box_path in zip(images, box_paths) if os.path.isfile(box_path)]
    sizes = dict(zip(boxed, picture_sizes(boxed)))
    for image, box_path in zip(images, box_paths):
        if image not in sizes:
            boxes.append(None)
            missing.append(image)
            continue
        box, reason = rafdb_box(box_path, sizes[image])
        boxes.append(box)
        if reason is not None:
            bad.append((image, box_path, reason))
    if missing:
        shown = ", ".join(os.path.basename(p) for p in missing[:5])
        warnings.warn(
            f"Skipped {len(missing)} of {len(images)} RAF-DB {split} photos that have no box "
            f"file in {box_dir} (NAME{BOX_SUFFIX}): {shown}{' ...' if len(missing) > 5 else ''}.",
            BadBoxWarning, stacklevel=4)
    warn_bad_boxes([(os.path.basename(box_path), f"{reason} (photo {os.path.basename(image)})")
                    for image, box_path, reason in bad], len(images), f"RAF-DB {split} photos",
                   box_dir, _BOX_EXPECTED)
    skipped = ([(image, "no box file") for image in missing]
               + [(image, f"bad box file {box_path}: {reason}") for image, box_path, reason in bad])
    return boxes, skipped


def write_synth(out_dir, splits, seed, aligned=True, **_):
    """SynthFER faces as RAF-DB: the label file, and the aligned faces or, with
    `aligned=False`, each face pasted into a larger photo with its box file."""
    from adcorre.data.synth.files import photo_around, save_picture  # noqa: PLC0415 - writing only

    to_code = {canonical: code for code, canonical in RAFDB_TO_CANONICAL.items()}
    rng = np.random.default_rng((int(seed), 223))  # the photos around the faces
    lines = []
    for split, width in NAME_DIGITS.items():
        for i, (image, label) in enumerate(zip(*splits[split])):
            name = f"{split}_{i + 1:0{width}d}"
            lines.append(f"{name}.jpg {to_code[int(label)]}\n")
            if aligned:
                save_picture(os.path.join(out_dir, ALIGNED_DIR, f"{name}{ALIGNED_SUFFIX}.jpg"),
                             image)
                continue
            photo, (x, y) = photo_around(image, rng)
            save_picture(os.path.join(out_dir, ORIGINAL_DIR, f"{name}.jpg"), photo)
            side = image.shape[0]
            box_dir = os.path.join(out_dir, BOX_DIRS[0])
            os.makedirs(box_dir, exist_ok=True)
            with open(os.path.join(box_dir, f"{name}{BOX_SUFFIX}"), "w") as f:
                f.write(f"{x:.2f} {y:.2f} {x + side:.2f} {y + side:.2f}\n")
    # Written last and whole (atomically): a stopped writer leaves no label file, never part of one.
    atomic_files.write_text(os.path.join(out_dir, LABEL_FILE), "".join(lines))


def _run_options(settings, split):
    images = settings.rafdb_images
    return {} if images == "auto" else {"aligned": images == "aligned"}


DATASET = register(Dataset(
    name="rafdb",
    title="RAF-DB (basic)",
    splits=tuple(NAME_DIGITS),
    label_map=RAFDB_TO_CANONICAL,
    layout=(f"`{LABEL_FILE}`, `{ALIGNED_DIR}/*{ALIGNED_SUFFIX}.jpg`, or `{ORIGINAL_DIR}/*.jpg` "
            f"with their boxes `{BOX_DIRS[0]}/*{BOX_SUFFIX}` (or `{BOX_DIRS[1]}/`)"),
    read=read,
    required=(LABEL_FILE, (ALIGNED_DIR, ORIGINAL_DIR)),
    options=("aligned",),
    write_synth=write_synth,
    own_settings=("rafdb_images",),
    run_options=_run_options,
))
