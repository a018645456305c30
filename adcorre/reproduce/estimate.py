"""How long a reproduction will take, measured before it starts: a few train steps of each
network on the device there is, times the steps its recipe runs.

Each distinct network (arch, input size, batch, optimiser, precision; the heads and the loss
terms change a step by little) is built once, with the first experiment's heads, and trained for
`TIMED_STEPS` steps on random pictures after one warm-up step (which builds the graph and is
counted once per run as its start-up). A run is then `epochs x (train steps x step time +
scoring batches x step time / 3)` (a forward pass costs about a third of a train step) plus its
start-up. Train steps come from the dataset's published split sizes (`experiments.SPLIT_SIZES`:
the estimate needs no data), less the validation share, or the MRR epoch where MRR is on. On a
CPU a batch larger than `CPU_TIMED_BATCH` is timed at that size and scaled in proportion (a CPU
step grows with the batch; ARM's batch of 256 at 224 px would need gigabytes only to be timed).

Over an hour, the reproduction asks before it starts (`confirm`); `--yes` skips the question, and
without a terminal to ask on it refuses rather than waits.

Example:
>>> describe_duration(5400), describe_duration(60 * 3600), describe_duration(90)
('about 1.5 h', 'about 2.5 days', 'about 2 min')
"""

import dataclasses
import math
import statistics
import sys
import time

from adcorre.config import LearningConfig
from adcorre.errors import SettingError
from adcorre.reproduce.experiments import SPLIT_SIZES

ONE_HOUR = 3600.0
TIMED_STEPS = 3
CPU_TIMED_BATCH = 32
# A forward pass (scoring) against a train step (forward, backward, update).
FORWARD_SHARE = 1.0 / 3.0


@dataclasses.dataclass(frozen=True)
class StepTiming:
    """What `time_train_steps` measured: the first step (the graph built) and the others."""

    startup: float
    step: float
    timed_batch: int
    device: str


def describe_duration(seconds):
    """`seconds` in words a person plans with: "about 40 min", "about 9 h", "about 3 days"."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min"
    hours = seconds / 3600
    if hours < 48:
        return f"about {hours:.1f} h" if hours < 10 else f"about {round(hours)} h"
    days = hours / 24
    return f"about {days:.1f} days" if days < 10 else f"about {round(days)} days"


def learning_config(experiment):
    """The `LearningConfig` of the experiment's full-scale run (no TensorFlow needed)."""
    settings = experiment.train_settings(seed=0)
    return LearningConfig.from_recipe(settings.pop("recipe"), **settings)


