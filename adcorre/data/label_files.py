"""What every dataset reader shares: reading label files, and the DataFrame they all return.

A label file that breaks its format is one `DatasetFormatError` (a `ValueError`) naming the
file, the line and the format expected; a missing one is one `DatasetNotFoundError` (a
`FileNotFoundError`). An image a label file lists twice is read once (`first_listings`: the
same label twice is one warning, two labels one error), and every dataset's face boxes meet one
rule (`face_box`): a face whose box is unusable is skipped, named in one `BadBoxWarning` and
listed in the frame's `attrs["box_skipped"]`, which evaluation and training add to the faces
they report skipped. The readers themselves live in `adcorre.data.datasets`, one module per
dataset. Nothing here loads pandas until a frame is built.

Example:
>>> int_field("7", "labels.txt", 3, "label", 1, 7, "a code 1..7")
7
>>> int_field("9", "labels.txt", 3, "label", 1, 7, "a code 1..7")
Traceback (most recent call last):
...
adcorre.errors.DatasetFormatError: labels.txt, line 3: label 9 is out of range 1..7. Expected a code 1..7.
"""

import contextlib
import csv
import os
import warnings

from adcorre.data.pictures import BadImageWarning
from adcorre.errors import DatasetFormatError, DatasetNotFoundError, SettingError

# Faces a warning names one by one; the rest are counted (the frame's attrs list every one).
NAMED_IN_WARNINGS = 10


class ListedTwiceWarning(UserWarning):
    """A label file lists an image more than once with the same label: it is read once."""


class BadBoxWarning(BadImageWarning):
    """Faces were skipped: their face box is missing, empty, inverted or outside its picture."""


def format_error(path, line, problem, expected):
    """A `DatasetFormatError`: `path, line N: problem. Expected ...` (no line: the whole file)."""
    where = f"{path}, line {line}" if line is not None else f"{path}"
    return DatasetFormatError(f"{where}: {problem}. Expected {expected}.")


def require_file(path, what, expected):
    """Raises `DatasetNotFoundError` naming `what`, `path` and the format expected, if `path`
    is not a file."""
    if not os.path.isfile(path):
        raise DatasetNotFoundError(f"{what} not found: {path}. Expected {expected}.")


def class_count(requested, forced, dataset):
    """The class count a reader keeps: `requested` (7 by default) or the `_7` split's 7.

    Args:
        requested: the reader's `num_classes` option (None, 7 or 8).
        forced: 7 when the split was a `_7` dataset type, else None.
        dataset: the dataset's title, for the message.

    Raises:
        SettingError: the two disagree, or the count is not 7 or 8.
    """
    if forced is not None and requested not in (None, forced):
        raise SettingError(f"{dataset}: the split asks for {forced} classes but num_classes={requested}.")
    n = forced or requested or 7
    if n not in (7, 8):
        raise SettingError(f"{dataset}: num_classes must be 7 or 8, got {requested}.")
    return n


@contextlib.contextmanager
def text_file_errors(path, expected, line=lambda: None):
    """Errors of reading `path` as text or CSV -> one `DatasetFormatError` naming the file."""
    try:
        yield
    except UnicodeDecodeError as error:
        raise format_error(path, None, f"it is not UTF-8 text (byte "
                           f"{error.object[error.start]:#04x} cannot be decoded)",
                           expected) from None
    except csv.Error as error:
        raise format_error(path, line(), f"it cannot be read as CSV ({error})", expected) from None


def read_csv_rows(path, required, expected, optional=()):
    """The `required` then `optional` fields of each CSV row, plus the rows' line numbers.

    Checks the header has every `required` column; an `optional` column the header lacks
    reads as "" in every row.
    """
    # utf-8-sig drops a byte-order mark; newline="" lets csv handle CRLF and LF alike.
    with open(path, newline="", encoding="utf-8-sig") as f, text_file_errors(
            path, expected, lambda: reader.line_num):
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise format_error(path, 1, "the file is empty", expected) from None
        missing = [c for c in required if c not in header]
        if missing:
            raise format_error(path, 1, f"missing column(s) {missing}; the header has {header}",
                               expected)
        index = {c: header.index(c) for c in required}
        present = [c for c in optional if c in header]
        index.update({c: header.index(c) for c in present})
        rows, lines = [], []
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                raise format_error(path, reader.line_num,
                                   f"{len(row)} fields where the header has {len(header)}", expected)
            rows.append([row[index[c]].strip() for c in required]
                        + [row[index[c]].strip() if c in index else "" for c in optional])
            lines.append(reader.line_num)
    return rows, lines


def int_field(value, path, line, name, low, high, expected):
    """`value` as an integer in `low..high` (a whole float such as "5.0" too), or a
    `DatasetFormatError` naming the file, the line and the field."""
    try:
        number = float(value)
        if not number.is_integer():
            raise ValueError
        number = int(number)
    except ValueError:
        raise format_error(path, line, f"{name} {value!r} is not an integer", expected) from None
    if not low <= number <= high:
        raise format_error(path, line, f"{name} {number} is out of range {low}..{high}", expected)
    return number


