"""Datasets as records: one module per dataset, each declaring one `Dataset` and registering it.

A dataset's module (`rafdb.py`, `fer2013.py`, ...) spells its on-disk format once: the files it
reads and writes, its reader, its SynthFER writer and its label map, then declares
`DATASET = register(Dataset(name=..., ...))`. Its name is its module's name, so the names are
known without importing a module (`names()` lists this folder; `adcorre train --help` stays
instant), and a new module is a new dataset: `read_split`, `--dataset`, `adcorre synth --layout`,
the missing-data messages and docs/training.md's table (checked by a contract test) all read
the records. No list of modules is kept anywhere: `DATASETS` imports every module of this
folder (found by listing it) the first time it is read.

Example:
>>> from adcorre.data import datasets
>>> "rafdb" in datasets.names(), datasets.get("rafdb").splits
(True, ('train', 'test'))
>>> datasets.get("affectnet").num_classes("train"), datasets.get("affectnet").num_classes("eval_7")
(8, 7)
"""

import dataclasses
import importlib
import os
import types
from collections.abc import Callable, Mapping

from adcorre.config import check_choice
from adcorre.errors import SettingError

# The official API's dataset types that keep every class a dataset has (`_7`: the 7 basic).
_FULL_TYPES = ("train", "eval")


