"""People across frames (`people.PersonTracker`) and their probabilities over time
(`people.ProbabilitySmoother`), on boxes and frames made here; the videos of real faces that
cross and hide are in test_media_analysis.py."""

import numpy as np
import pytest

from adcorre.inference import people
from adcorre.inference.people import PersonTracker, ProbabilitySmoother
from video_files import sample_pictures


def _frame_with(patches, size=(320, 240)):
    """A grey frame with each `(box, colour)` filled in that colour (RGB)."""
    frame = np.full((size[1], size[0], 3), 100, np.uint8)
    for (x, y, w, h), colour in patches:
        frame[y:y + h, x:x + w] = colour
    return frame


RED, BLUE = (200, 40, 40), (40, 60, 200)


def test_appearance_is_a_unit_histogram_whose_dot_is_the_bhattacharyya_coefficient():
    grace, astronaut = sample_pictures()[:2]
    look = people.appearance(grace, (180, 130, 170, 180))
    assert look.shape == (people.HISTOGRAM_BINS[0] * people.HISTOGRAM_BINS[1],)
    assert np.linalg.norm(look) == pytest.approx(1.0, abs=1e-5)
    # The same face a few pixels off is still itself; another person's face is not.
    assert look @ people.appearance(grace, (184, 133, 170, 180)) > 0.95
    assert look @ people.appearance(astronaut, (170, 60, 110, 120)) < people.MIN_SIMILARITY
    # A box outside the picture has no colour at all.
    assert not people.appearance(grace, (5000, 5000, 10, 10)).any()


def test_two_boxes_that_swap_sizes_keep_their_ids():
    """`face` follows size; `person` follows the person."""
    tracker = PersonTracker()
    ids = []
    for step in range(10):
        red, blue = (20 + 4 * step, 50, 60 - 2 * step, 60 - 2 * step), \
            (200 - 4 * step, 50, 40 + 2 * step, 40 + 2 * step)
        order = [(red, RED), (blue, BLUE)]
        order.sort(key=lambda patch: -patch[0][2])  # largest first, as detectors give them
        frame = _frame_with(order)
        got = tracker.update(step / 25.0, frame, [box for box, _ in order])
        ids.append({colour: person for (_, colour), person in zip(order, got)})
    assert all(found == {RED: 0, BLUE: 1} for found in ids)


def test_a_person_comes_back_within_memory_and_is_new_after_it():
    tracker = PersonTracker(memory_s=1.0)
    box = (100, 80, 50, 50)
    frame = _frame_with([(box, RED)])
    assert tracker.update(0.0, frame, [box]) == [0]
    assert tracker.update(0.9, frame, [box]) == [0]  # unseen for 0.9 s: remembered
    assert tracker.update(2.0, frame, [box]) == [1]  # unseen for 1.1 s: a new person
    assert tracker.update(2.04, frame, [None]) == [None]  # a whole frame has no person


def test_a_face_that_looks_like_nobody_seen_is_a_new_person():
    tracker = PersonTracker()
    box = (100, 80, 50, 50)
    assert tracker.update(0.0, _frame_with([(box, RED)]), [box]) == [0]
    assert tracker.update(0.04, _frame_with([(box, BLUE)]), [box]) == [1]


def test_a_face_too_far_from_where_its_person_was_going_is_a_new_person():
    tracker = PersonTracker()
    frame = _frame_with([((0, 0, 320, 240), RED)])
    assert tracker.update(0.0, frame, [(10, 80, 50, 50)]) == [0]
    assert tracker.update(0.04, frame, [(14, 80, 50, 50)]) == [0]  # moving right, 100 px/s
    # 0.5 s later it should be near x = 64: 200 px away is someone else.
    assert tracker.update(0.54, frame, [(264, 80, 50, 50)]) == [1]


@pytest.mark.parametrize("memory", [-1, float("nan"), "1", None])
def test_memory_must_be_seconds(memory):
    with pytest.raises(ValueError, match="memory_s must be a number of seconds >= 0"):
        PersonTracker(memory_s=memory)


def test_smoother_is_each_persons_mean_over_the_last_seconds():
    """Against a brute-force window mean over the same person's rows."""
    rng = np.random.default_rng(0)
    times = np.sort(rng.uniform(0, 5, 120))
    persons = rng.choice([0, 1, None], size=len(times))
    probabilities = rng.dirichlet(np.ones(7), size=len(times))
    seconds = 0.7
    smoother = ProbabilitySmoother(seconds)
    for row, (time_s, person, scores) in enumerate(zip(times, persons, probabilities)):
        got = smoother(person, time_s, scores)
        window = [i for i in range(row + 1)
                  if persons[i] is person and time_s - seconds + 1e-9 < times[i] <= time_s]
        np.testing.assert_allclose(got, probabilities[window].mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(got.sum(), 1.0)


def test_smoother_forgets_people_gone_longer_than_its_window():
    smoother = ProbabilitySmoother(1.0)
    for step in range(100):
        smoother(step, step * 0.5, np.array([0.5, 0.5]))  # a new person every half second
    assert len(smoother.history) <= 2


def test_no_smoothing_passes_probabilities_through():
    scores = np.array([0.2, 0.8])
    assert ProbabilitySmoother(0)(3, 1.0, scores) is scores


@pytest.mark.parametrize("seconds", [-0.5, float("inf"), "1", True])
def test_smooth_must_be_seconds(seconds):
    with pytest.raises(ValueError, match="smooth must be a number of seconds >= 0"):
        ProbabilitySmoother(seconds)


def test_a_face_emerging_in_part_keeps_its_person_a_face_shrinking_at_once_does_not():
    """A person unseen for a few frames (behind another) shows a part of its face first: a box
    a third of its width, where it was going, is its face. The same box the frame after a whole
    sighting is too small a change of size to be the same face."""
    frame = _frame_with([((0, 0, 320, 240), RED)])
    emerging = PersonTracker()
    assert emerging.update(0.0, frame, [(100, 80, 60, 60)]) == [0]
    for step in range(1, 8):  # hidden for 0.3 s: frames without a face
        assert emerging.update(step * 0.04, frame, []) == []
    assert emerging.update(0.32, frame, [(110, 100, 20, 20)]) == [0]
    sudden = PersonTracker()
    assert sudden.update(0.0, frame, [(100, 80, 60, 60)]) == [0]
    assert sudden.update(0.04, frame, [(110, 100, 20, 20)]) == [1]
