"""SynthFER: a procedural facial-expression dataset drawn with OpenCV.

The project must build, train and test without any of the real datasets
(RAF-DB, AffectNet and FER-2013 need a licence), so it embeds a generator of
face images that show the 7 canonical expressions through the same facial
actions people read them from:

| class    | eyes              | brows                          | mouth                          | other                      |
| -------- | ----------------- | ------------------------------ | ------------------------------ | -------------------------- |
| Neutral  | relaxed           | flat                           | closed, straight               |                            |
| Happy    | narrowed, cheeks up | slightly raised              | corners up, often open (teeth) | cheeks, nasolabial folds   |
| Sad      | slightly lowered  | inner ends raised (/ \\)       | corners down                   | central forehead lines     |
| Surprise | wide (white above iris) | high and arched          | open O                         | forehead lines             |
| Fear     | wide              | raised and drawn together      | stretched wide, open, teeth    | forehead and glabella lines |
| Disgust  | narrowed          | lowered                        | upper lip raised on one side   | nose wrinkle, folds        |
| Anger    | glaring           | lowered, inner ends down (V)   | pressed thin lips              | glabella lines             |

Each face draws its expression with a random intensity (35-100 % of the
prototype), a third of them blended with a weaker second expression (a
compound expression, as in RAF-DB), on top of a random person (face shape,
skin tone, resting-face offsets, asymmetry), under random nuisances: pose (roll, scale, shift, a
little yaw), lighting gradient, background clutter, hair, glasses, moustache,
occluders, blur, sensor noise and JPEG artefacts. Low intensities, blends
and nuisances overlap the classes, so the task is learnable but not trivial.
Labels follow RAF-DB's class imbalance unless `class_prior` says otherwise.

Everything is deterministic given `seed` (NumPy's PCG64 drives all choices;
the OpenCV calls are pure functions). Labels depend only on `(n, seed,
class_prior)`, not on `image_size`, so one seed gives the same labels at 48 px
(the FER-2013 layouts) and at 112 px.

Example:

```python
from adcorre.data import synth_faces
images, labels = synth_faces.generate(64, image_size=112, seed=0)
synth_faces.write_dataset("/tmp/synth_raf", layout="rafdb", n=2000)
```

Command line (`adcorre.cli.synth`):

```
adcorre synth --layout rafdb --out DIR --n 2000 [--image-size 112] [--seed 0]
adcorre synth --preview synth_preview.png
```

Its parts: `adcorre.data.synth.params` (expression prototypes, how people and pictures
vary, priors), `adcorre.data.synth.drawing` (the OpenCV engine, `generate`); each layout's writer
is in its dataset's module (`adcorre.data.datasets`), beside the reader of that format, and
`write_dataset` hands the faces to it. This module is their public face.
"""

import os

import cv2
import numpy as np

from adcorre.data import datasets
from adcorre.data.synth.drawing import generate  # noqa: F401 - SynthFER's public face
from adcorre.data.synth.files import save_picture
from adcorre.data.synth.params import CONTEMPT, RAFDB_CLASS_PRIOR  # noqa: F401 - public names
from adcorre.errors import SettingError
from adcorre.labels import EXPRESSIONS_7

# The layouts SynthFER can be written in: every dataset whose record has a writer
# (`datasets.layouts()`, which `write_dataset` and `adcorre synth --layout` read).
LAYOUTS = datasets.layouts()
# The CSV formats store 48x48 grey pixels whatever image_size says (FER-2013's record).
FER_IMAGE_SIZE = datasets.get("fer2013").image_side


