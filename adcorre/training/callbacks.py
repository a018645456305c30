"""The callbacks of a run: the work at each epoch's end, and the logs.

- `EpochEnd`: refreshes the attention map, scores the test split (and a validation split),
  writes the epoch's `.h5` (atomically, with its metadata) and its confusion matrix, keeps the
  best; `epoch_model_path` names the epoch's file, `best_model_note` says how the best was chosen.
- `EpochCSVLogger`, `EpochTensorBoard`: Keras' loggers, epochs counted from 1 as the files are.
- `TotalEpochsProgbar`: Keras' progress bar, told the run's epochs (each `fit` call runs one).

The backup that lets a run resume is `resume.ResumableBackup`. This module knows nothing of
datasets or files on disk beyond the run folder it is handed.
"""

import os
import warnings

from adcorre import runtime  # noqa: F401  (Keras loads without TensorFlow's start-up noise)
import keras
import numpy as np

from adcorre import atomic_files
from adcorre.data.pictures import BadImageWarning
from adcorre.models import weights_io
from adcorre.reports import classification_summary, format_confusion_matrix, plot_confusion_matrix
from adcorre.training.learning_schedules import last_step_rate


def epoch_model_path(save_dir, dataset_name, epoch, test_accuracy):
    """Where an epoch's model is saved: `<save_dir>/<dataset>_<epoch>_AC_<accuracy>.h5` (epochs
    counted from 1; the accuracy on the split each epoch is scored on)."""
    return os.path.join(save_dir, f"{dataset_name}_{int(epoch)}_AC_{float(test_accuracy):.4f}.h5")


