"""The Ad-Corre train step: `AdCorreTrainer`, a `keras.Model` around the network.

Its `compute_loss` is the Ad-Corre loss (`ce_weight * CE + FD + MD + ED`, `custom_loss`) weighted
by the adaptive attention map, so training runs through plain `model.fit` (progress bar,
TensorBoard and CSV logs, `tf.distribute`); under `tf.distribute` FD, MD and ED see the global
batch or each replica's own (`adcorre_batch`). The callbacks that score, save and back up a run
are in `callbacks` and `resume`; `train_model.TrainModel` puts them together.
"""

from adcorre import runtime  # noqa: F401  (Keras loads without TensorFlow's start-up noise)
import keras
from keras import ops

from adcorre.settings import ADCORRE_BATCHES, check_choice
from adcorre.training.custom_loss import AdaptiveAttentionMap, AdCorreLoss

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
        return [*self.epoch_metrics, self.attention]

    @property
    def epoch_metrics(self):
        """The running means Keras logs for an epoch (the loss, its terms, the accuracy); not the
        attention map, whose counts a backup keeps on its own."""
        return [self._loss_tracker, *self.term_trackers, self.accuracy_tracker]

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
        logs = {m.name: m.result() for m in self.epoch_metrics}
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