def float_or_nan(value):
    """`value` as a float, NaN where it is empty or not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def frame(images, labels, attrs, box=None, **extra):
    """The DataFrame every reader returns: `image`, `label` (int64), the `extra` columns.

    Args:
        images: paths, or uint8 arrays.
        labels: canonical indices.
        attrs: what `frame.attrs` records (source file, rows dropped...).
        box: per-row face boxes `(x, y, w, h)` or None, kept as Python tuples; None: no column.
        **extra: more columns (`valence=[...]`, `usage=[...]`).
    """
    import numpy as np  # noqa: PLC0415 - pandas and NumPy only once a dataset is read
    import pandas as pd  # noqa: PLC0415

    if box is not None:
        extra = {"box": pd.Series(list(box), dtype=object), **extra}
    table = pd.DataFrame({"image": pd.Series(list(images), dtype=object),
                          "label": np.asarray(labels, np.int64), **extra})
    table.attrs.update(attrs)
    return table


def first_listings(keys, labels, lines, path, expected):
    """The rows to read of a label file that may list an image more than once.

    An image listed again with the label it had is read once (one `ListedTwiceWarning` for the
    file, naming the first few); listed with another label, the file contradicts itself and is
    refused.

    Args:
        keys: each row's image, as the file names it (with anything else that tells two
            faces of one picture apart, e.g. AffectNet's box).
        labels: each row's label as the file writes it.
        lines: each row's line number.
        path: the label file, for the messages.
        expected: the format expected, for the error.

    Returns:
        The indices of the rows to keep, in file order (each image's first listing).

    Raises:
        DatasetFormatError: an image is listed with two labels (naming it and both lines).

    Example:
    >>> first_listings(["a.jpg", "b.jpg"], [1, 2], [1, 2], "labels.txt", "one line per image")
    [0, 1]
    """
    first, keep, repeated = {}, [], []
    for row, (key, label, line) in enumerate(zip(keys, labels, lines)):
        seen = first.get(key)
        if seen is None:
            first[key] = row
            keep.append(row)
            continue
        if labels[seen] != label:
            raise format_error(path, line, f"{_key_text(key)} is listed twice with two labels: "
                               f"line {lines[seen]} says {labels[seen]}, line {line} says "
                               f"{label}", f"each image once, with one label: {expected}")
        repeated.append(f"{_key_text(key)} (lines {lines[seen]} and {line})")
    if repeated:
        more = len(repeated) - NAMED_IN_WARNINGS
        warnings.warn(f"{path}: {len(repeated)} listing(s) repeat an image with the label it "
                      f"already had; each image is read once: "
                      f"{'; '.join(repeated[:NAMED_IN_WARNINGS])}"
                      f"{f' and {more} more' if more > 0 else ''}.", ListedTwiceWarning,
                      stacklevel=3)
    return keep


def _key_text(key):
    return " ".join(map(str, key)) if isinstance(key, tuple) else str(key)


# A face box must keep at least this share of its area inside its picture; the rest is cut off.
MIN_INSIDE_SHARE = 0.5

BOX_RULE = ("a box of positive width and height with at least half of its area inside its "
            "picture (the part outside is cut off)")


def face_box(left, top, right, bottom, picture_size=None):
    """A face box in whole pixels as `(x, y, w, h)` inside its picture, or why it is unusable.

    One rule for every dataset's boxes (RAF-DB's box files, AffectNet's CSV columns): a box
    with no area is empty, one whose right (bottom) edge comes before its left (top) is
    inverted, and one with less than `MIN_INSIDE_SHARE` of its area inside its picture is
    outside it: each of these is unusable. A box that overhangs the picture by less is cut to
    it, as annotators' boxes of faces at the picture's edge often overhang by a few pixels.

    Args:
        left, top, right, bottom: the box's edges in whole pixels.
        picture_size: `(width, height)` of its picture; None: not checked against it (the
            picture cannot be read: the image checks skip it).

    Returns:
        `(box, None)` or `(None, reason)`.

    Example:
    >>> face_box(10, 20, 60, 80, picture_size=(100, 100))
    ((10, 20, 50, 60), None)
    >>> face_box(80, 20, 120, 80, picture_size=(100, 100))  # a tenth overhangs: cut off
    ((80, 20, 20, 60), None)
    >>> face_box(90, 20, 140, 80, picture_size=(100, 100))
    (None, 'outside its 100x100 picture (20% of the box inside)')
    >>> face_box(30, 20, 10, 80)
    (None, 'an inverted box (its right edge left of its left edge)')
    """
    width, height = right - left, bottom - top
    if width < 0 or height < 0:
        edges = ("right", "left of its left") if width < 0 else ("bottom", "above its top")
        return None, f"an inverted box (its {edges[0]} edge {edges[1]} edge)"
    if width == 0 or height == 0:
        return None, f"an empty box (its {'width' if width == 0 else 'height'} is 0)"
    if picture_size is None:
        return (left, top, width, height), None
    picture_width, picture_height = picture_size
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(right, picture_width), min(bottom, picture_height)
    inside = max(x1 - x0, 0) * max(y1 - y0, 0)
    if inside < MIN_INSIDE_SHARE * width * height:
        return None, (f"outside its {picture_width}x{picture_height} picture "
                      f"({inside / (width * height):.0%} of the box inside)")
    return (x0, y0, x1 - x0, y1 - y0), None


def warn_bad_boxes(bad, total, what, source, expected):
    """One `BadBoxWarning` naming the first few faces skipped for their box, and counting all.

    Args:
        bad: `[(where, reason)]`: where in `source` each box was read (a box file's name,
            "line N (image)") and what is wrong with it.
        total: how many faces were listed.
        what: the faces, in words ("RAF-DB train photos").
        source: the file or folder the boxes were read from.
        expected: what a box must be, for the message.
    """
    if not bad:
        return
    named = "; ".join(f"{where}: {reason}" for where, reason in bad[:NAMED_IN_WARNINGS])
    more = len(bad) - NAMED_IN_WARNINGS
    warnings.warn(f"Skipped {len(bad)} of {total} {what} whose face box in {source} is "
                  f"unusable: {named}{f'; and {more} more' if more > 0 else ''} "
                  f"(frame.attrs['box_skipped'] lists every one). Expected {expected}.",
                  BadBoxWarning, stacklevel=4)
