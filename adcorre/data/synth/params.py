"""SynthFER's parameters: the expression prototypes, how people and pictures vary, the priors.

Units: the face half-width (the face spans x in [-1, 1]); y grows downwards. Each class is a
prototype of facial actions (`_PROTOTYPES`); `sample_params` moves a face from neutral towards
its prototype by a random intensity, blends in a second expression now and then and adds the
person's resting-face offsets (`_PERSON_STD`). Each face's person, pose, accessories and
nuisances read a row of uniforms whose columns are named by `UNIFORM_LAYOUT`. The drawing
engine that turns these into pictures is `adcorre.data.synth.drawing`.

This module imports only NumPy, `errors` and `labels`.

Example:
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> sample_params(rng, np.array([1, 3])).shape == (2, len(PARAMS))
True
"""

import collections

import numpy as np

from adcorre.errors import SettingError
from adcorre.labels import EXPRESSIONS_8

# RAF-DB basic, class counts over train + test, in canonical order
# (Neutral 3204, Happy 5957, Sad 2460, Surprise 1619, Fear 355, Disgust 877, Anger 867).
RAFDB_CLASS_PRIOR = np.array([3204, 5957, 2460, 1619, 355, 877, 867], np.float64)
RAFDB_CLASS_PRIOR /= RAFDB_CLASS_PRIOR.sum()

# Canonical index of the contempt face, drawn only for the 8-class AffectNet/FERPlus extras.
CONTEMPT = 7

# --------------------------------------------------------------------------------------
# Expression parameters. Units: the face half-width (the face spans x in [-1, 1]);
# y grows downwards. Each class is a prototype; a face interpolates from neutral to its
# prototype by an intensity in [0.5, 1], then adds per-person offsets.
PARAMS = (
    "eye_open",      # eyelid opening, 1 = relaxed
    "lower_lid",     # cheek raise pushing the lower lid up (0..1)
    "brow_raise",    # whole brow up (+) or down (-)
    "brow_inner",    # inner brow end up (+, sad/fear) or down (-, anger)
    "brow_gap",      # inner ends pulled together (-)
    "brow_arch",     # middle of the brow up (+)
    "mouth_curve",   # corners up (+) / down (-)
    "mouth_open",    # vertical opening
    "mouth_width",   # width multiplier
    "mouth_round",   # 0 = lens-shaped opening, 1 = round O
    "teeth",         # fraction of the opening filled by upper teeth
    "snarl",         # one-sided raise of the upper lip (disgust)
    "nose_wrinkle",  # wrinkles across the nose bridge (0..1)
    "nasolabial",    # depth of the nose-to-mouth folds (0..1)
    "forehead",      # forehead lines (0..1)
    "glabella",      # vertical lines between the brows (0..1)
    "lip_press",     # lip thickness multiplier (pressed lips < 1)
    "cheek",         # raised, flushed cheeks (0..1)
    "smirk",         # one mouth corner up (contempt)
)
_P = {name: i for i, name in enumerate(PARAMS)}
_NEUTRAL = dict(eye_open=1.0, mouth_width=1.0, lip_press=1.0)
_PROTOTYPES = {
    0: {},  # Neutral
    1: dict(eye_open=0.62, lower_lid=1.0, brow_raise=0.03, mouth_curve=0.2, mouth_width=1.25,
            nasolabial=1.0, cheek=1.0),
    2: dict(eye_open=0.78, brow_inner=0.14, brow_gap=-0.02, brow_raise=-0.01, mouth_curve=-0.16,
            mouth_width=0.88, forehead=0.7, glabella=0.3, lip_press=1.2, nasolabial=0.25),
    3: dict(eye_open=1.55, brow_raise=0.17, brow_inner=0.03, brow_arch=0.06, mouth_open=0.34,
            mouth_width=0.6, mouth_round=1.0, forehead=1.0),
    4: dict(eye_open=1.5, brow_raise=0.1, brow_inner=0.11, brow_gap=-0.05, brow_arch=-0.02,
            mouth_curve=-0.09, mouth_open=0.17, mouth_width=1.35, teeth=1.0, forehead=0.8,
            glabella=0.45, lip_press=0.55),
    5: dict(eye_open=0.6, lower_lid=0.5, brow_raise=-0.07, brow_inner=-0.05, brow_gap=-0.02,
            mouth_curve=-0.08, mouth_open=0.025, mouth_width=0.95, teeth=0.9, snarl=0.12,
            nose_wrinkle=1.0, nasolabial=0.9, glabella=0.5),
    6: dict(eye_open=0.78, brow_raise=-0.09, brow_inner=-0.16, brow_gap=-0.06, mouth_curve=-0.04,
            mouth_width=0.8, lip_press=0.3, glabella=1.0, nose_wrinkle=0.25),
    CONTEMPT: dict(eye_open=0.9, smirk=0.15, mouth_curve=0.02, mouth_width=0.95, nasolabial=0.3),
}
# Per-person spread of each parameter (resting-face offsets), same order as PARAMS.
_PERSON_STD = np.array([0.08, 0.08, 0.025, 0.025, 0.015, 0.015, 0.03, 0.012, 0.07, 0.05,
                        0.1, 0.01, 0.1, 0.12, 0.15, 0.12, 0.1, 0.12, 0.01])
