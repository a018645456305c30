"""Resuming a run: the backups, what a resume must not change, and a run stopped on a signal.

- `ResumableBackup`: the whole training state every few hundred steps and at each epoch's end,
  so a killed run resumes at the batch where it stopped; `position_settings` is what a backup's
  position means, `check_resume` refuses a resume under settings that would move it.
- `load_run_state`: the records (`training_state.json`, `log.csv`) of the run being continued,
  made to agree with its backup (`agree_with_the_backup`).
- `signals_stop_the_run`: SIGTERM and SIGHUP stop a run as Ctrl+C does, a `RunStopped` that
  says how to resume.
"""

import contextlib
import csv
import hashlib
import io
import json
import os
import signal

from adcorre import runtime  # noqa: F401  (Keras loads without TensorFlow's start-up noise)
import keras
import numpy as np

from adcorre import atomic_files, signal_stops
from adcorre.data import pictures
from adcorre.errors import ResumeError
from adcorre.models import weights_io
from adcorre.settings import setting
from adcorre.training.callbacks import epoch_model_path


class ResumableBackup(keras.callbacks.Callback):
    """Backs up the whole training state every `every_steps` batches and at epoch ends, so a
    killed run resumes at the batch where it stopped.

    A backup is a `.weights.h5` of the trainer (network and optimizer slots) named after its
    position, plus `backup_position.json` holding `{epoch, batch, weights, omega, counts}`: the
    adaptive attention map's omega and the confusion counts gathered so far in the epoch (Keras'
    weight files leave metric variables out), and with a sliding attention window its counts
    and position (`window_counts`, `window_position`). The weights file holds the optimizer's
    step count too, so a schedule driven by it resumes at the step where the run stopped. Each file is written under a temporary name and
    renamed; the JSON is renamed last and names its weights file, so whenever the process dies
    the JSON describes a complete backup. Older weights files are removed after that.
    The JSON also keeps `settings`, what the position means (see `saved_position`); the
    backup at the end of the last epoch is what a finished run continues from.
    """

    POSITION_FILE = "backup_position.json"

    def __init__(self, backup_dir, every_steps=200, chief=True, settings=None):
        super().__init__()
        self.backup_dir = backup_dir
        self.every_steps = every_steps
        self.epoch, self.batch_offset = 0, 0
        self.chief = chief
        # What a position means (batch size, steps per epoch, the training split...): stored
        # with it, so a resume under other settings can be refused (`saved_position`).
        self.settings = dict(settings or {})
        self._pending_counts = None
        self._pending_metrics = None
        self.counted_before = 0

    @property
    def position_path(self):
        return os.path.join(self.backup_dir, self.POSITION_FILE)

    def saved_position(self):
        """The last backup's `backup_position.json` (with its `settings`), or None if none.

        Raises:
            ResumeError: the file is not the JSON this class writes (named in the message).
        """
        if not os.path.exists(self.position_path):
            return None
        try:
            with open(self.position_path, encoding="utf-8") as handle:
                position = json.load(handle)
            int(position["epoch"]), int(position["batch"]), str(position["weights"])
        except (ValueError, KeyError, TypeError) as error:
            raise ResumeError(
                f"{self.position_path} is not a backup position this project wrote ({error}); "
                "expected JSON with epoch, batch and weights. Delete the backup folder to "
                "start the run over, or use a new save folder.") from None
        return position

    def on_epoch_begin(self, epoch, logs=None):
        if epoch != self.epoch:
            self.batch_offset = 0
        self.epoch = epoch
        self.counted_before = 0
        if self._pending_counts is not None:
            # Keras zeroes metrics just before this call; put back what the killed run had
            # counted in this epoch, so the epoch's omega rests on all of its batches, and its
            # loss and accuracy on them too (`batches_counted` says how many they cover).
            self.model.attention.counts.assign(self._pending_counts)
            self._pending_counts = None
            self.counted_before = self._restore_metrics(self._pending_metrics)
            self._pending_metrics = None

    def _restore_metrics(self, saved):
        """Puts the saved running metrics back; the batches they cover (0 when they cannot be
        put back: a backup of an earlier version, or a strategy whose metric variables take no
        assignment from here)."""
        if not saved:
            return 0
        try:
            for metric in self.model.epoch_metrics:
                for variable, value in zip(metric.variables, saved[metric.name]):
                    variable.assign(np.asarray(value, dtype=variable.dtype))
        except (KeyError, ValueError, NotImplementedError, RuntimeError):
            for metric in self.model.epoch_metrics:
                metric.reset_state()
            return 0
        return self.batch_offset

    def batches_counted(self):
        """The batches this epoch's logged loss and accuracy cover: those run by this `fit`,
        plus those of the killed run when its running metrics were put back."""
        return int(self.params.get("steps") or 0) + self.counted_before

    def on_train_batch_end(self, batch, logs=None):
        done = self.batch_offset + batch + 1
        # Not on the epoch's last batch: the epoch-end backup follows, and a position at the very
        # end of an epoch would resume into an empty one, skipping its evaluation and save.
        last = batch + 1 >= (self.params.get("steps") or float("inf"))
        if self.every_steps and done % self.every_steps == 0 and not last:
            self._save(self.epoch, done)

    def on_epoch_end(self, epoch, logs=None):
        self._save(epoch + 1, 0)

    def _save(self, epoch, batch):
        # Every worker takes part in reading the variables (collectives); only the chief writes.
        attention = self.model.attention
        state = {"omega": np.asarray(attention.omega).tolist(),
                 "counts": attention.confusion_matrix().tolist()}
        if attention.window_batches:
            state.update(window_counts=np.asarray(attention.window_counts).tolist(),
                         window_position=int(np.asarray(attention.window_position)))
        if batch:
            # The epoch's running loss and accuracy so far, so a resumed epoch's log row counts
            # all of its batches (Keras' weight files leave metric variables out).
            state["metrics"] = {metric.name: [np.asarray(v).tolist() for v in metric.variables]
                                for metric in self.model.epoch_metrics}
        # Built in memory (every worker takes part: collectives), written by the chief alone.
        data = weights_io.weights_bytes(self.model)
        if not self.chief:
            return
        name = f"backup_epoch{epoch}_batch{batch}.weights.h5"
        atomic_files.write_bytes(os.path.join(self.backup_dir, name), data)
        atomic_files.write_json(self.position_path,
                               {"epoch": epoch, "batch": batch, "weights": name,
                                "settings": self.settings, **state})
        for old in os.listdir(self.backup_dir):
            if old.endswith(".weights.h5") and old != name:
                os.remove(os.path.join(self.backup_dir, old))

    def load(self, trainer):
        """Restores the last backup into `trainer` and this callback's position in the run.

        Returns:
            The (epoch, batch) to resume at; (0, 0) when there is no backup.
        """
        position = self.saved_position()
        if position is None:
            return self.epoch, self.batch_offset
        trainer.load_weights(os.path.join(self.backup_dir, position["weights"]))
        trainer.attention.omega.assign(np.asarray(position["omega"], "float32"))
        if trainer.attention.window_batches and "window_counts" in position:
            trainer.attention.window_counts.assign(
                np.asarray(position["window_counts"], "float32"))
            trainer.attention.window_position.assign(int(position["window_position"]))
        self._pending_counts = np.asarray(position["counts"], "float32")
        self._pending_metrics = position.get("metrics")
        self.epoch, self.batch_offset = int(position["epoch"]), int(position["batch"])
        return self.epoch, self.batch_offset


