"""The Keras side of training: the Ad-Corre train step, the per-epoch work and resumable backups.

- `AdCorreTrainer`: a `keras.Model` wrapping the network, whose `compute_loss` is the Ad-Corre
  loss (`ce_weight * CE + FD + MD + ED`) with the adaptive attention map, so training runs
  through plain `model.fit` (progress bar, TensorBoard and CSV logs, `tf.distribute`).
- `EpochEnd`: refreshes the attention map, evaluates the test split, writes the epoch's `.h5`
  (atomically, with its metadata) and its confusion matrix, keeps the best.
- `ResumableBackup`: the whole training state every few hundred steps, so a killed run resumes
  at the batch where it stopped.
- `choose_strategy`: the `tf.distribute` strategy for this machine (several GPUs, TF_CONFIG).

`train.TrainModel` puts these together; this module knows nothing of datasets or files on disk
beyond the run folder it is handed.
"""

import json
import os
import warnings

from adcorre import runtime  # noqa: F401  (Keras loads without TensorFlow's start-up noise)
import keras
import numpy as np
from keras import ops

from adcorre import atomic_files
from adcorre.config import ADCORRE_BATCHES, check_choice
from adcorre.data.pictures import BadImageWarning
from adcorre.models import weights_io
from adcorre.reports import classification_summary, format_confusion_matrix, plot_confusion_matrix
from adcorre.training.custom_loss import AdaptiveAttentionMap, AdCorreLoss
from adcorre.training.learning_schedules import last_step_rate

LOSS_TERMS = ("ce", "fd", "md", "ed")


def _multi_worker_collectives():
    """True inside a MultiWorkerMirroredStrategy that spans several workers (Keras' own test)."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode())


def _replica_context():
    """The tf.distribute replica context inside a replica function, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


