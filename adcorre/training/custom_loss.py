"""The Ad-Corre loss (CE, FD, MD, ED) and the adaptive attention map.

Everything here is written with `keras.ops`, so it is differentiable, runs inside a
compiled `tf.function` (also with `jit_compile=True` and an unknown batch size) and
under the JAX backend. TensorFlow is never imported by this module.

The equations are those of docs/DESIGN.md ("The Ad-Corre equations"). With a batch of n
samples labelled y_i and k embedding matrices E_l of shape (n, d):

- FD = (1/k) sum_l (1/n^2) sum_ij W[i,j] |Phi[i,j] - CORM(E_l)[i,j]|, with
  Phi[i,j] = +1 if y_i == y_j else -1 and W[i,j] = (omega[y_i] + omega[y_j]) (1 - [i == j]);
- MD = (1/k) sum_l mean_{c != c' in P} (1 + COR(mu_{l,c}, mu_{l,c'})), P the classes present
  in the batch, mu_{l,c} the mean of E_l over class c; 0 when |P| < 2;
- ED = (1/n) sum_i mean_{a != b} (1 + COR(E_a[i], E_b[i])); 0 when k == 1;
- CE = mean over the batch of -log p_i[y_i].

`AdCorreLoss(arithmetic="official")` computes FD, MD and ED as the official custom_loss.py
does instead (docs/reproduction.md, "Where this differs"): FD with no attention weights (omega = 1/2 for
every class), MD over all C classes (an absent class's mean is the batch mean) divided by
k C^2, ED divided by k^2. With every class in the batch that makes the paper's MD
C/(C-1) times the official one (its C(C-1) class pairs against the official C^2 entries:
7/6 with 7 classes, 8/7 with 8), and the paper's ED k/(k-1) times the official one (7/6 at
k = 7 heads).

COR is Pearson correlation over the d features, computed with a stabilised standard
deviation sqrt(var + epsilon): a constant vector then has correlation 0 with everything
(instead of 0/0) and finite gradients.
"""

from adcorre import runtime  # noqa: F401  (Keras loads without TensorFlow's start-up noise)
import keras
from keras import ops

from adcorre.settings import LOSS_ARITHMETICS, check_choice, official_ce_weight


def _default_epsilon(epsilon):
    return keras.config.epsilon() if epsilon is None else float(epsilon)


def _compute_dtype(*tensors):
    """float32, or float64 when an input already is float64.

    Half precision (float16 / bfloat16, as mixed precision produces) is too coarse for
    sums of d squared deviations and for 1 - COR near +-1, so it is promoted; float64 is
    kept so that finite-difference checks can run at full precision.
    """
    for tensor in tensors:
        if tensor is not None and keras.backend.standardize_dtype(tensor.dtype) == "float64":
            return "float64"
    return "float32"


def _stack_embeddings(embeddings):
    """A list of k (n, d) tensors, a (k, n, d) tensor or one (n, d) tensor -> (k, n, d)."""
    if isinstance(embeddings, (list, tuple)):
        if not embeddings:
            raise ValueError("AdCorreLoss: `embeddings` is an empty list; expected k >= 1 "
                             "tensors of shape (n, d).")
        tensors = [ops.convert_to_tensor(e) for e in embeddings]
        for index, tensor in enumerate(tensors):
            if len(tensor.shape) != 2:
                raise ValueError(
                    f"AdCorreLoss: embeddings[{index}] must have shape (n, d), got shape "
                    f"{tuple(tensor.shape)}.")
            if tuple(tensor.shape) != tuple(tensors[0].shape):
                raise ValueError(
                    f"AdCorreLoss: all embeddings must have the same shape (n, d); "
                    f"embeddings[0] has {tuple(tensors[0].shape)}, embeddings[{index}] has "
                    f"{tuple(tensor.shape)}.")
        dtype = _compute_dtype(*tensors)
        return ops.stack([ops.cast(t, dtype) for t in tensors], axis=0)
    tensor = ops.convert_to_tensor(embeddings)
    if len(tensor.shape) == 2:
        tensor = ops.expand_dims(tensor, 0)
    if len(tensor.shape) != 3:
        raise ValueError(
            "AdCorreLoss: `embeddings` must be a list of k tensors of shape (n, d) or one "
            f"tensor of shape (k, n, d); got a tensor of shape {tuple(tensor.shape)}.")
    return ops.cast(tensor, _compute_dtype(tensor))


