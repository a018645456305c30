"""The splits a run trains, selects and scores on: read once, checked once, ready for every epoch.

`read_splits(config)` reads the training split and the split each epoch is scored on (and carves
a validation split out of the training one); each image is decoded once here, so every epoch's
pipeline is built from readable rows only. `training_dataset` and `scoring_dataset` make the
`tf.data` pipelines of one epoch.
"""

import dataclasses

from adcorre.data import dataset_readers, datasets, input_pipeline
from adcorre.settings import default_data_dir
from adcorre.errors import DatasetFormatError, SettingError


@dataclasses.dataclass
class PreparedSplit:
    """A split's usable rows, prepared once (every epoch's pipeline reads them), and how many of
    its rows could not be used."""

    rows: input_pipeline.PipelineRows
    skipped: int = 0

    @property
    def labels(self):
        return self.rows.labels


def read_frame(config, split):
    """The `read_split` frame of `split` (SynthFER drawn at the model's input size)."""
    options = datasets.get(config.dataset_name).run_options(config, split)
    return dataset_readers.read_split(config.dataset_name, data_dir(config), split, **options)


def data_dir(config):
    """The dataset's folder: `data_dir`, or where the dataset is looked for by default."""
    if config.data_dir is None and datasets.get(config.dataset_name).needs_data_dir:
        return default_data_dir(config.dataset_name)
    return config.data_dir


def prepare(config, frame, split, skipped_before=0):
    """A frame's usable rows, ready for every epoch's pipeline.

    `skipped_before` counts the rows the reader already left out (RAF-DB photos without a
    usable box), so the run reports every face it could not use.
    """
    # Checked once here, decoded by the pipeline's own decoder (one warning naming the
    # first bad files), so every epoch's pipeline is built from readable rows only,
    # batches keep their size and test predictions line up with their labels.
    frame, skipped = input_pipeline.usable_rows(frame, mode="decode")
    if len(frame) == 0:
        raise DatasetFormatError(
            f"The {split!r} split of {config.dataset_name!r} at {data_dir(config)!r} has no "
            f"usable images ({len(skipped) + skipped_before} skipped).")
    return PreparedSplit(input_pipeline.prepare_rows(frame, config.input_size, validate="none"),
                         len(skipped) + skipped_before)


def read_splits(config):
    """`(train, validation or None, test)`: the validation split carved out of train."""
    train = read_frame(config, "train")
    val = None
    if config.val_fraction:
        # From the listing, before any image is opened: the same faces whatever decodes.
        train, val = dataset_readers.validation_split(
            train, config.val_fraction, config.seed, setting="--val-fraction, val_fraction=")
        val = prepare(config, val, "validation")
    train = prepare(config, train, "train", len(train.attrs.get("box_skipped", ())))
    test = read_frame(config, config.test_split)
    test = prepare(config, test, config.test_split, len(test.attrs.get("box_skipped", ())))
    return train, val, test


def scoring_dataset(config, split):
    """Every image of a split in batches, each carrying its rows (`return_index`)."""
    # Rows travel with the images, so predictions meet their own labels even if an image
    # stops decoding mid-run; a length Keras knows.
    return input_pipeline.make_dataset(
        split.rows, input_size=config.input_size, batch_size=config.batch_size,
        return_index=True, num_batches=-(-len(split.labels) // config.batch_size))


def training_dataset(config, train, epoch, skip_batches, steps):
    """Epoch `epoch`'s batches from `skip_batches` on, `steps` full batches in all."""
    # training=True: augmentation None means make_dataset's default Augmentation().
    return input_pipeline.make_dataset(
        train.rows, input_size=config.input_size, batch_size=config.batch_size,
        training=True, augment=config.augmentation, seed=config.seed, epoch=epoch,
        shuffle=True, mrr=config.mrr,
        skip_batches=skip_batches, drop_remainder=True, num_batches=steps - skip_batches)


def steps_per_epoch(config, train):
    """The full batches of one training epoch (MRR's epochs are longer), capped by
    `config.steps_per_epoch`.

    Raises:
        SettingError: the split holds less than one batch.
    """
    steps = len(input_pipeline.epoch_order(train.labels, config.seed, 0, mrr=config.mrr))
    steps //= config.batch_size
    if config.steps_per_epoch:
        steps = min(steps, config.steps_per_epoch)
    if steps < 1:
        raise SettingError(f"The training split has {len(train.labels)} images, fewer than one "
                           f"batch of {config.batch_size}.")
    return steps
