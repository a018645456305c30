"""Training: `TrainModel(dataset_name=...).train(arch="xcp")` and the `python train.py` CLI.

The Ad-Corre loss (`ce_weight * CE + FD + MD + ED`) is applied in
`AdCorreTrainer.compute_loss`, so training runs through plain `model.fit` with Keras'
progress bar, TensorBoard and CSV logs. At each epoch end the adaptive attention map
is refreshed from the epoch's confusion counts, the model is evaluated on the test
split, and `<dataset>_<epoch>_AC_<accuracy>.h5` is written atomically; the best file
is kept. A backup written every few hundred steps lets a killed run resume at the
batch where it stopped.

`python train.py` with no arguments trains the CPU demo: the `tiny` arch on SynthFER
generated on the fly (about 3 minutes on 2 cores).
"""

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import data_helper  # noqa: E402
import weights_io  # noqa: E402
from cnn_model import ARCHES, CNNModel  # noqa: E402
from config import DatasetName, DatasetType, InputDataSize, LearningConfig, label_names  # noqa: E402
from custom_loss import AdaptiveAttentionMap, AdCorreLoss  # noqa: E402

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
        ce_weight: weight of the cross-entropy term (default 50/7, docs/DESIGN.md).
        adcorre_batch: `"global"` computes FD/MD/ED over the all-gathered global batch
            under `tf.distribute` (the default: results do not depend on the number of
            replicas, at the cost of one all-gather of k x n x d floats), `"local"` over
            each replica's own batch.
        use_adcorre: `False` trains with cross-entropy only (the ablation baseline).

    Example:
    >>> trainer = AdCorreTrainer(CNNModel().get_model("tiny", weights=None, input_size=64))
    >>> trainer.compile(optimizer="adam")
    >>> trainer.fit(images, labels, batch_size=32)
    """

    def __init__(self, network, num_classes=7, ce_weight=LearningConfig.ce_weight,
                 adcorre_batch="global", use_adcorre=True, **kwargs):
        super().__init__(**kwargs)
        if adcorre_batch not in ("global", "local"):
            raise ValueError(f"adcorre_batch must be 'global' or 'local', got {adcorre_batch!r}.")
        self.network = network
        self.num_classes = num_classes
        self.ce_weight = ce_weight
        self.adcorre_batch = adcorre_batch
        self.use_adcorre = use_adcorre
        # The CE-only baseline still logs FD/MD/ED, with zero weight, for comparison.
        weight = 1.0 if use_adcorre else 0.0
        self.adcorre = AdCorreLoss(num_classes=num_classes, ce_weight=ce_weight,
                                   fd_weight=weight, md_weight=weight, ed_weight=weight)
        self.attention = AdaptiveAttentionMap(num_classes=num_classes, name="attention")
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
        probs, embeddings = y_pred[0], list(y_pred[1:])
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
        terms = self.adcorre(labels, probs, embeddings, omega=self.attention.omega)
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


def classification_summary(labels, predictions, num_classes):
    """Accuracy, mean class accuracy and the confusion matrix of integer predictions.

    Args:
        labels: true canonical labels, shape (n,).
        predictions: predicted labels, shape (n,).
        num_classes: size of the confusion matrix.

    Returns:
        dict with `accuracy`, `mean_class_accuracy` (over classes present in `labels`)
        and `confusion_matrix` (rows true, columns predicted, counts).
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


def format_confusion_matrix(matrix, names):
    """The confusion matrix as an aligned text table, rows true, columns predicted."""
    width = max(8, max(len(n) for n in names) + 1)
    lines = ["true \\ pred".ljust(width) + "".join(n[:width - 1].rjust(width) for n in names)]
    for name, row in zip(names, matrix):
        lines.append(name.ljust(width) + "".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)