def _flat_labels(labels):
    """Integer labels of shape (n,) or (n, 1) -> int32 (n,)."""
    labels = ops.convert_to_tensor(labels)
    shape = tuple(labels.shape)
    if len(shape) == 2 and shape[1] == 1:
        labels = ops.reshape(labels, (-1,))
    elif len(shape) != 1:
        raise ValueError(
            f"AdCorreLoss: `labels` must be integer class indices of shape (n,) or (n, 1), "
            f"got shape {shape}.")
    return ops.cast(labels, "int32")


def _standardise(x, epsilon):
    """Rows of `x` (..., d) -> z with COR(x_u, x_v) = sum(z_u * z_v).

    z = (x - mean) / sqrt(d * (var + epsilon)). The epsilon inside the square root keeps
    the value (0 for a constant row) and the gradient (bounded by 1 / sqrt(d * epsilon))
    finite; for the unit-norm embeddings of this model var is about 1/d, so with the
    default epsilon the correlation is scaled by 1 - O(1e-5) only.
    """
    centred = x - ops.mean(x, axis=-1, keepdims=True)
    variance = ops.mean(ops.square(centred), axis=-1, keepdims=True)
    features = ops.cast(ops.shape(x)[-1], x.dtype)
    return centred * ops.rsqrt(features * (variance + epsilon))


def _correlation_matrices(z):
    """(..., m, d) standardised rows -> (..., m, m) Pearson correlations."""
    return ops.matmul(z, ops.swapaxes(z, -1, -2))


