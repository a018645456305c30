"""docs/training.md's dataset table and `config.DatasetName` agree with the dataset records.

Each row of the table under "## Datasets" is one record of `adcorre.data.datasets.DATASETS`: its
name, its layout (the record's `layout`, word for word) and its splits (`splits_text`). The
official API's `config.DatasetName` keeps its constants (core cannot read the data layer); each
names a record, and `LearningConfig.num_classes` gives what each record's `num_classes` gives.
"""

import os
import re

from adcorre import config
from adcorre.data import datasets
from helpers import REPO_ROOT

TRAINING = os.path.join(REPO_ROOT, "docs", "training.md")


def _table_rows():
    with open(TRAINING, encoding="utf-8") as handle:
        section = handle.read().split("## Datasets", 1)[1].split("\n## ", 1)[0]
    table = section.split("| `--dataset` | expected under `--data-dir` | splits |", 1)[1]
    rows = {}
    for line in table.strip().splitlines()[1:]:
        if not line.startswith("|"):
            break
        name, layout, splits = (cell.strip() for cell in line.strip().strip("|").split(" | "))
        rows[re.fullmatch(r"`(\w+)`", name).group(1)] = (layout, splits)
    return rows


def test_the_dataset_table_has_one_row_per_record():
    assert sorted(_table_rows()) == sorted(datasets.DATASETS)


def test_each_row_says_what_its_record_says():
    rows = _table_rows()
    wrong = {name: (rows[name], (record.layout, record.splits_text))
             for name, record in datasets.DATASETS.items()
             if name in rows and rows[name] != (record.layout, record.splits_text)}
    assert not wrong, wrong  # name: (the table's cells, the record's)


def test_dataset_name_constants_name_records():
    constants = {key: value for key, value in vars(config.DatasetName).items()
                 if not key.startswith("_") and key != "all"}
    assert set(config.DatasetName.all) == set(constants.values())
    assert all(key == value for key, value in constants.items()), constants
    assert set(constants.values()) <= set(datasets.names())


def test_learning_config_counts_the_classes_its_record_counts():
    for name in config.DatasetName.all:
        for ds_type in config.DatasetType.all:
            settings = config.LearningConfig(dataset_name=name, ds_type=ds_type)
            assert settings.num_classes == datasets.get(name).num_classes(ds_type), (name, ds_type)
