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

This module imports only `config`, NumPy and OpenCV (docs/DESIGN.md).
"""

import collections
import csv
import hashlib
import os

import cv2
import numpy as np

from adcorre import config

# RAF-DB basic, class counts over train + test, in canonical order
# (Neutral 3204, Happy 5957, Sad 2460, Surprise 1619, Fear 355, Disgust 877, Anger 867).
RAFDB_CLASS_PRIOR = np.array([3204, 5957, 2460, 1619, 355, 877, 867], np.float64)
RAFDB_CLASS_PRIOR /= RAFDB_CLASS_PRIOR.sum()

LAYOUTS = ("rafdb", "affectnet", "fer2013", "ferplus", "preprocessed", "folder")
# The CSV formats store 48x48 grey pixels whatever image_size says.
FER_IMAGE_SIZE = 48
# Canonical index of the contempt face, drawn only for the 8-class AffectNet/FERPlus extras.
CONTEMPT = 7

# --------------------------------------------------------------------------------------
# Expression parameters. Units: the face half-width (the face spans x in [-1, 1]);
# y grows downwards. Each class is a prototype; a face interpolates from neutral to its
# prototype by an intensity in [0.5, 1], then adds per-person offsets.
_PARAMS = (
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
_P = {name: i for i, name in enumerate(_PARAMS)}
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
# Per-person spread of each parameter (resting-face offsets), same order as _PARAMS.
_PERSON_STD = np.array([0.08, 0.08, 0.025, 0.025, 0.015, 0.015, 0.03, 0.012, 0.07, 0.05,
                        0.1, 0.01, 0.1, 0.12, 0.15, 0.12, 0.1, 0.12, 0.01])
_LOWER = np.array([0.35, 0, -0.2, -0.25, -0.1, -0.1, -0.3, 0, 0.5, 0, 0, 0, 0, 0, 0, 0, 0.2, 0, 0])


def _table():
    table = np.zeros((len(_PROTOTYPES), len(_PARAMS)))
    for label, proto in _PROTOTYPES.items():
        for name, value in {**_NEUTRAL, **proto}.items():
            table[label, _P[name]] = value
    return table


_TABLE = _table()

_SKIN_TONES = np.array([[241, 211, 189], [226, 185, 150], [198, 152, 118], [160, 112, 80],
                        [120, 80, 56], [88, 58, 42]], np.float64)
_HAIR_COLOURS = np.array([[25, 20, 18], [60, 40, 28], [110, 75, 45], [190, 150, 90],
                          [150, 70, 35], [160, 160, 160]], np.float64)
_IRIS_COLOURS = np.array([[70, 45, 30], [40, 30, 25], [70, 110, 150], [80, 110, 70]], np.float64)

# The uniform draws each face takes (person, pose, accessories, nuisances) by name:
# name -> (first column, number of columns) in the face's row of `_NUM_UNIFORM` uniforms.
# A field's columns decide which random numbers it reads, so any change here changes the
# faces drawn from every seed (tests/data/test_synth_faces.py pins the pixels).
_NUM_UNIFORM = 60
_UNIFORM_LAYOUT = {
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
    "skin": (20, 1),             # position along _SKIN_TONES
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
            extra one means the layout and `_NUM_UNIFORM` disagree.
    """
    uses = collections.Counter(c for first, count in layout.values()
                               for c in range(first, first + count))
    missed = sorted(set(range(total)) - set(uses))
    wrong = sorted(c for c, n in uses.items() if n > 1 or not 0 <= c < total)
    if missed or wrong:
        raise ValueError(f"The uniform layout must use each column 0..{total - 1} once; "
                         f"missed {missed}, shared or out of range {wrong}.")
    return tuple(first if count == 1 else slice(first, first + count)
                 for first, count in layout.values())


_UNIFORM_SLOTS = _uniform_slots(_UNIFORM_LAYOUT, _NUM_UNIFORM)
# One face's draws by name (`draws.glasses`); the fields of several columns are lists.
_Draws = collections.namedtuple("_Draws", _UNIFORM_LAYOUT)


# --------------------------------------------------------------------------------------
# Sampling.


def _sample_labels(rng, n, class_prior):
    prior = RAFDB_CLASS_PRIOR if class_prior is None else np.asarray(class_prior, np.float64)
    if prior.ndim != 1 or len(prior) not in (7, 8) or np.any(prior < 0) or prior.sum() <= 0:
        raise ValueError(
            "class_prior must be 7 (or 8) non-negative weights in canonical order "
            f"{config.EXPRESSIONS_8[:len(prior) if prior.ndim == 1 else 7]}, got {class_prior!r}."
        )
    return rng.choice(len(prior), size=n, p=prior / prior.sum()).astype(np.int32)


def _sample_params(rng, labels):
    """Expression parameters (n, len(_PARAMS)) for the given labels."""
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
    params = params + rng.standard_normal((n, len(_PARAMS))) * _PERSON_STD
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


def _lerp_colour(palette, t):
    t = float(t) * (len(palette) - 1)
    i = min(int(t), len(palette) - 2)
    return palette[i] + (t - i) * (palette[i + 1] - palette[i])


# --------------------------------------------------------------------------------------
# Drawing.

