"""People across frames: one id per person (`PersonTracker`), their probabilities over time
(`ProbabilitySmoother`).

A video's detector finds faces frame by frame, largest first, so `face 0` jumps from one person
to another whenever their sizes swap. `PersonTracker` gives each face a `person` id that follows
it: two people crossing keep theirs, and a face hidden (or missed by the detector) for up to
`memory_s` seconds gets its own id back when it shows again.

How a face finds its person, frame after frame (a small tracker of our own, no dependency
beyond SciPy's assignment solver):

- **Motion.** Each person moves at constant velocity from where it was last seen; a face
  matches only near that prediction: within `0.6 + 2.5 x seconds since` face widths (the
  allowance grows while a person is unseen), and at 0.55-1.8 times its width (from 0.3 times
  for a person unseen in the last frame: a face coming out from behind another shows a part).
- **Appearance.** Each person carries a colour histogram (hue x saturation) of its face box,
  updated only from boxes that overlap no other face (no borrowed pixels while two cross).
  A face is taken for a person only when it looks like it (Bhattacharyya coefficient at least
  0.6: the same face from frame to frame scores above 0.85, also partly hidden; two different
  people of the sample portraits 0.45-0.8), and between two people whose boxes overlap it
  ranks the pairs where motion alone cannot.
- **Two stages.** Faces go first to the people seen in the previous analysed frame, then the
  faces left to the people unseen for longer (DeepSORT's matching cascade, ByteTrack's second
  stage): a person behind another cannot take the visible one's face. Each stage is one
  optimal assignment (Hungarian, `scipy.optimize.linear_sum_assignment`) of motion distance
  plus appearance distance.
- **Forgetting.** A person unseen for more than `memory_s` (default 1.5 s) is forgotten; a face
  found after that is a new person with a new id. Ids count from 0 in order of first
  appearance and are never reused within a run.

The expression model's own embeddings are not used for appearance: Ad-Corre trains them to
gather faces by expression, across identities, the opposite of telling two people apart.

Example:
>>> tracker = PersonTracker()
>>> frame = np.zeros((240, 320, 3), np.uint8)
>>> tracker.update(0.0, frame, [(10, 10, 60, 60), (200, 20, 60, 60)])
[0, 1]
>>> tracker.update(0.04, frame, [(203, 20, 60, 60), (12, 11, 60, 60)])
[1, 0]
"""

import collections
import math

import cv2
import numpy as np

# A person unseen for longer than this is forgotten (`PersonTracker(memory_s=...)`).
DEFAULT_MEMORY_S = 1.5
# How far from its predicted place a person's face may be, in face widths: a fixed part for
# the detector's jitter, and a part that grows with the time the person has been unseen.
MAX_JUMP_WIDTHS = 0.6
MAX_DRIFT_WIDTHS_PER_S = 2.5
# How much a face's width may change between two sightings (a partly hidden face's box is
# smaller, one coming closer grows).
MAX_SIZE_RATIO = 1.8
# A face coming out from behind another shows a part of itself first, and the detector boxes
# that part alone (a box a third of the face's width): for a person unseen in the last analysed
# frame, a box down to this share of its width is its face still (within the motion and
# appearance allowances), so the person keeps its id through the frames it emerges in.
MIN_EMERGING_RATIO = 0.3
# Appearance: hue x saturation bins of the colour histogram, the weight of its distance against
# the motion distance (1 = at the edge of the motion allowance) in the assignment cost, the
# least similarity (Bhattacharyya coefficient) of a face with the person it is taken for, and
# how fast a person's histogram follows a changing look.
HISTOGRAM_BINS = (12, 4)
APPEARANCE_WEIGHT = 2.0
MIN_SIMILARITY = 0.6
APPEARANCE_RATE = 0.2
# Velocity: the least-squares slope of this many last sightings; a box narrower than
# PARTIAL_WIDTH x the person's width (partly hidden) is not one of them. The person's width
# follows each box at WIDTH_RATE (a running mean: one partial box barely changes it).
VELOCITY_SIGHTINGS = 8
PARTIAL_WIDTH = 0.8
WIDTH_RATE = 0.3
_UNMATCHABLE = 1e6
_TIME_TOLERANCE_S = 1e-9


