"""Each training setting is declared once (`adcorre.settings.SETTINGS`), and every place a user
meets it agrees with that declaration: `LearningConfig`'s fields, the options of `adcorre train`,
`TrainModel`'s keywords and their documentation, docs/training.md's option table, the recipes."""

import dataclasses
import inspect
import os

import pytest

from adcorre.cli import train_options
from adcorre.learning_config import LearningConfig
from adcorre.recipes import RECIPE_DATASET_SETTINGS, RECIPES
from adcorre.settings import FROM_RECIPE, SETTINGS, DatasetName, keyword_docs, options_table
from helpers import REPO_ROOT

DECLARED = {declared.name: declared for declared in SETTINGS}
WITH_OPTION_AND_KEYWORD = [declared for declared in SETTINGS if declared.flag and declared.keyword]


def _actions(parser):
    """`{first option string: (action, its group's title)}` of every option but --help."""
    return {action.option_strings[0]: (action, group.title)
            for group in parser._action_groups for action in group._group_actions
            if action.option_strings and action.dest != "help"}


def test_names_are_unique_and_options_and_keywords_too():
    for attribute in ("name", "flag", "keyword"):
        values = [getattr(declared, attribute) for declared in SETTINGS]
        values = [value for value in values if value]
        assert len(values) == len(set(values)), attribute


def test_learning_config_has_one_field_per_declaration_with_its_default():
    fields = [(field.name, field.default) for field in dataclasses.fields(LearningConfig)]
    assert fields == [(declared.name, declared.default) for declared in SETTINGS]


def test_the_parser_has_one_option_per_declaration_with_its_default_group_and_help(monkeypatch):
    monkeypatch.delenv("FER_DATA_ROOT", raising=False)
    actions = _actions(train_options.build_parser())
    flags = {declared.flag: declared for declared in SETTINGS if declared.flag}
    assert sorted(actions) == sorted(flags)
    for flag, declared in flags.items():
        action, group = actions[flag]
        assert (action.dest, group, action.help) == (declared.dest, declared.group,
                                                     declared.help_text(cli=True)), flag
        assert action.default == (False if declared.is_switch else declared.option_default), flag
        if declared.kind == "choice":
            assert tuple(action.choices) == tuple(declared.choices), flag
        if declared.words:
            assert tuple(action.choices) == tuple(declared.words), flag


def test_train_models_keywords_are_the_declared_ones_with_their_defaults_and_docs():
    from adcorre.training.train_model import TrainModel

    parameters = inspect.signature(TrainModel.__init__).parameters
    keywords = {name: parameter.default for name, parameter in parameters.items()
                if name != "self"}
    declared = {d.keyword: d.keyword_default for d in SETTINGS if d.keyword}
    assert sorted(keywords) == sorted(declared)
    for keyword, default in declared.items():
        # FROM_RECIPE compares by identity; the other defaults by value (and type: False != 0).
        assert (keywords[keyword] is default if default is FROM_RECIPE
                else (type(keywords[keyword]), keywords[keyword]) == (type(default), default)), \
            keyword
    assert keyword_docs(indent=8) in TrainModel.__doc__
    for keyword in declared:
        assert f"\n        {keyword}: " in TrainModel.__doc__, keyword
    assert "{keywords}" not in TrainModel.__doc__


