"""SynthFER's drawing engine: one face from its parameters and draws, in OpenCV.

`generate` samples labels and parameters (`adcorre.data.synth.params`) and draws each face:
`_Face` describes its parts in face units and rasterises them in one pass, `_Renderer` adds the
background, the lighting, the noise, the blur and the JPEG artefacts. Everything is
deterministic given the seed (NumPy's PCG64 drives all choices; the OpenCV calls are pure
functions).

This module imports only NumPy, OpenCV, `errors` and `data.synth.params`.
"""

import cv2
import numpy as np

from adcorre.data.synth.params import (
    CONTEMPT,
    HAIR_COLOURS,
    IRIS_COLOURS,
    NUM_UNIFORM,
    PARAMS,
    SKIN_TONES,
    UNIFORM_SLOTS,
    Draws,
    sample_labels,
    sample_params,
)
from adcorre.errors import SettingError


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
        params: expression parameters (len(PARAMS),).
        uniforms: uniforms in [0, 1) (NUM_UNIFORM,), named by `UNIFORM_LAYOUT`.
    """

    def __init__(self, size, params, uniforms):
        values = uniforms.tolist()
        draws = Draws._make([values[slot] for slot in UNIFORM_SLOTS])
        self.draws = draws
        self.expression = dict(zip(PARAMS, params.tolist()))
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
        self.skin = np.clip(_lerp_colour(SKIN_TONES, draws.skin)
                            * (0.93 + 0.14 * np.array([red, 0.5, blue])), 0, 255)
        self.dark_skin = self.skin * 0.72
        self.crease = self.skin * 0.78
        self.lip = np.clip(self.skin * np.array([0.92, 0.6, 0.6]) + np.array([25, 0, 5]), 0, 255)
        self.hair = _lerp_colour(HAIR_COLOURS, draws.hair_colour)
        self.iris = _lerp_colour(IRIS_COLOURS, draws.iris)
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
            params: expression parameters (len(PARAMS),).
            uniforms: uniforms in [0, 1) for the person, pose and nuisances
                (NUM_UNIFORM,), named by `UNIFORM_LAYOUT`.
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
            draws: the face's `Draws`.
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
            draws: the face's `Draws`.

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
        raise SettingError(f"n must be >= 0, got {n}.")
    if image_size < 24:
        raise SettingError(f"image_size must be at least 24 pixels, got {image_size}.")
    rng = np.random.default_rng(seed)
    if labels is None:
        labels = sample_labels(rng, n, class_prior)
    else:
        labels = np.asarray(labels, np.int32).reshape(-1)
        if len(labels) != n or labels.min(initial=0) < 0 or labels.max(initial=0) > CONTEMPT:
            raise SettingError(f"labels must be {n} canonical indices in 0..{CONTEMPT}.")
    params = sample_params(rng, labels)
    uniforms = rng.random((n, NUM_UNIFORM))
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