class EpochEnd(keras.callbacks.Callback):
    """Refreshes the attention map, evaluates, saves `<dataset>_<epoch>_AC_<acc>.h5`, keeps the best.

    It runs before Keras' logging callbacks, so the values it adds to `logs`
    (`test_accuracy`, `test_mean_class_accuracy`: on the split `test_split` names;
    `val_accuracy`, `val_mean_class_accuracy` with a validation split; `omega_<class>`,
    `attention_samples`: how many training predictions the new omega rests on,
    `batches_counted`: how many of the epoch's batches its loss and accuracy cover, all of them
    after a resume too, and `learning_rate`: the rate of the epoch's last step) reach the CSV
    log and TensorBoard.

    The best epoch is the one with the best test accuracy (optimistic: chosen on the faces
    it is reported on) or, given `validation`, the best validation accuracy; `trainer_state`
    records its path, epoch, test accuracy (`best_accuracy`) and validation accuracy
    (`best_val_accuracy`).
    """

    def __init__(self, trainer_state, test_dataset, test_labels, save_dir, dataset_name,
                 names, arch, keep_all=False, chief=True, test_split="test", validation=None,
                 backup=None):
        super().__init__()
        self.state = trainer_state
        # The run's `ResumableBackup`: how many batches the epoch's loss and accuracy cover.
        self.backup = backup
        self.test_dataset = test_dataset
        self.test_labels = np.asarray(test_labels)
        self.test_split = test_split
        # (dataset, labels) of the validation split, scored as the test split is.
        self.validation = None if validation is None else (validation[0], np.asarray(validation[1]))
        self.save_dir = save_dir
        self.dataset_name = dataset_name
        self.names = tuple(names)
        self.arch = arch
        self.keep_all = keep_all
        self.chief = chief
        self._row_model = None

    def _score(self, dataset, all_labels, what):
        """A split's class probabilities and the labels of the images they belong to.

        A dataset of `(images, labels, rows)` (`input_pipeline.make_dataset(return_index=True)`)
        may leave out an image that fails to decode, or repeat one (its spares), so each
        prediction is matched with its row by a model that passes the row through; rows that
        never came are counted and named in one warning.
        """
        if self._row_model is None:
            self._row_model = _passing_rows_through(self.model.network)
        inputs = dataset.map(lambda images, labels, rows: ((images, rows),))
        probabilities, rows = self._row_model.predict(inputs, verbose=0)
        rows, first = np.unique(np.asarray(rows).astype(np.int64), return_index=True)
        missing = sorted(set(range(len(all_labels))) - set(rows.tolist()))
        if missing:
            images = getattr(dataset, "images", None)
            names = [str(images[i]) if images is not None else f"row {i}" for i in missing]
            warnings.warn(
                f"{len(missing)} of {len(all_labels)} {what} images could not be decoded "
                f"this epoch and were not scored: {', '.join(names[:5])}"
                f"{' ...' if len(names) > 5 else ''}.", BadImageWarning, stacklevel=2)
        return np.asarray(probabilities)[first], all_labels[rows]

    def _score_test_split(self):
        """`_score` of the split each epoch is scored on."""
        return self._score(self.test_dataset, self.test_labels, self.test_split)

    def _summary(self, dataset, labels, what):
        probabilities, labels = self._score(dataset, labels, what)
        return classification_summary(labels, np.argmax(probabilities, axis=-1), len(self.names))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = last_step_rate(self.model.optimizer)
        logs["attention_samples"] = float(self.model.attention.confusion_matrix().sum())
        if self.backup is not None:
            logs["batches_counted"] = float(self.backup.batches_counted())
        omega = self.model.attention.refresh()
        for name, value in zip(self.names, omega):
            logs[f"omega_{name.lower()}"] = float(value)

        summary = self._summary(self.test_dataset, self.test_labels, self.test_split)
        logs["test_accuracy"] = summary["accuracy"]
        logs["test_mean_class_accuracy"] = summary["mean_class_accuracy"]
        scores = {"test_accuracy": summary["accuracy"],
                  "test_mean_class_accuracy": summary["mean_class_accuracy"],
                  "test_split": self.test_split}
        # Keras counts epochs from 0; everything a user reads (this line, file names, log.csv,
        # training_state.json, TensorBoard) counts from 1, as the progress bar does.
        number = epoch + 1
        line = (f"\nepoch {number}: test accuracy {summary['accuracy']:.4f} on {self.test_split}, "
                f"mean class accuracy {summary['mean_class_accuracy']:.4f}")
        if self.validation is not None:
            val = self._summary(*self.validation, "validation")
            logs["val_accuracy"] = scores["val_accuracy"] = val["accuracy"]
            logs["val_mean_class_accuracy"] = val["mean_class_accuracy"]
            scores["val_mean_class_accuracy"] = val["mean_class_accuracy"]
            line += (f"; validation accuracy {val['accuracy']:.4f}, mean class accuracy "
                     f"{val['mean_class_accuracy']:.4f}")
        print(f"{line}; omega [{', '.join(f'{v:.3f}' for v in omega)}]")
        if not self.chief:
            return
        path = epoch_model_path(self.save_dir, self.dataset_name, number, summary["accuracy"])
        stem = os.path.splitext(os.path.basename(path))[0]
        weights_io.save_model(
            self.model.network, path, labels=self.names, input_range=(0.0, 1.0), arch=self.arch,
            extra={"epoch": number, "dataset": self.dataset_name, **scores},
        )
        atomic_files.write_text(os.path.join(self.save_dir, stem + ".txt"),
                                format_confusion_matrix(summary["confusion_matrix"], self.names) + "\n")
        plot_confusion_matrix(summary["confusion_matrix"], self.names,
                              os.path.join(self.save_dir, stem + ".png"),
                              title=f"{self.dataset_name} {self.test_split} epoch {number} acc "
                                    f"{summary['accuracy']:.4f}")
        previous_best = self.state.get("best_path")
        if self.validation is not None:
            better = scores["val_accuracy"] > self.state.get("best_val_accuracy", -1.0)
        else:
            better = summary["accuracy"] > self.state.get("best_accuracy", -1.0)
        if better:
            self.state.update(best_accuracy=summary["accuracy"], best_path=path, best_epoch=number)
            if self.validation is not None:
                self.state["best_val_accuracy"] = scores["val_accuracy"]
        if not self.keep_all:
            # Keep the best file and the latest one; earlier non-best epochs go.
            for old in (self.state.get("latest_path"), previous_best):
                if old and old not in (path, self.state["best_path"]) and os.path.exists(old):
                    for suffix in (".h5", ".txt", ".png"):
                        candidate = old[:-3] + suffix
                        if os.path.exists(candidate):
                            os.remove(candidate)
        self.state["latest_path"] = path
        self.state.setdefault("history", []).append(
            {"epoch": number, **{k: v for k, v in logs.items() if np.isscalar(v)}})
        atomic_files.write_json(os.path.join(self.save_dir, "training_state.json"), self.state)


