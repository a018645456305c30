"""A folder per class: `DATA_DIR/<split>/<class>/IMAGE`, the class folders named by expression.

A class folder is named like a canonical class in any case (`Happy`, `happiness`, `angry`:
`labels.LABEL_ALIASES`) or by its canonical index 0..7. The reader and SynthFER's writer below
share these names.
"""

import os

from adcorre.config import IMAGE_EXTENSIONS
from adcorre.data.datasets import Dataset, register
from adcorre.data.label_files import format_error, frame
from adcorre.errors import DatasetNotFoundError
from adcorre.labels import EXPRESSIONS_8, LABEL_ALIASES

# The folders each split is looked for in, in this order (the first is the one SynthFER writes).
SPLIT_DIRS = {"train": ("train", "training", "Train", "Training"),
              "val": ("val", "valid", "validation", "eval", "Val", "Validation"),
              "test": ("test", "Test", "testing")}

_EXPECTED = ("DATA_DIR/<train|val|test>/<class>/IMAGE files, class folders named like "
             f"{', '.join(EXPRESSIONS_8)} (any case, also {', '.join(sorted(LABEL_ALIASES))})"
             " or by canonical index 0..7")


def class_label(name):
    """The canonical index a class folder's name stands for, or None."""
    key = name.strip().lower()
    if key in LABEL_ALIASES:
        return LABEL_ALIASES[key]
    if key.isdigit() and 0 <= int(key) <= 7:
        return int(key)
    return None


def read(data_dir, split, forced=None):
    """One split: every picture of each class folder (other files counted in
    `attrs["ignored_files"]`).

    Args:
        data_dir: the folder holding the split folders.
        split: "train", "val" or "test".
        forced: ignored (the class folders say which classes there are).
    """
    split_dir = next((os.path.join(data_dir, d) for d in SPLIT_DIRS[split]
                      if os.path.isdir(os.path.join(data_dir, d))), None)
    if split_dir is None:
        raise DatasetNotFoundError(f"No {split} folder under {data_dir}: looked for "
                                   f"{', '.join(SPLIT_DIRS[split])}. Expected {_EXPECTED}.")
    images, labels, ignored = [], [], 0
    for class_name in sorted(os.listdir(split_dir)):
        class_dir = os.path.join(split_dir, class_name)
        if class_name.startswith(".") or not os.path.isdir(class_dir):
            continue
        label = class_label(class_name)
        if label is None:
            raise format_error(class_dir, None, f"unknown class folder {class_name!r}", _EXPECTED)
        for name in sorted(os.listdir(class_dir)):
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                ignored += 1
                continue
            images.append(os.path.join(class_dir, name))
            labels.append(label)
    return frame(images, labels, dict(source=split_dir, ignored_files=ignored))


def write_synth(out_dir, splits, **_):
    """SynthFER faces in `train/<Class>/` and `test/<Class>/`, the classes by canonical name."""
    from adcorre.data.synth.files import save_picture  # noqa: PLC0415 - writing only

    for split in ("train", "test"):
        for i, (image, label) in enumerate(zip(*splits[split])):
            save_picture(os.path.join(out_dir, SPLIT_DIRS[split][0], EXPRESSIONS_8[int(label)],
                                      f"{i:06d}.jpg"), image)


DATASET = register(Dataset(
    name="folder",
    title="a folder per class",
    splits=tuple(SPLIT_DIRS),
    label_map=LABEL_ALIASES,
    layout=(f"`{SPLIT_DIRS['train'][0]}/<class name>/*.jpg`, "
            f"`{SPLIT_DIRS['test'][0]}/<class name>/*.jpg`"),
    read=read,
    required=(tuple(d for dirs in SPLIT_DIRS.values() for d in dirs),),
    split_sources={split: f"`{dirs[0]}/`" for split, dirs in SPLIT_DIRS.items()},
    write_synth=write_synth,
))