def train_steps(experiment, config):
    """`(train steps per epoch, pictures scored per epoch)` at the published split sizes."""
    sizes = SPLIT_SIZES[experiment.dataset]
    train = sizes["train"]
    held_out = round(train * (config.val_fraction or 0.0))
    if config.mrr:  # every class topped up to the largest
        train = config.num_classes * sizes["largest_class"]
    train -= held_out
    return max(1, train // config.batch_size), sizes["test"] + held_out


def time_train_steps(config, arch, steps=TIMED_STEPS):
    """Builds the network and its trainer as the run will (mixed precision and XLA as on this
    device), without ImageNet weights, and times train steps on random pictures.

    Args:
        config: the run's `LearningConfig`.
        arch: the network.
        steps: steps timed after the warm-up step.

    Returns:
        A `StepTiming`: the step time is for `config.batch_size` (scaled from a smaller timed
        batch on a CPU).
    """
    from adcorre import runtime
    import keras
    import numpy as np

    from adcorre import CNNModel
    from adcorre.training.adam_optimizers import make_optimizer
    from adcorre.training.train_step import AdCorreTrainer

    on_gpu = bool(runtime.physical_gpus())
    keras.backend.clear_session()
    policy = {"auto": "mixed_bfloat16" if on_gpu else "float32", "bfloat16": "mixed_bfloat16",
              "float16": "mixed_float16", "none": "float32"}[config.mixed_precision]
    keras.mixed_precision.set_global_policy(policy)
    jit = on_gpu if config.jit_compile == "auto" else bool(config.jit_compile)
    try:
        network = CNNModel().get_model(
            arch, num_classes=config.num_classes, weights=None, input_size=config.input_size,
            num_embeddings=config.num_embeddings, embedding_size=config.embedding_size)
        trainer = AdCorreTrainer(network, num_classes=config.num_classes,
                                 ce_weight=config.cross_entropy_weight,
                                 use_adcorre=config.use_adcorre,
                                 loss_arithmetic=config.loss_arithmetic)
        trainer.compile(optimizer=make_optimizer(config.optimizer, config.learning_rate,
                                                 weight_decay=config.weight_decay),
                        jit_compile=jit)
        batch = config.batch_size if on_gpu else min(config.batch_size, CPU_TIMED_BATCH)
        rng = np.random.default_rng(0)
        images = rng.random((batch, config.input_size, config.input_size, 3), dtype=np.float32)
        labels = np.arange(batch) % config.num_classes
        began = time.perf_counter()
        trainer.train_on_batch(images, labels)
        startup = time.perf_counter() - began
        times = []
        for _ in range(steps):
            began = time.perf_counter()
            trainer.train_on_batch(images, labels)
            times.append(time.perf_counter() - began)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    step = statistics.median(times) * config.batch_size / batch
    return StepTiming(startup=startup, step=step, timed_batch=batch,
                      device=runtime.device_line())


def estimate(runs, timer=None):
    """Times the networks of `runs` and adds up what they will take.

    Args:
        runs: the `runner.Run`s still to do (full scale).
        timer: `time_train_steps` (the default), or a stand-in with its signature.

    Returns:
        `(lines, seconds)`: one line per experiment and a last line with the total, which names
        the device ("about 9 h on this GPU").
    """
    timer = timer or time_train_steps
    counts = {}
    for run in runs:
        counts.setdefault(run.experiment.name, [run.experiment, 0])[1] += 1
    timings, lines, total = {}, [], 0.0
    for experiment, count in counts.values():
        config = learning_config(experiment)
        # The backbone's step dominates: heads and loss terms change it by little, so one
        # timing serves every experiment of an arch, input, batch, optimiser and precision.
        key = (experiment.arch, config.input_size, config.batch_size, config.optimizer,
               config.mixed_precision, config.jit_compile)
        if key not in timings:
            timings[key] = timer(config, experiment.arch)
        timing = timings[key]
        steps, scored = train_steps(experiment, config)
        scoring = math.ceil(scored / config.batch_size)
        per_run = timing.startup + config.epochs * (steps + scoring * FORWARD_SHARE) * timing.step
        total += count * per_run
        scaled = (f", timed at batch {timing.timed_batch}"
                  if timing.timed_batch != config.batch_size else "")
        lines.append(f"  {experiment.name}: {count} run{'s' if count > 1 else ''} x "
                     f"{config.epochs} epochs x {steps} steps of {config.batch_size} at "
                     f"{timing.step:.2f} s a step{scaled}: {describe_duration(per_run)} a run")
    device = _device_words(next(iter(timings.values())).device) if timings else "here"
    lines.insert(0, f"Estimate (a few train steps timed {device}; split sizes as published):")
    lines.append(f"In all {describe_duration(total)} {device}.")
    return lines, total


def _device_words(line):
    """'on this GPU (NVIDIA H100 ...)' / 'on this CPU (2 cores)' from `runtime.device_line`."""
    what = line.removeprefix("Device: ").split(", TensorFlow")[0].split(", JAX")[0]
    if "GPU" in what and not what.startswith("CPU"):
        return f"on this GPU ({what})"
    return f"on this CPU ({what.removeprefix('CPU (').split(';')[0]})"


def toy_line(runs):
    """What `--data synth` says instead of an estimate: its runs are a few steps each."""
    steps = sum(run.experiment.toy.epochs * run.experiment.toy.steps_per_epoch for run in runs)
    return (f"SynthFER toy scale: {len(runs)} run{'s' if len(runs) != 1 else ''}, {steps} train "
            "steps in all; not timed (no long reproduction).")


def confirm(seconds, yes, stdin=None, ask=input):
    """Whether to start a reproduction estimated at `seconds`.

    Up to an hour, or with `yes`: True. Over an hour: asks on a terminal ("Go on? [y/N]").

    Raises:
        SettingError: over an hour, without `yes`, and stdin is not a terminal (nothing to ask
            on; waiting would hang a script).
    """
    stdin = sys.stdin if stdin is None else stdin
    if yes or seconds <= ONE_HOUR:
        return True
    if not (stdin is not None and stdin.isatty()):
        raise SettingError(
            f"This reproduction would take {describe_duration(seconds)}, and stdin is not a "
            "terminal to ask on: pass --yes to start it (or --estimate to see the estimate only).")
    return ask("Go on? [y/N] ").strip().lower() in ("y", "yes")