def plot_confusion_matrix(matrix, names, path, title=""):
    """Writes the row-normalised confusion matrix as a PNG (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
            axis.text(j, i, f"{normalised[i, j]:.2f}", ha="center", va="center", color=colour, fontsize=8)
    figure.tight_layout()
    temporary = path + ".tmp.png"
    figure.savefig(temporary, dpi=100)
    plt.close(figure)
    os.replace(temporary, path)


def _write_json_atomically(path, payload):
    temporary = path + ".tmp"
    with open(temporary, "w") as handle:
        json.dump(payload, handle, indent=1)
    os.replace(temporary, path)


class EpochEnd(keras.callbacks.Callback):
    """Refreshes the attention map, evaluates, saves `<dataset>_<epoch>_AC_<acc>.h5`, keeps the best.

    It runs before Keras' logging callbacks, so the values it adds to `logs`
    (`test_accuracy`, `test_mean_class_accuracy`, `omega_<class>`, and `attention_samples`: how
    many training predictions the new omega rests on) reach the CSV log and TensorBoard.
    """

    def __init__(self, trainer_state, test_dataset, test_labels, save_dir, dataset_name,
                 names, arch, keep_all=False, chief=True):
        super().__init__()
        self.state = trainer_state
        self.test_dataset = test_dataset
        self.test_labels = np.asarray(test_labels)
        self.save_dir = save_dir
        self.dataset_name = dataset_name
        self.names = tuple(names)
        self.arch = arch
        self.keep_all = keep_all
        self.chief = chief

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["attention_samples"] = float(self.model.attention.confusion_matrix().sum())
        omega = self.model.attention.refresh()
        for name, value in zip(self.names, omega):
            logs[f"omega_{name.lower()}"] = float(value)

        probabilities = self.model.network.predict(self.test_dataset, verbose=0)[0]
        summary = classification_summary(self.test_labels, np.argmax(probabilities, axis=-1),
                                         len(self.names))
        logs["test_accuracy"] = summary["accuracy"]
        logs["test_mean_class_accuracy"] = summary["mean_class_accuracy"]
        print(f"\nepoch {epoch + 1}: test accuracy {summary['accuracy']:.4f}, mean class accuracy "
              f"{summary['mean_class_accuracy']:.4f}, omega [{', '.join(f'{v:.3f}' for v in omega)}]")
        if not self.chief:
            return
        stem = f"{self.dataset_name}_{epoch}_AC_{summary['accuracy']:.4f}"
        path = os.path.join(self.save_dir, stem + ".h5")
        weights_io.save_model(
            self.model.network, path, labels=self.names, input_range=(0.0, 1.0), arch=self.arch,
            extra={"epoch": epoch, "dataset": self.dataset_name,
                   "test_accuracy": summary["accuracy"],
                   "test_mean_class_accuracy": summary["mean_class_accuracy"]},
        )
        text = format_confusion_matrix(summary["confusion_matrix"], self.names)
        with open(os.path.join(self.save_dir, stem + ".txt"), "w") as handle:
            handle.write(text + "\n")
        plot_confusion_matrix(summary["confusion_matrix"], self.names,
                              os.path.join(self.save_dir, stem + ".png"),
                              title=f"{self.dataset_name} epoch {epoch} acc {summary['accuracy']:.4f}")
        previous_best = self.state.get("best_path")
        if summary["accuracy"] > self.state.get("best_accuracy", -1.0):
            self.state.update(best_accuracy=summary["accuracy"], best_path=path, best_epoch=epoch)
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
            {"epoch": epoch, **{k: v for k, v in logs.items() if np.isscalar(v)}})
        _write_json_atomically(os.path.join(self.save_dir, "training_state.json"), self.state)


class _CSVLogger(keras.callbacks.CSVLogger):
    """Keras' CSV log without the empty `val_*` columns it adds when `fit` validates nothing
    (this trainer evaluates the test split itself, logged as `test_*`)."""

    def on_epoch_end(self, epoch, logs=None):
        if self.keys is None and logs:
            self.keys = sorted(logs)
        super().on_epoch_end(epoch, logs)


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
    weight files leave metric variables out). Each file is written under a temporary name and
    renamed; the JSON is renamed last and names its weights file, so whenever the process dies
    the JSON describes a complete backup. Older weights files are removed after that.
    """

    POSITION_FILE = "backup_position.json"

    def __init__(self, backup_dir, every_steps=200, chief=True):
        super().__init__()
        self.backup_dir = backup_dir
        self.every_steps = every_steps
        self.epoch, self.batch_offset = 0, 0
        self.chief = chief
        self._pending_counts = None

    @property
    def position_path(self):
        return os.path.join(self.backup_dir, self.POSITION_FILE)

    def on_epoch_begin(self, epoch, logs=None):
        if epoch != self.epoch:
            self.batch_offset = 0
        self.epoch = epoch
        if self._pending_counts is not None:
            # Keras zeroes metrics just before this call; put back what the killed run had
            # counted in this epoch, so the epoch's omega rests on all of its batches.
            self.model.attention.counts.assign(self._pending_counts)
            self._pending_counts = None

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
        directory = self.backup_dir if self.chief else os.path.join(self.backup_dir, ".worker_tmp")
        os.makedirs(directory, exist_ok=True)
        name = f"backup_epoch{epoch}_batch{batch}.weights.h5"
        temporary = os.path.join(directory, "backup.tmp.weights.h5")
        self.model.save_weights(temporary)
        if not self.chief:
            shutil.rmtree(directory, ignore_errors=True)
            return
        os.replace(temporary, os.path.join(directory, name))
        _write_json_atomically(self.position_path,
                               {"epoch": epoch, "batch": batch, "weights": name, **state})
        for old in os.listdir(directory):
            if old.endswith(".weights.h5") and old != name:
                os.remove(os.path.join(directory, old))

    def load(self, trainer):
        """Restores the last backup into `trainer` and this callback's position in the run.

        Returns:
            The (epoch, batch) to resume at; (0, 0) when there is no backup.
        """
        if not os.path.exists(self.position_path):
            return self.epoch, self.batch_offset
        with open(self.position_path) as handle:
            position = json.load(handle)
        trainer.load_weights(os.path.join(self.backup_dir, position["weights"]))
        trainer.attention.omega.assign(np.asarray(position["omega"], "float32"))
        self._pending_counts = np.asarray(position["counts"], "float32")
        self.epoch, self.batch_offset = int(position["epoch"]), int(position["batch"])
        return self.epoch, self.batch_offset


