"""Training: `TrainModel(dataset_name=...).train(arch="xcp")`.

`TrainModel` turns its arguments into one `config.LearningConfig` (a named recipe's settings
under the caller's own; see `config.RECIPES`), writes it to the run folder as `run_config.json`,
reads the dataset (`dataset_readers`), builds one `tf.data` epoch at a time (`input_pipeline`),
the network (`cnn_model`) and its `trainer.AdCorreTrainer`, and runs `model.fit` one epoch per
call, so a run killed mid-epoch resumes at the batch where it stopped. Each epoch writes
`<dataset>_<epoch>_AC_<accuracy>.h5` atomically; the best file is kept.

`TrainModel(dataset_name="synth").train()` trains the CPU demo (the `synth_demo` recipe): the
`tiny` arch on SynthFER generated on the fly (about 2 minutes on 2 cores); `python train.py` and
`adcorre train` are the same run from the command line (`adcorre.cli.train`).
"""

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import os
import signal
import sys
import threading
import time

from adcorre import runtime  # noqa: F401  (Keras loads without TensorFlow's start-up noise)
import keras
import numpy as np

from adcorre import atomic_files
from adcorre.config import (
    FROM_RECIPE,
    DatasetName,
    DatasetType,
    LearningConfig,
    default_data_dir,
    label_names,
)
from adcorre.data import dataset_readers, datasets, input_pipeline, pictures
from adcorre.errors import DatasetFormatError, ResumeError, SettingError
from adcorre.models.cnn_model import CNNModel
from adcorre.models.registry import get_arch
from adcorre.training.adam_optimizers import make_optimizer
from adcorre.training.learning_schedules import make_schedule
from adcorre.training.trainer import (
    AdCorreTrainer,
    EpochEnd,
    ResumableBackup,
    epoch_model_path,
    _CSVLogger,
    _is_chief,
    _strategy_name,
    _TensorBoard,
    _TotalEpochsProgbar,
    choose_strategy,
)


@dataclasses.dataclass
class _Split:
    rows: input_pipeline.PipelineRows  # prepared once, every epoch's pipeline reads them
    skipped: int = 0

    @property
    def labels(self):
        return self.rows.labels