_LOWER = np.array([0.35, 0, -0.2, -0.25, -0.1, -0.1, -0.3, 0, 0.5, 0, 0, 0, 0, 0, 0, 0, 0.2, 0, 0])


def _table():
    table = np.zeros((len(_PROTOTYPES), len(PARAMS)))
    for label, proto in _PROTOTYPES.items():
        for name, value in {**_NEUTRAL, **proto}.items():
            table[label, _P[name]] = value
    return table


_TABLE = _table()

SKIN_TONES = np.array([[241, 211, 189], [226, 185, 150], [198, 152, 118], [160, 112, 80],
                        [120, 80, 56], [88, 58, 42]], np.float64)
HAIR_COLOURS = np.array([[25, 20, 18], [60, 40, 28], [110, 75, 45], [190, 150, 90],
                          [150, 70, 35], [160, 160, 160]], np.float64)
IRIS_COLOURS = np.array([[70, 45, 30], [40, 30, 25], [70, 110, 150], [80, 110, 70]], np.float64)

# The uniform draws each face takes (person, pose, accessories, nuisances) by name:
# name -> (first column, number of columns) in the face's row of `NUM_UNIFORM` uniforms.
# A field's columns decide which random numbers it reads, so any change here changes the
# faces drawn from every seed (tests/data/test_synth_faces.py pins the pixels).
NUM_UNIFORM = 60
UNIFORM_LAYOUT = {
    # Background.
    "background": (0, 4),        # brightness of the 2x2 coarse cells
    "tint": (4, 3),              # colour gain of the whole background
    "background_shift": (7, 3),  # colour offset of the whole background
    "unused": (10, 2),           # drawn, never read: kept so the later columns keep their place
    "clutter_count": (12, 1),    # 0..4 clutter shapes
    # Pose.
    "face_scale": (13, 1),
    "centre": (14, 2),           # x, y
    "roll": (16, 1),
    "yaw": (17, 1),
    # Person.
    "aspect": (18, 1),           # face height over width
    "jaw": (19, 1),              # narrowing towards the chin
    "skin": (20, 1),             # position along SKIN_TONES
    "skin_tint": (21, 2),        # red and blue gains
    "hair_colour": (23, 1),
    "iris": (24, 1),
    "clothes": (25, 3),
    "hair_style": (28, 1),       # bald, short or long
    "asymmetry": (29, 1),        # left/right difference of brows and eyes
    "pull_side": (30, 1),        # the side a snarl or smirk pulls
    "hairline": (31, 1),
    "gaze": (32, 1),
    "mouth_y": (33, 1),
    # Accessories and occluders: whether there is one, then its shape.
    "moustache": (34, 1),
    "fringe": (35, 1),
    "fringe_depth": (36, 1),
    "glasses": (37, 1),
    "frame_colour": (38, 1),
    "frame_shape": (39, 1),
    "occluder": (40, 1),
    "occluder_x": (41, 1),
    "occluder_side": (42, 1),
    "occluder_y": (43, 1),
    "occluder_kind": (44, 1),    # a hand or an object
    "occluder_colour": (45, 3),
    # Photometric nuisances.
    "light_angle": (48, 1),
    "light_strength": (49, 1),
    "exposure": (50, 1),
    "cast": (51, 3),             # per-channel gain
    "noise_offset": (54, 2),     # window into the renderer's noise bank
    "noise_level": (56, 1),
    "blur": (57, 1),
    "jpeg": (58, 1),
    "jpeg_quality": (59, 1),
}


