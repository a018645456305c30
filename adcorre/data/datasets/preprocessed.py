"""The official code's preprocessed layout: one folder per split, each picture with a `.npy`
holding its canonical label.

Layout: `SPLIT/images/NAME.jpg` and `SPLIT/annotations/NAME_exp.npy` (one canonical label
0..7), SPLIT one of `SPLIT_DIRS` (`train_set`, `test_set`, `eval_set`, ...; a `_7` dataset
type reads `train_set_7`, ...). A data folder that holds `images/` itself is one split. The
reader and SynthFER's writer below share these names.
"""

import os

import numpy as np

from adcorre.config import IMAGE_EXTENSIONS
from adcorre.data.datasets import Dataset, register
from adcorre.data.label_files import format_error, frame, int_field
from adcorre.errors import DatasetFormatError, DatasetNotFoundError
from adcorre.labels import EXPRESSIONS_8

# The folders each split is looked for in, in this order (the first is the one SynthFER writes).
SPLIT_DIRS = {"train": ("train_set", "train"),
              "val": ("eval_set", "public_test_set", "val", "eval"),
              "test": ("test_set", "private_test_set", "test")}
IMAGES = "images"
ANNOTATIONS = "annotations"
LABEL_SUFFIX = "_exp.npy"  # annotations/NAME_exp.npy beside images/NAME.jpg

_EXPECTED = (f"SPLIT/{IMAGES}/NAME.jpg with SPLIT/{ANNOTATIONS}/NAME{LABEL_SUFFIX} holding one "
             "canonical label 0..7 (SPLIT: train_set, test_set, eval_set, ...)")


def read(data_dir, split, forced=None):
    """One split: the pictures of its `images/` folder, each labelled by its `.npy`.

    Args:
        data_dir: the folder holding the split folders (or one split folder itself).
        split: "train", "val" or "test".
        forced: 7 reads the `_7` folders (`train_set_7`, ...).
    """
    candidates = [d + ("_7" if forced else "") for d in SPLIT_DIRS[split]]
    split_dir = next((os.path.join(data_dir, d) for d in candidates
                      if os.path.isdir(os.path.join(data_dir, d, IMAGES))), None)
    if split_dir is None and os.path.isdir(os.path.join(data_dir, IMAGES)):
        split_dir = data_dir  # data_dir is itself a split folder
    if split_dir is None:
        raise DatasetNotFoundError(
            f"No preprocessed {split} split under {data_dir}: looked for "
            f"{', '.join(os.path.join(c, IMAGES) for c in candidates)}. Expected {_EXPECTED}.")
    image_dir = os.path.join(split_dir, IMAGES)
    annotation_dir = os.path.join(split_dir, ANNOTATIONS)
    if not os.path.isdir(annotation_dir):
        raise DatasetNotFoundError(f"Annotation folder not found: {annotation_dir}. "
                                   f"Expected {_EXPECTED}.")
    images, labels = [], []
    for name in sorted(os.listdir(image_dir)):
        stem, ext = os.path.splitext(name)
        if ext.lower() not in IMAGE_EXTENSIONS or name.startswith("."):
            continue
        images.append(os.path.join(image_dir, name))
        labels.append(_label(os.path.join(annotation_dir, stem + LABEL_SUFFIX), name))
    return frame(images, labels, dict(source=annotation_dir))


def _label(annotation, image_name):
    """The canonical label one `.npy` holds; a missing or malformed one is one error naming it."""
    if not os.path.isfile(annotation):
        raise DatasetNotFoundError(f"Label file not found: {annotation} (for image "
                                   f"{image_name}). Expected {_EXPECTED}.")
    try:
        value = np.load(annotation, allow_pickle=False)
        value = np.asarray(value).reshape(-1)
        if value.size != 1:
            raise format_error(annotation, None, f"not a one-value .npy label file (holds "
                               f"{value.size} values)", _EXPECTED)
        return int_field(str(value[0]), annotation, None, "label", 0, 7, _EXPECTED)
    except DatasetFormatError:
        raise
    except (ValueError, OSError) as e:
        raise format_error(annotation, None, f"not a one-value .npy label file ({e})",
                           _EXPECTED) from None


def write_synth(out_dir, splits, **_):
    """SynthFER faces in `train_set/` and `test_set/`, each picture with its label's `.npy`."""
    from adcorre.data.synth.files import save_picture  # noqa: PLC0415 - writing only

    for split in ("train", "test"):
        folder = os.path.join(out_dir, SPLIT_DIRS[split][0])
        os.makedirs(os.path.join(folder, ANNOTATIONS), exist_ok=True)
        for i, (image, label) in enumerate(zip(*splits[split])):
            name = f"{split}_{i:06d}"
            save_picture(os.path.join(folder, IMAGES, name + ".jpg"), image)
            np.save(os.path.join(folder, ANNOTATIONS, name + LABEL_SUFFIX), np.array(int(label)))


DATASET = register(Dataset(
    name="preprocessed",
    title="the official code's preprocessed layout",
    splits=tuple(SPLIT_DIRS),
    label_map={c: c for c in range(len(EXPRESSIONS_8))},  # the labels are canonical already
    layout=(f"the official code's `{SPLIT_DIRS['train'][0]}/{IMAGES}/*.jpg` + "
            f"`{ANNOTATIONS}/*{LABEL_SUFFIX}`"),
    read=read,
    required=(tuple(os.path.join(d + seven, IMAGES) for dirs in SPLIT_DIRS.values()
                    for d in dirs for seven in ("", "_7")) + (IMAGES,),),
    split_sources={split: f"`{dirs[0]}/`" for split, dirs in SPLIT_DIRS.items()},
    write_synth=write_synth,
))
