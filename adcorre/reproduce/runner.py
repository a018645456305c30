"""The runs of a reproduction: one per experiment and seed, skipped when finished, resumed when
stopped, each scored by its paper's protocol; the released files scored the same way.

A results folder (`--out DIR`) holds:

- `reproduce.json`: which data its runs were made on (`real` or `synth`: one kind per folder);
- `data/<layout>/`: SynthFER in each dataset's own layout (`--data synth` only);
- `runs/<experiment>/seed<N>/`: the `TrainModel` run folder (`save_dir`, so a stopped run resumes
  from its backup), `reproduce_run.json` (the settings it was started with) and, once it is
  scored, `result.json`, the mark of a finished run;
- `released/<experiment>.json`: the released file's score (`--released`);
- `figures/<experiment>_confusion.png`: the confusion matrix summed over the seeds;
- `tensorboard/`: each run's hyperparameters and final metrics (TensorBoard's hparams plugin);
- `results.csv`, `results.md` (`results`).

Everything a run needs from the rest of the package goes through its public names:
`adcorre.TrainModel` (one subclass adds what no keyword sets: which Ad-Corre terms train, and
eager steps at toy scale), `adcorre.TestModels(...).evaluate`, `synth_faces.write_dataset` and
`named_weights.locate`.

```python
from adcorre.reproduce.runner import reproduce
reproduce(["adcorre-rafdb"], seeds=2, data="synth", out="reproduction")  # minutes on 2 cores
```
"""

import dataclasses
import hashlib
import json
import os
import shutil
import time

import numpy as np

from adcorre import atomic_files
from adcorre.config import default_data_dir
from adcorre.errors import ResumeError, SettingError
from adcorre.reproduce import estimate, results
from adcorre.reproduce.experiments import EXPERIMENTS, LOSS_TERMS, resolve