@keras.saving.register_keras_serializable(package="adcorre")
class AdCorreLoss:
    """The Ad-Corre loss: `ce_weight * CE + fd_weight * FD + md_weight * MD + ed_weight * ED`.

    All terms are computed in float32 (float64 if the embeddings are float64) whatever
    the input dtype, are differentiable, finite on degenerate batches (constant vectors,
    one class, n = 1, absent classes, k = 1) and work with a dynamic batch size.

    Args:
        num_classes: number of expression classes C.
        ce_weight: weight of the cross-entropy; `None`: 50 / C (`config.official_ce_weight`:
            the official code averages CE over n x C entries and weights it by 50, so 50/7
            for 7 classes keeps that balance with the per-sample mean used here).
        fd_weight: weight of the feature discriminator.
        md_weight: weight of the mean discriminator.
        ed_weight: weight of the embedding discriminator.
        epsilon: stabiliser of the standard deviation in COR, the clip of the
            probabilities in CE and the offset of the default omega (`None`:
            `keras.config.epsilon()`, 1e-7).
        arithmetic: `"paper"` (docs/DESIGN.md's equations) or `"official"` (the official
            code's FD without attention weights, its MD over all classes / (k C^2) and its
            ED / k^2; `omega` is then ignored). CE is the same in both.

    Labels are class indices in [0, num_classes); the range is not checked in-graph (a
    label outside it one-hot encodes to zeros and contributes nothing), so readers
    validate it upstream.

    Example:
    >>> loss = AdCorreLoss(num_classes=7)
    >>> labels = np.array([0, 1, 1, 3])
    >>> probs = keras.ops.softmax(np.random.randn(4, 7))
    >>> embeddings = [np.random.randn(4, 256).astype("float32") for _ in range(7)]
    >>> terms = loss(labels, probs, embeddings)
    >>> sorted(terms)
    ['ce', 'ed', 'fd', 'loss', 'md']
    >>> fd = loss.feature_discriminator(embeddings, labels, omega=np.ones(7))  # one term alone
    >>> tuple(fd.shape)
    ()
    """

    def __init__(self, num_classes=7, ce_weight=None, fd_weight=1.0, md_weight=1.0,
                 ed_weight=1.0, epsilon=None, arithmetic="paper"):
        if int(num_classes) < 1:
            raise ValueError(f"AdCorreLoss: num_classes must be >= 1, got {num_classes}.")
        check_choice("arithmetic", arithmetic, LOSS_ARITHMETICS)
        self.num_classes = int(num_classes)
        self.arithmetic = arithmetic
        self.ce_weight = float(official_ce_weight(num_classes) if ce_weight is None else ce_weight)
        self.fd_weight = float(fd_weight)
        self.md_weight = float(md_weight)
        self.ed_weight = float(ed_weight)
        self.epsilon = _default_epsilon(epsilon)

    # ----------------------------------------------------------------- helpers
    def _one_hot(self, labels, dtype):
        # One-hot masks let every class-dependent quantity be a matmul: no Python loop
        # over classes, so the graph is static and XLA-compilable.
        return ops.one_hot(_flat_labels(labels), self.num_classes, dtype=dtype)

    def _omega(self, omega, dtype):
        if self.arithmetic == "official":
            # correlation_loss_multi weighs no pair (its tr_conf_matrix goes unused): W = 1 off
            # the diagonal, which (omega_i + omega_j) gives with omega = 1/2 for every class.
            return ops.full((self.num_classes,), 0.5, dtype=dtype)
        if omega is None:
            # Before the first refresh of the attention map: omega = 1 + eps (docs/DESIGN.md).
            return ops.ones((self.num_classes,), dtype=dtype) + self.epsilon
        omega = ops.cast(ops.convert_to_tensor(omega), dtype)
        if tuple(omega.shape) != (self.num_classes,):
            raise ValueError(
                f"AdCorreLoss: `omega` must have shape ({self.num_classes},) (one weight per "
                f"class), got shape {tuple(omega.shape)}.")
        return omega

    def _fd(self, z, one_hot, omega):
        correlations = _correlation_matrices(z)  # (k, n, n)
        same_class = ops.matmul(one_hot, ops.transpose(one_hot))  # (n, n)
        phi = 2.0 * same_class - 1.0
        sample_omega = ops.matmul(one_hot, ops.expand_dims(omega, -1))  # (n, 1)
        off_diagonal = 1.0 - ops.eye(ops.shape(one_hot)[0], dtype=z.dtype)
        weights = (sample_omega + ops.transpose(sample_omega)) * off_diagonal
        # The mean over (l, i, j) is (1/k) sum_l (1/n^2) sum_ij.
        return ops.mean(weights * ops.abs(phi - correlations))

    def _md(self, embeddings, one_hot):
        official = self.arithmetic == "official"
        # The official np.average weighs a class's samples 1 and the others eps, so an absent
        # class gets the batch mean and stays in the sum; here absent classes are left out.
        weights = one_hot + self.epsilon * (1.0 - one_hot) if official else one_hot
        counts = ops.sum(weights, axis=0)  # (C,)
        sums = ops.einsum("nc,knd->kcd", weights, embeddings)  # (k, C, d)
        # Absent classes get a zero mean (divided by 1, not 0); the pair mask drops them.
        means = sums / ops.reshape(ops.where(counts > 0, counts, 1.0), (1, -1, 1))
        correlations = _correlation_matrices(_standardise(means, self.epsilon))  # (k, C, C)
        pairs = 1.0 - ops.eye(self.num_classes, dtype=embeddings.dtype)
        if official:
            # The official mean runs over all C^2 entries, the zeroed diagonal counted.
            num_pairs = ops.cast(self.num_classes ** 2, embeddings.dtype)
        else:
            present = ops.cast(counts > 0, embeddings.dtype)
            pairs = pairs * ops.expand_dims(present, 1) * ops.expand_dims(present, 0)
            num_pairs = ops.sum(pairs)
        per_embedding = ops.sum(pairs * (1.0 + correlations), axis=(1, 2))
        # |P| < 2 gives num_pairs = 0 and a zero numerator: the term is 0, not 0/0.
        return ops.mean(per_embedding) / ops.maximum(num_pairs, 1.0)

    def _ed(self, z):
        per_sample = ops.transpose(z, (1, 0, 2))  # (n, k, d)
        correlations = _correlation_matrices(per_sample)  # (n, k, k)
        off_diagonal = 1.0 - ops.eye(ops.shape(z)[0], dtype=z.dtype)
        if self.arithmetic == "official":
            # np.corrcoef's k x k per sample, diagonal zeroed but counted: a mean over k^2.
            num_pairs = ops.cast(ops.size(off_diagonal), z.dtype)
        else:
            num_pairs = ops.sum(off_diagonal)  # k (k - 1), 0 when k == 1
        per_sample_sum = ops.sum(off_diagonal * (1.0 + correlations), axis=(1, 2))
        return ops.mean(per_sample_sum) / ops.maximum(num_pairs, 1.0)

    # ------------------------------------------------------------------- terms
    def feature_discriminator(self, embeddings, labels, omega=None):
        """FD: pulls same-class rows of each embedding together, pushes the others apart.

        Args:
            embeddings: a list of k tensors (n, d) or a tensor (k, n, d).
            labels: integer labels, shape (n,) or (n, 1).
            omega: per-class weights (C,) from `AdaptiveAttentionMap.omega`;
                `None` uses 1 + epsilon (the value before the first refresh). Ignored with
                `arithmetic="official"` (the official FD weighs every pair 1).

        Returns:
            A float32 scalar (float64 for float64 embeddings).
        """
        embeddings = _stack_embeddings(embeddings)
        one_hot = self._one_hot(labels, embeddings.dtype)
        return self._fd(_standardise(embeddings, self.epsilon), one_hot,
                        self._omega(omega, embeddings.dtype))

    def mean_discriminator(self, embeddings, labels):
        """MD: decorrelates the class means of each embedding (classes present only).

        Args:
            embeddings: a list of k tensors (n, d) or a tensor (k, n, d).
            labels: integer labels, shape (n,) or (n, 1).

        Returns:
            A float32 scalar (float64 for float64 embeddings); 0 with fewer than two
            classes in the batch.
        """
        embeddings = _stack_embeddings(embeddings)
        return self._md(embeddings, self._one_hot(labels, embeddings.dtype))

    def embedding_discriminator(self, embeddings):
        """ED: decorrelates the k embeddings of each sample from one another.

        Args:
            embeddings: a list of k tensors (n, d) or a tensor (k, n, d).

        Returns:
            A float32 scalar (float64 for float64 embeddings); 0 when k == 1.
        """
        embeddings = _stack_embeddings(embeddings)
        return self._ed(_standardise(embeddings, self.epsilon))

    def cross_entropy(self, labels, probs):
        """Mean categorical cross-entropy of softmax outputs over the batch.

        Probabilities are renormalised to sum 1 (half-precision softmax outputs do not
        exactly) and clipped to [epsilon, 1] so that log never sees 0.

        Args:
            labels: integer labels, shape (n,) or (n, 1).
            probs: softmax outputs, shape (n, C).

        Returns:
            A float32 scalar (float64 for float64 probabilities).
        """
        probs = ops.convert_to_tensor(probs)
        if len(probs.shape) != 2 or probs.shape[-1] not in (None, self.num_classes):
            raise ValueError(
                f"AdCorreLoss: `probs` must have shape (n, {self.num_classes}), got shape "
                f"{tuple(probs.shape)}.")
        probs = ops.cast(probs, _compute_dtype(probs))
        probs = probs / ops.maximum(ops.sum(probs, axis=-1, keepdims=True), self.epsilon)
        probs = ops.clip(probs, self.epsilon, 1.0)
        one_hot = self._one_hot(labels, probs.dtype)
        return ops.mean(-ops.sum(one_hot * ops.log(probs), axis=-1))

    def __call__(self, labels, probs, embeddings, omega=None):
        """All terms and their weighted total.

        Args:
            labels: integer labels, shape (n,) or (n, 1).
            probs: softmax outputs, shape (n, C).
            embeddings: a list of k tensors (n, d) or a tensor (k, n, d).
            omega: per-class FD weights (C,), or `None` for 1 + epsilon.

        Returns:
            dict of scalars: `loss` (the weighted total), `ce`, `fd`, `md`, `ed`.
        """
        stacked = _stack_embeddings(embeddings)
        dtype = stacked.dtype
        one_hot = self._one_hot(labels, dtype)
        # Standardise once: FD and ED share the same per-row statistics.
        z = _standardise(stacked, self.epsilon)
        terms = {
            "ce": ops.cast(self.cross_entropy(labels, probs), dtype),
            "fd": self._fd(z, one_hot, self._omega(omega, dtype)),
            "md": self._md(stacked, one_hot),
            "ed": self._ed(z),
        }
        terms["loss"] = (self.ce_weight * terms["ce"] + self.fd_weight * terms["fd"]
                         + self.md_weight * terms["md"] + self.ed_weight * terms["ed"])
        return terms

    def get_config(self):
        return {
            "num_classes": self.num_classes,
            "ce_weight": self.ce_weight,
            "fd_weight": self.fd_weight,
            "md_weight": self.md_weight,
            "ed_weight": self.ed_weight,
            "epsilon": self.epsilon,
            "arithmetic": self.arithmetic,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="adcorre")