def _probabilities(predictions):
    """The class probabilities of a prediction: a one-output network (num_embeddings=0)
    predicts an array, the others a list whose first entry they are."""
    return predictions[0] if isinstance(predictions, (list, tuple)) else predictions


def _passing_rows_through(network):
    """`[images, rows] -> [probabilities, rows]`: predictions that carry the row they are of."""
    images = keras.Input(tuple(network.inputs[0].shape[1:]), name="images")
    rows = keras.Input((), dtype="int64", name="rows")
    return keras.Model([images, rows], [_probabilities(network(images)), rows])


class EpochCSVLogger(keras.callbacks.CSVLogger):
    """Keras' CSV log without the empty `val_*` columns it adds when `fit` validates nothing
    (this trainer evaluates its splits itself, logged as `test_*` and, with a validation split,
    `val_*`), its `epoch` column counted from 1 like the epoch files (Keras writes its 0-based
    index), and a `test_split` column naming the split `test_*` was scored on.

    Appending to a log that already has a header keeps that header's columns, so the rows of a
    resumed run line up with the earlier ones.
    """

    def __init__(self, filename, separator=",", append=False, test_split="test"):
        super().__init__(filename, separator=separator, append=append)
        self.test_split = test_split

    def on_epoch_end(self, epoch, logs=None):
        logs = {**(logs or {}), "test_split": self.test_split}
        if self.keys is None:
            self.keys = self._existing_columns() or sorted(logs)
        super().on_epoch_end(epoch + 1, logs)

    def _existing_columns(self):
        if not (self.append and os.path.exists(self.filename)):
            return None
        with open(self.filename, newline="", encoding="utf-8") as handle:
            header = handle.readline().strip()
        columns = header.split(self.sep) if header else []
        return [c for c in columns if c != "epoch"] or None


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard logger, keeping the `learning_rate` EpochEnd logged (the rate of the
    epoch's last step, as in log.csv); Keras' own would be the next step's. Epoch summaries
    are at step 1, 2, ... (the epoch's number in file names and log.csv), not Keras' 0, 1, ..."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch + 1, logs)

    def _collect_learning_rate(self, logs):
        return logs if "learning_rate" in logs else super()._collect_learning_rate(logs)


class TotalEpochsProgbar(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, told the run's total epochs (each `fit` call covers one)."""

    def __init__(self, total_epochs):
        super().__init__()
        self.total_epochs = total_epochs

    def set_params(self, params):
        super().set_params(params)
        self.epochs = self.total_epochs


def best_model_note(state, test_split):
    """What the Best model line says of the best epoch: its test accuracy, on which split, and
    how it was chosen (ending with `epoch N`)."""
    accuracy = f"test accuracy {state.get('best_accuracy', 0):.4f} on {test_split}"
    if "best_val_accuracy" in state:
        how = f"selected by validation (accuracy {state['best_val_accuracy']:.4f})"
    else:
        how = "selected by that test accuracy, an optimistic figure"
    return f"{accuracy}, {how}, epoch {state.get('best_epoch')}"
