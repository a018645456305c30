"""`LearningConfig`: every setting of one training run, one field per declaration of `settings`.

`TrainModel` builds one (`LearningConfig.from_recipe`: a recipe's settings under the caller's
own) and writes it to the run folder. Its fields, their defaults and the checks each value
passes are `settings.SETTINGS`; what is checked here besides is what settings must agree on
together. What holds for one dataset only (its name, its splits, the settings only it reads) is
checked against its record by `adcorre.data.datasets.check_settings`, which `TrainModel` calls
on the config: the records live in the data layer, above this core module.

Example:
>>> config = LearningConfig.from_recipe("synth_demo", epochs=2)
>>> config.arch, config.epochs, config.num_classes
('tiny', 2, 7)
>>> LearningConfig(epochs=0)
Traceback (most recent call last):
...
adcorre.errors.SettingError: epochs must be an integer >= 1, got 0.
"""

import dataclasses

from adcorre.errors import SettingError
from adcorre.recipes import RECIPE_DATASET_SETTINGS, RECIPES, default_recipe
from adcorre.settings import (
    SETTINGS,
    DatasetName,
    DatasetType,
    check_choice,
    official_ce_weight,
)

# ------------------------------------------------------------------- the dataset's classes


def dataset_num_classes(dataset_name, ds_type):
    """8 for AffectNet's `train` / `eval` types (Contempt kept), else 7.

    Each dataset's record says the same (`Dataset.num_classes(ds_type)`;
    tests/contract/test_datasets_table.py checks that they agree): this core module cannot read
    the records.
    """
    eight = dataset_name == DatasetName.affectnet and ds_type in (DatasetType.train,
                                                                  DatasetType.eval)
    return 8 if eight else 7


# ---------------------------------------------------------------------------- the class


# The type each kind of setting is annotated with (help(LearningConfig) shows them).
_ANNOTATIONS = {"choice": str, "int": int, "number": float, "bool": bool, "text": str,
                "folder": str, "object": object}


def _fields_from_settings(cls):
    """Makes `cls` a dataclass with one field per declaration of `SETTINGS`, in their order."""
    cls.__annotations__ = {declared.name: _ANNOTATIONS[declared.kind] for declared in SETTINGS}
    for declared in SETTINGS:
        setattr(cls, declared.name, declared.default)
    return dataclasses.dataclass(cls)


@_fields_from_settings
class LearningConfig:
    """Every setting of one training run. `TrainModel` builds one and writes it to the run folder.

    Its fields are the settings declared in `settings.SETTINGS` (their defaults are the Ad-Corre
    recipe, their help is there); `RECIPES` names the settings other recipes change, and
    `LearningConfig.from_recipe` applies one under the caller's own settings. Override by
    passing arguments to `TrainModel` (or options to `adcorre train`), never by editing a file.

    Example:
    >>> LearningConfig.from_recipe("synth_demo").arch
    'tiny'
    """

    def __post_init__(self):
        for declared in SETTINGS:
            declared.check(getattr(self, declared.name))
        if self.weight_decay and self.optimizer != "torch_adam":
            raise SettingError(f"weight_decay={self.weight_decay!r}: expected 0, or a value >= 0 "
                               "with optimizer='torch_adam' (torch's coupled L2).")

    @property
    def num_classes(self):
        """8 for AffectNet's `train` / `eval` types (Contempt kept), else 7."""
        return dataset_num_classes(self.dataset_name, self.ds_type)

    @property
    def cross_entropy_weight(self):
        """`ce_weight`, or 50 / num_classes when it is None (see `official_ce_weight`)."""
        return official_ce_weight(self.num_classes) if self.ce_weight is None else self.ce_weight

    @classmethod
    def from_recipe(cls, recipe=None, **settings):
        """The recipe's settings under the caller's own.

        Args:
            recipe: a key of `RECIPES`; `None` picks `default_recipe(dataset_name)`.
            **settings: fields set explicitly; they win over the recipe's.

        Returns:
            A `LearningConfig`.
        """
        if recipe is None:
            recipe = default_recipe(settings.get("dataset_name", cls.dataset_name))
        check_choice("recipe", recipe, RECIPES)
        unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise SettingError(f"Unknown training setting(s) {unknown}.")
        dataset = settings.get("dataset_name", RECIPES[recipe].get("dataset_name", cls.dataset_name))
        for_dataset = RECIPE_DATASET_SETTINGS.get(recipe, {}).get(dataset, {})
        return cls(**{**RECIPES[recipe], **for_dataset, **settings, "recipe": recipe})

    def to_dict(self):
        """The settings as JSON-ready values (an augmentation as its own fields)."""
        return dataclasses.asdict(self)