def write_dataset(out_dir, layout="rafdb", n=1000, image_size=112, seed=0, test_fraction=0.2,
                  aligned=True, class_prior=None):
    """Writes `n` SynthFER faces to disk in one of the real datasets' layouts.

    The faces are `generate(n, image_size, seed)`; the first
    `n - round(n * test_fraction)` form the training split and the rest the
    test split, in generation order, so a reader's labels can be checked
    against `generate`'s.

    Layouts (`LAYOUTS`: the datasets whose record has a `write_synth`; docs/DESIGN.md gives
    the formats, each dataset's module writes its own):
    - `"rafdb"`: `EmoLabel/list_patition_label.txt` + `Image/aligned/*_aligned.jpg`;
      with `aligned=False`, `Image/original/*.jpg`: each face pasted into a larger,
      non-square photo, its box in `Annotation/boundingbox/NAME_boundingbox.txt`
      (`x1 y1 x2 y2`, the face's corners in pixels, as RAF-DB ships them).
    - `"affectnet"`: `training.csv` (train) / `validation.csv` (test) +
      `Manually_Annotated_Images/<dir>/<hash>.jpg`; each face is pasted into a
      larger photo and its box written to `face_*`. Each CSV also gets extra
      rows after the faces: about 5 % Contempt faces (expression 7) and one
      row each of expression 8, 9 and 10, which 7-class readers drop.
    - `"fer2013"`: `fer2013.csv` (48x48 grey pixels whatever `image_size`;
      train -> Training, the test split's first half -> PublicTest, the rest
      -> PrivateTest).
    - `"ferplus"`: the same `fer2013.csv` plus `fer2013new.csv` with 10 votes
      per face (the true class always wins a strict majority). Each usage
      group also gets 5 extra rows that a reader must drop (a tie, an
      "unknown" winner, an "NF" winner, an excluded row with no image name) or
      keep only for 8 classes (a Contempt winner).
    - `"preprocessed"`: `train_set/` and `test_set/`, each with `images/NAME.jpg`
      and `annotations/NAME_exp.npy` holding the canonical label.
    - `"folder"`: `train/<Label>/NAME.jpg` and `test/<Label>/NAME.jpg`.

    Args:
        out_dir: directory to write into (created if needed).
        layout: one of `LAYOUTS`.
        n: number of faces (the extra rows above are not counted).
        image_size: side of the faces in pixels (not used by the FER layouts).
        seed: seed for `generate`.
        test_fraction: fraction of the faces put in the test split.
        aligned: RAF-DB only: write `Image/aligned/` (True) or `Image/original/` with
            the box files (False).
        class_prior: passed to `generate`.

    Returns:
        `out_dir`.

    Example:

    >>> write_dataset("synth_folder", layout="folder", n=10, image_size=48)
    'synth_folder'
    >>> sorted(os.listdir("synth_folder"))
    ['test', 'train']
    """
    if layout not in datasets.layouts():
        raise SettingError(f"layout must be one of {datasets.layouts()}, got {layout!r}.")
    if not 0.0 <= test_fraction <= 1.0:
        raise SettingError(f"test_fraction must be in [0, 1], got {test_fraction}.")
    record = datasets.get(layout)
    os.makedirs(out_dir, exist_ok=True)
    size = record.image_side or image_size  # FER-2013's CSVs hold 48x48 whatever was asked
    images, labels = generate(n, image_size=size, seed=seed, class_prior=class_prior)
    n_test = int(round(n * test_fraction))
    n_train = n - n_test
    splits = {"train": (images[:n_train], labels[:n_train]),
              "test": (images[n_train:], labels[n_train:])}
    record.write_synth(out_dir, splits, seed=seed, image_size=size, aligned=aligned)
    return out_dir


def contact_sheet(per_class=8, image_size=112, seed=0):
    """A labelled grid of examples, one row per canonical class.

    Args:
        per_class: examples per row.
        image_size: face size in pixels.
        seed: generation seed.

    Returns:
        uint8 RGB array of the sheet.
    """
    rows = []
    label_width = max(90, image_size)
    for c, name in enumerate(EXPRESSIONS_7):
        images, _ = generate(per_class, image_size, seed=(int(seed), 100 + c),
                             labels=np.full(per_class, c))
        tag = np.full((image_size, label_width, 3), 255, np.uint8)
        cv2.putText(tag, name, (4, image_size // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5 * image_size / 112 + 0.15, (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(np.concatenate([tag] + list(images), axis=1))
    return np.concatenate(rows, axis=0)


# What `write_preview` writes: the encoders of OpenCV that every build has.
PREVIEW_SUFFIXES = (".png", ".jpg", ".jpeg")


def write_preview(path, per_class=8, image_size=112, seed=0):
    """Writes `contact_sheet(per_class, image_size, seed)` to `path` with the datasets' writer.

    Args:
        path: a file ending in one of `PREVIEW_SUFFIXES`.
        per_class, image_size, seed: as for `contact_sheet`.

    Raises:
        SettingError: `path` ends otherwise (checked before the sheet is drawn).
    """
    if os.path.splitext(path)[1].lower() not in PREVIEW_SUFFIXES:
        raise SettingError(f"{path!r}: expected a file ending in {', '.join(PREVIEW_SUFFIXES)}.")
    save_picture(path, contact_sheet(per_class, image_size, seed))