def appearance(picture, box):
    """The colour histogram of a face box (`HISTOGRAM_BINS` of hue x saturation), as the square
    roots of its frequencies: the dot product of two is their Bhattacharyya coefficient (1 for
    the same colours, 0 for none in common).

    Args:
        picture: uint8 RGB (h, w, 3).
        box: `(x, y, w, h)`, cut to the picture.

    Returns:
        float32 vector of unit length (all zeros for a box outside the picture).
    """
    x, y, w, h = (int(round(v)) for v in box)
    height, width = picture.shape[:2]
    region = picture[max(0, y):min(height, y + h), max(0, x):min(width, x + w)]
    bins = HISTOGRAM_BINS[0] * HISTOGRAM_BINS[1]
    if region.size == 0:
        return np.zeros(bins, np.float32)
    hsv = cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_RGB2HSV)
    counts = cv2.calcHist([hsv], [0, 1], None, list(HISTOGRAM_BINS), [0, 180, 0, 256]).ravel()
    return np.sqrt(counts / max(float(counts.sum()), 1.0)).astype(np.float32)


class _Person:
    """What the tracker remembers of one person: where and when it was last seen, its width
    (a running mean), its velocity (the least-squares slope of its last sightings) and look."""

    def __init__(self, person_id, box, time_s, look):
        self.id, self.look = person_id, look
        self.width = float(max(box[2], box[3]))
        self.sightings = collections.deque(maxlen=VELOCITY_SIGHTINGS)
        self.velocity = np.zeros(2)
        self._see(box, time_s)

    def _see(self, box, time_s):
        x, y = box[0] + box[2] / 2.0, box[1] + box[3] / 2.0
        self.centre, self.time_s = np.array([x, y], np.float64), time_s
        # A box much narrower than the face was is a face partly hidden: its centre is off
        # the face's, so it moves the person but does not steer its velocity.
        if max(box[2], box[3]) >= PARTIAL_WIDTH * self.width:
            self.sightings.append((float(time_s), float(x), float(y)))
        # The least-squares slope, in plain floats: a handful of points costs numpy more in
        # calls than in arithmetic.
        count = len(self.sightings)
        if count >= 2:
            mean_t = sum(t for t, _, _ in self.sightings) / count
            mean_x = sum(x for _, x, _ in self.sightings) / count
            mean_y = sum(y for _, _, y in self.sightings) / count
            scale = sum((t - mean_t) ** 2 for t, _, _ in self.sightings)
            if scale > 0:
                self.velocity = np.array([
                    sum((t - mean_t) * (x - mean_x) for t, x, _ in self.sightings) / scale,
                    sum((t - mean_t) * (y - mean_y) for t, _, y in self.sightings) / scale])

    def predicted(self, time_s):
        return self.centre + self.velocity * (time_s - self.time_s)

    def follow(self, box, time_s, look, clear):
        self.width += WIDTH_RATE * (float(max(box[2], box[3])) - self.width)
        self._see(box, time_s)
        if clear:  # a box that overlaps another face holds some of that face's colours
            mixed = (1.0 - APPEARANCE_RATE) * self.look + APPEARANCE_RATE * look
            self.look = mixed / max(float(np.linalg.norm(mixed)), 1e-9)


