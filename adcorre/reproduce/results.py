"""A reproduction's results: each experiment's runs summed up over seeds, beside the paper.

Every accuracy is in percent. `mean` and `std` are the mean and the sample standard deviation
(n - 1) over the seeds of the selected epoch's test accuracy, scored by the paper's protocol;
the 95 % interval is Student's t interval over the seeds, `mean +- t(0.975, n - 1) std /
sqrt(n)` (none for one seed); `optimistic` is the mean over seeds of the best test accuracy of
any epoch (the epoch chosen on the faces it is measured on, which is how both papers reported).

Example:
>>> low, high = t_interval([0.80, 0.82, 0.84])
>>> round(low, 4), round(high, 4)
(0.7703, 0.8697)
>>> t_interval([0.8])
(None, None)
"""

import csv
import importlib.metadata
import io
import json
import math
import os
import platform
import time

from adcorre import atomic_files

COLUMNS = ("experiment", "data", "paper", "released", "mean", "std", "ci95_low", "ci95_high",
           "seeds", "mean_class_accuracy", "optimistic", "selection", "paper_selection", "protocol",
           "test_split",
           "released_file", "released_reported", "confusion_matrix", "paper_source", "command")
CONFIDENCE = 0.95


def t_interval(values, confidence=CONFIDENCE):
    """Student's t interval of the mean of `values`: `(low, high)`, or `(None, None)` for
    fewer than two values."""
    n = len(values)
    if n < 2:
        return None, None
    from scipy import stats  # scikit-learn's own dependency

    mean = sum(values) / n
    spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * spread / math.sqrt(n)
    return mean - half, mean + half


def _percent(value):
    return "" if value is None else f"{100 * value:.2f}"


def _figure(value):
    return "" if value is None else f"{value:.2f}"


def aggregate(experiment, found, released, data, figure, out, released_asked=False):
    """One row of `results.csv` from an experiment's run results (`result.json`s).

    Args:
        experiment: the `experiments.Experiment`.
        found: the result dicts of its seeds.
        released: the released file's score (`released/<name>.json`), or None.
        data: `"real"` or `"synth"`.
        figure: the path of its confusion-matrix PNG.
        out: the results folder (paths are written relative to it).
        released_asked: `--released` was given.

    Returns:
        A dict with the keys `COLUMNS`, accuracies in percent as text.
    """
    accuracies = [result["accuracy"] for result in found]
    n = len(accuracies)
    mean = sum(accuracies) / n
    std = math.sqrt(sum((a - mean) ** 2 for a in accuracies) / (n - 1)) if n > 1 else None
    low, high = t_interval(accuracies)
    optimistic = [result["optimistic"] for result in found if result.get("optimistic") is not None]
    selected_by = {result["selected_by"] for result in found}
    return {
        "experiment": experiment.name,
        "data": "SynthFER, not a paper figure" if data == "synth" else "real",
        "paper": _figure(experiment.paper),
        "released": _percent(released["accuracy"]) if released else "",
        "mean": _percent(mean), "std": _percent(std),
        "ci95_low": _percent(low), "ci95_high": _percent(high), "seeds": str(n),
        "mean_class_accuracy": _percent(sum(r["mean_class_accuracy"] for r in found) / n),
        "optimistic": _percent(sum(optimistic) / len(optimistic)) if optimistic else "",
        "selection": "validation" if selected_by == {"validation"} else "test (optimistic)",
        "paper_selection": experiment.paper_selection or "",
        "protocol": experiment.protocol, "test_split": experiment.test_split,
        "released_file": experiment.released or "",
        "released_reported": _figure(experiment.released_reported),
        "confusion_matrix": os.path.relpath(figure, out),
        "paper_source": experiment.paper_source or "",
        "command": experiment.command(n, data, released_asked and bool(experiment.released)),
    }


