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


def plot_timeline(table, labels, path, title=""):
    """Each class's probability over time for the largest face of a video, as a PNG (atomically).

    Args:
        table: a `TestModels.recognize_video` table (`time_s`, `face`, `x`, one column per label).
        labels: the class names (probability columns), in the order of the legend.
        path: the `.png` to write.
        title: the figure title.

    Frames where no face was found (their row holds the whole frame's result) are shaded grey,
    unless no frame had a face (e.g. no detector).
    """
    plt = pyplot()
    largest = table[table["face"] == 0].sort_values("time_s")
    if largest.empty:
        raise ValueError("The table has no row with face 0: nothing to plot over time.")
    times = largest["time_s"].to_numpy(float)
    figure, axis = plt.subplots(figsize=(9.0, 3.6))
    colours = plt.get_cmap("tab10")
    for index, name in enumerate(labels):
        axis.plot(times, largest[name].to_numpy(float), label=name, color=colours(index % 10),
                  linewidth=1.4)
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    missing = largest["x"].isna().to_numpy()
    # Shading every frame (no detector, or no face anywhere) would say nothing.
    shade = missing.any() and not missing.all()
    for time_s in times[missing] if shade else ():
        axis.axvspan(time_s - step / 2, time_s + step / 2, color="0.85", linewidth=0, zorder=0)
    axis.set_xlim(times[0] - step / 2, times[-1] + step / 2)
    axis.set_ylim(0.0, 1.0)
    axis.set_xlabel("time (s)")
    axis.set_ylabel("probability (largest face)")
    axis.set_title(title + ("; grey: no face found" if shade else ""), fontsize=10)
    axis.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    figure.tight_layout()
    save_figure(figure, path)
    return path


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display is needed or used), for
    every module that draws figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