def position_settings(config, arch, train, steps):
    """What a backup's (epoch, batch) position means: a resume must not change any of it.

    Args:
        config: the run's `LearningConfig`.
        arch: the arch trained.
        train: the training split (`splits.PreparedSplit`).
        steps: the steps of an epoch.

    Returns:
        A JSON-ready dict that `ResumableBackup` stores with each position.
    """
    listing = "\n".join(f"{pictures.describe_image(image)}\t{label}"
                        for image, label in zip(train.rows.items, train.labels))
    return {"arch": arch, "batch_size": config.batch_size, "steps_per_epoch": steps,
            "seed": config.seed, "mrr": bool(config.mrr), "input_size": config.input_size,
            "num_classes": config.num_classes, "num_embeddings": config.num_embeddings,
            "embedding_size": config.embedding_size, "optimizer": config.optimizer,
            "attention_window": config.attention_window, "train_images": len(train.labels),
            "train_split": hashlib.sha256(listing.encode("utf-8", "replace")).hexdigest()[:16],
            # Not where the run stands, but what its best epoch was chosen on: a history
            # scored on another split, or chosen another way, cannot be continued.
            "test_split": config.test_split, "val_fraction": config.val_fraction}


def check_resume(save_dir, position, settings):
    """Refuses to resume `save_dir` under settings that move its backup's position."""
    if position is None:
        state_path = os.path.join(save_dir, "training_state.json")
        if os.path.exists(state_path) and not _stopped_before_its_first_backup(state_path):
            raise ResumeError(
                f"{save_dir} holds a finished run ({state_path}) but no backup to continue "
                "it from (runs of earlier versions deleted it at the end). Choose a new "
                "--save-dir (save_dir=) for a new run.")
        return
    saved = position.get("settings") or {}  # backups of earlier versions have none
    changed = [name for name in settings if name in saved and saved[name] != settings[name]]
    if "train_split" in changed:  # the split changed: its size and steps follow from that
        changed = [n for n in changed if n not in ("train_images", "steps_per_epoch")]
    if "val_fraction" in changed:  # another validation share: another training split
        changed = [n for n in changed if n != "train_split"]
    if not changed:
        return
    said = []
    for name in changed:
        flag = _flag_of(name)
        if name == "train_split":
            said.append(f"another training split ({saved.get('train_images')} images, now "
                        f"{settings.get('train_images')}; {flag})")
        else:
            said.append(f"{flag} {_shown(saved[name])} (now {_shown(settings[name])})")
    raise ResumeError(
        f"Cannot resume {save_dir}: its backup (epoch {int(position['epoch']) + 1}, batch "
        f"{position['batch']}) was made with {'; '.join(said)}, and that moves where the "
        "run stands. Give the same settings to resume, or a new --save-dir (save_dir=) to "
        "start over.")