def _uniform_slots(layout, total):
    """Where each named draw sits in a face's row of uniforms.

    Args:
        layout: dict name -> (first column, number of columns).
        total: number of columns in the row.

    Returns:
        Tuple in `layout`'s order: a column index for the one-column fields (read
        as a float) and a slice for the others (read as a list).

    Raises:
        ValueError: if the fields do not cover the columns `0..total - 1` exactly
            once: a shared column would tie two nuisances together, and a missed or
            extra one means the layout and `NUM_UNIFORM` disagree.
    """
    uses = collections.Counter(c for first, count in layout.values()
                               for c in range(first, first + count))
    missed = sorted(set(range(total)) - set(uses))
    wrong = sorted(c for c, n in uses.items() if n > 1 or not 0 <= c < total)
    if missed or wrong:
        # guard: the layout is this module's constant, checked as the module loads.
        raise ValueError(f"The uniform layout must use each column 0..{total - 1} once; "
                         f"missed {missed}, shared or out of range {wrong}.")
    return tuple(first if count == 1 else slice(first, first + count)
                 for first, count in layout.values())


UNIFORM_SLOTS = _uniform_slots(UNIFORM_LAYOUT, NUM_UNIFORM)
# One face's draws by name (`draws.glasses`); the fields of several columns are lists.
Draws = collections.namedtuple("Draws", UNIFORM_LAYOUT)


# --------------------------------------------------------------------------------------
# Sampling.


def sample_labels(rng, n, class_prior):
    """`n` canonical labels drawn from `class_prior` (RAF-DB's class frequencies when None)."""
    prior = RAFDB_CLASS_PRIOR if class_prior is None else np.asarray(class_prior, np.float64)
    if prior.ndim != 1 or len(prior) not in (7, 8) or np.any(prior < 0) or prior.sum() <= 0:
        raise SettingError(
            "class_prior must be 7 (or 8) non-negative weights in canonical order "
            f"{EXPRESSIONS_8[:len(prior) if prior.ndim == 1 else 7]}, got {class_prior!r}."
        )
    return rng.choice(len(prior), size=n, p=prior / prior.sum()).astype(np.int32)


def sample_params(rng, labels):
    """Expression parameters (n, len(PARAMS)) for the given labels."""
    n = len(labels)
    intensity = rng.uniform(0.35, 1.0, n)
    mix = rng.random((n, 6))
    # Compound expressions (as RAF-DB's compound set): about a third of the faces blend
    # in a second, weaker expression, which caps what any classifier can reach.
    second = 1 + (mix[:, 3] * 6).astype(np.int64)
    second = np.where(second == labels, 1 + second % 6, second)
    weight = np.where(mix[:, 4] < 0.35, 0.55 * mix[:, 5], 0.0) * np.where(labels == 0, 0.6, intensity)
    neutral = _TABLE[0]
    params = (neutral + intensity[:, None] * (_TABLE[labels] - neutral)
              + weight[:, None] * (_TABLE[second] - neutral))
    params = params + rng.standard_normal((n, len(PARAMS))) * _PERSON_STD
    # Half of the smiles are open grins showing teeth; closed smiles show none.
    happy = labels == 1
    grin = happy & (mix[:, 0] < 0.5)
    params[grin, _P["mouth_open"]] += 0.07 + 0.07 * mix[grin, 1]
    params[grin, _P["teeth"]] = 0.9
    params[happy & ~grin, _P["teeth"]] = 0.0
    # Some angry faces bare clenched teeth instead of pressing the lips.
    bare = (labels == 6) & (mix[:, 2] < 0.2)
    params[bare, _P["mouth_open"]] = 0.05
    params[bare, _P["teeth"]] = 1.0
    params[bare, _P["lip_press"]] = 0.6
    return np.maximum(params, _LOWER)
