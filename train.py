"""Training: `TrainModel(dataset_name=...).train(arch="xcp")` and the `python train.py` CLI.

`TrainModel` turns its arguments into one `config.LearningConfig` (a named recipe's settings
under the caller's own; see `config.RECIPES`), writes it to the run folder as `run_config.json`,
reads the dataset (`dataset_readers`), builds one `tf.data` epoch at a time (`input_pipeline`),
the network (`cnn_model`) and its `trainer.AdCorreTrainer`, and runs `model.fit` one epoch per
call, so a run killed mid-epoch resumes at the batch where it stopped. Each epoch writes
`<dataset>_<epoch>_AC_<accuracy>.h5` atomically; the best file is kept.

`python train.py` with no arguments trains the CPU demo (the `synth_demo` recipe): the `tiny`
arch on SynthFER generated on the fly (about 3 minutes on 2 cores).
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

import atomic_files  # noqa: E402
import dataset_readers  # noqa: E402
import input_pipeline  # noqa: E402
import pictures  # noqa: E402
from cnn_model import ARCHES, CNNModel  # noqa: E402
from learning_schedules import make_schedule  # noqa: E402
from config import (  # noqa: E402
    FROM_RECIPE,
    LOSS_ARITHMETICS,
    LR_SCHEDULES,
    RECIPES,
    DatasetName,
    DatasetType,
    LearningConfig,
    default_data_dir,
    label_names,
)
# Re-exported: these lived here before the trainer and the reports had modules of their own.
from reports import classification_summary, format_confusion_matrix, plot_confusion_matrix  # noqa: E402, F401
from trainer import (  # noqa: E402, F401
    LOSS_TERMS,
    AdCorreTrainer,
    EpochEnd,
    ResumableBackup,
    _CSVLogger,
    _TensorBoard,
    _is_chief,
    _strategy_name,
    _TotalEpochsProgbar,
    choose_strategy,
)


@dataclasses.dataclass
class _Split:
    frame: object
    labels: np.ndarray
    skipped: int = 0


class TrainModel:
    """Trains an Ad-Corre model, official API: `TrainModel(dataset_name=...).train(arch="xcp")`.

    Arguments left out take the recipe's value (`config.RECIPES`): `recipe=None` picks
    `"synth_demo"` for SynthFER and `"adcorre"` otherwise.

    Args:
        dataset_name: one of `config.DatasetName.all`; `"synth"` generates SynthFER in memory.
        ds_type: `config.DatasetType`; for AffectNet `train` means 8 classes, `train_7` 7.
        data_dir: the dataset's root folder as it ships (default `config.default_data_dir`).
        weights: `"imagenet"` (backbone only), `None` (from scratch) or a weight file path.
        lr: initial Adam learning rate.
        lr_schedule: `"inverse_time"` (Ad-Corre: `lr / (1 + lr_decay * t)` after t optimizer
            steps, the official Keras 2 `Adam(1e-3, decay=1e-5)`) or `"step"` (x
            `lr_decay_factor` every `lr_decay_every` epochs; the SynthFER demo's).
        lr_decay, lr_decay_every, lr_decay_factor: the two schedules' settings.
        epochs, batch_size, input_size: the usual; `batch_size` is the global batch.
        save_dir: where epoch files, logs and the backup go (a fresh timestamped folder by default;
            pass an existing one to resume a killed run).
        ce_weight: cross-entropy weight (`None`: 50 / number of classes, the official balance);
            `use_adcorre=False` trains with CE only.
        loss_arithmetic: `"paper"` (docs/DESIGN.md's FD / MD / ED) or `"official"` (the official
            code's arithmetic, see `custom_loss.AdCorreLoss`).
        attention_window: `None`: omega refreshed per epoch; N: every step from the last N
            training predictions (rounded up to whole batches; the official code keeps 1000).
        num_embeddings, embedding_size: k and d of the heads.
        adcorre_batch: `"global"` (default) or `"local"`, see `trainer.AdCorreTrainer`.
        mrr: minimal random resampling of the training set each epoch (ARM).
        mixed_precision: `"auto"` (bf16 on a GPU, none on a CPU), `"bfloat16"`, `"float16"`, `"none"`.
        jit_compile: `"auto"` (XLA on a GPU, graph mode on a CPU) or a bool.
        seed: makes data order, augmentation and initialisation repeatable.
        synth_train_size, synth_test_size: SynthFER sizes when `dataset_name="synth"`.
        backup_every: steps between mid-epoch backups.
        keep_all: keep every epoch's `.h5` (default: the best and the latest).
        steps_per_epoch: cap on the steps of an epoch (quick runs); default the whole split.
        augmentation: an `input_pipeline.Augmentation` for the training images (`None`: its
            defaults: flip, small rotation/zoom/shift, colour jitter, random erasing), or `False`.
        verbose: Keras' progress output (`"auto"`: a bar on a terminal, a line per epoch otherwise).
        recipe: a key of `config.RECIPES`.

    Attributes:
        config: the run's `config.LearningConfig`; its fields read as attributes too
            (`TrainModel(...).epochs`).

    Example (minutes of training):

    ```python
    best = TrainModel(dataset_name="synth", epochs=2).train()   # the demo, 2 epochs
    ```
    """

    def __init__(self, dataset_name=DatasetName.synth, ds_type=DatasetType.train, data_dir=None,
                 weights=FROM_RECIPE, lr=FROM_RECIPE, epochs=FROM_RECIPE, batch_size=FROM_RECIPE,
                 input_size=FROM_RECIPE, save_dir=None, ce_weight=FROM_RECIPE,
                 use_adcorre=FROM_RECIPE, num_embeddings=FROM_RECIPE, embedding_size=FROM_RECIPE,
                 adcorre_batch=FROM_RECIPE, lr_decay_every=FROM_RECIPE,
                 lr_decay_factor=FROM_RECIPE, lr_schedule=FROM_RECIPE, lr_decay=FROM_RECIPE,
                 loss_arithmetic=FROM_RECIPE, attention_window=FROM_RECIPE,
                 mrr=FROM_RECIPE, mixed_precision="auto",
                 jit_compile="auto", seed=0, synth_train_size=FROM_RECIPE,
                 synth_test_size=FROM_RECIPE, backup_every=200, keep_all=False,
                 steps_per_epoch=None, augmentation=FROM_RECIPE, verbose="auto", recipe=None):
        # Every argument but `self` and `recipe` is a LearningConfig field (`lr` is spelled
        # `learning_rate` there); those left to the recipe are not passed on.
        arguments = dict(locals())
        given = {name: value for name, value in arguments.items()
                 if name not in ("self", "recipe") and value is not FROM_RECIPE}
        if "lr" in given:
            given["learning_rate"] = given.pop("lr")
        augmentation = given.get("augmentation")
        if augmentation not in (None, False) and not isinstance(augmentation,
                                                                input_pipeline.Augmentation):
            raise ValueError("augmentation must be None (the defaults), False (none) or an "
                             f"input_pipeline.Augmentation, got {augmentation!r}.")
        self.config = LearningConfig.from_recipe(recipe, **given)

    def __getattr__(self, name):
        # The settings read as attributes, as they did when TrainModel kept them one by one.
        config = self.__dict__.get("config")
        if name == "lr" and config is not None:
            return config.learning_rate
        if config is not None and name in {f.name for f in dataclasses.fields(config)}:
            return getattr(config, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def num_classes(self):
        return self.config.num_classes

    # -- data -----------------------------------------------------------------------------
    def _read(self, split):
        config = self.config
        options = {}
        if config.dataset_name == DatasetName.synth:
            size = config.synth_train_size if split == "train" else config.synth_test_size
            # Draw at the model's input size (up to 224), so no resize blurs the faces.
            options = {"n": size, "image_size": min(config.input_size, 224), "seed": config.seed}
        elif config.dataset_name == DatasetName.affectnet:
            options = {"num_classes": config.num_classes}
        data_dir = config.data_dir
        if data_dir is None and config.dataset_name != DatasetName.synth:
            data_dir = default_data_dir(config.dataset_name)
        frame = dataset_readers.read_split(config.dataset_name, data_dir, split, **options)
        # Checked once here (one warning naming the first bad files), so every epoch's
        # pipeline is built from readable rows only and batches keep their size.
        frame, skipped = pictures.validate_images(frame, mode="header")
        if len(frame) == 0:
            raise ValueError(f"The {split!r} split of {config.dataset_name!r} at {data_dir!r} has "
                             f"no usable images ({len(skipped)} skipped).")
        return _Split(frame, frame["label"].to_numpy(dtype=np.int64), len(skipped))

    def _training_dataset(self, train, epoch, skip_batches, steps):
        """Epoch `epoch`'s batches from `skip_batches` on, `steps` full batches in all."""
        config = self.config
        augment = False if config.augmentation is False else (config.augmentation or True)
        dataset = input_pipeline.make_dataset(
            train.frame, input_size=config.input_size, batch_size=config.batch_size,
            augment=augment, seed=config.seed, epoch=epoch, shuffle=True, mrr=config.mrr,
            skip_batches=skip_batches, drop_remainder=True, validate="none")
        return dataset.take(steps - skip_batches)

    # -- model ----------------------------------------------------------------------------
    def make_model(self, arch, weight_path=None):
        """The network to train (`weight_path` continues from a file of the same arch)."""
        config = self.config
        weights = weight_path if weight_path else config.weights
        if isinstance(weights, str) and weights.lower() == "none":
            weights = None
        return CNNModel().get_model(
            arch, num_classes=config.num_classes, weights=weights, input_size=config.input_size,
            num_embeddings=config.num_embeddings, embedding_size=config.embedding_size,
            dropout=config.dropout)

    def learning_rate_schedule(self, steps_per_epoch):
        """The recipe's learning-rate schedule, driven by the optimizer's step count.

        Args:
            steps_per_epoch: the optimizer steps of one epoch (the `"step"` schedule's unit).

        Returns:
            A `keras.optimizers.schedules.LearningRateSchedule` (`learning_schedules`).
        """
        config = self.config
        return make_schedule(config.lr_schedule, config.learning_rate, steps_per_epoch,
                             decay=config.lr_decay, every_epochs=config.lr_decay_every,
                             factor=config.lr_decay_factor)

    def _configure_devices(self):
        import tensorflow as tf

        on_gpu = bool(tf.config.list_physical_devices("GPU"))
        jit_compile, mixed_precision = self.config.jit_compile, self.config.mixed_precision
        jit = on_gpu if jit_compile == "auto" else bool(jit_compile)
        policy = {"auto": "mixed_bfloat16" if on_gpu else "float32", "bfloat16": "mixed_bfloat16",
                  "float16": "mixed_float16", "none": "float32"}.get(mixed_precision)
        if policy is None:
            raise ValueError("mixed_precision must be 'auto', 'bfloat16', 'float16' or 'none', "
                             f"got {mixed_precision!r}.")
        keras.mixed_precision.set_global_policy(policy)
        return jit

    def _build_trainer(self, strategy, arch, weight_path, jit, steps_per_epoch):
        config = self.config
        window = None
        if config.attention_window:
            window = -(-int(config.attention_window) // config.batch_size)  # whole batches
        with strategy.scope():
            network = self.make_model(arch, weight_path)
            trainer = AdCorreTrainer(network, num_classes=config.num_classes,
                                     ce_weight=config.cross_entropy_weight,
                                     adcorre_batch=config.adcorre_batch,
                                     use_adcorre=config.use_adcorre,
                                     loss_arithmetic=config.loss_arithmetic,
                                     attention_window_batches=window)
            # The schedule reads optimizer.iterations, which a backup restores: a resumed run
            # continues the rate where it stopped.
            optimizer = keras.optimizers.Adam(self.learning_rate_schedule(steps_per_epoch))
            trainer.compile(optimizer=optimizer, jit_compile=jit)
            # Build every variable (optimizer slots too) so a backup can be loaded into them.
            trainer(np.zeros((1, config.input_size, config.input_size, 3), "float32"))
            trainer.optimizer.build(trainer.trainable_variables)
        return trainer

    # -- training -------------------------------------------------------------------------
    def train(self, arch=None, weight_path=None):
        """Trains and returns the path of the best saved `.h5`.

        Args:
            arch: one of `cnn_model.ARCHES`; `None` takes the recipe's (`xcp` for Ad-Corre,
                `tiny` for the SynthFER demo).
            weight_path: optional weight file to start from (same arch and heads).

        Returns:
            Path of the `.h5` with the best test accuracy.
        """
        config = self.config
        arch = arch or config.arch
        if arch not in ARCHES:
            raise ValueError(f"Unknown arch {arch!r}; expected one of {ARCHES}.")
        keras.utils.set_random_seed(config.seed)
        jit = self._configure_devices()
        strategy = choose_strategy()
        chief = _is_chief()
        save_dir = config.save_dir or os.path.join(
            "runs", f"{config.dataset_name}_{arch}_{time.strftime('%Y%m%d-%H%M%S')}")
        os.makedirs(save_dir, exist_ok=True)
        names = label_names(config.num_classes)

        train, test = self._read("train"), self._read("test")
        steps = len(input_pipeline.epoch_order(train.labels, config.seed, 0, mrr=config.mrr))
        steps //= config.batch_size
        if config.steps_per_epoch:
            steps = min(steps, config.steps_per_epoch)
        if steps < 1:
            raise ValueError(f"The training split has {len(train.labels)} images, fewer than one "
                             f"batch of {config.batch_size}.")
        test_dataset = input_pipeline.make_dataset(
            test.frame, input_size=config.input_size, batch_size=config.batch_size,
            validate="none")
        trainer = self._build_trainer(strategy, arch, weight_path, jit, steps)

        backup = ResumableBackup(os.path.join(save_dir, "backup"), every_steps=config.backup_every,
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
        state.update(dataset=config.dataset_name, arch=arch, labels=list(names),
                     input_size=config.input_size, steps_per_epoch=steps,
                     skipped_images={"train": train.skipped, "test": test.skipped})
        if chief:
            atomic_files.write_json(os.path.join(save_dir, "run_config.json"),
                                    {**config.to_dict(), "arch": arch, "weight_path": weight_path,
                                     "num_classes": config.num_classes, "labels": list(names),
                                     "steps_per_epoch": steps,
                                     "ce_weight": config.cross_entropy_weight})

        callbacks = [
            EpochEnd(state, test_dataset, test.labels, save_dir, config.dataset_name, names, arch,
                     keep_all=config.keep_all, chief=chief),
            backup,
            _CSVLogger(os.path.join(save_dir, "log.csv"), append=True),
            _TensorBoard(os.path.join(save_dir, "tensorboard"), update_freq="epoch"),
            keras.callbacks.TerminateOnNaN(),
            _TotalEpochsProgbar(config.epochs),
        ]
        verbose = config.verbose if config.verbose != "auto" else (1 if sys.stdout.isatty() else 2)
        replicas = strategy.num_replicas_in_sync
        print(f"Training {arch} on {config.dataset_name} (recipe {config.recipe}): "
              f"{len(train.labels)} train / {len(test.labels)} test images, {steps} steps of "
              f"{config.batch_size} per epoch, {config.epochs} epochs, Adam {config.learning_rate:g} "
              f"with {config.lr_schedule} decay, strategy "
              f"{_strategy_name(strategy)} ({replicas} replica{'s' if replicas != 1 else ''}), "
              f"jit_compile={jit}, policy {keras.mixed_precision.global_policy().name}. "
              f"Output: {save_dir}")
        for epoch in range(start_epoch, config.epochs):
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
        description="Train an Ad-Corre model. With no arguments: the CPU demo, recipe synth_demo "
                    "(tiny arch on SynthFER, 64 px, 8 epochs, about 3 minutes on 2 cores). "
                    "Options left out take the recipe's value.")
    parser.add_argument("--dataset", default=DatasetName.synth, choices=DatasetName.all)
    parser.add_argument("--data-dir", default=None, help="dataset root as it ships")
    parser.add_argument("--ds-type", default=DatasetType.train, choices=DatasetType.all)
    parser.add_argument("--recipe", default=None, choices=tuple(RECIPES),
                        help="named settings (default: synth_demo for synth, adcorre otherwise)")
    parser.add_argument("--arch", default=None, choices=ARCHES,
                        help="default: the recipe's (tiny for synth_demo, xcp for adcorre)")
    parser.add_argument("--weights", default=None,
                        help="imagenet, none or a weight file; default: the recipe's")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--lr-schedule", default=None, choices=LR_SCHEDULES,
                        help="inverse_time: lr / (1 + lr_decay * step), the official (adcorre's "
                             "default); step: x0.1 every --lr-decay-every epochs")
    parser.add_argument("--lr-decay", type=float, default=None,
                        help="per-step decay of the inverse_time schedule (default 1e-5)")
    parser.add_argument("--lr-decay-every", type=int, default=None,
                        help="epochs between x0.1 steps of the step schedule")
    parser.add_argument("--loss-arithmetic", default=None, choices=LOSS_ARITHMETICS,
                        help="paper (default): docs/DESIGN.md's FD/MD/ED; official: the official "
                             "code's (no FD weights, MD / k C^2, ED / k^2)")
    parser.add_argument("--attention-window", type=int, default=None,
                        help="omega every step from the last N training predictions (the "
                             "official code: 1000); default once per epoch")
    parser.add_argument("--ce-weight", type=float, default=None)
    parser.add_argument("--ce-only", action="store_true", help="train without FD/MD/ED (ablation)")
    parser.add_argument("--num-embeddings", type=int, default=None)
    parser.add_argument("--embedding-size", type=int, default=None)
    parser.add_argument("--adcorre-batch", default=None, choices=("global", "local"))
    parser.add_argument("--mrr", action="store_true", help="minimal random resampling each epoch")
    parser.add_argument("--augment", default="auto", choices=("auto", "on", "off"),
                        help="training augmentation; auto: the recipe's (off for synth_demo: "
                             "SynthFER draws its own pose, light and occluders)")
    parser.add_argument("--mixed-precision", default="auto", choices=("auto", "bfloat16", "float16", "none"))
    parser.add_argument("--jit-compile", default="auto", choices=("auto", "on", "off"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-dir", default=None, help="output folder; an existing one resumes")
    parser.add_argument("--synth-train-size", type=int, default=None)
    parser.add_argument("--synth-test-size", type=int, default=None)
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--backup-every", type=int, default=200)
    parser.add_argument("--keep-all", action="store_true", help="keep every epoch's .h5")
    return parser.parse_args(argv)


def main(argv=None):
    args = _parse_args(argv)
    chosen = dict(
        weights=args.weights, lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
        input_size=args.input_size, ce_weight=args.ce_weight,
        num_embeddings=args.num_embeddings, embedding_size=args.embedding_size,
        adcorre_batch=args.adcorre_batch, lr_decay_every=args.lr_decay_every,
        lr_schedule=args.lr_schedule, lr_decay=args.lr_decay,
        loss_arithmetic=args.loss_arithmetic, attention_window=args.attention_window,
        synth_train_size=args.synth_train_size, synth_test_size=args.synth_test_size)
    settings = {name: value for name, value in chosen.items() if value is not None}
    if args.ce_only:
        settings["use_adcorre"] = False
    if args.mrr:
        settings["mrr"] = True
    if args.augment != "auto":
        settings["augmentation"] = None if args.augment == "on" else False
    try:
        trainer = TrainModel(
            dataset_name=args.dataset, ds_type=args.ds_type, data_dir=args.data_dir,
            save_dir=args.save_dir, mixed_precision=args.mixed_precision,
            jit_compile={"auto": "auto", "on": True, "off": False}[args.jit_compile],
            seed=args.seed, backup_every=args.backup_every, keep_all=args.keep_all,
            steps_per_epoch=args.steps_per_epoch, recipe=args.recipe, **settings)
        best = trainer.train(arch=args.arch)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Saved model: {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