@keras.saving.register_keras_serializable(package="adcorre")
class AdCorreTrainer(keras.Model):
    """Wraps an Ad-Corre network and trains it with the Ad-Corre loss.

    The wrapped `network` (inputs -> `[probs, emb_1..emb_k]`) is what gets saved and
    deployed; this wrapper only adds the loss, the adaptive attention map and the
    per-term metrics that Keras logs.

    Args:
        network: a model from `CNNModel().get_model`.
        num_classes: number of classes of the softmax output.
        ce_weight: weight of the cross-entropy term (`None`: 50 / num_classes, 50/7 for 7
            classes, docs/DESIGN.md).
        adcorre_batch: `"global"` computes FD/MD/ED over the all-gathered global batch
            under `tf.distribute` (the default: results do not depend on the number of
            replicas, at the cost of one all-gather of k x n x d floats), `"local"` over
            each replica's own batch.
        use_adcorre: `False` trains with cross-entropy only (the ablation baseline; also the
            official code's gradient, whose FD, MD and ED were NumPy constants).
        loss_arithmetic: `"paper"` or `"official"`, see `custom_loss.AdCorreLoss`.
        attention_window_batches: `None` refreshes omega once per epoch; S recomputes it
            every step from the (label, prediction) pairs of the last S batches (the official
            code's sliding window; global batches, or each replica's own with `"local"`), see
            `custom_loss.AdaptiveAttentionMap`.

    Example (one epoch on 16 random pictures):
    >>> from adcorre.models.cnn_model import CNNModel
    >>> trainer = AdCorreTrainer(CNNModel().get_model("tiny", weights=None, input_size=32))
    >>> trainer.compile(optimizer="adam")
    >>> images = np.random.rand(16, 32, 32, 3).astype("float32")
    >>> labels = np.random.randint(0, 7, 16)
    >>> history = trainer.fit(images, labels, batch_size=8, verbose=0)
    >>> sorted(history.history)   # the loss, its four terms and the training accuracy
    ['accuracy', 'ce', 'ed', 'fd', 'loss', 'md']
    """

    def __init__(self, network, num_classes=7, ce_weight=None, adcorre_batch="global",
                 use_adcorre=True, loss_arithmetic="paper", attention_window_batches=None,
                 **kwargs):
        super().__init__(**kwargs)
        check_choice("adcorre_batch", adcorre_batch, ADCORRE_BATCHES)
        self.network = network
        self.num_classes = num_classes
        self.ce_weight = ce_weight
        self.adcorre_batch = adcorre_batch
        self.use_adcorre = use_adcorre
        self.loss_arithmetic = loss_arithmetic
        self.attention_window_batches = attention_window_batches
        # The CE-only baseline still logs FD/MD/ED, with zero weight, for comparison.
        weight = 1.0 if use_adcorre else 0.0
        self.adcorre = AdCorreLoss(num_classes=num_classes, ce_weight=ce_weight,
                                   fd_weight=weight, md_weight=weight, ed_weight=weight,
                                   arithmetic=loss_arithmetic)
        self.attention = AdaptiveAttentionMap(num_classes=num_classes, name="attention",
                                              window_batches=attention_window_batches)
        self.term_trackers = [keras.metrics.Mean(name=name) for name in LOSS_TERMS]
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    @property
    def metrics(self):
        # The attention map must be listed: the JAX trainer keeps only metric-variable updates.
        # Keras resets it at each epoch start, which zeroes only its counts (never omega).
        return [self._loss_tracker, *self.term_trackers, self.accuracy_tracker, self.attention]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # Keras hands a one-output network's prediction (num_embeddings=0) over as a tensor.
        outputs = list(y_pred) if isinstance(y_pred, (list, tuple)) else [y_pred]
        probs, embeddings = outputs[0], outputs[1:]
        labels = ops.reshape(ops.cast(y, "int32"), (-1,))
        if training:
            self.attention.update_state(labels, probs)
        self.accuracy_tracker.update_state(labels, probs)
        context = _replica_context()
        num_replicas = 1 if context is None else context.num_replicas_in_sync
        if context is not None and self.adcorre_batch == "global":
            # Every replica evaluates the loss on the same global batch; all_gather's
            # gradient routes each replica's share back to its own outputs.
            labels = context.all_gather(labels, axis=0)
            probs = context.all_gather(probs, axis=0)
            embeddings = [context.all_gather(e, axis=0) for e in embeddings]
        omega = self.attention.omega
        if training and self.attention_window_batches:
            # The batch the loss sees: the global one (every replica's window and omega agree)
            # or, with "local", the replica's own. Gathering for the window alone would put a
            # collective off the gradient's path, which replicas may then order differently.
            omega = self.attention.update_window(labels, probs)
        if embeddings:
            terms = self.adcorre(labels, probs, embeddings, omega=omega)
        else:  # no embedding heads (ARM's own networks): FD, MD and ED have nothing to act on
            ce = self.adcorre.cross_entropy(labels, probs)
            zero = ops.zeros_like(ce)
            terms = {"ce": ce, "fd": zero, "md": zero, "ed": zero,
                     "loss": self.adcorre.ce_weight * ce}
        for tracker, name in zip(self.term_trackers, LOSS_TERMS):
            tracker.update_state(terms[name])
        # Keras sums gradients over replicas, so each replica contributes 1/R of the loss.
        return terms["loss"] / num_replicas

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras' TF trainer pulls a batch and `strategy.reduce`s it before every fit, only to
        # build unbuilt state symbolically; under MultiWorkerMirroredStrategy that reduce fails
        # on PerReplica inputs (Keras 3.15). With every layer and the optimizer built (as
        # TrainModel does up front) there is nothing to build, so the step is skipped.
        built = all(layer.built for layer in self._flatten_layers())
        if built and (self.optimizer is None or self.optimizer.built):
            return None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        # The attention map's own result duplicates `accuracy`; keep it out of the logs.
        logs = {m.name: m.result() for m in self.metrics if m is not self.attention}
        if _multi_worker_collectives():
            # Across workers Keras reduces each log with strategy.reduce("MEAN", v, axis=0),
            # which fails on scalars (tensorflow/tensorflow#72388); a length-1 vector reduces
            # to the scalar mean over replicas.
            logs = {name: ops.reshape(value, (1,)) for name, value in logs.items()}
        return logs

    def get_config(self):
        config = super().get_config()
        config.update({
            "network": keras.saving.serialize_keras_object(self.network),
            "num_classes": self.num_classes,
            "ce_weight": self.ce_weight,
            "adcorre_batch": self.adcorre_batch,
            "use_adcorre": self.use_adcorre,
            "loss_arithmetic": self.loss_arithmetic,
            "attention_window_batches": self.attention_window_batches,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        return cls(**config)


def _tf_config():
    """The parsed TF_CONFIG environment variable ({} when unset or empty)."""
    return json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")


def choose_strategy():
    """`MultiWorkerMirroredStrategy` when TF_CONFIG names several workers,
    `MirroredStrategy` with several GPUs, the default strategy otherwise."""
    import tensorflow as tf

    cluster = _tf_config().get("cluster", {})
    if len(cluster.get("worker", [])) + len(cluster.get("chief", [])) > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _strategy_name(strategy):
    """The public class name (TF names its multi-worker class CollectiveAllReduceStrategy)."""
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "MirroredStrategy"
    return type(strategy).__name__.lstrip("_")


def _is_chief():
    """True on the worker that writes files (the only one, outside multi-worker runs)."""
    tf_config = _tf_config()
    task, cluster = tf_config.get("task", {}), tf_config.get("cluster", {})
    if not task:
        return True
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


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


def _epoch_metrics(trainer):
    """The running means Keras logs for an epoch (loss, its terms, accuracy); not the attention
    map, whose counts the backup keeps on its own."""
    return [metric for metric in trainer.metrics if metric is not trainer.attention]


def _probabilities(predictions):
    """The class probabilities of a prediction: a one-output network (num_embeddings=0)
    predicts an array, the others a list whose first entry they are."""
    return predictions[0] if isinstance(predictions, (list, tuple)) else predictions


def _passing_rows_through(network):
    """`[images, rows] -> [probabilities, rows]`: predictions that carry the row they are of."""
    images = keras.Input(tuple(network.inputs[0].shape[1:]), name="images")
    rows = keras.Input((), dtype="int64", name="rows")
    return keras.Model([images, rows], [_probabilities(network(images)), rows])


class _CSVLogger(keras.callbacks.CSVLogger):
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


class _TensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard logger, keeping the `learning_rate` EpochEnd logged (the rate of the
    epoch's last step, as in log.csv); Keras' own would be the next step's. Epoch summaries
    are at step 1, 2, ... (the epoch's number in file names and log.csv), not Keras' 0, 1, ..."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch + 1, logs)

    def _collect_learning_rate(self, logs):
        return logs if "learning_rate" in logs else super()._collect_learning_rate(logs)


class _TotalEpochsProgbar(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, told the run's total epochs (each `fit` call covers one)."""

    def __init__(self, total_epochs):
        super().__init__()
        self.total_epochs = total_epochs

    def set_params(self, params):
        super().set_params(params)
        self.epochs = self.total_epochs


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
            ValueError: the file is not the JSON this class writes (named in the message).
        """
        if not os.path.exists(self.position_path):
            return None
        try:
            with open(self.position_path, encoding="utf-8") as handle:
                position = json.load(handle)
            int(position["epoch"]), int(position["batch"]), str(position["weights"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
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
            for metric in _epoch_metrics(self.model):
                for variable, value in zip(metric.variables, saved[metric.name]):
                    variable.assign(np.asarray(value, dtype=variable.dtype))
        except (KeyError, ValueError, NotImplementedError, RuntimeError):
            for metric in _epoch_metrics(self.model):
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
                                for metric in _epoch_metrics(self.model)}
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