def _no_options(settings, split):
    return {}


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One dataset: its name, splits, labels, on-disk layout, reader and SynthFER writer.

    Attributes:
        name: what `dataset_name=` / `--dataset` / `--layout` take; the module's file name.
        title: the dataset as people name it ("RAF-DB (basic)"), for messages.
        splits: the splits `read` reads, among "train", "val", "test" and
            "public_private_test" (FER-2013's PublicTest + PrivateTest).
        label_map: the dataset's own label code (or class name) -> canonical index
            (`adcorre.labels`); a code absent from it is dropped.
        layout: the files its layout needs under the data folder, in words (Markdown), for
            the missing-data messages and docs/training.md's table.
        read: `read(data_dir, split, forced=None, **options)` -> DataFrame with `image` and
            `label` (and the dataset's extra columns); `split` is one of `splits`, `forced` is 7
            when the split was a `_7` dataset type. `read_split` checks the split and options
            first.
        required: the relative paths that mark the layout; an entry that is a tuple is met by
            any one of its paths (`missing`).
        split_sources: what each split reads, in words (docs/training.md's table).
        options: the keyword options `read` takes (RAF-DB's `aligned`, AffectNet's
            `num_classes`, ...); `read_split` refuses others.
        full_classes: the classes the official `train` / `eval` types keep (8 for AffectNet,
            with Contempt); the `_7` types and `test` keep 7.
        image_side: the side every picture of the format has (FER-2013's 48x48 pixels), or
            None; SynthFER draws its faces at this side for it.
        write_synth: `write_synth(out_dir, splits, seed, image_size, aligned)` writes SynthFER
            faces (`splits`: {"train": (images, labels), "test": ...}) in this layout; None
            where the dataset has no files (synth).
        needs_data_dir: False where nothing is read from disk (synth).
        own_settings: training settings (`LearningConfig` fields) only this dataset reads;
            `check_settings` refuses one set away from its default for another dataset.
        run_options: `run_options(settings, split)` -> the reader options a training run's
            settings give (SynthFER's sizes, RAF-DB's `rafdb_images`, AffectNet's classes).
    """

    name: str
    title: str
    splits: tuple
    label_map: Mapping
    layout: str
    read: Callable
    required: tuple = ()
    split_sources: Mapping = dataclasses.field(default_factory=dict)
    options: tuple = ()
    full_classes: int = 7
    image_side: int = None
    write_synth: Callable = None
    needs_data_dir: bool = True
    own_settings: tuple = ()
    run_options: Callable = _no_options

    def num_classes(self, ds_type="train"):
        """The classes a model of the official API's `ds_type` has on this dataset."""
        return self.full_classes if ds_type in _FULL_TYPES else 7

    def missing(self, data_dir):
        """The entries of `required` that `data_dir` lacks, in words ("a or b")."""
        absent = []
        for entry in self.required:
            choices = (entry,) if isinstance(entry, str) else tuple(entry)
            if not any(os.path.exists(os.path.join(data_dir, path)) for path in choices):
                absent.append(" or ".join(choices))
        return absent

    @property
    def splits_text(self):
        """The splits in words, each with what it reads: "train, val = PublicTest, ..."."""
        return ", ".join(f"{split} = {self.split_sources[split]}" if split in self.split_sources
                         else split for split in self.splits)

    @property
    def layout_text(self):
        """`layout` without its Markdown, for messages."""
        return self.layout.replace("`", "")


# Records registered so far, by name: the modules of this folder (loaded on first use) and
# any your own code registers.
_RECORDS = {}


def register(record):
    """Adds `record` to `DATASETS` (a dataset module calls it on its own record).

    Args:
        record: a `Dataset`.

    Returns:
        `record`, so a module writes `DATASET = register(Dataset(...))`.
    """
    _RECORDS[record.name] = record
    return record


def _module_names():
    """The dataset modules of this package's folder(s): every `NAME.py` but `_*.py`.

    A listing of `__path__`, as `pkgutil.iter_modules` makes it for source files, without
    importing `pkgutil` (which imports `typing`: a tenth of `adcorre train --help`'s time).
    """
    return sorted({name[:-3] for folder in __path__ for name in os.listdir(folder)
                   if name.endswith(".py") and not name.startswith("_")})


def names():
    """Every dataset's name, sorted, without importing a dataset module."""
    return tuple(sorted(set(_module_names()) | set(_RECORDS)))


def _load(name):
    """The record of `name`, its module imported if it is one of this folder's."""
    if name in _module_names():
        module = importlib.import_module(f"{__name__}.{name}")
        record = getattr(module, "DATASET", None)
        if not isinstance(record, Dataset) or record.name != name or _RECORDS.get(name) is not record:
            # guard: a dataset module written wrong, not user input: the name is how the
            # registry finds a module without importing it, so they must be the same.
            raise TypeError(f"{module.__file__} must declare DATASET = register(Dataset("
                            f"name={name!r}, ...)): a dataset's name is its module's name.")
    return _RECORDS[name]


def get(name, setting=None):
    """The record of dataset `name`.

    Args:
        name: a name of `names()`.
        setting: the setting that gave `name` (`"dataset_name"`, `"--dataset"`), named in the
            message; None: "Unknown dataset ...".

    Raises:
        SettingError: no dataset has that name (the message lists them).
    """
    if setting is not None:
        check_choice(setting, name, names())
    elif name not in names():
        raise SettingError(f"Unknown dataset {name!r}: use one of {names()}.")
    return _load(name)


def having_split(split):
    """The names of the datasets that read `split` (e.g. "public_private_test")."""
    return tuple(name for name, record in _all().items() if split in record.splits)


def layouts():
    """The names of the datasets SynthFER can be written in (those with a `write_synth`)."""
    return tuple(name for name, record in _all().items() if record.write_synth is not None)


def _all():
    return types.MappingProxyType({name: _load(name) for name in names()})


def __getattr__(name):
    # `DATASETS` is built when first read, so that importing this package imports no dataset
    # module (and no NumPy): the CLI's options need only `names()`.
    if name == "DATASETS":
        return _all()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _in_words(names_):
    names_ = list(names_)
    return names_[0] if len(names_) == 1 else f"{', '.join(names_[:-1])} and {names_[-1]}"


def check_settings(settings):
    """Checks a training run's dataset settings against the dataset's record.

    Refuses an unknown `dataset_name`, a setting only another dataset reads (RAF-DB's
    `rafdb_images`) set away from its default, and a `test_split` the dataset does not have.

    Args:
        settings: a `config.LearningConfig`.

    Returns:
        The dataset's `Dataset`.

    Raises:
        SettingError: naming the setting, the value and what is expected.
    """
    record = get(settings.dataset_name, setting="dataset_name")
    defaults = {field.name: field.default for field in dataclasses.fields(settings)}
    for other in _all().values():
        for name in () if other is record else other.own_settings:
            value = getattr(settings, name)
            if value != defaults[name]:
                raise SettingError(f"{name}={value!r} is for dataset_name={other.name!r}, not "
                                   f"{settings.dataset_name!r}.")
    split = settings.test_split
    if split not in record.splits:
        what = " (PublicTest + PrivateTest)" if split == "public_private_test" else ""
        instead = [repr(s) for s in ("test", "val") if s in record.splits]
        raise SettingError(
            f"test_split={split!r}{what} exists for {_in_words(having_split(split))} only, not "
            f"{record.name}; use {instead[0]}{f' (or {instead[1]})' if instead[1:] else ''}.")
    return record
