"""Datasets as records (`adcorre.data.datasets`): the registry, what it refuses, and the promise
that a new module is a new dataset.

The readers' and writers' own behaviour is tested through `read_split` and `write_dataset` in
the other files of this folder; here: the registry finds its modules itself (without loading
one for the options), refuses unknown names, splits and options with one clear error, marks a
data folder that lacks its files, checks a run's dataset settings, and a copied module becomes
a dataset that the commands offer and `read_split` reads, with no other file touched.
"""

import dataclasses
import filecmp
import os
import shutil

import pytest

from adcorre import config
from adcorre.data import dataset_readers, datasets, synth_faces
from adcorre.errors import SettingError
from helpers import REPO_ROOT, run_python

SHIPPED = ("affectnet", "fer2013", "ferplus", "folder", "preprocessed", "rafdb", "synth")


@pytest.fixture(scope="module")
def rafdb(tmp_path_factory):
    return synth_faces.write_dataset(str(tmp_path_factory.mktemp("raf") / "rafdb"), "rafdb",
                                     n=20, image_size=32, seed=3)


def test_the_registry_lists_its_modules_without_importing_them():
    """`--dataset`'s choices cost no dataset module, no NumPy and no pandas: `adcorre train
    --help` stays instant."""
    run = run_python("""
        import sys
        from adcorre.cli import train_options
        parser = train_options.build_parser()
        choices = next(a.choices for a in parser._actions if a.dest == "dataset")
        loaded = sorted(m for m in sys.modules
                        if m.startswith("adcorre.data.datasets.") or m in ("numpy", "pandas"))
        print(list(choices), loaded)
    """, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == f"{list(SHIPPED)} []"


def test_each_shipped_dataset_is_a_record():
    assert datasets.names() == SHIPPED
    assert set(datasets.DATASETS) == set(SHIPPED)
    assert datasets.having_split("public_private_test") == ("fer2013", "ferplus")
    assert datasets.layouts() == tuple(n for n in SHIPPED if n != "synth") == synth_faces.LAYOUTS
    affectnet = datasets.get("affectnet")
    assert [affectnet.num_classes(t) for t in config.DatasetType.all] == [8, 7, 8, 7, 7]
    assert datasets.get("rafdb").label_map == config.RAFDB_TO_CANONICAL
    assert not datasets.get("synth").needs_data_dir and datasets.get("synth").write_synth is None
    with pytest.raises(dataclasses.FrozenInstanceError):  # a record is frozen: a dataset changes in its module
        datasets.get("rafdb").splits = ("train",)


def test_unknown_names_splits_and_options_are_one_error_each(rafdb):
    with pytest.raises(SettingError, match=r"Unknown dataset 'imagenet': use one of \('affectnet'"):
        datasets.get("imagenet")
    with pytest.raises(SettingError, match=r"--dataset must be one of .*, got 'imagenet'"):
        datasets.get("imagenet", setting="--dataset")
    with pytest.raises(SettingError, match=r"RAF-DB \(basic\) has no validation split: use "
                                           r"split='train' or 'test'"):
        dataset_readers.read_split("rafdb", rafdb, "val")
    with pytest.raises(SettingError, match="rafdb takes no option num_classes; its options: "
                                           "aligned"):
        dataset_readers.read_split("rafdb", rafdb, "train", num_classes=8)
    with pytest.raises(SettingError, match="public_private_test.*fer2013 and ferplus only; "
                                           "rafdb has 'train' and 'test'"):
        dataset_readers.read_split("rafdb", rafdb, "public_private_test")


def test_missing_names_what_the_layout_lacks(rafdb, tmp_path):
    record = datasets.get("rafdb")
    assert record.missing(rafdb) == []
    copy = shutil.copytree(rafdb, tmp_path / "copy")
    os.remove(copy / "EmoLabel" / "list_patition_label.txt")
    shutil.rmtree(copy / "Image")
    assert record.missing(str(copy)) == ["EmoLabel/list_patition_label.txt",
                                         "Image/aligned or Image/original"]
    assert datasets.get("affectnet").missing(str(tmp_path)) == ["training.csv or validation.csv"]
    with pytest.raises(FileNotFoundError) as raised:
        dataset_readers.find_data_dir("fer2013", str(tmp_path / "absent"))
    assert "It holds FER-2013 as it ships: fer2013.csv (Training / PublicTest / PrivateTest)" \
        in str(raised.value)


def test_check_settings_reads_the_record():
    recipe = config.LearningConfig.from_recipe
    assert datasets.check_settings(recipe(dataset_name="fer2013")) is datasets.get("fer2013")
    with pytest.raises(SettingError, match=r"^dataset_name must be one of \('affectnet', .*\), "
                                           r"got 'nope'\.$"):
        datasets.check_settings(recipe(dataset_name="nope"))
    with pytest.raises(SettingError, match=r"^rafdb_images='original' is for "
                                           r"dataset_name='rafdb', not 'folder'\.$"):
        datasets.check_settings(recipe(dataset_name="folder", rafdb_images="original"))
    # The text LearningConfig said before the check moved here, for a dataset with a val split.
    with pytest.raises(SettingError, match=r"^test_split='public_private_test' \(PublicTest \+ "
                                           r"PrivateTest\) exists for fer2013 and ferplus only, "
                                           r"not affectnet; use 'test' \(or 'val'\)\.$"):
        datasets.check_settings(recipe(dataset_name="affectnet", test_split="public_private_test"))
    with pytest.raises(SettingError, match=r"test_split='val' exists for .* only, not rafdb; "
                                           r"use 'test'\.$"):
        datasets.check_settings(recipe(dataset_name="rafdb", test_split="val"))


def test_train_model_and_the_commands_refuse_an_unknown_dataset(tmp_path, capsys):
    from adcorre.cli import inference_options, train_options
    from adcorre.training.train_model import TrainModel

    with pytest.raises(SettingError, match=r"^dataset_name must be one of .*, got 'nope'\.$"):
        TrainModel(dataset_name="nope")
    with pytest.raises(SystemExit) as stopped:
        train_options.parse_args(["--dataset", "nope"])
    assert stopped.value.code == 2
    assert "argument --dataset: invalid choice: 'nope'" in capsys.readouterr().err
    weights = tmp_path / "model.h5"
    weights.write_bytes(b"")
    with pytest.raises(SystemExit) as stopped:
        inference_options.parse_args(["--weights", str(weights), "--dataset", "nope"])
    assert stopped.value.code == 2
    assert "--dataset must be one of ('affectnet', " in capsys.readouterr().err
    # A folder that is there but lacks the dataset's files: named before TensorFlow loads.
    with pytest.raises(SystemExit) as stopped:
        train_options.parse_args(["--dataset", "rafdb", "--data-dir", str(tmp_path)])
    assert stopped.value.code == 2
    said = capsys.readouterr().err
    assert (f"argument --data-dir: {tmp_path} holds no RAF-DB (basic): "
            "EmoLabel/list_patition_label.txt; Image/aligned or Image/original not found "
            "there. Expected EmoLabel/list_patition_label.txt, ") in said


def _tree(root):
    return sorted(os.path.relpath(os.path.join(folder, name), root)
                  for folder, _, names in os.walk(root) for name in names)


def test_a_copied_module_is_a_new_dataset_with_no_other_file_touched(tmp_path):
    """The issue's promise, done for real: a copy of the package in which rafdb.py is copied to
    rafdb_copy.py with its name string changed, and nothing else; in that copy `--dataset`
    (train and test), `adcorre synth --layout` and `read_split` all take the new name."""
    source = os.path.join(REPO_ROOT, "adcorre")
    package = shutil.copytree(source, tmp_path / "adcorre",
                              ignore=shutil.ignore_patterns("__pycache__"))
    module = package / "data" / "datasets" / "rafdb.py"
    text = module.read_text(encoding="utf-8")
    assert text.count('name="rafdb",') == 1
    (module.parent / "rafdb_copy.py").write_text(text.replace('name="rafdb",', 'name="rafdb_copy",'),
                                                 encoding="utf-8")
    # Every other file of the copy is the package's own, byte for byte.
    assert set(_tree(package)) - set(_tree(source)) == {"data/datasets/rafdb_copy.py"}
    assert not [name for name in _tree(source) if name in _tree(package)
                and not filecmp.cmp(os.path.join(source, name), package / name, shallow=False)]
    run = run_python(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import adcorre
        assert adcorre.__file__.startswith({str(tmp_path)!r}), adcorre.__file__
        from adcorre.cli import inference_options, synth, train_options
        from adcorre.data import read_split, synth_faces
        assert synth.main(["--layout", "rafdb_copy", "--out", {str(tmp_path / "data")!r},
                           "--n", "10", "--image-size", "32"]) == 0
        assert train_options.parse_args(["--dataset", "rafdb_copy", "--data-dir",
                                         {str(tmp_path / "data")!r}]).dataset == "rafdb_copy"
        assert "rafdb_copy" in inference_options.build_parser().format_help()
        frame = read_split("rafdb_copy", {str(tmp_path / "data")!r}, "train")
        same = read_split("rafdb", {str(tmp_path / "data")!r}, "train")
        assert list(frame["image"]) == list(same["image"])
        print(frame.attrs["dataset"], *frame["label"])
    """, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "wrote 10 SynthFER faces as rafdb_copy" in run.stdout
    _, labels = synth_faces.generate(10, 32, seed=0)  # the writer's faces, train = the first 8
    assert run.stdout.strip().splitlines()[-1].split() == ["rafdb_copy", *map(str, labels[:8])]