class PersonTracker:
    """Gives each face of a frame the id of the person it is (see the module docstring).

    Args:
        memory_s: seconds a person unseen is remembered; a face found later is a new person.

    Example: see the module docstring.
    """

    def __init__(self, memory_s=DEFAULT_MEMORY_S):
        if not (isinstance(memory_s, (int, float)) and math.isfinite(memory_s)
                and memory_s >= 0):
            raise ValueError(f"memory_s must be a number of seconds >= 0, got {memory_s!r}.")
        self.memory_s = float(memory_s)
        self.people, self.next_id, self.last_time = [], 0, None

    def update(self, time_s, picture, boxes):
        """The person id of each box of one frame, in the order of `boxes`.

        Args:
            time_s: the frame's time in seconds (frames come in time order).
            picture: the frame, uint8 RGB (the boxes' colours are read from it).
            boxes: `(x, y, w, h)` per face; a None box (the whole frame, no face found) has no
                person and gets None.

        Returns:
            list of int ids (None for None boxes).
        """
        self.people = [p for p in self.people if time_s - p.time_s <= self.memory_s]
        faces = [index for index, box in enumerate(boxes) if box is not None]
        looks = {index: appearance(picture, boxes[index]) for index in faces}
        overlapping = _overlapping([boxes[index] for index in faces])
        clear = {index: not overlapping[row].any() for row, index in enumerate(faces)}
        recent = [p for p in self.people if p.time_s == self.last_time]
        earlier = [p for p in self.people if p.time_s != self.last_time]
        assigned = {}
        for stage, candidates in enumerate((recent, earlier)):
            left = [index for index in faces if index not in assigned]
            pairs = self._assign(candidates, left, boxes, looks, time_s, emerging=stage == 1)
            assigned.update(pairs)
        ids = [None] * len(boxes)
        for index in faces:
            person = assigned.get(index)
            if person is None:
                person = _Person(self.next_id, boxes[index], time_s, looks[index])
                self.next_id += 1
                self.people.append(person)
            else:
                person.follow(boxes[index], time_s, looks[index], clear[index])
            ids[index] = person.id
        self.last_time = time_s
        return ids

    def _assign(self, people, faces, boxes, looks, time_s, emerging=False):
        """`{face index: person}` of the cheapest assignment within the allowances (`emerging`:
        people unseen in the last frame, whose faces may show in part)."""
        if not people or not faces:
            return {}
        from scipy.optimize import linear_sum_assignment

        found = np.array([boxes[index] for index in faces], np.float64)
        centres = found[:, :2] + found[:, 2:] / 2.0
        widths = found[:, 2:].max(axis=1)
        elapsed = np.array([time_s - person.time_s for person in people])
        predicted = np.array([person.predicted(time_s) for person in people])
        person_widths = np.array([person.width for person in people])
        # Rows: faces; columns: people.
        allowance = MAX_JUMP_WIDTHS + MAX_DRIFT_WIDTHS_PER_S * elapsed[None, :]
        distance = np.linalg.norm(centres[:, None, :] - predicted[None, :, :], axis=2) / \
            person_widths[None, :]
        ratio = widths[:, None] / np.maximum(person_widths[None, :], 1e-9)
        similarity = np.array([looks[index] for index in faces]) @ np.array(
            [person.look for person in people]).T
        smallest = MIN_EMERGING_RATIO if emerging else 1 / MAX_SIZE_RATIO
        allowed = ((distance <= allowance) & (ratio >= smallest)
                   & (ratio <= MAX_SIZE_RATIO) & (similarity >= MIN_SIMILARITY))
        cost = np.where(allowed, distance / allowance + APPEARANCE_WEIGHT * (1.0 - similarity),
                        _UNMATCHABLE)
        rows, columns = linear_sum_assignment(cost)
        return {faces[r]: people[c] for r, c in zip(rows, columns) if allowed[r, c]}


def _overlapping(boxes):
    """(n, n) bool: which `(x, y, w, h)` boxes overlap which others (the diagonal False)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    left, top = boxes[:, 0], boxes[:, 1]
    right, bottom = left + boxes[:, 2], top + boxes[:, 3]
    width = np.minimum(right[:, None], right[None, :]) - np.maximum(left[:, None], left[None, :])
    height = np.minimum(bottom[:, None], bottom[None, :]) - np.maximum(top[:, None], top[None, :])
    overlap = (width > 0) & (height > 0)
    np.fill_diagonal(overlap, False)
    return overlap


class ProbabilitySmoother:
    """Each person's class probabilities averaged over the last `seconds` (a moving mean over
    that person's own rows, the current one included: causal, so it serves live views too).

    Args:
        seconds: the window; 0 passes the probabilities through unchanged.

    Example:
    >>> smoother = ProbabilitySmoother(1.0)
    >>> smoother(7, 0.0, np.array([1.0, 0.0])), smoother(7, 0.5, np.array([0.0, 1.0]))
    (array([1., 0.]), array([0.5, 0.5]))
    """

    def __init__(self, seconds):
        if not (isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
                and math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"smooth must be a number of seconds >= 0, got {seconds!r}.")
        self.seconds = float(seconds)
        self.history = collections.defaultdict(collections.deque)

    def __call__(self, person, time_s, probabilities):
        """The mean of `person`'s probabilities over `(time_s - seconds, time_s]`, this row's
        included (`person` may be None: the whole-frame rows are a series of their own)."""
        if self.seconds == 0:
            return probabilities
        history = self.history[person]
        history.append((time_s, np.asarray(probabilities, np.float64)))
        # A row exactly `seconds` old is out, whatever the rounding of frame / fps says.
        edge = time_s - self.seconds + _TIME_TOLERANCE_S
        while history[0][0] <= edge:
            history.popleft()
        # People gone for longer than the window hold nothing any more: forget them, so a long
        # video's memory stays flat.
        for gone in [key for key, rows in self.history.items() if rows[-1][0] <= edge]:
            del self.history[gone]
        return np.mean([p for _, p in history], axis=0)