_SHIFT = 4  # sub-pixel bits for the OpenCV drawing calls
_ONE = 1 << _SHIFT
_ANGLES = np.linspace(0, 2 * np.pi, 25)[:-1]
_CIRCLE = np.column_stack([np.cos(_ANGLES), np.sin(_ANGLES)])
_LOWER_HALF = np.arange(12, -1, -1)  # circle points from the left, under, to the right
_UPPER_ARC = np.column_stack([np.cos(np.linspace(np.pi, 2 * np.pi, 13)),
                              np.sin(np.linspace(np.pi, 2 * np.pi, 13))])
_FACE_X = np.cos(np.linspace(0, 2 * np.pi, 33)[:-1])
_FACE_Y = np.sin(np.linspace(0, 2 * np.pi, 33)[:-1])
_XS = np.linspace(-1.0, 1.0, 11)  # abscissae of eyes, brows and mouth, -1 .. 1
_PROF = 1 - _XS**2
_EYE_UP = _PROF**0.7
_EYE_LOW = _PROF**0.9
_TAPER = _PROF**0.6
_TS = np.linspace(0.0, 1.0, 7)
_B0, _B1, _B2 = (1 - _TS) ** 2, 2 * _TS * (1 - _TS), _TS**2  # quadratic Bezier weights
_BROW_HALF = 0.045 - 0.022 * _TS  # brows taper from the inner to the outer end
_EYE_Y = -0.08  # height of the eye centres; the brows, glasses and forehead lines hang off it


def _ellipse(cx, cy, rx, ry):
    return _CIRCLE * (rx, ry) + (cx, cy)


