"""Training: `TrainModel(dataset_name=...).train(arch="xcp")`, the facade over the training modules.

`TrainModel` turns its arguments into one `LearningConfig` (a named recipe's settings under the
caller's own; see `config.RECIPES`), writes it to the run folder as `run_config.json`, reads the
splits (`splits`), builds the network (`cnn_model`) and its `train_step.AdCorreTrainer` under the
machine's strategy (`distribution`), and runs `model.fit` one epoch per call with the epoch-end
work and logs (`callbacks`) and the backup (`resume`), so a run killed mid-epoch resumes at the
batch where it stopped. Each epoch writes `<dataset>_<epoch>_AC_<accuracy>.h5` atomically; the
best file is kept.

`TrainModel(dataset_name="synth").train()` trains the CPU demo (the `synth_demo` recipe): the
`tiny` arch on SynthFER generated on the fly (about 2 minutes on 2 quiet cores); `python
train.py` and `adcorre train` are the same run from the command line (`adcorre.cli.train`).
"""

import contextlib
import dataclasses
import os
import sys
import time

from adcorre import runtime  # noqa: F401  (Keras loads without TensorFlow's start-up noise)
import keras
import numpy as np

from adcorre import atomic_files, folder_lock
from adcorre.data import datasets, input_pipeline
from adcorre.errors import SettingError
from adcorre.labels import label_names
from adcorre.learning_config import LearningConfig
from adcorre.models.cnn_model import CNNModel
from adcorre.models.registry import get_arch
from adcorre.settings import FROM_RECIPE, DatasetName, DatasetType, keyword_docs
from adcorre.training import callbacks, distribution, resume, splits
from adcorre.training.adam_optimizers import make_optimizer
from adcorre.training.learning_schedules import make_schedule
from adcorre.training.train_step import AdCorreTrainer


