"""What a run reports to a person: scores, tables and plots of predictions.

Training (per epoch) and evaluation (`TestModels.evaluate`, `python test.py --dataset`) both
score predictions with `classification_report` and write the same confusion-matrix table and
PNG, so the numbers a run logs and the numbers an evaluation prints are computed one way.
Every file is written atomically (`atomic_files`).

Example:
>>> report = classification_report([0, 1, 1], [0, 1, 0], ["Neutral", "Happy"])
>>> report["accuracy"], report["per_class"]["Happy"]["recall"]
(0.6666666666666666, 0.5)
"""

import numpy as np

from adcorre.atomic_files import atomic_path


def classification_summary(labels, predictions, num_classes):
    """Accuracy, mean class accuracy and the confusion matrix of integer predictions.

    Args:
        labels: true class indices, shape (n,).
        predictions: predicted class indices, shape (n,).
        num_classes: size of the confusion matrix.

    Returns:
        dict with `accuracy`, `mean_class_accuracy` (over classes present in `labels`)
        and `confusion_matrix` (rows true, columns predicted, counts).

    Example:
    >>> classification_summary([0, 1], [0, 0], 2)["mean_class_accuracy"]
    0.5
    """
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    support = matrix.sum(axis=1)
    present = support > 0
    per_class = np.diag(matrix)[present] / support[present]
    return {
        "accuracy": float(np.mean(labels == predictions)) if len(labels) else 0.0,
        "mean_class_accuracy": float(per_class.mean()) if present.any() else 0.0,
        "confusion_matrix": matrix,
    }


def classification_report(truth, predicted, names):
    """Accuracy, mean class accuracy, per-class precision / recall / F1 and the confusion matrix.

    Args:
        truth: true class indices (n,), in `names` order.
        predicted: predicted class indices (n,).
        names: class names.

    Returns:
        dict: `labels`, `num_samples`, `accuracy`, `mean_class_accuracy` (mean recall over
        the classes present), `per_class` ({name: {precision, recall, f1, support}}) and
        `confusion_matrix` (int array, rows true, columns predicted).
    """
    count = len(names)
    summary = classification_summary(truth, predicted, count)
    matrix = summary["confusion_matrix"]
    hits = np.diag(matrix).astype(float)
    support, claimed = matrix.sum(axis=1), matrix.sum(axis=0)
    recall = np.divide(hits, support, out=np.zeros(count), where=support > 0)
    precision = np.divide(hits, claimed, out=np.zeros(count), where=claimed > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros(count), where=both > 0)
    return {
        "labels": list(names),
        "num_samples": int(len(truth)),
        "accuracy": summary["accuracy"],
        "mean_class_accuracy": summary["mean_class_accuracy"],
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]),
                   "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(names)
        },
        "confusion_matrix": matrix,
    }


def format_confusion_matrix(matrix, names):
    """The confusion matrix as an aligned text table, rows true, columns predicted."""
    width = max(8, max(len(n) for n in names) + 1)
    lines = ["true \\ pred".ljust(width) + "".join(n[:width - 1].rjust(width) for n in names)]
    for name, row in zip(names, matrix):
        lines.append(name.ljust(width) + "".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)


def format_report(report):
    """A `classification_report` as text: the per-class table, then the confusion matrix."""
    width = max(10, max(len(n) for n in report["labels"]) + 1)
    lines = [f"{'class':<{width}} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}"]
    for name, scores in report["per_class"].items():
        lines.append(f"{name:<{width}} {scores['precision']:9.4f} {scores['recall']:7.4f} "
                     f"{scores['f1']:6.4f} {scores['support']:8d}")
    lines.append("confusion matrix (rows true, columns predicted):")
    lines.append(format_confusion_matrix(report["confusion_matrix"], report["labels"]))
    return "\n".join(lines)


def plot_confusion_matrix(matrix, names, path, title=""):
    """Writes the row-normalised confusion matrix as a PNG (atomically)."""
    plt = pyplot()
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros(matrix.shape, float), where=rows > 0)
    figure, axis = plt.subplots(figsize=(1.0 + 0.8 * len(names), 0.8 + 0.7 * len(names)))
    axis.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    axis.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axis.set_yticks(range(len(names)), names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    for i in range(len(names)):
        for j in range(len(names)):
            colour = "white" if normalised[i, j] > 0.5 else "black"
            axis.text(j, i, f"{normalised[i, j]:.2f}", ha="center", va="center", color=colour,
                      fontsize=8)
    figure.tight_layout()
    save_figure(figure, path)


def save_figure(figure, path, dpi=100):
    """Saves a matplotlib figure atomically (format from the suffix) and closes it."""
    plt = pyplot()
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=dpi)
    finally:
        plt.close(figure)