DATA_KINDS = ("real", "synth")
SYNTH_LABEL = "SynthFER, not a paper figure"
# The faces of each SynthFER layout are drawn once, with this seed; the seeds of the runs vary
# initialisation, data order and augmentation over the same faces, as they would on real data.
SYNTH_DATA_SEED = 0
SYNTH_TEST_FRACTION = 0.25


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run of an experiment: its seed and its folder under `runs/`."""

    experiment: object
    seed: int
    out: str

    @property
    def folder(self):
        return os.path.join(self.out, "runs", self.experiment.name, f"seed{self.seed}")

    @property
    def result_path(self):
        return os.path.join(self.folder, "result.json")

    @property
    def label(self):
        return f"{self.experiment.name} seed {self.seed}"


def reproduce(names, seeds=1, data="real", out="reproduction", released=False, yes=False,
              data_root=None, estimate_only=False):
    """Runs the experiments `names` (or groups) `seeds` times each and writes the results.

    Args:
        names: experiment or group names (`experiments.resolve`).
        seeds: runs per experiment, seeds 0 .. seeds - 1.
        data: `"real"` (the datasets under `data_root`) or `"synth"` (SynthFER in each dataset's
            layout, at each experiment's toy scale: no paper figure).
        out: the results folder (made if needed; a rerun skips what is finished there).
        released: also score each experiment's released file with its protocol.
        yes: start a reproduction estimated at over an hour without asking.
        data_root: the folder holding `rafdb/`, `affectnet/`, `fer2013/` (default: each
            dataset's `config.default_data_dir`).
        estimate_only: print the time estimate and stop.

    Returns:
        The rows written to `results.csv` (dicts, `results.COLUMNS`); [] with `estimate_only`;
        None when the question was answered no.
    """
    chosen, pending = _plan(names, seeds, data, out, released)
    synth = data == "synth"
    if estimate_only:
        _say_estimate(pending, synth)
        return []
    _claim(out, data)
    scoring = [e for e in chosen if released and e.released and not _released_done(out, e)]
    located = {experiment.name: _locate(experiment) for experiment in scoring}
    if not pending:
        print("Every run has finished already.")
    else:
        total = _say_estimate(pending, synth)
        if total is not None and not estimate.confirm(total, yes):
            print("Nothing started.")
            return None
    _run_all(pending, data, out, data_root)
    for experiment in scoring:
        score = _score_released(experiment, located[experiment.name], data, out, data_root)
        print(f"{experiment.name}: released {experiment.released} "
              f"{100 * score['accuracy']:.2f} %{_tag(synth)}", flush=True)
    rows = _write_results(chosen, seeds, data, out, released)
    print(results.format_table(rows))
    print(f"Results: {os.path.join(out, 'results.csv')}, {os.path.join(out, 'results.md')}")
    return rows


def _plan(names, seeds, data, out, released):
    """`(experiments, runs still to do)`, every argument checked and every run folder that was
    started under other settings refused, before any work."""
    if data not in DATA_KINDS:
        raise SettingError(f"data must be one of {DATA_KINDS}, got {data!r}.")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise SettingError(f"seeds must be an integer >= 1, got {seeds!r}.")
    chosen = [EXPERIMENTS[name] for name in resolve(names)]
    if released and not any(experiment.released for experiment in chosen):
        raise SettingError(f"--released: none of {', '.join(e.name for e in chosen)} has a "
                           "released file (adcorre reproduce --list names them).")
    runs = [Run(experiment, seed, out) for experiment in chosen for seed in range(seeds)]
    pending = [run for run in runs if not _finished(run, data)]
    for run in pending:
        _check_fingerprint(run, data)
    return chosen, pending


def _run_all(pending, data, out, data_root):
    """Runs `pending` one after the other, saying each figure; then TensorBoard's columns."""
    tag = _tag(data == "synth")
    for number, run in enumerate(pending, 1):
        print(f"[{number}/{len(pending)}] {run.label}{tag}: {run.folder}", flush=True)
        result = _run(run, data, data_root)
        print(f"{run.label}: test accuracy {100 * result['accuracy']:.2f} % "
              f"({_selected_words(result)}){tag}", flush=True)
    if pending:
        _write_hparams_config(out, pending)


def _tag(synth):
    return f" ({SYNTH_LABEL})" if synth else ""


def _selected_words(result):
    if result["selected_by"] == "validation":
        return (f"epoch {result['selected_epoch']} selected by validation; optimistic "
                f"{100 * result['optimistic']:.2f} %")
    return f"epoch {result['selected_epoch']} selected by test, optimistic"


def _say_estimate(pending, synth):
    """Prints the estimate of the `pending` runs; returns its seconds (None: not timed)."""
    if not pending:
        print("Every run has finished already: nothing to estimate.")
        return 0.0
    if synth:
        print(estimate.toy_line(pending))
        return None
    lines, total = estimate.estimate(pending)
    print("\n".join(lines), flush=True)
    return total


# --------------------------------------------------------------------------- the folder


def _claim(out, data):
    """Marks `out` as holding runs on `data`; refuses a folder made with the other kind."""
    path = os.path.join(out, "reproduce.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            made_on = json.load(handle).get("data")
        if made_on != data:
            raise SettingError(
                f"{out} holds runs on {made_on!r} data, not {data!r}: choose another --out for "
                f"--data {data}, so that no SynthFER figure sits beside a real one.")
        return
    os.makedirs(out, exist_ok=True)
    atomic_files.write_json(path, {"data": data})


def _fingerprint(run, data):
    """What a run is: everything that changes its figure. A finished run is reused only when
    its record says the same."""
    experiment = run.experiment
    return {"experiment": experiment.name, "seed": run.seed, "data": data,
            "arch": experiment.arch, "loss_terms": list(experiment.loss_terms),
            "train": experiment.train_settings(run.seed, synth=data == "synth"),
            "eager": data == "synth" and experiment.toy.eager,
            "protocol": experiment.protocol, "test_split": experiment.test_split,
            "read_options": experiment.read_options,
            "layout": experiment.layout if data == "synth" else None}


def _check_fingerprint(run, data):
    """Refuses a run folder started with other settings (a record changed, or another seed)."""
    path = os.path.join(run.folder, "reproduce_run.json")
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as handle:
        started = json.load(handle)
    wanted = json.loads(json.dumps(_fingerprint(run, data)))
    changed = sorted(key for key in set(started) | set(wanted)
                     if started.get(key) != wanted.get(key))
    if changed:
        raise ResumeError(
            f"{run.folder} was started with other settings ({', '.join(changed)} differ from "
            f"the record of {run.experiment.name}); choose another --out, or remove that folder "
            "to run it again.")


def _finished(run, data):
    if not os.path.exists(run.result_path):
        return False
    _check_fingerprint(run, data)
    return True


def _data_dir(experiment, data, out, data_root):
    """Where the experiment's dataset is: SynthFER written once in its layout, or the real one."""
    if data == "real":
        if data_root is None:
            return default_data_dir(experiment.dataset)
        return os.path.join(data_root, experiment.dataset)
    from adcorre.data import synth_faces

    toy, layout = experiment.toy, dict(experiment.layout)
    kind = layout.pop("layout")
    key = (f"{kind}{'-original' if layout.get('aligned') is False else ''}-{toy.faces}-"
           f"{toy.image_size}px")
    folder = os.path.join(out, "data", key)
    if not os.path.isdir(folder):
        # Written beside its place and renamed when whole: a stop leaves no half dataset.
        partial = folder + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        synth_faces.write_dataset(partial, layout=kind, n=toy.faces, image_size=toy.image_size,
                                  seed=SYNTH_DATA_SEED, test_fraction=SYNTH_TEST_FRACTION,
                                  class_prior=np.ones(7), **layout)
        os.replace(partial, folder)
    return folder


# ------------------------------------------------------------------------------ one run


def _run(run, data, data_root):
    """Trains (or resumes) one run, scores its selected epoch, writes `result.json`."""
    experiment = run.experiment
    synth = data == "synth"
    data_dir = _data_dir(experiment, data, run.out, data_root)
    _check_fingerprint(run, data)
    os.makedirs(run.folder, exist_ok=True)
    atomic_files.write_json(os.path.join(run.folder, "reproduce_run.json"),
                            _fingerprint(run, data))
    started = time.time()
    trainer = experiment_training()(
        loss_terms=experiment.loss_terms, eager=synth and experiment.toy.eager,
        data_dir=data_dir, save_dir=run.folder, **experiment.train_settings(run.seed, synth))
    best = trainer.train(arch=experiment.arch)
    with open(os.path.join(run.folder, "training_state.json"), encoding="utf-8") as handle:
        state = json.load(handle)
    summary = _trainers_score(state, best) if experiment.protocol == "per_picture" else None
    if summary is None:
        summary = _evaluate(best, experiment, data_dir, best[:-3] + "_protocol.png")
    result = _result(run, state, summary, best, time.time() - started, data)
    result["hparams"] = _hparams(run, trainer.config)
    _write_hparams(run, result)
    atomic_files.write_json(run.result_path, result)  # the mark of a finished run
    # The backup (weights and optimizer state, three times the model) only continues a run
    # past its epochs, which a reproduction never does; the selected model stays.
    shutil.rmtree(os.path.join(run.folder, "backup"), ignore_errors=True)
    return result


def _evaluate(model_path, experiment, data_dir, plot_path):
    """The paper's protocol on the experiment's test split (`TestModels.evaluate`)."""
    from adcorre import TestModels

    tester = TestModels(h5_address=model_path, verbose=False, detector=None)
    return tester.evaluate(experiment.dataset, data_dir, experiment.test_split,
                           protocol=experiment.protocol, plot_cm=plot_path,
                           **experiment.read_options)


def _trainers_score(state, best):
    """The selected epoch as the trainer scored it, each test picture alone: the `per_picture`
    protocol itself (the same reader, split and options), read back from training_state.json and
    the epoch's confusion table (`<epoch file>.txt`, `reports.format_confusion_matrix`); None
    when that table cannot be read (then the file is scored again)."""
    labels = list(state.get("labels", ()))
    epoch = next(entry for entry in state["history"] if entry["epoch"] == state["best_epoch"])
    try:
        with open(best[:-3] + ".txt", encoding="utf-8") as handle:
            rows = handle.read().splitlines()[1:]
        matrix = np.array([[int(v) for v in row.split()[-len(labels):]] for row in rows])
    except (OSError, ValueError):
        return None
    if matrix.shape != (len(labels), len(labels)) or not labels:
        return None
    return {"accuracy": epoch["test_accuracy"],
            "mean_class_accuracy": epoch["test_mean_class_accuracy"],
            "confusion_matrix": matrix, "labels": labels, "num_samples": int(matrix.sum()),
            "protocol": "per_picture"}


def _result(run, state, summary, best, seconds, data):
    """`result.json`: the selected epoch's score under the protocol, and how it was chosen."""
    from adcorre import runtime

    history = state.get("history", [])
    selected = int(state["best_epoch"])
    by_validation = state.get("selected_by") == "validation"
    tests = [float(entry["test_accuracy"]) for entry in history if "test_accuracy" in entry]
    epoch = next(entry for entry in history if int(entry["epoch"]) == selected)
    return {
        "experiment": run.experiment.name, "seed": run.seed, "data": data,
        "accuracy": float(summary["accuracy"]),
        "mean_class_accuracy": float(summary["mean_class_accuracy"]),
        "confusion_matrix": np.asarray(summary["confusion_matrix"]).tolist(),
        "labels": list(summary["labels"]), "num_samples": int(summary["num_samples"]),
        "protocol": summary["protocol"], "test_split": run.experiment.test_split,
        "selected_epoch": selected, "epochs": len(history),
        "selected_by": "validation" if by_validation else "test",
        "val_accuracy": float(epoch["val_accuracy"]) if by_validation else None,
        # What the trainer scored the selected epoch at, each picture on its own; and the best
        # of any epoch, which the papers reported (chosen on the faces it is measured on).
        "trainer_test_accuracy": float(epoch["test_accuracy"]),
        "optimistic": max(tests) if tests else None,
        "model": os.path.relpath(best, run.out), "seconds": round(seconds, 1),
        "device": runtime.device_line(), "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


_TRAINING_CLASS = []


def experiment_training():
    """`adcorre.TrainModel` with the two things an experiment sets that no keyword does: which
    Ad-Corre terms train (`loss_terms`, a subset of FD, MD, ED; the others get weight 0 and are
    still logged), and `eager` steps (no graph to build: a handful of Xception steps on a CPU
    cost less than its graph). Made on first use (TrainModel loads TensorFlow)."""
    if _TRAINING_CLASS:
        return _TRAINING_CLASS[0]
    from adcorre import TrainModel

    class ExperimentTraining(TrainModel):
        __doc__ = experiment_training.__doc__

        def __init__(self, loss_terms=LOSS_TERMS, eager=False, **keywords):
            super().__init__(**keywords)
            self.loss_terms = tuple(loss_terms)
            self.eager = bool(eager)

        def _build_trainer(self, *args, **kwargs):
            # TrainModel builds its AdCorreTrainer here; its loss reads the weights when the
            # step is traced, which comes later.
            trainer = super()._build_trainer(*args, **kwargs)
            for term in LOSS_TERMS:
                if term not in self.loss_terms:
                    setattr(trainer.adcorre, f"{term}_weight", 0.0)
            if self.eager:
                trainer.run_eagerly, trainer.jit_compile = True, False
            return trainer

    _TRAINING_CLASS.append(ExperimentTraining)
    return ExperimentTraining


def _hparams(run, config):
    """The run's hyperparameters: its `LearningConfig`'s plain values and what the record adds."""
    values = {name: value for name, value in config.to_dict().items()
              if isinstance(value, (bool, int, float, str))}
    values.update(experiment=run.experiment.name, arch=run.experiment.arch,
                  loss_terms="+".join(("ce",) + tuple(run.experiment.loss_terms)),
                  protocol=run.experiment.protocol)
    return values


def _write_hparams(run, result):
    """The run's hyperparameters and final metrics for TensorBoard's hparams dashboard, under
    `tensorboard/<experiment>/seed<N>` of the results folder (one root: the runs compare)."""
    from adcorre import runtime  # noqa: F401  (TensorFlow without its start-up noise)
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hparams_api

    values = result["hparams"]
    writer = tf.summary.create_file_writer(
        os.path.join(run.out, "tensorboard", run.experiment.name, f"seed{run.seed}"))
    with writer.as_default():
        hparams_api.hparams(values, trial_id=f"{run.experiment.name}/seed{run.seed}")
        for name in HPARAM_METRICS:
            if result.get(name) is not None:
                tf.summary.scalar(f"reproduce/{name}", result[name], step=result["selected_epoch"])
    writer.close()


# The final metrics each run logs to TensorBoard (keys of result.json).
HPARAM_METRICS = ("accuracy", "mean_class_accuracy", "optimistic", "val_accuracy")


def _write_hparams_config(out, runs):
    """The dashboard's columns, once per command that ran something: the hyperparameters the
    `runs` recorded and the metrics."""
    from adcorre import runtime  # noqa: F401  (TensorFlow without its start-up noise)
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hparams_api

    names = set()
    for run in runs:
        with open(run.result_path, encoding="utf-8") as handle:
            names.update(json.load(handle)["hparams"])
    writer = tf.summary.create_file_writer(os.path.join(out, "tensorboard"))
    with writer.as_default():
        hparams_api.hparams_config(
            hparams=[hparams_api.HParam(name) for name in sorted(names)], metrics=[hparams_api.Metric(f"reproduce/{name}") for name in HPARAM_METRICS])
    writer.close()


# ----------------------------------------------------------------------- released files


def _released_path(out, experiment):
    return os.path.join(out, "released", f"{experiment.name}.json")


def _released_done(out, experiment):
    return os.path.exists(_released_path(out, experiment))


def _locate(experiment):
    """The released file of `experiment` on this machine, fetched once into the cache; before
    any training, so a file that cannot be had is said at once."""
    from adcorre.models import named_weights

    path, _ = named_weights.locate(experiment.released)
    return path


def _score_released(experiment, path, data, out, data_root):
    """Scores the released file with the experiment's protocol; writes `released/<name>.json`."""
    data_dir = _data_dir(experiment, data, out, data_root)
    os.makedirs(os.path.join(out, "figures"), exist_ok=True)
    plot = os.path.join(out, "figures", f"{experiment.name}_released_confusion.png")
    summary = _evaluate(path, experiment, data_dir, plot)
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    score = {"experiment": experiment.name, "name": experiment.released,
             "file": os.path.basename(path), "sha256": digest, "data": data,
             "accuracy": float(summary["accuracy"]),
             "mean_class_accuracy": float(summary["mean_class_accuracy"]),
             "num_samples": int(summary["num_samples"]), "protocol": summary["protocol"]}
    atomic_files.write_json(_released_path(out, experiment), score)
    return score


# ------------------------------------------------------------------------------ results


def _write_results(chosen, seeds, data, out, released):
    """Aggregates the finished runs of `chosen` and writes `results.csv` / `results.md`."""
    rows = []
    for experiment in chosen:
        found = []
        for seed in range(seeds):
            with open(Run(experiment, seed, out).result_path, encoding="utf-8") as handle:
                found.append(json.load(handle))
        score = None
        if released and experiment.released:
            with open(_released_path(out, experiment), encoding="utf-8") as handle:
                score = json.load(handle)
        figure = os.path.join(out, "figures", f"{experiment.name}_confusion.png")
        _confusion_figure(experiment, found, figure, data)
        rows.append(results.aggregate(experiment, found, score, data, figure=figure, out=out,
                                      released_asked=released))
    return results.write(out, rows, data, SYNTH_LABEL if data == "synth" else None)


def _confusion_figure(experiment, found, path, data):
    """The confusion matrix summed over the seeds, as a PNG (`reports.plot_confusion_matrix`)."""
    seeds = tuple(result["seed"] for result in found)
    marker = path + ".seeds"
    if os.path.exists(path) and os.path.exists(marker):
        with open(marker, encoding="utf-8") as handle:
            if handle.read().strip() == ",".join(map(str, seeds)):
                return
    from adcorre.reports import plot_confusion_matrix

    matrix = np.sum([np.asarray(result["confusion_matrix"]) for result in found], axis=0)
    accuracy = np.mean([result["accuracy"] for result in found])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    title = (f"{experiment.name}, {len(seeds)} seed{'s' if len(seeds) > 1 else ''}: mean "
             f"accuracy {100 * accuracy:.2f} %{' (SynthFER)' if data == 'synth' else ''}")
    plot_confusion_matrix(matrix, found[0]["labels"], path, title=title)
    atomic_files.write_text(marker, ",".join(map(str, seeds)) + "\n")

