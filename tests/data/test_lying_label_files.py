"""Label files that lie (issue 31): an image listed twice, FER-2013 pixels that are not
integers, face boxes that are empty, inverted or outside their picture. Each ends in one error
naming the file and the line, or in a skip that is warned of and counted: never a traceback,
never a face read twice or cropped to a sliver (each test written to fail before its fix).
"""

import csv
import os
import shutil
import warnings

import numpy as np
import pytest

from adcorre.data import dataset_readers, synth_faces
from adcorre.data.label_files import BadBoxWarning, ListedTwiceWarning, face_box
from adcorre.errors import DatasetFormatError

N, SIZE = 30, 32
RAF_LABELS = os.path.join("EmoLabel", "list_patition_label.txt")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    return {layout: synth_faces.write_dataset(str(root / layout), layout, n=N, image_size=SIZE,
                                              seed=2)
            for layout in ("rafdb", "affectnet", "fer2013", "ferplus")}


def _copy(source, tmp_path):
    return shutil.copytree(source, tmp_path / "copy")


def _read_quietly(*args, **kwargs):
    """`read_split`, and the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = dataset_readers.read_split(*args, **kwargs)
    return frame, [w for w in caught]


# ------------------------------------------------------------------ an image listed twice


def _append_line(path, line):
    with open(path, "a") as handle:
        handle.write(line)


def _line_count(path):
    with open(path) as handle:
        return sum(1 for _ in handle)


def test_rafdb_image_listed_twice_with_two_labels_is_refused_naming_both_lines(written, tmp_path):
    copy = _copy(written["rafdb"], tmp_path)
    labels = os.path.join(copy, RAF_LABELS)
    with open(labels) as handle:
        first = handle.readline().split()  # "train_00001.jpg <code>"
    other = 1 + int(first[1]) % 7
    _append_line(labels, f"{first[0]} {other}\n")
    with pytest.raises(DatasetFormatError) as caught:
        dataset_readers.read_split("rafdb", copy, "train")
    message = str(caught.value)
    assert message.startswith(f"{labels}, line {_line_count(labels)}: ")
    assert first[0] in message and "line 1 says" in message and "listed twice" in message
    assert f"says {first[1]}" in message and f"says {other}" in message


def test_rafdb_image_listed_twice_with_one_label_is_read_once_with_one_warning(written, tmp_path):
    copy = _copy(written["rafdb"], tmp_path)
    labels = os.path.join(copy, RAF_LABELS)
    expected = dataset_readers.read_split("rafdb", copy, "train")
    with open(labels) as handle:
        listed = handle.readlines()
    _append_line(labels, listed[0] + listed[2])  # two train images, again, same labels
    frame, caught = _read_quietly("rafdb", copy, "train")
    assert frame["image"].tolist() == expected["image"].tolist()
    assert frame["label"].tolist() == expected["label"].tolist()
    repeated = [w for w in caught if issubclass(w.category, ListedTwiceWarning)]
    assert len(repeated) == 1 and len(caught) == 1
    message = str(repeated[0].message)
    assert "2 listing(s)" in message and listed[0].split()[0] in message
    assert f"lines 1 and {len(listed) + 1}" in message


def _affectnet_rows(data_dir, name="training.csv"):
    with open(os.path.join(data_dir, name), newline="") as handle:
        return list(csv.reader(handle))


def _write_affectnet_rows(data_dir, rows, name="training.csv"):
    with open(os.path.join(data_dir, name), "w", newline="") as handle:
        csv.writer(handle).writerows(rows)


def test_affectnet_face_listed_twice_with_two_labels_is_refused(written, tmp_path):
    copy = _copy(written["affectnet"], tmp_path)
    rows = _affectnet_rows(copy)
    twin = list(rows[1])
    twin[6] = str((int(rows[1][6]) + 1) % 7)
    _write_affectnet_rows(copy, rows + [twin])
    with pytest.raises(DatasetFormatError, match=(
            rf"training\.csv, line {len(rows) + 1}: {rows[1][0]} .*listed twice.*line 2 says "
            rf"{rows[1][6]}, line {len(rows) + 1} says {twin[6]}")):
        dataset_readers.read_split("affectnet", copy, "train")


def test_affectnet_face_listed_twice_with_one_label_is_read_once(written, tmp_path):
    copy = _copy(written["affectnet"], tmp_path)
    rows = _affectnet_rows(copy)
    expected = dataset_readers.read_split("affectnet", copy, "train")
    _write_affectnet_rows(copy, rows + [rows[1], rows[3]])
    frame, caught = _read_quietly("affectnet", copy, "train")
    assert frame["image"].tolist() == expected["image"].tolist()
    assert len(caught) == 1 and issubclass(caught[0].category, ListedTwiceWarning)
    assert "2 listing(s)" in str(caught[0].message)


def test_two_faces_of_one_affectnet_picture_are_two_faces(written, tmp_path):
    """One picture listed twice with two boxes holds two faces: neither refused nor warned of."""
    copy = _copy(written["affectnet"], tmp_path)
    rows = _affectnet_rows(copy)
    second = list(rows[1])
    second[1], second[3] = str(int(second[1]) + 2), str(int(second[3]) - 2)  # another box
    second[6] = str((int(rows[1][6]) + 1) % 7)
    _write_affectnet_rows(copy, rows + [second])
    expected = dataset_readers.read_split("affectnet", written["affectnet"], "train")
    frame, caught = _read_quietly("affectnet", copy, "train")
    assert not caught and len(frame) == len(expected) + 1


# ---------------------------------------------------------------- FER-2013 pixels that lie


@pytest.mark.parametrize("value, shown", [
    ("12.5", "'12.5', not an integer 0..255"), ("abc", "'abc', not an integer 0..255"),
    ("1e3", "'1e3', not an integer"), ("99999999999999999999999", "not an integer 0..255"),
    ("256", "256, outside 0..255"), ("-1", "-1, outside 0..255"),
])
@pytest.mark.parametrize("layout", ["fer2013", "ferplus"])
def test_fer2013_pixel_that_is_not_an_integer_0_255_is_one_error(written, tmp_path, layout,
                                                                 value, shown):
    copy = _copy(written[layout], tmp_path)
    rows = _affectnet_rows(copy, "fer2013.csv")
    pixels = rows[3][1].split()
    pixels[100] = value
    rows[3][1] = " ".join(pixels)
    _write_affectnet_rows(copy, rows, "fer2013.csv")
    with pytest.raises(DatasetFormatError) as caught:
        dataset_readers.read_split(layout, copy, "train")
    message = str(caught.value)
    assert message.startswith(f"{os.path.join(copy, 'fer2013.csv')}, line 4: pixel 101 is ")
    assert shown in message and "each an integer 0..255" in message


def test_fer2013_pixels_field_empty_or_a_value_short_is_one_error(written, tmp_path):
    copy = _copy(written["fer2013"], tmp_path)
    rows = _affectnet_rows(copy, "fer2013.csv")
    rows[2][1] = ""
    rows[5][1] = rows[5][1].replace(" ", "  ", 3)  # doubled spaces: still 2304 values
    _write_affectnet_rows(copy, rows, "fer2013.csv")
    with pytest.raises(DatasetFormatError, match=r"line 3: pixels holds 0 values, not 48x48"):
        dataset_readers.read_split("fer2013", copy, "train")


# --------------------------------------------------------------- face boxes that lie


def test_one_rule_for_every_face_box():
    assert face_box(10, 20, 60, 80, (100, 100)) == ((10, 20, 50, 60), None)
    assert face_box(0, 0, 100, 100, (100, 100)) == ((0, 0, 100, 100), None)
    # Half of it inside: cut to the picture; less than half: outside.
    assert face_box(-50, 0, 50, 100, (100, 100)) == ((0, 0, 50, 100), None)
    box, reason = face_box(-51, 0, 49, 100, (100, 100))
    assert box is None and reason == "outside its 100x100 picture (49% of the box inside)"
    assert face_box(200, 200, 260, 260, (100, 100))[1].startswith("outside its 100x100 picture")
    assert face_box(10, 10, 10, 40, (100, 100)) == (None, "an empty box (its width is 0)")
    assert face_box(10, 40, 30, 40) == (None, "an empty box (its height is 0)")
    assert face_box(30, 10, 10, 40)[1] == "an inverted box (its right edge left of its left edge)"
    assert face_box(10, 40, 30, 10)[1] == "an inverted box (its bottom edge above its top edge)"
    assert face_box(-500, -500, -400, -400) == ((-500, -500, 100, 100), None)  # no picture size


def _set_box(rows, row, x=None, y=None, width=None, height=None):
    for column, value in zip((1, 2, 3, 4), (x, y, width, height)):
        if value is not None:
            rows[row][column] = str(value)


def test_affectnet_boxes_empty_inverted_or_outside_are_skipped_warned_and_counted(written,
                                                                                  tmp_path):
    """The issue's case: a box outside the picture was clipped to a 1-pixel crop and scored."""
    copy = _copy(written["affectnet"], tmp_path)
    rows = _affectnet_rows(copy)
    expected = dataset_readers.read_split("affectnet", copy, "train")
    _set_box(rows, 1, x=4000)  # far right of its picture
    _set_box(rows, 2, width=0)
    _set_box(rows, 3, height=-20)
    _set_box(rows, 4, x=-SIZE + 8)  # 8 of its 32 columns inside
    _set_box(rows, 5, x=-4)  # 28 of 32 columns inside: cut to the picture, kept
    _write_affectnet_rows(copy, rows)
    frame, caught = _read_quietly("affectnet", copy, "train")
    assert len(frame) == len(expected) - 4
    skipped = [os.path.relpath(image, os.path.join(copy, "Manually_Annotated_Images"))
               for image, _ in frame.attrs["box_skipped"]]
    assert skipped == [rows[r][0] for r in (1, 2, 3, 4)]
    assert not set(skipped) & {os.path.basename(p) for p in frame["image"]}
    assert len(caught) == 1 and issubclass(caught[0].category, BadBoxWarning)
    message = str(caught[0].message)
    assert "\n" not in message and message.startswith("Skipped 4 of ")
    assert f"whose face box in {os.path.join(copy, 'training.csv')} is unusable: " in message
    for line, reason in ((2, "outside its"), (3, "an empty box"), (4, "an inverted box"),
                         (5, "outside its")):
        assert f"line {line} ({rows[line - 1][0]}): {reason}" in message, message
    assert "picture (25% of the box inside)" in message
    kept = frame.set_index(frame["image"].map(os.path.basename))
    assert kept.loc[os.path.basename(rows[5][0]), "box"] == (0, int(rows[5][2]), SIZE - 4, SIZE)


