"""The Adam a training recipe names: Keras' own, or torch's arithmetic with coupled L2.

- `"adam"`: `keras.optimizers.Adam`, whose epsilon is added to the un-corrected `sqrt(v)`, as
  Keras 2's Adam that the official Ad-Corre train.py ran.
- `"torch_adam"`: `TorchAdam`, the update `torch.optim.Adam(params, lr, weight_decay=wd)` makes,
  which ARM's train_raf-db.py uses: `wd * w` is added to every gradient before the moments (L2
  regularisation, "coupled"; Keras' own `weight_decay=` is the decoupled AdamW kind, which
  shrinks the weights outside the moments and is a different optimiser), and epsilon (1e-8)
  is added after the bias correction of `sqrt(v)`.

Written with `keras.ops` (runs under JAX too).
"""

from adcorre import runtime  # noqa: F401  (Keras loads without TensorFlow's start-up noise)
import keras
from keras import ops

from adcorre.settings import OPTIMIZERS, check_choice


@keras.saving.register_keras_serializable(package="adcorre")
class TorchAdam(keras.optimizers.Adam):
    """Adam as `torch.optim.Adam` computes it, with its coupled L2 weight decay.

    For each trainable variable w with gradient g, at step t (from 1):

        g = g + coupled_weight_decay * w
        m = beta_1 m + (1 - beta_1) g          v = beta_2 v + (1 - beta_2) g^2
        w = w - lr * (m / (1 - beta_1^t)) / (sqrt(v) / sqrt(1 - beta_2^t) + epsilon)

    Every trainable variable is decayed, biases, BatchNorm's gamma and beta and ARM's alpha
    included, as torch does over `model.parameters()`. The slots are Keras Adam's (momentum,
    velocity), so backups and schedules work as for `keras.optimizers.Adam`.

    Args:
        learning_rate: a float or a `LearningRateSchedule`.
        beta_1, beta_2: the moment decay rates (torch's `betas`).
        epsilon: added after the bias correction (torch's `eps`, default 1e-8).
        coupled_weight_decay: torch's `weight_decay`: the L2 factor added to the gradient.
        **kwargs: `keras.optimizers.Optimizer` arguments (`name`, `clipnorm`...); Keras'
            decoupled `weight_decay` is refused, so the two kinds are never mixed up.

    Example:
    >>> w = keras.Variable([1.0, -2.0])
    >>> optimizer = TorchAdam(learning_rate=0.1, coupled_weight_decay=0.5)
    >>> _ = optimizer.apply_gradients([(ops.convert_to_tensor([0.0, 0.0]), w)])
    >>> [round(float(x), 4) for x in ops.convert_to_numpy(w)]  # g = 0.5 w: a step of lr against w
    [0.9, -1.9]
    """

    def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 coupled_weight_decay=0.0, **kwargs):
        if kwargs.get("weight_decay") is not None:
            raise ValueError("TorchAdam: pass torch's weight_decay as coupled_weight_decay; "
                             "Keras' weight_decay= is the decoupled (AdamW) kind.")
        if kwargs.pop("amsgrad", False):
            raise ValueError("TorchAdam does not implement amsgrad.")
        if coupled_weight_decay < 0:
            raise ValueError(f"coupled_weight_decay must be >= 0, got {coupled_weight_decay}.")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, **kwargs)
        self.coupled_weight_decay = float(coupled_weight_decay)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        if self.coupled_weight_decay:
            gradient = gradient + ops.cast(self.coupled_weight_decay, dtype) * variable
        step = ops.cast(self.iterations + 1, dtype)
        bias_correction_1 = 1 - ops.power(ops.cast(self.beta_1, dtype), step)
        bias_correction_2 = 1 - ops.power(ops.cast(self.beta_2, dtype), step)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign_add(m, (gradient - m) * (1 - self.beta_1))
        self.assign_add(v, (ops.square(gradient) - v) * (1 - self.beta_2))
        denominator = ops.sqrt(v) / ops.sqrt(bias_correction_2) + self.epsilon
        self.assign_sub(variable, (lr / bias_correction_1) * m / denominator)

    def get_config(self):
        config = super().get_config()
        config.pop("amsgrad", None)
        config["coupled_weight_decay"] = self.coupled_weight_decay
        return config


def make_optimizer(kind, learning_rate, weight_decay=0.0):
    """The optimizer a training recipe names.

    Args:
        kind: `"adam"` (Keras' Adam, Ad-Corre's) or `"torch_adam"` (`TorchAdam`, ARM's).
        learning_rate: a float or a `LearningRateSchedule`.
        weight_decay: torch's coupled L2 factor; `"torch_adam"` only.

    Returns:
        A `keras.optimizers.Optimizer`.

    Example:
    >>> type(make_optimizer("torch_adam", 1e-3, weight_decay=1e-4)).__name__
    'TorchAdam'
    """
    check_choice("optimizer", kind, OPTIMIZERS)
    if kind == "adam":
        if weight_decay:
            raise ValueError(f"weight_decay={weight_decay} is torch's coupled L2, which the "
                             "'torch_adam' optimizer applies; Keras' 'adam' has none here.")
        return keras.optimizers.Adam(learning_rate)
    if kind == "torch_adam":
        return TorchAdam(learning_rate, coupled_weight_decay=weight_decay)
