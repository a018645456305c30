"""FERPlus: FER-2013's faces relabelled by 10 votes each.

Layout: FER-2013's `fer2013.csv` and, row-aligned with it, `fer2013new.csv` with the columns
`Usage,Image name` and one vote count per `labels.FERPLUS_VOTE_COLUMNS` (neutral ..
contempt, unknown, NF). A row whose image name is empty was excluded by the FERPlus authors.
The label is the votes' winner (`ferplus_label`). The reader and SynthFER's writer below share
these names, and FER-2013's (`fer2013.py`).
"""

import csv
import os

import numpy as np

from adcorre import atomic_files
from adcorre.data.datasets import Dataset, fer2013, register
from adcorre.data.label_files import (
    class_count,
    format_error,
    frame,
    int_field,
    read_csv_rows,
    require_file,
)
from adcorre.labels import FERPLUS_TO_CANONICAL, FERPLUS_VOTE_COLUMNS

CSV_FILE = "fer2013new.csv"
COLUMNS = ("Usage", "Image name") + FERPLUS_VOTE_COLUMNS

EXPECTED = (f"{CSV_FILE} (row-aligned with {fer2013.CSV_FILE}) with header "
            f"{','.join(COLUMNS)} holding non-negative vote counts")


def ferplus_label(votes, num_classes=7, strict_majority=False):
    """The canonical label FERPlus votes give, or the reason the row is dropped.

    Default rule (plurality): the column with the most votes wins; the row is
    dropped if that maximum is shared (a tie), if the winner is `unknown` or
    `NF` (not a face), if it is `contempt` with 7 classes, or if there are no
    votes. With `strict_majority=True` the FERPlus authors' "majority" mode is
    used instead: single votes are discarded as outliers first, and the
    winner needs more than half of the remaining votes (else it counts as
    unknown and is dropped).

    Args:
        votes: 10 vote counts in `labels.FERPLUS_VOTE_COLUMNS` order.
        num_classes: 7 or 8 (8 keeps contempt).
        strict_majority: see above.

    Returns:
        `(label, None)` or `(None, reason)` with reason one of "tie",
        "unknown", "NF", "contempt", "no votes".

    Example:

    >>> ferplus_label([6, 4, 0, 0, 0, 0, 0, 0, 0, 0])
    (0, None)
    """
    votes = np.asarray(votes, np.float64).copy()
    if strict_majority:
        votes[votes <= 1] = 0
    total = votes.sum()
    if total <= 0:
        return None, "no votes"
    top = votes.max()
    winners = np.flatnonzero(votes == top)
    if strict_majority and top <= 0.5 * total:
        return None, "unknown"
    if len(winners) > 1:
        return None, "tie"
    name = FERPLUS_VOTE_COLUMNS[int(winners[0])]
    if name in ("unknown", "NF"):
        return None, name
    label = FERPLUS_TO_CANONICAL[name]
    if label >= num_classes:
        return None, name
    return label, None


def read(data_dir, split, forced=None, num_classes=None, strict_majority=False):
    """One split of FERPlus: FER-2013's faces with the votes' labels, and each row's `usage`.

    Args:
        data_dir: the folder holding fer2013.csv and fer2013new.csv.
        split: as FER-2013's.
        forced: 7 when the split was a `_7` dataset type.
        num_classes: 7 (default) or 8 (Contempt kept).
        strict_majority: see `ferplus_label`.
    """
    classes = class_count(num_classes, forced, "FERPlus")
    fer_path, fer_rows, fer_lines = fer2013.read_rows(data_dir)
    path = os.path.join(data_dir, CSV_FILE)
    require_file(path, "FERPlus label file", EXPECTED)
    rows, lines = read_csv_rows(path, COLUMNS, EXPECTED)
    if len(rows) != len(fer_rows):
        raise format_error(path, None, f"{len(rows)} rows but {fer_path} has {len(fer_rows)}",
                           EXPECTED)
    images, labels, usages, dropped = [], [], [], {}
    for row, line, fer_row, fer_line in zip(rows, lines, fer_rows, fer_lines):
        if not fer2013.in_split(row[0], split, path, line, EXPECTED):
            continue
        votes = [int_field(v, path, line, f"votes for {c}", 0, 1000, EXPECTED)
                 for v, c in zip(row[2:], FERPLUS_VOTE_COLUMNS)]
        if not row[1]:  # the FERPlus authors excluded this image
            dropped["excluded"] = dropped.get("excluded", 0) + 1
            continue
        label, reason = ferplus_label(votes, classes, strict_majority)
        if label is None:
            dropped[reason] = dropped.get(reason, 0) + 1
            continue
        images.append(fer2013.parse_pixels(fer_row[1], fer_path, fer_line))
        labels.append(label)
        usages.append(row[0])
    return frame(images, labels, dict(source=path, usage="+".join(fer2013.USAGE[split]),
                                      num_classes=classes, dropped=dropped), usage=usages)