def _read_rows(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write(out, rows, data, label=None):
    """Writes `results.csv` and `results.md` in `out`: these rows, and the rows of other
    experiments an earlier command wrote there (kept as they were).

    Args:
        out: the results folder.
        rows: `aggregate` rows.
        data: `"real"` or `"synth"`.
        label: a line said above the table (`--data synth`: "SynthFER, not a paper figure").

    Returns:
        All the rows written, in the order of the experiments' records.
    """
    from adcorre.reproduce.experiments import EXPERIMENTS

    csv_path = os.path.join(out, "results.csv")
    new = {row["experiment"]: row for row in rows}
    kept = {row["experiment"]: row for row in _read_rows(csv_path) if row.get("experiment") not in new}
    merged = {**kept, **new}
    order = list(EXPERIMENTS)
    ordered = sorted(merged.values(), key=lambda row: (order.index(row["experiment"])
                                                       if row["experiment"] in order else len(order)))
    lines = io.StringIO()
    writer = csv.DictWriter(lines, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({name: row.get(name, "") for name in COLUMNS} for row in ordered)
    atomic_files.write_text(csv_path, lines.getvalue())
    atomic_files.write_text(os.path.join(out, "results.md"), markdown(ordered, out, data, label))
    return ordered


def _measured(row):
    if not row["mean"]:
        return ""
    spread = f" ± {row['std']}" if row["std"] else ""
    return f"{row['mean']}{spread}"


def _interval(row):
    return f"{row['ci95_low']} – {row['ci95_high']}" if row["ci95_low"] else "—"


def markdown(rows, out, data, label=None):
    """`results.md`: the table, what each column means, the commands, the sources, the machine."""
    heading = "# Reproduction results"
    said = [heading, ""]
    if label:
        said += [f"**{label}**: every figure measured here is on SynthFER, the project's drawn "
                 "faces, at toy scale; it checks that each experiment runs end to end and says "
                 "nothing about the papers' figures.", ""]
    said += ["| experiment | data | paper | released | measured (mean ± std) | 95 % interval | "
             "seeds | mean class accuracy | optimistic | selection | protocol |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        figure = f"[{row['mean_class_accuracy']}]({row['confusion_matrix']})"
        said.append(
            f"| {row['experiment']} | {row['data']} | {row['paper'] or '—'} | "
            f"{row['released'] or '—'} | {_measured(row)} | {_interval(row)} | {row['seeds']} | "
            f"{figure} | {row['optimistic'] or '—'} | {row['selection']} | "
            f"{row['protocol']} on {row['test_split']} |")
    said += ["", "Accuracies in percent on the test split. *measured*: the test accuracy of the "
             "epoch the validation split selects, scored by the paper's protocol (`per_picture`: "
             "each picture alone; `arm`: ARM's batches of 64 in file order, each with its batch's "
             "affinity), mean ± sample standard deviation over the seeds; *95 % interval*: "
             "Student's t over the seeds, mean ± t(0.975, n - 1) · std / √n; *optimistic*: the "
             "best test accuracy of any epoch (chosen on the test faces, as both papers did), "
             "mean over seeds; *mean class accuracy* links the confusion matrix summed over the "
             "seeds; *released*: the released file scored the same way; *paper*: the figure "
             "the source below gives (— where it cannot be read here).", "",
             "## Commands", ""]
    said += [f"- {row['experiment']}: `{row['command']}`" for row in rows]
    said += ["", "## Sources", ""]
    for row in rows:
        released = (f"; released file `{row['released_file']}` (its own figure "
                    f"{row['released_reported']})" if row["released_file"] else "")
        chosen = (f"; the paper's epoch was selected {row['paper_selection']}"
                  if row.get("paper_selection") else "")
        said.append(f"- {row['experiment']}: {row['paper_source'] or 'no paper figure'}"
                    f"{released}{chosen}")
    said += ["", "## Machine", ""] + [f"- {line}" for line in environment(out)]
    return "\n".join(said) + "\n"


def _cpu_name():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory():
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            kilobytes = int(handle.readline().split()[1])
        return f", {kilobytes / 2 ** 20:.0f} GiB memory"
    except (OSError, ValueError, IndexError):
        return ""


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment(out):
    """Lines naming the machine, the devices the runs used, the date and the library versions."""
    devices = set()
    runs = os.path.join(out, "runs")
    for root, _, files in os.walk(runs):
        if "result.json" in files:
            with open(os.path.join(root, "result.json"), encoding="utf-8") as handle:
                devices.add(json.load(handle).get("device", "unknown"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = ", ".join(f"{name} {_version(name)}" for name in
                         ("adcorre", "tensorflow", "keras", "numpy", "tensorboard"))
    return [f"machine: {_cpu_name()} ({platform.machine()}), {cores} cores{_memory()}, "
            f"{platform.system()} {platform.release()}",
            f"device of the runs: {'; '.join(sorted(devices)) or 'none ran'}",
            f"written: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
            f"versions: Python {platform.python_version()}, {versions}"]


def format_table(rows):
    """The rows as a plain-text table for the terminal."""
    header = ("experiment", "data", "paper", "measured", "seeds", "released")
    body = [(row["experiment"], "SynthFER" if row["data"].startswith("SynthFER") else "real",
             row["paper"] or "-", _measured(row) or "-", row["seeds"], row["released"] or "-")
            for row in rows]
    widths = [max(len(str(line[i])) for line in (header, *body)) for i in range(len(header))]
    text = ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip()
            for line in (header, *body)]
    if any(row["data"].startswith("SynthFER") for row in rows):
        text.append("SynthFER rows: SynthFER, not a paper figure.")
    return "\n".join(text)