def load_run_state(save_dir, start_epoch, start_batch, epochs, chief):
    """The records of the run in `save_dir`, as its backup continues it (empty for a new run).

    Says in one line what happens: a resume at its backup's position, or a run stopped in its
    first epoch after its records but before its first backup starting over.

    Args:
        save_dir: the run folder.
        start_epoch, start_batch: where the backup resumes (`ResumableBackup.load`).
        epochs: the epochs the run is asked for.
        chief: whether this worker writes files (only the chief trims the records).

    Returns:
        The loaded `training_state.json`, its history trimmed to the backup's epochs.
    """
    resuming = bool(start_epoch or start_batch)
    if resuming and start_epoch < epochs:
        print(f"Resuming {save_dir} at epoch {start_epoch + 1}, batch {start_batch}.")
    state_path = os.path.join(save_dir, "training_state.json")
    if not os.path.exists(state_path):
        return {}
    # A backup to resume from, or (refused by check_resume otherwise) a run stopped in its first
    # epoch after its records but before its first backup: it starts over.
    with open(state_path) as handle:
        state = json.load(handle)
    if not resuming:
        print(f"Starting {save_dir} over: it was stopped in its first epoch, before its first "
              "backup.")
    if chief:
        agree_with_the_backup(save_dir, state, start_epoch)
    return state


class RunStopped(signal_stops.Stopped):
    """A run stopped by Ctrl+C, SIGTERM or SIGHUP, as Ctrl+C stops it: every file being written
    is removed, the last backup stays, and the message says how to resume. A `KeyboardInterrupt`
    (`signal_stops.Stopped`), so nothing on the way out takes it for an error to handle."""

    def __init__(self, signal_number, save_dir):
        name = signal.Signals(signal_number).name
        super().__init__(signal_number, f"the run was stopped ({name}); run the same command "
                                        f"with --save-dir {save_dir} (save_dir=) to resume it "
                                        "from its last backup.")