def test_the_docs_option_table_is_written_from_the_declarations(monkeypatch):
    monkeypatch.delenv("FER_DATA_ROOT", raising=False)
    with open(os.path.join(REPO_ROOT, "docs", "training.md"), encoding="utf-8") as handle:
        section = handle.read().split("\n## Options\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    expected = options_table().splitlines()
    # Names and defaults first (the clearer failure), then every word of every row.
    cells = [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows[2:]]
    wanted = [[cell.strip() for cell in row.strip("|").split(" | ")] for row in expected[2:]]
    assert [(c[0], c[1], c[3]) for c in cells] == [(w[0], w[1], w[3]) for w in wanted]
    assert rows == expected, ("docs/training.md's option table is stale: print it again with "
                              "python -c 'from adcorre.settings import options_table; "
                              "print(options_table())'")
    for declared in SETTINGS:
        if declared.flag or declared.keyword:
            assert any(f"`{declared.flag}`" in row or f"`{declared.keyword}=`" in row
                       for row in rows), declared.name


def test_recipes_set_declared_settings_to_values_they_take():
    for recipe, values in RECIPES.items():
        for name, value in values.items():
            DECLARED[name].check(value)  # KeyError: a recipe sets an undeclared setting
    for recipe, datasets in RECIPE_DATASET_SETTINGS.items():
        assert recipe in RECIPES
        for dataset, values in datasets.items():
            assert dataset in DatasetName.all
            for name, value in values.items():
                DECLARED[name].check(value)
            config = LearningConfig.from_recipe(recipe, dataset_name=dataset)
            assert {name: getattr(config, name) for name in values} == values


def test_each_recipes_value_is_what_its_config_holds():
    for declared in SETTINGS:
        for recipe, value in declared.recipe_values().items():
            assert getattr(LearningConfig.from_recipe(recipe), declared.name) == value


def _another_value(declared, data_dir):
    """`(argv, the field's expected value)`: a value other than the default, valid for RAF-DB
    (or, where it names one, for another dataset)."""
    if declared.words:
        word = next(w for w, v in declared.words.items()
                    if v is not FROM_RECIPE and v is not declared.default and v != declared.default)
        return [declared.flag, word], declared.words[word]
    if declared.is_switch:
        return [declared.flag], declared.flag_sets
    if declared.kind == "bool":
        return [declared.flag], True
    if declared.name == "dataset_name":  # its values are the records' names (one per module)
        return [declared.flag, DatasetName.ferplus], DatasetName.ferplus
    if declared.name == "test_split":  # RAF-DB has one test split; FER-2013 has PublicTest too
        return ["--dataset", DatasetName.fer2013, declared.flag, "val"], "val"
    if declared.kind == "choice":
        choice = next(c for c in declared.choices if c != declared.recipe_values()["adcorre"]
                      and c not in ("synth", "public_private_test"))
        return [declared.flag, choice], choice
    if declared.kind == "int":
        return [declared.flag, str(declared.minimum + 3)], declared.minimum + 3
    if declared.kind == "number":
        value = 0.5 if declared.maximum else declared.minimum + 0.25
        return [declared.flag, str(value)], value
    if declared.kind == "folder":
        return [declared.flag, os.path.join(data_dir, "run")], os.path.join(data_dir, "run")
    if declared.name == "data_dir":
        return [], data_dir
    return [declared.flag, "none"], "none"


@pytest.mark.parametrize("declared", WITH_OPTION_AND_KEYWORD, ids=lambda d: d.flag)
def test_each_option_reaches_its_setting(declared, tmp_path, monkeypatch):
    """A value given on the command line is the `LearningConfig` field of its declaration.

    The options check that the dataset folder holds what marks its dataset (the record's
    `required`): the folder holds empty marks of RAF-DB (the run's dataset), FER-2013 and
    FERPlus (the other values of `--dataset`, and the one whose splits let `--test-split`
    take another value)."""
    from adcorre.training.train_model import TrainModel

    data_dir = str(tmp_path / "data")
    os.makedirs(os.path.join(data_dir, "EmoLabel"))
    os.makedirs(os.path.join(data_dir, "Image", "aligned"))
    for mark in (os.path.join("EmoLabel", "list_patition_label.txt"), "fer2013.csv",
                 "fer2013new.csv"):
        open(os.path.join(data_dir, mark), "w").close()
    argv, expected = _another_value(declared, data_dir)
    base = ["--dataset", DatasetName.rafdb, "--data-dir", data_dir]
    arguments = train_options.training_arguments(train_options.parse_args(base + argv))
    assert getattr(TrainModel(**arguments).config, declared.name) == expected
    assert expected != declared.default or declared.name == "data_dir"