class TrainModel:
    """Trains an Ad-Corre model, official API: `TrainModel(dataset_name=...).train(arch="xcp")`.

    Arguments left out take the recipe's value (`config.RECIPES`): `recipe=None` picks
    `"synth_demo"` for SynthFER and `"adcorre"` otherwise.

    Args:
        dataset_name: a name of `adcorre.data.datasets.DATASETS`; `"synth"` generates SynthFER in memory.
        ds_type: `config.DatasetType`; for AffectNet `train` means 8 classes, `train_7` 7.
        data_dir: the dataset's root folder as it ships (default `config.default_data_dir`).
        rafdb_images: RAF-DB's faces: `"auto"` (Image/aligned/ when it is there, else the
            original photos), `"aligned"`, or `"original"`: the photos cropped by their box
            files (`Annotation/boundingbox/` or `boundingbox/`), as the official config names.
        weights: `"imagenet"` (backbone only), `None` (from scratch), a weight file path, or a
            downloadable file's name (`"adcorre-rafdb"`, `"xcp.rafdb"`: a released file of the
            arch to start from, fetched once; `"xcp.imagenet"` is `"imagenet"` for xcp).
        lr: initial Adam learning rate.
        lr_schedule: `"inverse_time"` (Ad-Corre: `lr / (1 + lr_decay * t)` after t optimizer
            steps, the official Keras 2 `Adam(1e-3, decay=1e-5)`) or `"step"` (x
            `lr_decay_factor` every `lr_decay_every` epochs; the SynthFER demo's).
        lr_decay, lr_decay_every, lr_decay_factor: the two schedules' settings.
        optimizer: `"adam"` (Keras' Adam, Ad-Corre's) or `"torch_adam"` (torch's Adam
            arithmetic, ARM's; `adam_optimizers.TorchAdam`).
        weight_decay: torch's coupled L2 (`wd * w` added to every gradient), `"torch_adam"` only.
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
        mrr: class-balanced sampling: minimal random resampling (ARM) tops every class of the
            training split up to the largest one each epoch, each re-draw augmented afresh (the
            `adcorre` recipe turns it on for AffectNet; `config.RECIPE_DATASET_SETTINGS`).
        test_split: the split each epoch is scored on: `"test"`, `"val"` or, for FER-2013 and
            FERPlus, `"public_private_test"` (PublicTest + PrivateTest, the official Ad-Corre
            test set, which the `adcorre` recipe scores FER-2013 on).
        val_fraction: `None` keeps the epoch with the best test accuracy (an optimistic
            figure); F in (0, 1) carves a stratified, seeded validation split of F out of the
            training split (`dataset_readers.validation_split`, never out of the test split),
            and the epoch with the best validation accuracy is kept, its test accuracy reported.
        mixed_precision: `"auto"` (bf16 on a GPU, none on a CPU), `"bfloat16"`, `"float16"`, `"none"`.
        jit_compile: `"auto"` (XLA on a GPU, graph mode on a CPU) or a bool.
        seed: makes data order, augmentation and initialisation repeatable.
        synth_train_size, synth_test_size: SynthFER sizes when `dataset_name="synth"`.
        backup_every: steps between mid-epoch backups.
        keep_all: keep every epoch's `.h5` (default: the best and the latest).
        steps_per_epoch: cap on the steps of an epoch (quick runs); default the whole split.
        augmentation: an `input_pipeline.Augmentation` for the training images (`None`: its
            defaults: flip, small rotation/zoom/shift, colour jitter, random erasing), a name of
            `input_pipeline.AUGMENTATIONS` (`"arm"`: ARM's flip or noise + erasing), or `False`.
        verbose: Keras' progress output (`"auto"`: a bar on a terminal, a line per epoch otherwise).
        recipe: a key of `config.RECIPES` (`"arm"`: ARM's train_raf-db.py, docs/reproduction.md "ARM as its
            authors built it").

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
                 optimizer=FROM_RECIPE, weight_decay=FROM_RECIPE,
                 loss_arithmetic=FROM_RECIPE, attention_window=FROM_RECIPE,
                 mrr=FROM_RECIPE, mixed_precision="auto",
                 jit_compile="auto", seed=0, synth_train_size=FROM_RECIPE,
                 synth_test_size=FROM_RECIPE, backup_every=200, keep_all=False,
                 steps_per_epoch=None, augmentation=FROM_RECIPE, verbose="auto", recipe=None,
                 rafdb_images="auto", test_split=FROM_RECIPE, val_fraction=None):
        # Every argument but `self` and `recipe` is a LearningConfig field (`lr` is spelled
        # `learning_rate` there); those left to the recipe are not passed on.
        arguments = dict(locals())
        given = {name: value for name, value in arguments.items()
                 if name not in ("self", "recipe") and value is not FROM_RECIPE}
        if "lr" in given:
            given["learning_rate"] = given.pop("lr")
        augmentation = given.get("augmentation")
        named = isinstance(augmentation, str) and augmentation in input_pipeline.AUGMENTATIONS
        if augmentation not in (None, False) and not named and not isinstance(
                augmentation, input_pipeline.Augmentation):
            raise SettingError("augmentation must be None (the defaults), False (none), an "
                             "input_pipeline.Augmentation or one of "
                             f"{tuple(input_pipeline.AUGMENTATIONS)}, got {augmentation!r}.")
        self.config = LearningConfig.from_recipe(recipe, **given)
        datasets.check_settings(self.config)  # its name, its splits, the settings only it reads

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
        """The `read_split` frame of `split` (SynthFER drawn at the model's input size)."""
        config = self.config
        options = datasets.get(config.dataset_name).run_options(config, split)
        return dataset_readers.read_split(config.dataset_name, self._data_dir(), split, **options)

    def _data_dir(self):
        config = self.config
        if config.data_dir is None and datasets.get(config.dataset_name).needs_data_dir:
            return default_data_dir(config.dataset_name)
        return config.data_dir

    def _prepare(self, frame, split, skipped_before=0):
        """A frame's usable rows, ready for every epoch's pipeline.

        `skipped_before` counts the rows the reader already left out (RAF-DB photos without a
        usable box), so the run reports every face it could not use.
        """
        config = self.config
        # Checked once here, decoded by the pipeline's own decoder (one warning naming the
        # first bad files), so every epoch's pipeline is built from readable rows only,
        # batches keep their size and test predictions line up with their labels.
        frame, skipped = input_pipeline.usable_rows(frame, mode="decode")
        if len(frame) == 0:
            raise DatasetFormatError(
                f"The {split!r} split of {config.dataset_name!r} at {self._data_dir()!r} has no "
                f"usable images ({len(skipped) + skipped_before} skipped).")
        return _Split(input_pipeline.prepare_rows(frame, config.input_size, validate="none"),
                      len(skipped) + skipped_before)

    def _read_splits(self):
        """`(train, validation or None, test)`: the validation split carved out of train."""
        config = self.config
        train = self._read("train")
        val = None
        if config.val_fraction:
            # From the listing, before any image is opened: the same faces whatever decodes.
            train, val = dataset_readers.validation_split(
                train, config.val_fraction, config.seed, setting="--val-fraction, val_fraction=")
            val = self._prepare(val, "validation")
        train = self._prepare(train, "train", len(train.attrs.get("box_skipped", ())))
        test = self._read(config.test_split)
        test = self._prepare(test, config.test_split, len(test.attrs.get("box_skipped", ())))
        return train, val, test

    def _scoring_dataset(self, split):
        """Every image of a split in batches, each carrying its rows (`return_index`)."""
        config = self.config
        # Rows travel with the images, so predictions meet their own labels even if an image
        # stops decoding mid-run; a length Keras knows.
        return input_pipeline.make_dataset(
            split.rows, input_size=config.input_size, batch_size=config.batch_size,
            return_index=True, num_batches=-(-len(split.labels) // config.batch_size))

    def _training_dataset(self, train, epoch, skip_batches, steps):
        """Epoch `epoch`'s batches from `skip_batches` on, `steps` full batches in all."""
        config = self.config
        # training=True: augmentation None means make_dataset's default Augmentation().
        dataset = input_pipeline.make_dataset(
            train.rows, input_size=config.input_size, batch_size=config.batch_size,
            training=True, augment=config.augmentation, seed=config.seed, epoch=epoch,
            shuffle=True, mrr=config.mrr,
            skip_batches=skip_batches, drop_remainder=True, num_batches=steps - skip_batches)
        return dataset

    def _position_settings(self, arch, train, steps):
        """What a backup's (epoch, batch) position means: a resume must not change any of it."""
        config = self.config
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

    @staticmethod
    def _check_resume(save_dir, position, settings):
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
            flag = _RESUME_FLAGS.get(name, name)
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
        on_gpu = bool(runtime.physical_gpus())  # the first look keeps quiet (cuInit's error line)
        jit_compile, mixed_precision = self.config.jit_compile, self.config.mixed_precision
        jit = on_gpu if jit_compile == "auto" else bool(jit_compile)
        # The names were checked by LearningConfig (config.MIXED_PRECISION).
        policy = {"auto": "mixed_bfloat16" if on_gpu else "float32", "bfloat16": "mixed_bfloat16",
                  "float16": "mixed_float16", "none": "float32"}[mixed_precision]
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
            optimizer = make_optimizer(config.optimizer,
                                       self.learning_rate_schedule(steps_per_epoch),
                                       weight_decay=config.weight_decay)
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
            Path of the best epoch's `.h5`: the best test accuracy, or with `val_fraction` the
            best validation accuracy.
        """
        config = self.config
        arch = arch or config.arch
        get_arch(arch)  # an unknown name fails here, naming the arches there are
        save_dir = config.save_dir or os.path.join(
            "runs", f"{config.dataset_name}_{arch}_{time.strftime('%Y%m%d-%H%M%S')}")
        # From here on, SIGTERM stops the run as Ctrl+C does (start-up writes files too).
        with _signals_stop_the_run(save_dir):
            return self._train(arch, weight_path, save_dir)

    def _train(self, arch, weight_path, save_dir):
        """`train`'s work, once the run folder is named."""
        config = self.config
        keras.utils.set_random_seed(config.seed)
        jit = self._configure_devices()
        strategy = choose_strategy()
        chief = _is_chief()
        names = label_names(config.num_classes)

        train, val, test = self._read_splits()
        steps = len(input_pipeline.epoch_order(train.labels, config.seed, 0, mrr=config.mrr))
        steps //= config.batch_size
        if config.steps_per_epoch:
            steps = min(steps, config.steps_per_epoch)
        if steps < 1:
            raise SettingError(f"The training split has {len(train.labels)} images, fewer than one "
                             f"batch of {config.batch_size}.")
        test_dataset = self._scoring_dataset(test)
        backup = ResumableBackup(os.path.join(save_dir, "backup"), every_steps=config.backup_every,
                                 chief=chief, settings=self._position_settings(arch, train, steps))
        self._check_resume(save_dir, backup.saved_position(), backup.settings)
        trainer = self._build_trainer(strategy, arch, weight_path, jit, steps)
        start_epoch, start_batch = backup.load(trainer)
        resuming = bool(start_epoch or start_batch)
        if resuming and start_epoch < config.epochs:
            print(f"Resuming {save_dir} at epoch {start_epoch + 1}, batch {start_batch}.")
        state = {}
        state_path = os.path.join(save_dir, "training_state.json")
        if os.path.exists(state_path):
            # A backup to resume from, or (refused above otherwise) a run stopped in its first
            # epoch after its records but before its first backup: it starts over.
            with open(state_path) as handle:
                state = json.load(handle)
            if not resuming:
                print(f"Starting {save_dir} over: it was stopped in its first epoch, before "
                      "its first backup.")
            if chief:
                _agree_with_the_backup(save_dir, state, start_epoch)
        skipped = {"train": train.skipped, "test": test.skipped}
        if val is not None:
            skipped["validation"] = val.skipped
        state.update(dataset=config.dataset_name, arch=arch, labels=list(names),
                     input_size=config.input_size, steps_per_epoch=steps,
                     test_split=config.test_split, val_fraction=config.val_fraction,
                     selected_by="validation" if val is not None else "test",
                     skipped_images=skipped)
        if chief:
            # Made only now, when nothing above refused the run: a refusal leaves no folder.
            os.makedirs(save_dir, exist_ok=True)
            atomic_files.write_json(os.path.join(save_dir, "run_config.json"),
                                    {**config.to_dict(), "arch": arch, "weight_path": weight_path,
                                     "num_classes": config.num_classes, "labels": list(names),
                                     "steps_per_epoch": steps,
                                     "ce_weight": config.cross_entropy_weight})

        validation = None if val is None else (self._scoring_dataset(val), val.labels)
        # The backup comes last: its epoch-end position is what commits an epoch, so a stop
        # before it leaves records (training_state.json, log.csv) that the resume drops and
        # writes again, and never an epoch that is recorded nowhere.
        callbacks = [
            EpochEnd(state, test_dataset, test.labels, save_dir, config.dataset_name, names, arch,
                     keep_all=config.keep_all, chief=chief, test_split=config.test_split,
                     validation=validation, backup=backup),
            _CSVLogger(os.path.join(save_dir, "log.csv"), append=True,
                       test_split=config.test_split),
            _TensorBoard(os.path.join(save_dir, "tensorboard"), update_freq="epoch"),
            keras.callbacks.TerminateOnNaN(),
            _TotalEpochsProgbar(config.epochs),
            backup,
        ]
        verbose = config.verbose if config.verbose != "auto" else (1 if sys.stdout.isatty() else 2)
        replicas = strategy.num_replicas_in_sync
        if val is None:
            selection = ("the best epoch is the one with the best test accuracy, an optimistic "
                         "figure (--val-fraction F selects on validation)")
        else:
            selection = (f"the best epoch is selected by validation ({len(val.labels)} faces, "
                         f"{config.val_fraction:g} of the training split)")
        print(f"Training {arch} on {config.dataset_name} (recipe {config.recipe}): "
              f"{len(train.labels)} train / {len(test.labels)} test images (split "
              f"{config.test_split}); {selection}; {steps} steps of "
              f"{config.batch_size} per epoch, {config.epochs} epochs, {config.optimizer} "
              f"{config.learning_rate:g} with {config.lr_schedule} decay"
              f"{f' and L2 {config.weight_decay:g}' if config.weight_decay else ''}, strategy "
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
        if start_epoch >= config.epochs:
            print(f"{save_dir} has finished its {start_epoch} epochs already; pass more epochs "
                  f"(--epochs N, epochs=N with N > {start_epoch}) to continue it.")
        if chief:
            # The backup of the last epoch end stays: it is what `epochs` > those done
            # continues from (weights, optimizer state, attention map).
            print(f"Best model: {best} ({_best_model_note(state, config.test_split)}). "
                  f"Logs: {save_dir}")
        return best


class RunStopped(KeyboardInterrupt):
    """A run stopped by SIGINT (Ctrl+C) or SIGTERM, as Ctrl+C stops it: every file being written
    is removed, the last backup stays, and the message says how to resume. A `KeyboardInterrupt`,
    so nothing on the way out takes it for an error to handle."""

    def __init__(self, signal_number, save_dir):
        self.signal_number = signal_number
        name = signal.Signals(signal_number).name
        super().__init__(f"the run was stopped ({name}); run the same command with --save-dir "
                         f"{save_dir} (save_dir=) to resume it from its last backup.")


@contextlib.contextmanager
def _signals_stop_the_run(save_dir):
    """SIGTERM stops the run the way Ctrl+C (SIGINT) does: a `RunStopped` raised where the run
    is, so `finally` blocks remove the temporary files being written (a kill left a
    `.tmp-...h5` behind). Signal handlers can only be set from the main thread; elsewhere the
    defaults stay."""
    main = threading.current_thread() is threading.main_thread()

    def stop(number, frame):
        raise RunStopped(number, save_dir)

    previous = signal.signal(signal.SIGTERM, stop) if main else None
    try:
        yield
    except RunStopped:
        raise
    except KeyboardInterrupt:  # Ctrl+C: Python's own handler raised it
        raise RunStopped(signal.SIGINT, save_dir) from None
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def _stopped_before_its_first_backup(state_path):
    """True for the records of a run of this version that has no backup yet: it was stopped in
    its first epoch between writing them and the backup's commit (this version keeps a finished
    run's last backup, and says how it selects its best epoch; earlier versions did neither)."""
    try:
        with open(state_path) as handle:
            return "selected_by" in json.load(handle)
    except (OSError, ValueError):
        return False


def _agree_with_the_backup(save_dir, state, done):
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


def _best_model_note(state, test_split):
    """What the Best model line says of the best epoch: its test accuracy, on which split, and
    how it was chosen (ending with `epoch N`)."""
    accuracy = f"test accuracy {state.get('best_accuracy', 0):.4f} on {test_split}"
    if "best_val_accuracy" in state:
        how = f"selected by validation (accuracy {state['best_val_accuracy']:.4f})"
    else:
        how = "selected by that test accuracy, an optimistic figure"
    return f"{accuracy}, {how}, epoch {state.get('best_epoch')}"


def _shown(value):
    return "none" if value is None else value


# The flag that sets each of `TrainModel._position_settings`, for the message refusing a resume.
_RESUME_FLAGS = {
    "arch": "--arch", "batch_size": "--batch-size", "steps_per_epoch": "--steps-per-epoch",
    "seed": "--seed", "mrr": "--mrr", "input_size": "--input-size", "num_classes": "--ds-type",
    "num_embeddings": "--num-embeddings", "embedding_size": "--embedding-size",
    "optimizer": "--recipe", "attention_window": "--attention-window",
    "train_split": "--dataset / --data-dir", "test_split": "--test-split",
    "val_fraction": "--val-fraction",
}