class AdaptiveAttentionMap(keras.metrics.Metric):
    """Training confusion counts gathered in-graph, turned into the FD weights omega.

    `update_state` adds the batch's (true, predicted) pairs to a (C, C) float32 count
    matrix (rows true, columns predicted). The count variable is a Keras metric variable
    (synchronisation on read, aggregation SUM): under `tf.distribute` every replica
    counts its own samples and a read in cross-replica context sums them.

    `refresh()`, called once per epoch end (eagerly, in cross-replica context), sets
    `omega[c] = 1 - counts[c, c] / sum_j counts[c, j] + epsilon` for every class that
    had samples; a class with no samples that epoch keeps omega = 1 + epsilon (no
    evidence, the value before the first refresh). Then the counts are zeroed.

    `omega` is a non-trainable variable (C,) the loss reads inside the train step,
    initially 1 + epsilon. Keras' automatic per-epoch metric reset (`reset_state`) zeros
    only the counts, never omega. `result()` is the training accuracy of the predictions
    counted so far (trace / total of the counts, 0 before any), a scalar that reads well
    in logs; omega itself is read through `.omega` or the return value of `refresh()`.

    With `window_batches=S` omega follows the official code's sliding window instead:
    `update_window` (called every train step, after the batch's predictions) keeps the
    confusion counts of the last S batches in a ring buffer (one slot per batch, written
    through a one-hot slot mask: no dynamic slicing, so it runs in-graph and under XLA),
    sets omega from their sum and returns it; the window outlives epochs, and `refresh()`
    then only zeros the epoch's counts. The official code keeps 1000 labels (20 batches of
    50) and drops the oldest batch first.

    Under the JAX backend the map must be among the model's `metrics` (an attribute of
    the model is, unless `metrics` is overridden): Keras' stateless JAX train step only
    carries metrics' variables, and updates to any other variable are dropped. Keras'
    `evaluate` (also run by `fit(validation_data=...)` before `on_epoch_end`) resets
    metrics, so refresh before evaluating, or keep the map out of `metrics` (TF only).

    Args:
        num_classes: number of classes C.
        epsilon: offset that keeps omega > 0 for a perfectly predicted class
            (`None`: `keras.config.epsilon()`, 1e-7).
        name: metric name.
        dtype: ignored for the state (always float32), accepted for Keras compatibility.
        window_batches: `None` (omega per epoch) or S, the batches of the sliding window.

    Example (the loss takes `omega=attention.omega` inside the train step):
    >>> attention = AdaptiveAttentionMap(num_classes=3)
    >>> attention.update_state(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]))  # every batch
    >>> attention.confusion_matrix()
    array([[1., 1., 0.],
           [0., 1., 0.],
           [0., 1., 0.]], dtype=float32)
    >>> attention.refresh().round(3)                 # at epoch end: the new omega, numpy (C,)
    array([0.5, 0. , 1. ], dtype=float32)
    >>> window = AdaptiveAttentionMap(num_classes=3, window_batches=2)  # the last 2 batches
    >>> for true, predicted in [([0, 1], [1, 1]), ([0, 2], [0, 2]), ([0, 0], [0, 0])]:
    ...     omega = window.update_window(np.array(true), np.array(predicted))
    >>> keras.ops.convert_to_numpy(omega).round(3)    # class 0 right 3 times of 3, 1 not seen
    array([0., 1., 0.], dtype=float32)
    """

    def __init__(self, num_classes=7, epsilon=None, name="adaptive_attention_map", dtype=None,
                 window_batches=None):
        super().__init__(name=name, dtype="float32")
        if int(num_classes) < 1:
            raise ValueError(
                f"AdaptiveAttentionMap: num_classes must be >= 1, got {num_classes}.")
        if window_batches is not None and int(window_batches) < 1:
            raise ValueError("AdaptiveAttentionMap: window_batches must be None or >= 1, got "
                             f"{window_batches!r}.")
        self.num_classes = int(num_classes)
        self.epsilon = _default_epsilon(epsilon)
        self.window_batches = None if window_batches is None else int(window_batches)
        self.counts = self.add_variable(
            shape=(self.num_classes, self.num_classes), initializer="zeros",
            dtype="float32", aggregation="sum", name="counts")
        # Metric variables are synchronised on read. ONLY_FIRST_REPLICA (not SUM) makes a
        # cross-replica assign write the same value to every replica instead of value / R,
        # and a read in cross-replica context return that value, not R times it.
        self._omega = self.add_variable(
            shape=(self.num_classes,),
            initializer=keras.initializers.Constant(1.0 + self.epsilon),
            dtype="float32", aggregation="only_first_replica", name="omega")
        if self.window_batches:
            # With the global batch (the trainer's default) every replica writes the same
            # counts, so the first replica's copy is everyone's.
            self.window_counts = self.add_variable(
                shape=(self.window_batches, self.num_classes, self.num_classes),
                initializer="zeros", dtype="float32", aggregation="only_first_replica",
                name="window_counts")
            self.window_position = self.add_variable(
                shape=(), initializer="zeros", dtype="int32",
                aggregation="only_first_replica", name="window_position")

    @property
    def omega(self):
        """The per-class FD weights, a non-trainable float32 variable of shape (C,)."""
        return self._omega

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Adds a batch to the confusion counts.

        Args:
            y_true: integer labels, shape (n,) or (n, 1).
            y_pred: class probabilities (n, C) (their argmax is the prediction) or
                integer predictions (n,).
            sample_weight: optional (n,) weights added instead of 1 per sample.
        """
        self.counts.assign_add(self._batch_counts(y_true, y_pred, sample_weight))

    def _batch_counts(self, y_true, y_pred, sample_weight=None):
        """The batch's (C, C) confusion counts (rows true, columns predicted)."""
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        y_pred = ops.convert_to_tensor(y_pred)
        if len(y_pred.shape) == 2:
            predicted = ops.argmax(y_pred, axis=-1)
        else:
            predicted = ops.reshape(y_pred, (-1,))
        true_one_hot = ops.one_hot(labels, self.num_classes, dtype="float32")
        predicted_one_hot = ops.one_hot(ops.cast(predicted, "int32"), self.num_classes,
                                        dtype="float32")
        if sample_weight is not None:
            weight = ops.reshape(ops.cast(sample_weight, "float32"), (-1, 1))
            true_one_hot = true_one_hot * weight
        return ops.matmul(ops.transpose(true_one_hot), predicted_one_hot)

    def update_window(self, y_true, y_pred):
        """Puts the batch in the sliding window (over its oldest batch) and sets omega from it.

        Only with `window_batches`; call it every train step with the step's own predictions,
        before the loss reads omega (the official code's order).

        Args:
            y_true: integer labels, shape (n,) or (n, 1).
            y_pred: class probabilities (n, C) or integer predictions (n,).

        Returns:
            The new omega, a float32 tensor (C,), as the loss should use it this step.
        """
        if not self.window_batches:
            raise ValueError("AdaptiveAttentionMap.update_window needs window_batches; this map "
                             "refreshes omega per epoch (window_batches=None).")
        slot = ops.one_hot(ops.mod(ops.convert_to_tensor(self.window_position),
                                   self.window_batches), self.window_batches, dtype="float32")
        slot = ops.reshape(slot, (-1, 1, 1))
        window = (self.window_counts * (1.0 - slot)
                  + slot * ops.expand_dims(self._batch_counts(y_true, y_pred), 0))
        self.window_counts.assign(window)
        self.window_position.assign_add(ops.ones((), dtype="int32"))
        omega = self._omega_from_counts(ops.sum(window, axis=0))
        self._omega.assign(omega)
        return omega

    def _omega_from_counts(self, counts):
        support = ops.sum(counts, axis=1)
        correct = ops.diagonal(counts)
        # Not maximum(support, 1): weighted counts can be fractional.
        recall = correct / ops.where(support > 0, support, 1.0)
        # eps is added after the choice so that both branches stay > 0 and a class the
        # model always gets right still keeps a (tiny) weight in FD.
        return ops.where(support > 0, 1.0 - recall, 1.0) + self.epsilon

    def refresh(self):
        """Sets omega from the counts gathered since the last refresh, then zeros them.

        Call it eagerly, outside the replica function (e.g. in a callback's
        `on_epoch_end`); under `tf.distribute` the counts of all replicas are summed. With a
        sliding window omega is the window's, set every step, and only the counts are zeroed.

        Returns:
            The new omega as a float32 numpy array of shape (C,).
        """
        if not self.window_batches:
            self._omega.assign(self._omega_from_counts(ops.convert_to_tensor(self.counts)))
        self.counts.assign(ops.zeros((self.num_classes, self.num_classes), dtype="float32"))
        return ops.convert_to_numpy(self._omega)

    def confusion_matrix(self):
        """The counts gathered since the last refresh/reset (rows true, columns predicted).

        Returns:
            A float32 numpy array (C, C), summed over replicas.
        """
        return ops.convert_to_numpy(self.counts)

    def result(self):
        counts = ops.convert_to_tensor(self.counts)
        total = ops.sum(counts)
        return ops.sum(ops.diagonal(counts)) / ops.where(total > 0, total, 1.0)

    def reset_state(self):
        # Keras resets every tracked metric at each epoch start (and around evaluate);
        # omega must survive that, only the counts go.
        self.counts.assign(ops.zeros((self.num_classes, self.num_classes), dtype="float32"))

    def get_config(self):
        return {"name": self.name, "num_classes": self.num_classes, "epsilon": self.epsilon,
                "window_batches": self.window_batches}