class _Face:
    """One face being drawn: its named draws, the person and pose they give, and its shapes.

    The `queue_*` methods describe the parts in face units (the face spans x in
    [-1, 1], y grows downwards) and only queue them; `rasterise` then maps every
    queued point to pixels with one matrix product, because the per-call NumPy
    overhead, not the OpenCV drawing, is what limits the speed at 112 px. Parts
    are queued back to front: each covers the ones queued before it.

    Args:
        size: image side in pixels.
        params: expression parameters (len(_PARAMS),).
        uniforms: uniforms in [0, 1) (_NUM_UNIFORM,), named by `_UNIFORM_LAYOUT`.
    """

    def __init__(self, size, params, uniforms):
        values = uniforms.tolist()
        draws = _Draws._make([values[slot] for slot in _UNIFORM_SLOTS])
        self.draws = draws
        self.expression = dict(zip(_PARAMS, params.tolist()))
        # (points in face units, colour, thickness in pixels or -1 to fill, closed)
        self.shapes = []
        # Pose.
        self.scale = size * (0.25 + 0.08 * draws.face_scale)  # pixels per face unit
        self.centre = (size * (0.5 + 0.12 * (draws.centre[0] - 0.5)),
                       size * (0.47 + 0.12 * (draws.centre[1] - 0.5)))
        # Roll in degrees: Cauchy (scale 5) clipped to 20, so most faces are nearly upright
        # and a few tilt a lot, as in photographs.
        self.roll = np.deg2rad(np.clip(np.tan(np.pi * (0.02 + 0.96 * draws.roll - 0.5)) * 5.0,
                                       -20, 20))
        self.yaw = 0.12 * (draws.yaw - 0.5)  # interior features slide sideways a little
        # Person.
        self.aspect = 1.2 + 0.2 * draws.aspect
        self.jaw = 0.08 + 0.2 * draws.jaw
        red, blue = draws.skin_tint
        self.skin = np.clip(_lerp_colour(_SKIN_TONES, draws.skin)
                            * (0.93 + 0.14 * np.array([red, 0.5, blue])), 0, 255)
        self.dark_skin = self.skin * 0.72
        self.crease = self.skin * 0.78
        self.lip = np.clip(self.skin * np.array([0.92, 0.6, 0.6]) + np.array([25, 0, 5]), 0, 255)
        self.hair = _lerp_colour(_HAIR_COLOURS, draws.hair_colour)
        self.iris = _lerp_colour(_IRIS_COLOURS, draws.iris)
        self.clothes = np.array(draws.clothes) * 220 + 20
        self.has_hair = draws.hair_style > 0.1
        self.long_hair = draws.hair_style > 0.55
        self.hairline = -0.62 * self.aspect - 0.08 * draws.hairline
        self.asymmetry = (draws.asymmetry - 0.5) * 0.04
        self.pull_side = 1.0 if draws.pull_side < 0.5 else -1.0
        self.eye_centres = (-0.4 + self.yaw, 0.4 + self.yaw)
        self.brow_y = _EYE_Y - 0.26 - self.expression["brow_raise"]

    def fill(self, points, colour):
        """Queues a filled polygon."""
        self.shapes.append((points, colour, -1, False))

    def line(self, points, colour, width, closed=False):
        """Queues a polyline `width` face units wide (at least one pixel)."""
        self.shapes.append((points, colour, max(1, int(width * self.scale + 0.5)), closed))

    def rasterise(self, image):
        """Draws the queued shapes on `image` (uint8, in place), in queue order."""
        c, s = np.cos(self.roll), np.sin(self.roll)
        to_pixels = self.scale * _ONE * np.array([[c, s], [-s, c]])
        points = [np.asarray(shape[0], np.float64) for shape in self.shapes]
        ends = np.cumsum([len(p) for p in points])
        pixels = (np.concatenate(points) @ to_pixels
                  + np.asarray(self.centre) * _ONE).astype(np.int32)
        start = 0
        for (_, colour, thickness, closed), end in zip(self.shapes, ends):
            polygon = [pixels[start:end]]
            start = end
            colour = (float(colour[0]), float(colour[1]), float(colour[2]))
            if thickness < 0:
                cv2.fillPoly(image, polygon, colour, cv2.LINE_AA, _SHIFT)
            else:
                cv2.polylines(image, polygon, closed, colour, thickness, cv2.LINE_AA, _SHIFT)

    def queue_head(self):
        """Clothes, neck, hair behind the head, ears and the face outline."""
        fill, skin, hair, aspect = self.fill, self.skin, self.hair, self.aspect
        fill(_ellipse(0, 2.55, 1.9, 1.0), self.clothes)
        fill([[-0.4, 0.8], [0.4, 0.8], [0.47, 1.9], [-0.47, 1.9]], self.dark_skin * 1.1)
        if self.long_hair:  # falls behind the head and shoulders
            fill(np.concatenate([[[-1.12, -0.3]], _ellipse(0, 0.75, 1.2, 0.75)[_LOWER_HALF],
                                 [[1.12, -0.3]]]), hair)
        if self.has_hair:
            fill(_ellipse(0, -0.3 * aspect, 1.1, aspect * 1.02), hair)
        fill(_ellipse(-0.98, 0.0, 0.14, 0.24), skin * 0.9)
        fill(_ellipse(0.98, 0.0, 0.14, 0.24), skin * 0.9)
        outline_x = _FACE_X * np.where(_FACE_Y > 0, 1.0 - self.jaw * _FACE_Y**2, 1.0)
        fill(np.column_stack([outline_x, _FACE_Y * aspect]), skin)

    def queue_hair_cap(self):
        """Hair over the top of the head, down to the hairline (none on a bald head)."""
        if self.has_hair:
            cap = _UPPER_ARC * (1.03, self.aspect * 1.03) - (0, 0.02)
            hairline = np.column_stack([_XS[::-1] * 0.98, self.hairline + 0.25 * _XS**2])
            self.fill(np.concatenate([cap, hairline]), self.hair)

    def queue_cheeks(self):
        """Raised, flushed cheeks, as a smile pushes them up."""
        cheek = self.expression["cheek"]
        if cheek > 0.15:
            flush = np.clip(self.skin + np.array([30, -5, -5]) * min(cheek, 1.2), 0, 255)
            for x in (-0.47, 0.47):
                self.fill(_ellipse(x + self.yaw, 0.2 - 0.04 * cheek, 0.2, 0.13), flush)

    def queue_eyes(self):
        """Both eyes; the person's asymmetry opens one a little more than the other."""
        gaze = (self.draws.gaze - 0.5) * 0.06
        for sx, cx in zip((-1, 1), self.eye_centres):
            self._queue_eye(cx, self.expression["eye_open"] * (1 + sx * self.asymmetry * 2), gaze)

    def _queue_eye(self, cx, opening, gaze):
        """One eye: the white between the lids, iris and pupil, and the lid lines.

        Args:
            cx: abscissa of the eye's centre.
            opening: eyelid opening, 1 = relaxed.
            gaze: sideways shift of the iris.
        """
        lower_lid = self.expression["lower_lid"]
        xs = _XS * 0.19 + cx
        upper = _EYE_Y - 0.1 * opening * _EYE_UP
        lower = (_EYE_Y + (0.065 * opening - 0.045 * lower_lid) * _EYE_LOW
                 - 0.02 * lower_lid * _PROF)
        lower = np.maximum(lower, upper + 0.004)  # a raised lower lid never crosses the upper
        white = np.concatenate([np.column_stack([xs, upper]), np.column_stack([xs, lower])[::-1]])
        self.fill(white, (236, 236, 232))
        # Iris and pupil: circles clipped between the lids (both are convex in x).
        ix, iy = cx + gaze, _EYE_Y + 0.005
        for radius, colour in ((0.085, self.iris), (0.035, (15, 12, 12))):
            circle = _ellipse(ix, iy, radius, radius)
            top = np.interp(circle[:, 0], xs, upper)
            circle[:, 1] = np.clip(circle[:, 1], top,
                                   np.maximum(np.interp(circle[:, 0], xs, lower), top))
            self.fill(circle, colour)
        self.line(np.column_stack([xs, upper]), (30, 22, 20), 0.035)
        self.line(np.column_stack([xs, lower])[1:-1], self.dark_skin, 0.015)
        if lower_lid > 0.35:  # the smile's crescent under the eye
            self.line(np.column_stack([xs, lower + 0.05])[2:-2], self.dark_skin * 1.1, 0.015)

    def queue_brows(self):
        """Both brows: tapered quadratic Bezier curves from the inner to the outer end.

        Returns:
            Height of the higher inner end, where the glabella lines start.
        """
        p = self.expression
        inner = p["brow_inner"]
        inner_ys = []
        for sx in (-1, 1):
            x0 = sx * (0.13 + p["brow_gap"]) + self.yaw
            x2 = sx * 0.7 + self.yaw
            base = self.brow_y + sx * self.asymmetry
            y0 = base - inner + 0.02
            y1 = base - 0.045 - p["brow_arch"] + 0.3 * min(inner, 0.0)
            y2 = base + 0.03
            inner_ys.append(y0)
            # The control point puts the curve's middle at height y1.
            bx = _B0 * x0 + _B1 * (x0 + x2) / 2 + _B2 * x2
            by = _B0 * y0 + _B1 * (2 * y1 - (y0 + y2) / 2) + _B2 * y2
            self.fill(np.concatenate([np.column_stack([bx, by - _BROW_HALF]),
                                      np.column_stack([bx, by + _BROW_HALF])[::-1]]),
                      self.hair * 0.8)
        return min(inner_ys)

    def queue_creases(self, inner_brow_y):
        """Forehead lines and the vertical glabella lines between the brows.

        Args:
            inner_brow_y: height of the higher inner brow end.
        """
        p, yaw, crease = self.expression, self.yaw, self.crease
        forehead, inner = p["forehead"], p["brow_inner"]
        if forehead > 0.3:
            central = inner > 0.07  # sad/fear: short central lines bent up in the middle
            width = 0.25 if central else 0.5
            bend = 0.04 - (1.5 * inner if central else 0.0)
            for k in range(3 if forehead > 0.7 else 2):
                y = self.brow_y - 0.19 - 0.09 * k
                self.line(np.column_stack([_XS * width + yaw, y + bend * _XS**2]), crease, 0.02)
        if p["glabella"] > 0.3:
            top = inner_brow_y - 0.06
            self.line([[-0.04 + yaw, top], [-0.055 + yaw, top + 0.13]], crease, 0.02)
            self.line([[0.04 + yaw, top], [0.055 + yaw, top + 0.13]], crease, 0.02)

    def queue_nose(self):
        """Bridge, nostrils, the base line, and wrinkles across the bridge (disgust)."""
        fill, line, yaw = self.fill, self.line, self.yaw
        wrinkle = self.expression["nose_wrinkle"]
        flare = 1.0 + 0.4 * wrinkle  # a wrinkled nose flares its nostrils
        line([[-0.08 + yaw, 0.0], [-0.1 + yaw, 0.28]], self.skin * 0.86, 0.015)
        nostril_y = 0.36 - 0.03 * wrinkle
        fill(_ellipse(-0.075 * flare + yaw, nostril_y, 0.04 * flare, 0.022), self.dark_skin * 0.8)
        fill(_ellipse(0.075 * flare + yaw, nostril_y, 0.04 * flare, 0.022), self.dark_skin * 0.8)
        line([[-0.13 * flare + yaw, 0.33], [-0.05 + yaw, 0.395], [0.05 + yaw, 0.395],
              [0.13 * flare + yaw, 0.33]], self.dark_skin, 0.02)
        if wrinkle > 0.35:
            for k in range(3):
                y = 0.02 + 0.06 * k
                line([[-0.12 + yaw, y + 0.02], [yaw, y], [0.12 + yaw, y + 0.02]],
                     self.crease * 0.95, 0.02)

    def queue_mouth(self):
        """Mouth: a centre line bent by the corners, an opening, lips around it.

        The nasolabial folds and a moustache are queued before the opening and the
        lips, which cover them.
        """
        p, side = self.expression, self.pull_side
        centre_y = 0.64 + 0.04 * (self.draws.mouth_y - 0.5)
        half_width = 0.32 * p["mouth_width"]
        xs = _XS * half_width + self.yaw
        line_y = (centre_y - p["mouth_curve"] * _XS**2
                  - p["smirk"] * np.maximum(side * _XS, 0) ** 2)
        # A round mouth (surprise) opens almost as much at the corners as in the middle.
        opening = p["mouth_open"] * _PROF ** (1 - 0.5 * min(p["mouth_round"], 1.0))
        snarl = p["snarl"] * np.exp(-(((_XS - side * 0.35) / 0.4) ** 2))
        inner_top = line_y - 0.4 * opening - snarl
        inner_bottom = line_y + 0.6 * opening
        outer_top = inner_top - 0.065 * p["lip_press"] * _TAPER - 0.3 * snarl
        outer_bottom = inner_bottom + 0.085 * p["lip_press"] * _TAPER
        self._queue_nasolabial_folds(half_width, line_y[0])
        if self.draws.moustache < 0.08:
            self.fill(np.concatenate([np.column_stack([xs * 1.15, outer_top - 0.02]),
                                      np.column_stack([xs * 1.1, outer_top - 0.11])[::-1]]),
                      self.hair)
        self._queue_lips(xs, inner_top, inner_bottom, outer_top, outer_bottom)

    def _queue_nasolabial_folds(self, mouth_half_width, corner_y):
        """The folds from beside the nostrils to beyond the mouth corners.

        A smirk deepens only the fold on its own side.

        Args:
            mouth_half_width: half the mouth's width in face units.
            corner_y: height of the mouth corners.
        """
        p, yaw = self.expression, self.yaw
        nasolabial = p["nasolabial"]
        if nasolabial <= 0.3:
            return
        colour = self.skin * (1 - 0.18 * min(nasolabial, 1.2))
        for sx in (-1, 1):
            if p["smirk"] > 0.05 and sx != self.pull_side:
                continue
            end = (sx * (mouth_half_width + 0.07) + yaw, corner_y + 0.05)
            start = (sx * 0.17 + yaw, 0.32)
            mid = (sx * (max(mouth_half_width, 0.2) + 0.12) + yaw, (start[1] + end[1]) / 2 - 0.02)
            self.line([start, mid, end], colour, 0.025)

    def _queue_lips(self, xs, inner_top, inner_bottom, outer_top, outer_bottom):
        """The opening with the upper teeth, both lips, and the lines between them.

        Args:
            xs: abscissae of the contours (11,).
            inner_top, inner_bottom: heights of the opening's edges along `xs`.
            outer_top, outer_bottom: heights of the lips' outer edges along `xs`.
        """
        teeth = self.expression["teeth"]
        gap = inner_bottom - inner_top
        is_open = gap.max() > 0.015
        top_contour = np.column_stack([xs, inner_top])
        if is_open:
            self.fill(np.concatenate([top_contour, np.column_stack([xs, inner_bottom])[::-1]]),
                      (70, 25, 30))
            if teeth > 0.3:
                teeth_bottom = inner_top + np.minimum(gap, 0.09 * min(teeth, 1.0) + 0.02)
                self.fill(np.concatenate([top_contour, np.column_stack([xs, teeth_bottom])[::-1]]),
                          (240, 238, 225))
        self.fill(np.concatenate([np.column_stack([xs, outer_top]), top_contour[::-1]]), self.lip)
        self.fill(np.concatenate([np.column_stack([xs, inner_bottom]),
                                  np.column_stack([xs, outer_bottom])[::-1]]), self.lip * 1.06)
        self.line(top_contour, self.lip * 0.55, 0.018)
        if is_open:
            self.line(np.column_stack([xs, inner_bottom]), self.lip * 0.55, 0.012)

    def queue_accessories(self):
        """A fringe down to just above the brows and glasses, each on a fifth of the faces."""
        draws, hairline = self.draws, self.hairline
        if self.has_hair and draws.fringe < 0.2:
            depth = self.brow_y - 0.1 - 0.1 * draws.fringe_depth
            self.fill([[-0.95, hairline - 0.1], [0.95, hairline - 0.1], [0.7, depth + 0.05],
                       [0.1, depth], [-0.5, depth + 0.03], [-0.9, hairline + 0.2]], self.hair)
        if draws.glasses < 0.2:
            self._queue_glasses()

    def _queue_glasses(self):
        """Round or rectangular rims, the temple arms and the bridge."""
        frame = (20, 20, 20) if self.draws.frame_colour < 0.6 else (170, 160, 120)
        for sx, cx in zip((-1, 1), self.eye_centres):
            if self.draws.frame_shape < 0.5:
                rim = _ellipse(cx, _EYE_Y, 0.25, 0.2)
            else:
                rim = [[cx - 0.26, _EYE_Y - 0.17], [cx + 0.26, _EYE_Y - 0.17],
                       [cx + 0.24, _EYE_Y + 0.16], [cx - 0.24, _EYE_Y + 0.16]]
            self.line(rim, frame, 0.03, closed=True)
            self.line([[cx + sx * 0.25, _EYE_Y - 0.08], [sx * 0.98, _EYE_Y - 0.1]], frame, 0.03)
        left, right = self.eye_centres
        self.line([[left + 0.25, _EYE_Y - 0.05], [right - 0.25, _EYE_Y - 0.05]], frame, 0.03)

    def queue_occluder(self):
        """On a tenth of the faces, a hand or a plain object over one side of the face."""
        draws = self.draws
        if draws.occluder >= 0.1:
            return
        ox = (0.55 + 0.4 * draws.occluder_x) * (1 if draws.occluder_side < 0.5 else -1)
        oy = 0.25 + 0.8 * draws.occluder_y
        if draws.occluder_kind < 0.5:  # a hand: a skin-coloured blob with finger lines
            self.fill(_ellipse(ox, oy, 0.32, 0.42), self.skin * 0.97)
            for k in range(3):
                y = oy - 0.2 + 0.13 * k
                self.line([[ox - 0.2, y], [ox + 0.2, y]], self.dark_skin, 0.015)
        else:
            self.fill([[ox - 0.3, oy - 0.35], [ox + 0.3, oy - 0.35], [ox + 0.3, oy + 0.45],
                       [ox - 0.3, oy + 0.45]], np.array(draws.occluder_colour) * 255)