def test_affectnet_with_no_usable_box_is_one_error(written, tmp_path):
    copy = _copy(written["affectnet"], tmp_path)
    rows = _affectnet_rows(copy)
    for row in range(1, len(rows)):
        _set_box(rows, row, width=0)
    _write_affectnet_rows(copy, rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DatasetFormatError, match="None of the .* faces .*training.csv lists "
                                                     "has a usable face box"):
            dataset_readers.read_split("affectnet", copy, "train")


@pytest.fixture(scope="module")
def raf_original(tmp_path_factory):
    return synth_faces.write_dataset(str(tmp_path_factory.mktemp("raf") / "rafdb"), "rafdb",
                                     n=N, image_size=SIZE, seed=3, aligned=False)


def test_rafdb_box_a_little_over_the_photos_edge_is_cut_not_skipped(raf_original, tmp_path):
    """RAF-DB's boxes meet AffectNet's rule: a box that overhangs its photo by under half is
    cut to it (it was skipped), one mostly outside is skipped (and counted)."""
    copy = _copy(raf_original, tmp_path)
    box_dir = os.path.join(copy, "Annotation", "boundingbox")
    with open(os.path.join(box_dir, "train_00001_boundingbox.txt"), "w") as handle:
        handle.write(f"-3 -2 {SIZE - 3} {SIZE - 2}\n")
    with open(os.path.join(box_dir, "train_00002_boundingbox.txt"), "w") as handle:
        handle.write(f"-{SIZE - 3} 0 3 {SIZE}\n")
    frame, caught = _read_quietly("rafdb", copy, "train")
    assert frame["box"][0] == (0, 0, SIZE - 3, SIZE - 2)
    assert [os.path.basename(p) for p, _ in frame.attrs["box_skipped"]] == ["train_00002.jpg"]
    assert len(caught) == 1 and "outside its" in str(caught[0].message)
    np.testing.assert_array_equal(frame["image"].map(os.path.basename)[:2],
                                  ["train_00001.jpg", "train_00003.jpg"])
