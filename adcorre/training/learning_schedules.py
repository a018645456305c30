"""Learning-rate schedules driven by the optimizer's step count, and the rate a step used.

Both schedules are `keras.optimizers.schedules.LearningRateSchedule`s: Keras calls them with
`optimizer.iterations` (the steps already applied, read before the increment), so the first
step runs at the initial rate and a run resumed from a backup (which restores `iterations`)
continues the schedule where it stopped.

- `"inverse_time"`: `lr_t = lr / (1 + decay * t)`, Keras 2's `Adam(lr, decay=...)`, which the
  official Ad-Corre train.py uses (`tf.keras.optimizers.Adam(1e-3, decay=1e-5)`); t is never
  reset between epochs.
- `"step"`: `lr * factor ** (epoch // every)` with `epoch = t // steps_per_epoch`
  (`EpochStepDecay`): the x0.1-every-5-epochs schedule, or ARM's x0.9 per epoch.

Written with `keras.ops` (runs under JAX too).
"""

from adcorre import runtime  # noqa: F401  (Keras loads without TensorFlow's start-up noise)
import keras
from keras import ops

from adcorre.settings import LR_SCHEDULES, check_choice


def _rate_dtype():
    """float64 where the backend has it: the rate then rounds to the optimizer's float32 once,
    as a Python float assigned per epoch did, so the step schedule gives the same rates bit
    for bit as the per-epoch callback it replaces."""
    if keras.backend.backend() == "jax":
        import jax

        return "float64" if jax.config.jax_enable_x64 else "float32"
    return "float64"


@keras.saving.register_keras_serializable(package="adcorre")
class EpochStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`initial_learning_rate * factor ** (epoch // every_epochs)`, the epoch counted in steps.

    Args:
        initial_learning_rate: the rate of the first epoch.
        steps_per_epoch: optimizer steps in one epoch (the epoch of step t is
            `t // steps_per_epoch`).
        every_epochs: epochs between two multiplications by `factor`.
        factor: the multiplier (0.1: x0.1 every `every_epochs`; 0.9 with 1: ARM's decay).

    Example:
    >>> schedule = EpochStepDecay(1e-3, steps_per_epoch=100, every_epochs=5, factor=0.1)
    >>> [round(float(schedule(t)), 7) for t in (0, 499, 500, 999, 1000)]
    [0.001, 0.001, 0.0001, 0.0001, 1e-05]
    """

    def __init__(self, initial_learning_rate, steps_per_epoch, every_epochs, factor):
        if int(steps_per_epoch) < 1 or int(every_epochs) < 1:
            raise ValueError("EpochStepDecay: steps_per_epoch and every_epochs must be >= 1, got "
                             f"{steps_per_epoch} and {every_epochs}.")
        self.initial_learning_rate = float(initial_learning_rate)
        self.steps_per_epoch = int(steps_per_epoch)
        self.every_epochs = int(every_epochs)
        self.factor = float(factor)

    def __call__(self, step):
        # Integer division first: a float32 step loses whole steps past 2**24.
        epoch = ops.floor_divide(ops.cast(step, "int32"), self.steps_per_epoch)
        decays = ops.cast(ops.floor_divide(epoch, self.every_epochs), _rate_dtype())
        factor = ops.convert_to_tensor(self.factor, _rate_dtype())
        return self.initial_learning_rate * ops.power(factor, decays)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "steps_per_epoch": self.steps_per_epoch, "every_epochs": self.every_epochs,
                "factor": self.factor}


def make_schedule(kind, learning_rate, steps_per_epoch=None, decay=1e-5, every_epochs=5,
                  factor=0.1):
    """The schedule a training recipe names.

    Args:
        kind: `"inverse_time"` (`learning_rate / (1 + decay * t)`, Keras 2's `decay`) or
            `"step"` (x `factor` every `every_epochs` epochs of `steps_per_epoch` steps).
        learning_rate: the initial rate.
        steps_per_epoch: steps in an epoch (the `"step"` schedule only).
        decay: the per-step decay of `"inverse_time"`.
        every_epochs, factor: the `"step"` schedule's period and multiplier.

    Returns:
        A `keras.optimizers.schedules.LearningRateSchedule` to pass to the optimizer.

    Example:
    >>> schedule = make_schedule("inverse_time", 1e-3, decay=1e-5)
    >>> [round(float(schedule(t)), 7) for t in (0, 100000)]   # t = 0 is the first step
    [0.001, 0.0005]
    """
    check_choice("lr_schedule", kind, LR_SCHEDULES)
    if kind == "inverse_time":
        if decay < 0:
            raise ValueError(f"The inverse-time decay must be >= 0, got {decay}.")
        # decay_steps=1 makes Keras 3's InverseTimeDecay exactly Keras 2's per-step `decay`.
        return keras.optimizers.schedules.InverseTimeDecay(
            learning_rate, decay_steps=1, decay_rate=decay)
    if kind == "step":
        return EpochStepDecay(learning_rate, steps_per_epoch, every_epochs, factor)


def last_step_rate(optimizer):
    """The learning rate the optimizer's latest step used (the initial rate before any step).

    Args:
        optimizer: a Keras 3 optimizer (a `LossScaleOptimizer` is looked through).

    Returns:
        A Python float.

    Example:
    >>> optimizer = keras.optimizers.Adam(make_schedule("inverse_time", 1e-3, decay=0.5))
    >>> _ = optimizer.iterations.assign(3)
    >>> round(last_step_rate(optimizer), 6)    # the third step ran at t = 2: 1e-3 / (1 + 0.5 * 2)
    0.0005
    """
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    # Keras keeps the schedule object here; `optimizer.learning_rate` is already the rate of
    # the *next* step, schedule(iterations).
    schedule = getattr(optimizer, "_learning_rate", None)
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        step = max(int(ops.convert_to_numpy(optimizer.iterations)) - 1, 0)
        return float(ops.convert_to_numpy(schedule(step)))
    return float(ops.convert_to_numpy(optimizer.learning_rate))
