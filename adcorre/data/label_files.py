"""What every dataset reader shares: reading label files, and the DataFrame they all return.

A label file that breaks its format is one `DatasetFormatError` (a `ValueError`) naming the
file, the line and the format expected; a missing one is one `DatasetNotFoundError` (a
`FileNotFoundError`). The readers themselves live in `adcorre.data.datasets`, one module per
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

from adcorre.errors import DatasetFormatError, DatasetNotFoundError, SettingError


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