@contextlib.contextmanager
def signals_stop_the_run(save_dir):
    """SIGTERM and SIGHUP stop the run the way Ctrl+C (SIGINT) does (`signal_stops`, the handler
    every command uses): a `RunStopped` raised where the run is, so `finally` blocks remove the
    temporary files being written (a kill left a `.tmp-...h5` behind), and a download inside the
    run (ImageNet's weights) says how to resume too."""
    try:
        with signal_stops.signals_stop(lambda number: RunStopped(number, save_dir)):
            yield
    except RunStopped:
        raise
    except KeyboardInterrupt as stop:  # Ctrl+C (Python's own handler), or a download's stop
        raise RunStopped(getattr(stop, "signal_number", signal.SIGINT), save_dir) from None


def _stopped_before_its_first_backup(state_path):
    """True for the records of a run of this version that has no backup yet: it was stopped in
    its first epoch between writing them and the backup's commit (this version keeps a finished
    run's last backup, and says how it selects its best epoch; earlier versions did neither)."""
    try:
        with open(state_path) as handle:
            return "selected_by" in json.load(handle)
    except (OSError, ValueError):
        return False


def agree_with_the_backup(save_dir, state, done):
    """Makes training_state.json's history and log.csv agree with the backup a run resumes from.

    The backup's epoch-end position is written after an epoch's records, so a stop in between
    leaves records of an epoch the resume trains again (the history listed it twice: [1, 1, 2,
    3]); those rows are dropped here, and the epoch's own rows come when it is done again.

    Args:
        save_dir: the run folder.
        state: the loaded training_state.json (changed in place; written back).
        done: the epochs the backup has completed.
    """
    history = state.get("history", [])
    kept = [entry for entry in history if int(entry.get("epoch", 0)) <= done]
    if len(kept) != len(history):
        state["history"] = kept
        _best_of_the_kept_epochs(save_dir, state)
        atomic_files.write_json(os.path.join(save_dir, "training_state.json"), state)
    log = os.path.join(save_dir, "log.csv")
    if not os.path.exists(log):
        return
    with open(log, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows or "epoch" not in rows[0]:
        return
    column = rows[0].index("epoch")
    # A row cut short by the stop, or of an epoch the resume trains again, goes.
    body = [row for row in rows[1:] if len(row) == len(rows[0]) and row[column].isdigit()
            and int(row[column]) <= done]
    if len(body) != len(rows) - 1:
        lines = io.StringIO()
        csv.writer(lines).writerows([rows[0], *body])  # the excel dialect, as Keras writes it
        atomic_files.write_text(log, lines.getvalue())


def _best_of_the_kept_epochs(save_dir, state):
    """Points `best_*` and `latest_path` at the epochs `state["history"]` keeps, so a dropped
    epoch's score is not what the epoch trained again must beat. Only epochs whose file is still
    there can be the best (without --keep-all an epoch's file goes when a later one beats it)."""
    selected_by = "val_accuracy" if state.get("selected_by") == "validation" else "test_accuracy"

    def file_of(entry):
        return epoch_model_path(save_dir, state.get("dataset"), entry["epoch"],
                                entry["test_accuracy"])

    for key in ("best_accuracy", "best_val_accuracy", "best_path", "best_epoch", "latest_path"):
        state.pop(key, None)
    present = [entry for entry in state["history"]
               if "test_accuracy" in entry and os.path.exists(file_of(entry))]
    if not present:
        return
    state["latest_path"] = file_of(present[-1])
    best = max(present, key=lambda entry: float(entry.get(selected_by, -1.0)))  # the first
    state.update(best_accuracy=float(best["test_accuracy"]), best_path=file_of(best),
                 best_epoch=int(best["epoch"]))
    if selected_by == "val_accuracy":
        state["best_val_accuracy"] = float(best["val_accuracy"])


def _shown(value):
    return "none" if value is None else value


# What a backup records that no option sets itself, and the setting whose option changes it.
_SET_THROUGH = {"num_classes": ("ds_type",), "optimizer": ("recipe",),
                "train_split": ("dataset_name", "data_dir"), "train_images": ("dataset_name",)}


def _flag_of(name):
    """The option that changes what `position_settings` records as `name`, for the message
    refusing a resume."""
    return " / ".join(setting(through).flag for through in _SET_THROUGH.get(name, (name,)))