class _Renderer:
    """Draws faces at one image size; holds the size-dependent precomputations.

    Args:
        size: image side in pixels.
        noise_seed: seed of the bank of sensor noise that the faces read from.
    """

    def __init__(self, size, noise_seed):
        self.size = size
        grid = np.linspace(-1.0, 1.0, size, dtype=np.float32)
        self.gx, self.gy = np.meshgrid(grid, grid)
        # A bank of Gaussian noise; each face reads a random window of it, which is much
        # cheaper than drawing fresh normals per face.
        noise_rng = np.random.default_rng(noise_seed)
        self.noise = noise_rng.standard_normal((2 * size, 2 * size, 3)).astype(np.float32)

    def draw(self, params, uniforms, clutter):
        """One face.

        Args:
            params: expression parameters (len(_PARAMS),).
            uniforms: uniforms in [0, 1) for the person, pose and nuisances
                (_NUM_UNIFORM,), named by `_UNIFORM_LAYOUT`.
            clutter: uniforms (4, 8) for up to 4 background shapes.

        Returns:
            uint8 RGB image (size, size, 3).
        """
        face = _Face(self.size, params, uniforms)
        image = self._background(face.draws, clutter)
        face.queue_head()
        face.queue_hair_cap()
        face.queue_cheeks()
        face.queue_eyes()
        inner_brow_y = face.queue_brows()
        face.queue_creases(inner_brow_y)
        face.queue_nose()
        face.queue_mouth()
        face.queue_accessories()
        face.queue_occluder()
        face.rasterise(image)
        return self._photometric(image, face.draws)

    def _background(self, draws, clutter):
        """A smooth colour field with up to 4 clutter shapes on it.

        2x2 brightness cells under one tint and colour offset give indoor- and
        outdoor-like scenes without drawing a texture per face.

        Args:
            draws: the face's `_Draws`.
            clutter: uniforms (4, 8), one row per clutter shape.

        Returns:
            uint8 RGB image (size, size, 3).
        """
        size = self.size
        coarse = ((np.array(draws.background).reshape(2, 2, 1) * 190 + 40)
                  * (np.array(draws.tint) * 0.6 + 0.6)
                  + (np.array(draws.background_shift) - 0.5) * 40)
        image = cv2.resize(np.clip(coarse, 0, 255).astype(np.uint8), (size, size),
                           interpolation=cv2.INTER_LINEAR)
        for shape in clutter[:int(draws.clutter_count * 5)]:
            self._draw_clutter(image, shape)
        return image

    def _draw_clutter(self, image, shape):
        """A filled box, a disc or a thick line, drawn on `image` in place.

        Args:
            image: uint8 RGB image.
            shape: 8 uniforms: two points (x0, y0, x1, y1), RGB colour, kind.
        """
        x0, y0, x1, y1 = (int(v) for v in shape[:4] * self.size)
        colour = (float(shape[4] * 255), float(shape[5] * 255), float(shape[6] * 255))
        kind = int(shape[7] * 3)
        if kind == 0:
            cv2.rectangle(image, (x0, y0), (x1, y1), colour, -1)
        elif kind == 1:
            cv2.circle(image, (x0, y0), abs(x1 - x0) // 3 + 1, colour, -1, cv2.LINE_AA)
        else:
            cv2.line(image, (x0, y0), (x1, y1), colour, max(1, self.size // 30), cv2.LINE_AA)

    def _photometric(self, image, draws):
        """Lighting gradient, colour cast and sensor noise, then maybe blur and JPEG.

        Args:
            image: uint8 RGB image of the drawn face.
            draws: the face's `_Draws`.

        Returns:
            uint8 RGB image (size, size, 3).
        """
        size = self.size
        angle = 2 * np.pi * draws.light_angle
        strength = 0.45 * draws.light_strength
        gain = (self.gx * np.float32(strength * np.cos(angle))
                + self.gy * np.float32(strength * np.sin(angle)))
        gain += np.float32(1.0)
        cast = (0.75 + 0.45 * draws.exposure) * (1 + 0.12 * (np.array(draws.cast) - 0.5))
        ox, oy = int(draws.noise_offset[0] * size), int(draws.noise_offset[1] * size)
        # OpenCV's SIMD loops do gain, noise and the saturating cast back to uint8 in a
        # few passes (half the time of the NumPy expression).
        out = cv2.multiply(image, cv2.merge([gain * np.float32(c) for c in cast]), dtype=cv2.CV_32F)
        cv2.scaleAdd(self.noise[oy:oy + size, ox:ox + size], 10.0 * draws.noise_level ** 2, out,
                     dst=out)
        image = cv2.convertScaleAbs(np.maximum(out, 0, out=out))
        if draws.blur < 0.3:  # the blur's width scales with the image, as seen at 112 px
            image = cv2.GaussianBlur(image, (0, 0), 0.3 + draws.blur * 3.0 * size / 112)
        if draws.jpeg < 0.5:
            quality = int(25 + 65 * draws.jpeg_quality)
            _, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        return image


def generate(n, image_size=112, seed=0, class_prior=None, labels=None):
    """Draws `n` SynthFER faces.

    Args:
        n: number of faces.
        image_size: side of the square RGB images in pixels (>= 24).
        seed: integer (or sequence of integers, as NumPy's `default_rng`
            takes); the same seed gives the same images and labels.
        class_prior: 7 weights in canonical order for drawing labels (8 with
            Contempt); `None` uses RAF-DB's class frequencies.
        labels: optional int array (n,) of canonical labels to draw instead of
            sampling them (values 0..7; 7 draws a one-sided contempt smirk).

    Returns:
        `(images, labels)`: uint8 array (n, image_size, image_size, 3) RGB and
        int32 array (n,) of canonical labels.

    Example:

    >>> images, labels = generate(8, image_size=64, seed=1)
    >>> images.shape, images.dtype, labels.dtype
    ((8, 64, 64, 3), dtype('uint8'), dtype('int32'))
    """
    n = int(n)
    image_size = int(image_size)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}.")
    if image_size < 24:
        raise ValueError(f"image_size must be at least 24 pixels, got {image_size}.")
    rng = np.random.default_rng(seed)
    if labels is None:
        labels = _sample_labels(rng, n, class_prior)
    else:
        labels = np.asarray(labels, np.int32).reshape(-1)
        if len(labels) != n or labels.min(initial=0) < 0 or labels.max(initial=0) > CONTEMPT:
            raise ValueError(f"labels must be {n} canonical indices in 0..{CONTEMPT}.")
    params = _sample_params(rng, labels)
    uniforms = rng.random((n, _NUM_UNIFORM))
    clutter = rng.random((n, 4, 8))
    renderer = _Renderer(image_size, noise_seed=int(rng.integers(2**63)))
    images = np.empty((n, image_size, image_size, 3), np.uint8)
    # OpenCV's thread pool only adds overhead on images this small (about 30 % slower).
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for i in range(n):
            images[i] = renderer.draw(params[i], uniforms[i], clutter[i])
    finally:
        cv2.setNumThreads(threads)
    return images, labels


# --------------------------------------------------------------------------------------
# Writers for the real datasets' on-disk layouts.


def _inverse(mapping):
    return {canonical: code for code, canonical in mapping.items()}


def _save(path, image_rgb, quality=95):
    if os.path.dirname(path):  # "sheet.png" lies in the current folder, which is there
        os.makedirs(os.path.dirname(path), exist_ok=True)
    ext = os.path.splitext(path)[1].lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(image_rgb[..., ::-1]), params)
    if not ok:
        raise OSError(f"Could not encode {path}.")
    buf.tofile(path)


def _grey48(images):
    out = np.empty((len(images), FER_IMAGE_SIZE, FER_IMAGE_SIZE), np.uint8)
    for i, image in enumerate(images):
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        out[i] = cv2.resize(grey, (FER_IMAGE_SIZE, FER_IMAGE_SIZE), interpolation=cv2.INTER_AREA)
    return out


def _pixels(grey):
    return " ".join(map(str, grey.reshape(-1).tolist()))


def write_dataset(out_dir, layout="rafdb", n=1000, image_size=112, seed=0, test_fraction=0.2,
                  aligned=True, class_prior=None):
    """Writes `n` SynthFER faces to disk in one of the real datasets' layouts.

    The faces are `generate(n, image_size, seed)`; the first
    `n - round(n * test_fraction)` form the training split and the rest the
    test split, in generation order, so a reader's labels can be checked
    against `generate`'s.

    Layouts (see docs/DESIGN.md for the formats):
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
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}.")
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}.")
    os.makedirs(out_dir, exist_ok=True)
    size = FER_IMAGE_SIZE if layout in ("fer2013", "ferplus") else image_size
    images, labels = generate(n, image_size=size, seed=seed, class_prior=class_prior)
    n_test = int(round(n * test_fraction))
    n_train = n - n_test
    splits = {"train": (images[:n_train], labels[:n_train]),
              "test": (images[n_train:], labels[n_train:])}
    writer = {"rafdb": _write_rafdb, "affectnet": _write_affectnet, "fer2013": _write_fer,
              "ferplus": _write_fer, "preprocessed": _write_preprocessed,
              "folder": _write_folder}[layout]
    writer(out_dir, splits, seed=seed, layout=layout, aligned=aligned, image_size=size)
    return out_dir


def _photo_around(face, rng):
    """`face` pasted at a random place into a larger, non-square photo of smooth colours.

    Returns:
        `(photo, (x, y))`: uint8 RGB and the face's top-left corner in it.
    """
    side = face.shape[0]
    width, height = (int(side * rng.uniform(1.25, 1.8)) for _ in range(2))
    photo = cv2.resize(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), (width, height),
                       interpolation=cv2.INTER_CUBIC)
    x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
    photo[y:y + side, x:x + side] = face
    return photo, (x, y)


def _write_rafdb(out_dir, splits, aligned, seed, **_):
    to_code = _inverse(config.RAFDB_TO_CANONICAL)
    sub = "aligned" if aligned else "original"
    rng = np.random.default_rng((int(seed), 223))  # the photos around the faces
    lines = []
    for split, width in (("train", 5), ("test", 4)):
        for i, (image, label) in enumerate(zip(*splits[split])):
            name = f"{split}_{i + 1:0{width}d}"
            lines.append(f"{name}.jpg {to_code[int(label)]}\n")
            if aligned:
                _save(os.path.join(out_dir, "Image", sub, f"{name}_aligned.jpg"), image)
                continue
            # An original photo: the face somewhere in a larger picture, and its box as RAF-DB
            # ships it (Annotation/boundingbox/NAME_boundingbox.txt: x1 y1 x2 y2 in pixels).
            photo, (x, y) = _photo_around(image, rng)
            _save(os.path.join(out_dir, "Image", sub, f"{name}.jpg"), photo)
            side = image.shape[0]
            box_dir = os.path.join(out_dir, "Annotation", "boundingbox")
            os.makedirs(box_dir, exist_ok=True)
            with open(os.path.join(box_dir, f"{name}_boundingbox.txt"), "w") as f:
                f.write(f"{x:.2f} {y:.2f} {x + side:.2f} {y + side:.2f}\n")
    os.makedirs(os.path.join(out_dir, "EmoLabel"), exist_ok=True)
    with open(os.path.join(out_dir, "EmoLabel", "list_patition_label.txt"), "w") as f:
        f.writelines(lines)


_AFFECTNET_COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                      "facial_landmarks", "expression", "valence", "arousal")
# Typical valence/arousal per canonical class (+ Contempt), for plausible CSV rows.
_VALENCE_AROUSAL = ((0.0, 0.0), (0.7, 0.3), (-0.6, -0.2), (0.2, 0.7), (-0.5, 0.7), (-0.6, 0.4),
                    (-0.6, 0.6), (-0.4, 0.2))


def _write_affectnet(out_dir, splits, seed, image_size, **_):
    rng = np.random.default_rng((int(seed), 211))
    for split, csv_name in (("train", "training.csv"), ("test", "validation.csv")):
        images, labels = splits[split]
        n_contempt = max(1, int(round(0.05 * len(labels))))
        contempt, _ = generate(n_contempt, image_size, seed=(int(seed), 1 + (split == "test")),
                               labels=np.full(n_contempt, CONTEMPT))
        others, _ = generate(3, image_size, seed=(int(seed), 3 + (split == "test")))
        rows_images = list(images) + list(contempt) + list(others)
        codes = [int(c) for c in labels] + [CONTEMPT] * n_contempt + [8, 9, 10]
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
            _save(os.path.join(out_dir, "Manually_Annotated_Images", rel), photo)
            marks = rng.uniform(0, image_size, 136) + np.tile([x, y], 68)
            valence, arousal = (-2.0, -2.0) if code > CONTEMPT else _VALENCE_AROUSAL[code]
            rows.append([rel, int(x), int(y), image_size, image_size,
                         ";".join(f"{v:.2f}" for v in marks), code,
                         round(valence + rng.normal(0, 0.1), 4) if code <= CONTEMPT else valence,
                         round(arousal + rng.normal(0, 0.1), 4) if code <= CONTEMPT else arousal])
        with open(os.path.join(out_dir, csv_name), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(_AFFECTNET_COLUMNS)
            writer.writerows(rows)


def _ferplus_votes(rng, true_column):
    """10 votes that give `true_column` a strict majority."""
    votes = np.zeros(len(config.FERPLUS_VOTE_COLUMNS), np.int64)
    top = int(rng.integers(6, 11))
    votes[true_column] = top
    for _ in range(10 - top):
        votes[rng.choice([c for c in range(8) if c != true_column])] += 1
    return votes


def _write_fer(out_dir, splits, seed, layout, **_):
    to_code = _inverse(config.FER2013_TO_CANONICAL)
    columns = list(config.FERPLUS_VOTE_COLUMNS)
    ferplus_column = {canonical: columns.index(name)
                      for name, canonical in config.FERPLUS_TO_CANONICAL.items()}
    rng = np.random.default_rng((int(seed), 307))
    n_test = len(splits["test"][1])
    groups = [("Training", *splits["train"]),
              ("PublicTest", splits["test"][0][: n_test // 2], splits["test"][1][: n_test // 2]),
              ("PrivateTest", splits["test"][0][n_test // 2:], splits["test"][1][n_test // 2:])]
    fer_rows, plus_rows = [], []
    for g, (usage, images, labels) in enumerate(groups):
        greys = list(_grey48(images))
        votes = [_ferplus_votes(rng, ferplus_column[int(c)]) for c in labels]
        names = [True] * len(labels)
        emotions = [to_code[int(c)] for c in labels]
        if layout == "ferplus":
            extra_images, _ = generate(5, FER_IMAGE_SIZE, seed=(int(seed), 10 + g),
                                       labels=[0, 0, 0, 0, CONTEMPT])
            greys += list(_grey48(extra_images))
            tie = np.zeros(10, np.int64)
            tie[[0, 1]] = 4
            tie[2] = 2
            unknown = np.zeros(10, np.int64)
            unknown[[8, 0, 1]] = 6, 2, 2
            no_face = np.zeros(10, np.int64)
            no_face[[9, 3]] = 8, 2
            excluded = _ferplus_votes(rng, 0)
            contempt = np.zeros(10, np.int64)
            contempt[[7, 0]] = 7, 3
            votes += [tie, unknown, no_face, excluded, contempt]
            names += [True, True, True, False, True]
            emotions += [6, 6, 6, 6, 6]  # FER-2013's own label of these rows does not matter
        for grey, emotion, vote, named in zip(greys, emotions, votes, names):
            index = len(fer_rows)
            fer_rows.append([emotion, _pixels(grey), usage])
            plus_rows.append([usage, f"fer{index:07d}.png" if named else ""] + vote.tolist())
    with open(os.path.join(out_dir, "fer2013.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["emotion", "pixels", "Usage"])
        writer.writerows(fer_rows)
    if layout == "ferplus":
        with open(os.path.join(out_dir, "fer2013new.csv"), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["Usage", "Image name"] + columns)
            writer.writerows(plus_rows)


def _write_preprocessed(out_dir, splits, **_):
    for split, folder in (("train", "train_set"), ("test", "test_set")):
        os.makedirs(os.path.join(out_dir, folder, "annotations"), exist_ok=True)
        for i, (image, label) in enumerate(zip(*splits[split])):
            name = f"{split}_{i:06d}"
            _save(os.path.join(out_dir, folder, "images", name + ".jpg"), image)
            np.save(os.path.join(out_dir, folder, "annotations", name + "_exp.npy"),
                    np.array(int(label)))


def _write_folder(out_dir, splits, **_):
    for split in ("train", "test"):
        for i, (image, label) in enumerate(zip(*splits[split])):
            _save(os.path.join(out_dir, split, config.EXPRESSIONS_8[int(label)], f"{i:06d}.jpg"),
                  image)


# --------------------------------------------------------------------------------------
# Preview and CLI.


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
    for c, name in enumerate(config.EXPRESSIONS_7):
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
    """
    _save(path, contact_sheet(per_class, image_size, seed))
