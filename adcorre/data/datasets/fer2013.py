"""FER-2013: one CSV of 48x48 grey faces, their emotion and their usage.

Layout: `fer2013.csv` with the columns `emotion,pixels,Usage`; emotion 0..6 (0 Angry,
1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral; `labels.FER2013_TO_CANONICAL`),
pixels 48x48 space-separated grey values, Usage Training, PublicTest or PrivateTest. FERPlus
(`ferplus.py`) reads and writes the same file beside its votes, through the helpers here. The
reader and SynthFER's writer below share these names.
"""

import csv
import os

import numpy as np

from adcorre import atomic_files
from adcorre.data.datasets import Dataset, register
from adcorre.data.label_files import format_error, frame, int_field, read_csv_rows, require_file
from adcorre.labels import FER2013_TO_CANONICAL

CSV_FILE = "fer2013.csv"
COLUMNS = ("emotion", "pixels", "Usage")
# The Usage values of each split; the official Ad-Corre test set is PublicTest + PrivateTest
# (its config.py: "both public&private test"), 7,178 faces of the real FER-2013.
USAGE = {"train": ("Training",), "val": ("PublicTest",), "test": ("PrivateTest",),
         "public_private_test": ("PublicTest", "PrivateTest")}
USAGES = ("Training", "PublicTest", "PrivateTest")
SIDE = 48  # every face is 48x48 grey pixels

EXPECTED = (f"{CSV_FILE} with header {','.join(COLUMNS)}; emotion 0..6 (0 Angry, 1 Disgust, "
            f"2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral), pixels = {SIDE}x{SIDE} "
            f"space-separated grey values, each an integer 0..255, Usage {'/'.join(USAGES)}")


def parse_pixels(text, path, line):
    """A row's `pixels` as a (48, 48) uint8 array, or a `DatasetFormatError` naming the line."""
    values = text.split()
    if len(values) != SIDE * SIDE:
        raise format_error(path, line, f"pixels holds {len(values)} values, not {SIDE}x{SIDE}",
                           EXPECTED)
    try:
        numbers = np.array(values, dtype=np.int64)
    except (ValueError, OverflowError):
        raise format_error(path, line, _first_non_integer(values), EXPECTED) from None
    outside = np.flatnonzero((numbers < 0) | (numbers > 255))
    if len(outside):
        raise format_error(path, line, f"pixel {outside[0] + 1} is {numbers[outside[0]]}, "
                           "outside 0..255", EXPECTED)
    return numbers.astype(np.uint8).reshape(SIDE, SIDE)


def _first_non_integer(values):
    """Which of `values` NumPy could not read as an integer, in words."""
    for position, value in enumerate(values, 1):
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or not 0 <= number <= 255:
            return f"pixel {position} is {value[:20]!r}, not an integer 0..255"
    return "a pixel value is not an integer 0..255"


def read_rows(data_dir):
    """`(path, rows, lines)` of fer2013.csv: each row's emotion, pixels and Usage."""
    path = os.path.join(data_dir, CSV_FILE)
    require_file(path, "FER-2013 label file", EXPECTED)
    rows, lines = read_csv_rows(path, COLUMNS, EXPECTED)
    return path, rows, lines


def in_split(usage, split, path, line, expected):
    """Whether a FER-2013 / FERPlus row's Usage is `split`'s; an unknown Usage is a format error."""
    if usage not in USAGES:
        raise format_error(path, line, f"unknown Usage {usage!r}", expected)
    return usage in USAGE[split]


def read(data_dir, split, forced=None):
    """One split of FER-2013: (48, 48) grey uint8 faces and each row's `usage`.

    Args:
        data_dir: the dataset's root folder.
        split: "train", "val" (PublicTest), "test" (PrivateTest) or "public_private_test".
        forced: ignored (FER-2013 has 7 classes).
    """
    path, rows, lines = read_rows(data_dir)
    images, labels, usages = [], [], []
    for (emotion, pixels, row_usage), line in zip(rows, lines):
        code = int_field(emotion, path, line, "emotion", 0, 6, EXPECTED)
        if not in_split(row_usage, split, path, line, EXPECTED):
            continue
        images.append(parse_pixels(pixels, path, line))
        labels.append(FER2013_TO_CANONICAL[code])
        usages.append(row_usage)
    return frame(images, labels, dict(source=path, usage="+".join(USAGE[split])), usage=usages)


# ------------------------------------------------------------------ writing SynthFER as FER-2013

# Canonical index -> FER-2013's emotion code.
TO_CODE = {canonical: code for code, canonical in FER2013_TO_CANONICAL.items()}


def usage_groups(splits):
    """SynthFER's train and test faces as FER-2013's usages: train -> Training, the test
    faces' first half -> PublicTest, the rest -> PrivateTest.

    Returns:
        `[(usage, images, labels)]` in file order.
    """
    test_images, test_labels = splits["test"]
    half = len(test_labels) // 2
    return [("Training", *splits["train"]),
            ("PublicTest", test_images[:half], test_labels[:half]),
            ("PrivateTest", test_images[half:], test_labels[half:])]


def grey_faces(images):
    """RGB faces as FER-2013's (48, 48) grey uint8 pictures."""
    import cv2  # noqa: PLC0415 - the writers draw with OpenCV, the reader needs none of it

    out = np.empty((len(images), SIDE, SIDE), np.uint8)
    for i, image in enumerate(images):
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        out[i] = cv2.resize(grey, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    return out


def csv_row(emotion, grey, usage):
    """One fer2013.csv row: the emotion code, the pixels as text, the Usage."""
    return [emotion, " ".join(map(str, grey.reshape(-1).tolist())), usage]


def write_csv(out_dir, rows):
    """Writes fer2013.csv (its header, then `rows`) into `out_dir`."""
    # Whole or not at all (atomically): a stopped writer never leaves part of a CSV.
    with (atomic_files.atomic_path(os.path.join(out_dir, CSV_FILE)) as temporary,
          open(temporary, "w", newline="") as f):
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(rows)


def write_synth(out_dir, splits, **_):
    """SynthFER faces as fer2013.csv (48x48 grey pixels whatever size they were drawn at)."""
    rows = []
    for usage, images, labels in usage_groups(splits):
        rows += [csv_row(TO_CODE[int(label)], grey, usage)
                 for grey, label in zip(grey_faces(images), labels)]
    write_csv(out_dir, rows)


DATASET = register(Dataset(
    name="fer2013",
    title="FER-2013",
    splits=tuple(USAGE),
    label_map=FER2013_TO_CANONICAL,
    layout=f"`{CSV_FILE}` ({' / '.join(USAGES)})",
    read=read,
    required=(CSV_FILE,),
    split_sources={split: " + ".join(usages) for split, usages in USAGE.items()},
    image_side=SIDE,
    write_synth=write_synth,
))