# ------------------------------------------------------------------ writing SynthFER as FERPlus

# Canonical index -> its vote column.
_VOTE_COLUMN = {canonical: FERPLUS_VOTE_COLUMNS.index(name)
                for name, canonical in FERPLUS_TO_CANONICAL.items()}


def _votes(rng, true_column):
    """10 votes that give `true_column` a strict majority."""
    votes = np.zeros(len(FERPLUS_VOTE_COLUMNS), np.int64)
    top = int(rng.integers(6, 11))
    votes[true_column] = top
    for _ in range(10 - top):
        votes[rng.choice([c for c in range(8) if c != true_column])] += 1
    return votes


def _votes_of(counts):
    """A vote row with `counts` ({column name: votes}) and no other votes."""
    votes = np.zeros(len(FERPLUS_VOTE_COLUMNS), np.int64)
    for name, count in counts.items():
        votes[FERPLUS_VOTE_COLUMNS.index(name)] = count
    return votes


def _rows_to_drop(rng, seed, group):
    """The 5 rows each usage group gets after its faces: a tie, an "unknown" winner, an "NF"
    winner and an excluded row (dropped), and a Contempt winner (kept with 8 classes).

    Returns:
        `(faces, votes, named)`.
    """
    from adcorre.data.synth.drawing import generate  # noqa: PLC0415 - writing only
    from adcorre.data.synth.params import CONTEMPT  # noqa: PLC0415

    faces, _ = generate(5, fer2013.SIDE, seed=(int(seed), 10 + group),
                        labels=[0, 0, 0, 0, CONTEMPT])
    votes = [_votes_of({"neutral": 4, "happiness": 4, "surprise": 2}),
             _votes_of({"unknown": 6, "neutral": 2, "happiness": 2}),
             _votes_of({"NF": 8, "sadness": 2}),
             _votes(rng, 0),
             _votes_of({"contempt": 7, "neutral": 3})]
    return faces, votes, [True, True, True, False, True]


def write_synth(out_dir, splits, seed, **_):
    """SynthFER faces as FERPlus: fer2013.csv and fer2013new.csv with 10 votes per face (the
    true class always wins a strict majority), plus `_rows_to_drop` in each usage group."""
    rng = np.random.default_rng((int(seed), 307))
    fer_rows, plus_rows = [], []
    for group, (usage, images, labels) in enumerate(fer2013.usage_groups(splits)):
        votes = [_votes(rng, _VOTE_COLUMN[int(c)]) for c in labels]
        extra_faces, extra_votes, extra_named = _rows_to_drop(rng, seed, group)
        greys = list(fer2013.grey_faces(images)) + list(fer2013.grey_faces(extra_faces))
        # FER-2013's own label of the extra rows does not matter: 6 (Neutral).
        emotions = [fer2013.TO_CODE[int(c)] for c in labels] + [6] * len(extra_votes)
        names = [True] * len(labels) + extra_named
        for grey, emotion, vote, named in zip(greys, emotions, votes + extra_votes, names):
            plus_rows.append([usage, f"fer{len(fer_rows):07d}.png" if named else ""]
                             + vote.tolist())
            fer_rows.append(fer2013.csv_row(emotion, grey, usage))
    fer2013.write_csv(out_dir, fer_rows)
    with (atomic_files.atomic_path(os.path.join(out_dir, CSV_FILE)) as temporary,
          open(temporary, "w", newline="") as f):
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(plus_rows)


DATASET = register(Dataset(
    name="ferplus",
    title="FERPlus",
    splits=fer2013.DATASET.splits,
    label_map=FERPLUS_TO_CANONICAL,
    layout=(f"`{fer2013.CSV_FILE}` + `{CSV_FILE}` (majority of the votes; ties, unknown and "
            "not-a-face dropped)"),
    read=read,
    required=(fer2013.CSV_FILE, CSV_FILE),
    split_sources=fer2013.DATASET.split_sources,
    options=("num_classes", "strict_majority"),
    image_side=fer2013.SIDE,
    write_synth=write_synth,
))