@dataclasses.dataclass
class _Split:
    frame: object
    labels: np.ndarray
    skipped: int = 0


class TrainModel:
    """Trains an Ad-Corre model, official API: `TrainModel(dataset_name=...).train(arch="xcp")`.

    Args:
        dataset_name: one of `config.DatasetName.all`; `"synth"` generates SynthFER in memory.
        ds_type: `config.DatasetType`; for AffectNet `train` means 8 classes, `train_7` 7.
        data_dir: the dataset's root folder as it ships (default `config.default_data_dir`).
        weights: `"imagenet"` (backbone only), `None` (from scratch) or a weight file path.
        lr: initial Adam learning rate; multiplied by `lr_decay_factor` every `lr_decay_every` epochs.
        epochs, batch_size, input_size: the usual; `batch_size` is the global batch.
        save_dir: where epoch files, logs and the backup go (a fresh timestamped folder by default;
            pass an existing one to resume a killed run).
        ce_weight: cross-entropy weight; `use_adcorre=False` trains with CE only.
        num_embeddings, embedding_size: k and d of the heads.
        adcorre_batch: `"global"` (default) or `"local"`, see `AdCorreTrainer`.
        mrr: minimal random resampling of the training set each epoch (ARM).
        mixed_precision: `"auto"` (bf16 on a GPU, none on a CPU), `"bfloat16"`, `"float16"`, `"none"`.
        jit_compile: `"auto"` (XLA on a GPU, graph mode on a CPU) or a bool.
        seed: makes data order, augmentation and initialisation repeatable.
        synth_train_size, synth_test_size: SynthFER sizes when `dataset_name="synth"`.
        backup_every: steps between mid-epoch backups.
        keep_all: keep every epoch's `.h5` (default: the best and the latest).
        steps_per_epoch: cap on the steps of an epoch (quick runs); default the whole split.
        augmentation: a `data_helper.Augmentation` for the training images (`None`: its defaults:
            flip, small rotation/zoom/shift, colour jitter, random erasing), or `False` for none.

    Example:
    >>> best = TrainModel(dataset_name="synth", weights=None, epochs=2, input_size=64).train(arch="tiny")
    """

    def __init__(self, dataset_name=DatasetName.synth, ds_type=DatasetType.train, data_dir=None,
                 weights="imagenet", lr=LearningConfig.learning_rate, epochs=LearningConfig.epochs,
                 batch_size=LearningConfig.batch_size, input_size=InputDataSize.image_input_size,
                 save_dir=None, ce_weight=LearningConfig.ce_weight, use_adcorre=True,
                 num_embeddings=LearningConfig.num_embeddings,
                 embedding_size=LearningConfig.embedding_size, adcorre_batch="global",
                 lr_decay_every=LearningConfig.lr_decay_every,
                 lr_decay_factor=LearningConfig.lr_decay_factor, mrr=False,
                 mixed_precision="auto", jit_compile="auto", seed=0, synth_train_size=10000,
                 synth_test_size=1000, backup_every=200, keep_all=False, steps_per_epoch=None,
                 augmentation=None, verbose="auto"):
        if dataset_name not in DatasetName.all:
            raise ValueError(f"Unknown dataset_name {dataset_name!r}; expected one of {DatasetName.all}.")
        if ds_type not in DatasetType.all:
            raise ValueError(f"Unknown ds_type {ds_type!r}; expected one of {DatasetType.all}.")
        if batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 for the correlation terms, got {batch_size}.")
        self.dataset_name = dataset_name
        self.ds_type = ds_type
        self.data_dir = data_dir
        self.weights = weights
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.input_size = input_size
        self.save_dir = save_dir
        self.ce_weight = ce_weight
        self.use_adcorre = use_adcorre
        self.num_embeddings = num_embeddings
        self.embedding_size = embedding_size
        self.adcorre_batch = adcorre_batch
        self.lr_decay_every = lr_decay_every
        self.lr_decay_factor = lr_decay_factor
        self.mrr = mrr
        self.mixed_precision = mixed_precision
        self.jit_compile = jit_compile
        self.seed = seed
        self.synth_train_size = synth_train_size
        self.synth_test_size = synth_test_size
        self.backup_every = backup_every
        self.keep_all = keep_all
        self.steps_per_epoch = steps_per_epoch
        if augmentation not in (None, False) and not isinstance(augmentation, data_helper.Augmentation):
            raise ValueError("augmentation must be None (the defaults), False (none) or a "
                             f"data_helper.Augmentation, got {augmentation!r}.")
        self.augmentation = augmentation
        self.verbose = verbose
        self.num_classes = 8 if (dataset_name == DatasetName.affectnet
                                 and ds_type in (DatasetType.train, DatasetType.eval)) else 7

    # -- data -----------------------------------------------------------------------------
    def _read(self, split):
        options = {}
        if self.dataset_name == DatasetName.synth:
            size = self.synth_train_size if split == "train" else self.synth_test_size
            # Draw at the model's input size (up to 224), so no resize blurs the faces.
            options = {"n": size, "image_size": min(self.input_size, 224),
                       "seed": self.seed}
        elif self.dataset_name == DatasetName.affectnet:
            options = {"num_classes": self.num_classes}
        data_dir = self.data_dir
        if data_dir is None and self.dataset_name != DatasetName.synth:
            from config import default_data_dir

            data_dir = default_data_dir(self.dataset_name)
        frame = data_helper.read_split(self.dataset_name, data_dir, split, **options)
        # Checked once here (one warning naming the first bad files), so every epoch's
        # pipeline is built from readable rows only and batches keep their size.
        frame, skipped = data_helper.validate_images(frame, mode="header")
        if len(frame) == 0:
            raise ValueError(f"The {split!r} split of {self.dataset_name!r} at {data_dir!r} has no "
                             f"usable images ({len(skipped)} skipped).")
        return _Split(frame, frame["label"].to_numpy(dtype=np.int64), len(skipped))

    def _epoch_order(self, labels, epoch):
        """Row order of one epoch: a seeded permutation, or an MRR draw when `mrr` is on."""
        rng = np.random.default_rng([self.seed, epoch])
        if not self.mrr:
            return rng.permutation(len(labels))
        classes, counts = np.unique(labels, return_counts=True)
        order = [np.flatnonzero(labels == c) for c in classes]
        # Minimal random resampling: top every class up to the largest with random re-draws.
        order = [np.concatenate([rows, rng.choice(rows, counts.max() - len(rows))]) for rows in order]
        return rng.permutation(np.concatenate(order))

    def _training_dataset(self, train, epoch, skip_batches, steps):
        order = self._epoch_order(train.labels, epoch)
        order = order[skip_batches * self.batch_size:steps * self.batch_size]
        frame = train.frame.iloc[order].reset_index(drop=True)
        return data_helper.make_dataset(
            frame, input_size=self.input_size, training=True, batch_size=self.batch_size,
            augment=self.augmentation is not False, augmentation=self.augmentation or None,
            shuffle=False, mrr=False, seed=self.seed * 1000 + epoch, drop_remainder=True,
            validate="none")

    # -- model ----------------------------------------------------------------------------
    def make_model(self, arch, weight_path=None):
        """The network to train (`weight_path` continues from a file of the same arch)."""
        weights = weight_path if weight_path else self.weights
        if isinstance(weights, str) and weights.lower() == "none":
            weights = None
        return CNNModel().get_model(
            arch, num_classes=self.num_classes, weights=weights, input_size=self.input_size,
            num_embeddings=self.num_embeddings, embedding_size=self.embedding_size)

    def _learning_rate(self, epoch, _current=None):
        return self.lr * self.lr_decay_factor ** (epoch // self.lr_decay_every)

    def _configure_devices(self):
        import tensorflow as tf

        on_gpu = bool(tf.config.list_physical_devices("GPU"))
        jit = on_gpu if self.jit_compile == "auto" else bool(self.jit_compile)
        policy = {"auto": "mixed_bfloat16" if on_gpu else "float32", "bfloat16": "mixed_bfloat16",
                  "float16": "mixed_float16", "none": "float32"}.get(self.mixed_precision)
        if policy is None:
            raise ValueError("mixed_precision must be 'auto', 'bfloat16', 'float16' or 'none', "
                             f"got {self.mixed_precision!r}.")
        keras.mixed_precision.set_global_policy(policy)
        return jit

    # -- training -------------------------------------------------------------------------
    def train(self, arch="xcp", weight_path=None):
        """Trains and returns the path of the best saved `.h5`.

        Args:
            arch: one of `cnn_model.ARCHES`.
            weight_path: optional weight file to start from (same arch and heads).

        Returns:
            Path of the `.h5` with the best test accuracy.
        """
        if arch not in ARCHES:
            raise ValueError(f"Unknown arch {arch!r}; expected one of {ARCHES}.")
        keras.utils.set_random_seed(self.seed)
        jit = self._configure_devices()
        strategy = choose_strategy()
        chief = _is_chief()
        save_dir = self.save_dir or os.path.join(
            "runs", f"{self.dataset_name}_{arch}_{time.strftime('%Y%m%d-%H%M%S')}")
        os.makedirs(save_dir, exist_ok=True)
        names = label_names(self.num_classes)

        train, test = self._read("train"), self._read("test")
        steps = len(self._epoch_order(train.labels, 0)) // self.batch_size
        if self.steps_per_epoch:
            steps = min(steps, self.steps_per_epoch)
        if steps < 1:
            raise ValueError(f"The training split has {len(train.labels)} images, fewer than one "
                             f"batch of {self.batch_size}.")
        test_dataset = data_helper.make_dataset(
            test.frame, input_size=self.input_size, training=False,
            batch_size=self.batch_size, shuffle=False, validate="none")

        with strategy.scope():
            network = self.make_model(arch, weight_path)
            trainer = AdCorreTrainer(network, num_classes=self.num_classes,
                                     ce_weight=self.ce_weight, adcorre_batch=self.adcorre_batch,
                                     use_adcorre=self.use_adcorre)
            trainer.compile(optimizer=keras.optimizers.Adam(self.lr), jit_compile=jit)
            # Build every variable (optimizer slots too) so a backup can be loaded into them.
            trainer(np.zeros((1, self.input_size, self.input_size, 3), "float32"))
            trainer.optimizer.build(trainer.trainable_variables)

        backup = ResumableBackup(os.path.join(save_dir, "backup"), every_steps=self.backup_every,
                                 chief=chief)
        start_epoch, start_batch = backup.load(trainer)
        state = {}
        state_path = os.path.join(save_dir, "training_state.json")
        if start_epoch or start_batch:
            print(f"Resuming {save_dir} at epoch {start_epoch + 1}, batch {start_batch}.")
            if os.path.exists(state_path):
                with open(state_path) as handle:
                    state = json.load(handle)
        # Without a backup this is a new run: a finished run's state in the same folder is
        # replaced (its .h5 files stay where they are, untouched).
        state.update(dataset=self.dataset_name, arch=arch, labels=list(names),
                     input_size=self.input_size, steps_per_epoch=steps,
                     skipped_images={"train": train.skipped, "test": test.skipped})

        callbacks = [
            EpochEnd(state, test_dataset, test.labels, save_dir, self.dataset_name, names, arch,
                     keep_all=self.keep_all, chief=chief),
            backup,
            keras.callbacks.LearningRateScheduler(self._learning_rate),
            _CSVLogger(os.path.join(save_dir, "log.csv"), append=True),
            keras.callbacks.TensorBoard(os.path.join(save_dir, "tensorboard"), update_freq="epoch"),
            keras.callbacks.TerminateOnNaN(),
            _TotalEpochsProgbar(self.epochs),
        ]
        verbose = self.verbose if self.verbose != "auto" else (1 if sys.stdout.isatty() else 2)
        replicas = strategy.num_replicas_in_sync
        print(f"Training {arch} on {self.dataset_name}: {len(train.labels)} train / "
              f"{len(test.labels)} test images, {steps} steps of {self.batch_size} per epoch, "
              f"{self.epochs} epochs, strategy {_strategy_name(strategy)} "
              f"({replicas} replica{'s' if replicas != 1 else ''}), jit_compile={jit}, "
              f"policy {keras.mixed_precision.global_policy().name}. Output: {save_dir}")
        for epoch in range(start_epoch, self.epochs):
            skip = start_batch if epoch == start_epoch else 0
            dataset = self._training_dataset(train, epoch, skip, steps)
            # One fit call per epoch: each epoch's data order is fixed by (seed, epoch), so a
            # resumed epoch can skip exactly the batches it had already trained on.
            trainer.fit(dataset, initial_epoch=epoch, epochs=epoch + 1, callbacks=callbacks,
                        verbose=verbose, shuffle=False)
            if trainer.stop_training:
                break
        best = state.get("best_path")
        if chief:
            shutil.rmtree(backup.backup_dir, ignore_errors=True)
            print(f"Best model: {best} (test accuracy {state.get('best_accuracy', 0):.4f}, "
                  f"epoch {state.get('best_epoch', 0) + 1}). Logs: {save_dir}")
        return best


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Train an Ad-Corre model. With no arguments: the CPU demo "
                    "(tiny arch on SynthFER, 64 px, 8 epochs, about 3 minutes on 2 cores).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--dataset", default=DatasetName.synth, choices=DatasetName.all)
    parser.add_argument("--data-dir", default=None, help="dataset root as it ships")
    parser.add_argument("--ds-type", default=DatasetType.train, choices=DatasetType.all)
    parser.add_argument("--arch", default=None, choices=ARCHES,
                        help="default: tiny for synth, xcp otherwise")
    parser.add_argument("--weights", default=None,
                        help="imagenet, none or a weight file; default none for synth, imagenet otherwise")
    parser.add_argument("--epochs", type=int, default=None, help="default 8 for synth, 30 otherwise")
    parser.add_argument("--batch-size", type=int, default=LearningConfig.batch_size)
    parser.add_argument("--input-size", type=int, default=None, help="default 64 for synth, 224 otherwise")
    parser.add_argument("--lr", type=float, default=LearningConfig.learning_rate)
    parser.add_argument("--lr-decay-every", type=int, default=None,
                        help="epochs between x0.1 steps; default 6 for synth (a network trained from "
                             f"scratch needs a few epochs to leave the class prior), "
                             f"{LearningConfig.lr_decay_every} otherwise (the official schedule)")
    parser.add_argument("--ce-weight", type=float, default=LearningConfig.ce_weight)
    parser.add_argument("--ce-only", action="store_true", help="train without FD/MD/ED (ablation)")
    parser.add_argument("--num-embeddings", type=int, default=LearningConfig.num_embeddings)
    parser.add_argument("--embedding-size", type=int, default=LearningConfig.embedding_size)
    parser.add_argument("--adcorre-batch", default="global", choices=("global", "local"))
    parser.add_argument("--mrr", action="store_true", help="minimal random resampling each epoch")
    parser.add_argument("--augment", default="auto", choices=("auto", "on", "off"),
                        help="training augmentation; auto: off for synth (SynthFER draws its own "
                             "pose, light and occluders, and fresh faces are cheaper), on otherwise")
    parser.add_argument("--mixed-precision", default="auto", choices=("auto", "bfloat16", "float16", "none"))
    parser.add_argument("--jit-compile", default="auto", choices=("auto", "on", "off"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-dir", default=None, help="output folder; an existing one resumes")
    parser.add_argument("--synth-train-size", type=int, default=10000)
    parser.add_argument("--synth-test-size", type=int, default=1000)
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--backup-every", type=int, default=200)
    parser.add_argument("--keep-all", action="store_true", help="keep every epoch's .h5")
    return parser.parse_args(argv)


def main(argv=None):
    args = _parse_args(argv)
    synth = args.dataset == DatasetName.synth
    weights = args.weights if args.weights is not None else ("none" if synth else "imagenet")
    trainer = TrainModel(
        dataset_name=args.dataset, ds_type=args.ds_type, data_dir=args.data_dir,
        weights=weights, lr=args.lr,
        epochs=args.epochs or (8 if synth else LearningConfig.epochs), batch_size=args.batch_size,
        input_size=args.input_size or (64 if synth else InputDataSize.image_input_size),
        save_dir=args.save_dir, ce_weight=args.ce_weight, use_adcorre=not args.ce_only,
        num_embeddings=args.num_embeddings, embedding_size=args.embedding_size,
        adcorre_batch=args.adcorre_batch, mrr=args.mrr,
        lr_decay_every=args.lr_decay_every or (6 if synth else LearningConfig.lr_decay_every),
        mixed_precision=args.mixed_precision,
        jit_compile={"auto": "auto", "on": True, "off": False}[args.jit_compile], seed=args.seed,
        synth_train_size=args.synth_train_size, synth_test_size=args.synth_test_size,
        backup_every=args.backup_every, keep_all=args.keep_all, steps_per_epoch=args.steps_per_epoch,
        augmentation=False if args.augment == "off" or (args.augment == "auto" and synth) else None)
    try:
        best = trainer.train(arch=args.arch or ("tiny" if synth else "xcp"))
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Saved model: {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