class TrainModel:
    """Trains an Ad-Corre model, official API: `TrainModel(dataset_name=...).train(arch="xcp")`.

    Every keyword is a training setting declared in `adcorre.settings.SETTINGS` (its option of
    `adcorre train` too); the list below is written from those declarations. Arguments left out
    take the recipe's value (`config.RECIPES`): `recipe=None` picks `"synth_demo"` for SynthFER
    and `"adcorre"` otherwise.

    Args:
{keywords}

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
                 use_adcorre=FROM_RECIPE, adcorre_terms=FROM_RECIPE, num_embeddings=FROM_RECIPE, embedding_size=FROM_RECIPE,
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
                                     adcorre_terms=config.adcorre_terms.split("+"),
                                     loss_arithmetic=config.loss_arithmetic,
                                     attention_window_batches=window)
            # The schedule reads optimizer.iterations, which a backup restores: a resumed run
            # continues the rate where it stopped.
            optimizer = make_optimizer(config.optimizer,
                                       self.learning_rate_schedule(steps_per_epoch),
                                       weight_decay=config.weight_decay)
            trainer.compile(optimizer=optimizer, jit_compile=jit is True,
                            run_eagerly=jit == "eager")
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
        # From here on, SIGTERM stops the run as Ctrl+C does (start-up writes files too). The
        # run folder is this run's from before its start-up reads it to after its last write:
        # two runs at once on one folder both wrote it (log.csv got two headers, every epoch
        # twice). Only the chief writes, so only the chief holds it.
        held = (folder_lock.locked_folder(save_dir) if distribution.is_chief()
                else contextlib.nullcontext())
        with resume.signals_stop_the_run(save_dir), held as lock:
            return self._train(arch, weight_path, save_dir, lock)

    def _train(self, arch, weight_path, save_dir, lock):
        """`train`'s work, once the run folder is named and held (`lock`, a
        `folder_lock.FolderLock`; None on a worker that writes nothing)."""
        config = self.config
        keras.utils.set_random_seed(config.seed)
        jit = distribution.configure_devices(config.jit_compile, config.mixed_precision)
        strategy = distribution.choose_strategy()
        chief = distribution.is_chief()
        names = label_names(config.num_classes)

        train, val, test = splits.read_splits(config)
        steps = splits.steps_per_epoch(config, train)
        test_dataset = splits.scoring_dataset(config, test)
        # Each write of an epoch's files and of the backup first checks that the folder is still
        # the run's: atomic writes make missing folders, so a run whose folder was deleted went
        # on writing a new one and named a best model that was gone.
        check_folder = lock.check if lock is not None else (lambda: None)
        backup = resume.ResumableBackup(
            os.path.join(save_dir, "backup"), every_steps=config.backup_every, chief=chief,
            settings=resume.position_settings(config, arch, train, steps),
            check_folder=check_folder)
        resume.check_resume(save_dir, backup.saved_position(), backup.settings)
        trainer = self._build_trainer(strategy, arch, weight_path, jit, steps)
        start_epoch, start_batch = backup.load(trainer)
        state = resume.load_run_state(save_dir, start_epoch, start_batch, config.epochs, chief)
        skipped = {"train": train.skipped, "test": test.skipped}
        if val is not None:
            skipped["validation"] = val.skipped
        state.update(dataset=config.dataset_name, arch=arch, labels=list(names),
                     input_size=config.input_size, steps_per_epoch=steps,
                     test_split=config.test_split, val_fraction=config.val_fraction,
                     selected_by="validation" if val is not None else "test",
                     skipped_images=skipped)
        if chief:
            # The lock made the folder; it goes again if the run is refused before this write.
            atomic_files.write_json(os.path.join(save_dir, "run_config.json"),
                                    {**config.to_dict(), "arch": arch, "weight_path": weight_path,
                                     "num_classes": config.num_classes, "labels": list(names),
                                     "steps_per_epoch": steps,
                                     "ce_weight": config.cross_entropy_weight})

        validation = None if val is None else (splits.scoring_dataset(config, val), val.labels)
        # The backup comes last: its epoch-end position is what commits an epoch, so a stop
        # before it leaves records (training_state.json, log.csv) that the resume drops and
        # writes again, and never an epoch that is recorded nowhere.
        run_callbacks = [
            callbacks.EpochEnd(state, test_dataset, test.labels, save_dir, config.dataset_name,
                               names, arch, keep_all=config.keep_all, chief=chief,
                               test_split=config.test_split, validation=validation,
                               backup=backup, check_folder=check_folder),
            callbacks.EpochCSVLogger(os.path.join(save_dir, "log.csv"), append=True,
                                     test_split=config.test_split),
            callbacks.EpochTensorBoard(os.path.join(save_dir, "tensorboard"),
                                       update_freq="epoch"),
            keras.callbacks.TerminateOnNaN(),
            callbacks.TotalEpochsProgbar(config.epochs),
            backup,
        ]
        verbose = config.verbose if config.verbose != "auto" else (1 if sys.stdout.isatty() else 2)
        print(self._run_line(arch, (train, val, test), steps, strategy, jit, save_dir))
        for epoch in range(start_epoch, config.epochs):
            skip = start_batch if epoch == start_epoch else 0
            dataset = splits.training_dataset(config, train, epoch, skip, steps)
            check_folder()  # fit's loggers open their files first: a gone folder is said here
            # One fit call per epoch: each epoch's data order is fixed by (seed, epoch), so a
            # resumed epoch can skip exactly the batches it had already trained on.
            trainer.fit(dataset, initial_epoch=epoch, epochs=epoch + 1, callbacks=run_callbacks,
                        verbose=verbose, shuffle=False)
            if trainer.stop_training:
                break
        best = state.get("best_path")
        if start_epoch >= config.epochs:
            print(f"{save_dir} has finished its {start_epoch} epochs already; pass more epochs "
                  f"(--epochs N, epochs=N with N > {start_epoch}) to continue it.")
        if chief:
            # The backup of the last epoch end stays: it is what `epochs` > those done
            # continues from (weights, optimizer state, attention map). A best model is named
            # only from a folder that is still the run's.
            check_folder()
            print(f"Best model: {best} ({callbacks.best_model_note(state, config.test_split)}). "
                  f"Logs: {save_dir}")
        return best

    def _run_line(self, arch, split_triple, steps, strategy, jit, save_dir):
        """The line that says what the run trains, on what, how, and where it writes."""
        config = self.config
        train, val, test = split_triple
        replicas = strategy.num_replicas_in_sync
        if val is None:
            selection = ("the best epoch is the one with the best test accuracy, an optimistic "
                         "figure (--val-fraction F selects on validation)")
        else:
            selection = (f"the best epoch is selected by validation ({len(val.labels)} faces, "
                         f"{config.val_fraction:g} of the training split)")
        return (f"Training {arch} on {config.dataset_name} (recipe {config.recipe}): "
                f"{len(train.labels)} train / {len(test.labels)} test images (split "
                f"{config.test_split}); {selection}; {steps} steps of "
                f"{config.batch_size} per epoch, {config.epochs} epochs, {config.optimizer} "
                f"{config.learning_rate:g} with {config.lr_schedule} decay"
                f"{f' and L2 {config.weight_decay:g}' if config.weight_decay else ''}, strategy "
                f"{distribution.strategy_name(strategy)} ({replicas} "
                f"replica{'s' if replicas != 1 else ''}), jit_compile={jit}, policy "
                f"{keras.mixed_precision.global_policy().name}. Output: {save_dir}")


if TrainModel.__doc__:  # None under python -OO
    # The keywords' help, defaults and each recipe's value, from their one declaration.
    TrainModel.__doc__ = TrainModel.__doc__.replace("{keywords}", keyword_docs(indent=8))