# At most this many people get a timeline of their own (those seen in the most frames).
MAX_PEOPLE_PLOTTED = 6


def plot_timeline(table, labels, path, title=""):
    """Each class's probability over time, one timeline per person, as a PNG (atomically).

    Args:
        table: a `TestModels.recognize_video` table (`time_s`, `face`, `x`, one column per label,
            and `person`).
        labels: the class names (probability columns), in the order of the legend.
        path: the `.png` to write.
        title: the figure title.

    With `person` ids, each person gets a panel of its own (the `MAX_PEOPLE_PLOTTED` seen in
    most frames, in the order they appeared); a line breaks where its person was not seen.
    Without (a table of older versions, or no face found in any frame), one panel shows the
    largest face, frames where no face was found shaded grey (their row holds the whole
    frame's result), unless no frame had a face (e.g. no detector).
    """
    if "person" in table and table["person"].notna().any():
        return _plot_people(table, labels, path, title)
    plt = pyplot()
    largest = table[table["face"] == 0].sort_values("time_s")
    if largest.empty:
        raise ValueError("The table has no row with face 0: nothing to plot over time.")
    times = largest["time_s"].to_numpy(float)
    figure, axis = plt.subplots(figsize=(9.0, 3.6))
    _plot_classes(axis, times, largest, labels, plt)
    step = _time_step(times)
    missing = largest["x"].isna().to_numpy()
    # Shading every frame (no detector, or no face anywhere) would say nothing.
    shade = missing.any() and not missing.all()
    for time_s in times[missing] if shade else ():
        axis.axvspan(time_s - step / 2, time_s + step / 2, color="0.85", linewidth=0, zorder=0)
    axis.set_xlim(times[0] - step / 2, times[-1] + step / 2)
    axis.set_xlabel("time (s)")
    axis.set_ylabel("probability (largest face)")
    axis.set_title(title + ("; grey: no face found" if shade else ""), fontsize=10)
    axis.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    figure.tight_layout()
    save_figure(figure, path)
    return path


def _plot_people(table, labels, path, title):
    plt = pyplot()
    rows = table[table["person"].notna()].sort_values("time_s")
    seen = rows.groupby("person")["time_s"].agg(["size", "min"])
    shown = seen.sort_values("size", ascending=False, kind="stable").head(MAX_PEOPLE_PLOTTED)
    people = list(shown.sort_values("min", kind="stable").index)
    all_times = np.unique(table["time_s"].to_numpy(float))
    step = _time_step(all_times)
    figure, axes = plt.subplots(len(people), 1, figsize=(9.0, 1.2 + 1.9 * len(people)),
                                sharex=True, squeeze=False)
    for axis, person in zip(axes[:, 0], people):
        mine = rows[rows["person"] == person]
        times = mine["time_s"].to_numpy(float)
        # A gap longer than 1.5 frames is a time the person was not seen: the lines break.
        gaps = np.flatnonzero(np.diff(times) > 1.5 * step) + 1
        _plot_classes(axis, np.insert(times, gaps, np.nan), mine, labels, plt, gaps)
        axis.set_ylabel(f"person {int(person)}")
    axes[0, 0].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    axes[-1, 0].set_xlim(all_times[0] - step / 2, all_times[-1] + step / 2)
    axes[-1, 0].set_xlabel("time (s)")
    count = len(seen)
    said = (f"{count} people" if len(people) == count
            else f"the {len(people)} of {count} people seen longest")
    axes[0, 0].set_title(f"{title}; {said}" if title else said, fontsize=10)
    figure.tight_layout()
    save_figure(figure, path)
    return path


def _plot_classes(axis, times, rows, labels, plt, gaps=()):
    colours = plt.get_cmap("tab10")
    for index, name in enumerate(labels):
        values = np.insert(rows[name].to_numpy(float), gaps, np.nan)
        # Small dots too: a person seen in one frame only has no line to draw.
        axis.plot(times, values, label=name, color=colours(index % 10), linewidth=1.4,
                  marker="o", markersize=1.5)
    axis.set_ylim(0.0, 1.0)


def _time_step(times):
    return float(np.median(np.diff(times))) if len(times) > 1 else 1.0


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display is needed or used), for
    every module that draws figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
