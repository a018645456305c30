"""Selection on validation, the split each epoch is scored on, and what the run says of both:
the best epoch chosen by a validation split carved out of train, the official FER-2013 test
set, log.csv's columns, the Best model line, refused resumes and bad fractions."""

import csv
import json
import os
import shutil

import numpy as np
import pytest

from adcorre.config import EXPRESSIONS_7
from adcorre.data import synth_faces
from adcorre.data.dataset_readers import BadBoxWarning
from adcorre.errors import ResumeError, SettingError
from helpers import run_python

CPU_ONLY = {"CUDA_VISIBLE_DEVICES": ""}
_TINY = dict(weights=None, batch_size=16, input_size=32, seed=0, verbose=0)


def _epoch_end(tmp_path, validation):
    """An EpochEnd on a tiny trainer whose scores are dictated by the test, epoch by epoch."""
    from adcorre.models.cnn_model import CNNModel
    from adcorre.training.callbacks import EpochEnd
    from adcorre.training.train_step import AdCorreTrainer

    network = CNNModel().get_model("tiny", weights=None, input_size=32, num_embeddings=1,
                                   embedding_size=4)
    trainer = AdCorreTrainer(network)
    trainer.compile(optimizer="adam")
    trainer(np.zeros((1, 32, 32, 3), "float32"))
    labels = np.arange(7)
    callback = EpochEnd({}, "test-data", labels, str(tmp_path), "rafdb", EXPRESSIONS_7, "tiny",
                        validation=("val-data", labels) if validation else None)
    callback.set_model(trainer)
    return callback


# (test accuracy, validation accuracy) of three epochs: the test split peaks in epoch 1, the
# validation split in epoch 2.
SCORES = [(0.90, 0.50), (0.60, 0.80), (0.70, 0.80)]


@pytest.mark.parametrize("validation", [True, False])
def test_the_best_epoch_is_chosen_by_validation(tmp_path, monkeypatch, validation):
    callback = _epoch_end(tmp_path, validation)
    epoch = {"number": 0}

    def summary(dataset, labels, what):
        test, val = SCORES[epoch["number"]]
        accuracy = val if dataset == "val-data" else test
        assert what == ("validation" if dataset == "val-data" else "test")
        return {"accuracy": accuracy, "mean_class_accuracy": accuracy / 2,
                "confusion_matrix": np.eye(7, dtype=np.int64)}

    monkeypatch.setattr(callback, "_summary", summary)
    logs = []
    for number in range(3):
        epoch["number"] = number
        logs.append({})
        callback.on_epoch_end(number, logs[-1])
    state = callback.state
    if validation:
        # Epoch 2 has the best validation accuracy (epoch 3 only ties it); its test accuracy,
        # 0.60, is what the run reports, not the best test accuracy 0.90 of epoch 1.
        assert (state["best_epoch"], state["best_accuracy"], state["best_val_accuracy"]) == \
            (2, 0.60, 0.80)
        assert [entry["val_accuracy"] for entry in logs] == [0.50, 0.80, 0.80]
        assert [entry["val_mean_class_accuracy"] for entry in logs] == [0.25, 0.40, 0.40]
    else:
        assert (state["best_epoch"], state["best_accuracy"]) == (1, 0.90)
        assert "best_val_accuracy" not in state and "val_accuracy" not in logs[0]
    assert os.path.basename(state["best_path"]).startswith(f"rafdb_{state['best_epoch']}_AC_")
    # The best file and the latest one are kept.
    kept = sorted(name for name in os.listdir(tmp_path) if name.endswith(".h5"))
    assert kept == sorted({os.path.basename(state["best_path"]), "rafdb_3_AC_0.7000.h5"})


@pytest.fixture(scope="module")
def raf_original(tmp_path_factory):
    """A RAF-DB layout of original photos and box files, one box file missing."""
    data = synth_faces.write_dataset(str(tmp_path_factory.mktemp("raf") / "rafdb"), "rafdb",
                                     n=300, image_size=32, seed=4, aligned=False)
    os.remove(os.path.join(data, "Annotation", "boundingbox", "train_00003_boundingbox.txt"))
    return data


def test_validation_split_is_carved_from_train_never_from_test(raf_original):
    from adcorre.training import splits
    from adcorre.training.train_model import TrainModel

    model = TrainModel(dataset_name="rafdb", data_dir=raf_original, val_fraction=0.2, **_TINY)
    with pytest.warns(BadBoxWarning, match="1 of 240 RAF-DB train photos that have no box file"):
        train, val, test = splits.read_splits(model.config)
    train_items, val_items, test_items = (set(s.rows.items) for s in (train, val, test))
    assert len(train_items) + len(val_items) == 239 and len(test_items) == 60
    assert not train_items & val_items and not (train_items | val_items) & test_items
    assert all(os.path.basename(p).startswith("train_") for p in val_items)
    assert set(val.labels) == set(train.labels)  # every class on both sides
    assert train.skipped == 1 and val.skipped == 0  # the photo without its box, counted once


@pytest.fixture(scope="module")
def validated_run(raf_original, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("validated") / "run"
    run = run_python(
        script="train.py",
        argv=["--dataset", "rafdb", "--data-dir", raf_original, "--arch", "tiny", "--weights",
              "none", "--epochs", "3", "--batch-size", "16", "--input-size", "32",
              "--val-fraction", "0.2", "--save-dir", save_dir],
        env=CPU_ONLY, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return save_dir, run


def test_a_validated_run_logs_and_reports_the_validation_choice(validated_run):
    save_dir, run = validated_run
    state = json.loads((save_dir / "training_state.json").read_text())
    with open(save_dir / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {"val_accuracy", "val_mean_class_accuracy", "test_accuracy", "test_split"} <= set(rows[0])
    assert [row["test_split"] for row in rows] == ["test"] * 3
    val_accuracy = [float(row["val_accuracy"]) for row in rows]
    best = int(np.argmax(val_accuracy))  # the first epoch with the best validation accuracy
    assert state["best_epoch"] == best + 1 and state["selected_by"] == "validation"
    assert state["best_accuracy"] == pytest.approx(float(rows[best]["test_accuracy"]))
    assert state["skipped_images"] == {"train": 1, "test": 0, "validation": 0}
    printed = [line for line in run.stdout.splitlines() if line.startswith("epoch ")]
    assert len(printed) == 3 and all(" on test, " in line and "; validation accuracy " in line
                                     for line in printed)
    best_line = [line for line in run.stdout.splitlines() if line.startswith("Best model:")]
    assert len(best_line) == 1
    assert (f"(test accuracy {state['best_accuracy']:.4f} on test, selected by validation "
            f"(accuracy {max(val_accuracy):.4f}), epoch {best + 1})") in best_line[0]
    assert "selected by validation (48 faces, 0.2 of the training split)" in run.stdout


def test_a_resume_with_another_fraction_is_refused(validated_run, tmp_path, raf_original):
    from adcorre.training.train_model import TrainModel

    save_dir, _ = validated_run
    copy = tmp_path / "run"
    shutil.copytree(save_dir, copy)
    settings = dict(dataset_name="rafdb", data_dir=raf_original, epochs=4, save_dir=str(copy),
                    **_TINY)
    with pytest.warns(BadBoxWarning), pytest.raises(ResumeError,
                                                    match=r"--val-fraction 0.2 \(now 0.3\)"):
        TrainModel(**settings, val_fraction=0.3).train(arch="tiny")
    with pytest.warns(BadBoxWarning), pytest.raises(ResumeError,
                                                    match=r"--val-fraction 0.2 \(now none\)"):
        TrainModel(**settings).train(arch="tiny")


def test_a_fraction_leaving_a_class_empty_stops_before_training(raf_original, tmp_path):
    from adcorre.training.train_model import TrainModel

    save_dir = tmp_path / "run"
    with pytest.warns(BadBoxWarning), pytest.raises(
            SettingError, match=r"share of 0.001 \(--val-fraction, val_fraction=\) leaves a "
                                r"class without a validation face"):
        TrainModel(dataset_name="rafdb", data_dir=raf_original, val_fraction=0.001,
                   save_dir=str(save_dir), **_TINY).train(arch="tiny")
    assert not save_dir.exists()  # refused before anything was written
    run = run_python(script="train.py",
                     argv=["--dataset", "rafdb", "--data-dir", raf_original, "--arch", "tiny",
                           "--weights", "none", "--val-fraction", "0.999", "--save-dir",
                           save_dir], env=CPU_ONLY, timeout=300)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if "--val-fraction" in line]
    assert len(errors) == 1 and "without a training face" in errors[0], run.stderr[-2000:]
    assert not save_dir.exists()
    for bad in ("0", "1", "x"):
        run = run_python(script="train.py", argv=["--val-fraction", bad], env=CPU_ONLY,
                         timeout=120)
        assert run.returncode == 2 and "argument --val-fraction" in run.stderr


def test_fer2013_is_scored_on_public_and_private_test_by_the_adcorre_recipe(tmp_path):
    data = synth_faces.write_dataset(str(tmp_path / "fer"), "fer2013", n=120, seed=2)
    save_dir = tmp_path / "run"
    run = run_python(
        script="train.py",
        argv=["--dataset", "fer2013", "--data-dir", data, "--arch", "tiny", "--weights", "none",
              "--epochs", "1", "--batch-size", "16", "--input-size", "48",
              "--save-dir", save_dir], env=CPU_ONLY, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    # 24 test faces: 12 PublicTest + 12 PrivateTest.
    assert "96 train / 24 test images (split public_private_test)" in run.stdout
    assert "an optimistic figure (--val-fraction F selects on validation)" in run.stdout
    assert "epoch 1: test accuracy " in run.stdout and " on public_private_test, " in run.stdout
    state = json.loads((save_dir / "training_state.json").read_text())
    assert state["test_split"] == "public_private_test" and state["selected_by"] == "test"
    best = [line for line in run.stdout.splitlines() if line.startswith("Best model:")]
    assert (f"(test accuracy {state['best_accuracy']:.4f} on public_private_test, selected by "
            "that test accuracy, an optimistic figure, epoch 1)") in best[0]
    with open(save_dir / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["test_split"] for row in rows] == ["public_private_test"]
    config = json.loads((save_dir / "run_config.json").read_text())
    assert (config["recipe"], config["test_split"]) == ("adcorre", "public_private_test")
    # --test-split test scores PrivateTest alone, what most papers report.
    from adcorre.cli import train_options

    args = train_options.parse_args(["--dataset", "fer2013", "--data-dir", data, "--test-split",
                                     "test", "--no-mrr"])
    settings = train_options.training_arguments(args)
    assert (settings["test_split"], settings["mrr"]) == ("test", False)


def test_rafdb_images_picks_the_aligned_faces_or_the_boxed_photos(tmp_path):
    from adcorre.training import splits
    from adcorre.training.train_model import TrainModel

    data = str(tmp_path / "rafdb")
    synth_faces.write_dataset(data, "rafdb", n=20, image_size=32, seed=1, aligned=False)
    synth_faces.write_dataset(data, "rafdb", n=20, image_size=32, seed=1)  # both kinds now
    frames = {choice: splits.read_frame(TrainModel(dataset_name="rafdb", data_dir=data,
                                                   rafdb_images=choice, **_TINY).config, "train")
              for choice in ("auto", "aligned", "original")}
    assert all(p.endswith("_aligned.jpg") for p in frames["auto"]["image"])
    assert frames["aligned"]["image"].tolist() == frames["auto"]["image"].tolist()
    assert "box" not in frames["aligned"]
    assert all("/Image/original/" in p for p in frames["original"]["image"])
    assert len(frames["original"]) == 16
    assert {box[2:] for box in frames["original"]["box"]} == {(32, 32)}  # the faces' boxes
    with pytest.raises(SettingError, match="rafdb_images='original' is for dataset_name='rafdb'"):
        TrainModel(dataset_name="synth", rafdb_images="original")
    run = run_python(script="train.py", argv=["--dataset", "synth", "--rafdb-images", "original"],
                     env=CPU_ONLY, timeout=120)
    assert run.returncode == 2 and "argument --rafdb-images: original is for --dataset rafdb" \
        in run.stderr


def test_log_csv_rows_appended_to_an_older_log_keep_its_columns(tmp_path):
    """A run resumed from an earlier version's folder: its log.csv has no test_split column,
    and the new rows line up with the header already there."""
    from adcorre.training.callbacks import EpochCSVLogger

    path = tmp_path / "log.csv"
    path.write_text("epoch,accuracy,test_accuracy\n1,0.5,0.25\n")
    logger = EpochCSVLogger(str(path), append=True, test_split="public_private_test")
    logger.on_train_begin()
    logger.on_epoch_end(1, {"accuracy": 0.75, "test_accuracy": 0.5, "val_accuracy": 0.4})
    logger.on_train_end()
    with open(path) as handle:
        rows = list(csv.reader(handle))
    assert rows == [["epoch", "accuracy", "test_accuracy"], ["1", "0.5", "0.25"],
                    ["2", "0.75", "0.5"]]
    fresh = tmp_path / "fresh.csv"
    logger = EpochCSVLogger(str(fresh), append=True, test_split="public_private_test")
    logger.on_train_begin()
    logger.on_epoch_end(0, {"accuracy": 0.75, "test_accuracy": 0.5})
    logger.on_train_end()
    with open(fresh) as handle:
        assert list(csv.DictReader(handle)) == [
            {"epoch": "1", "accuracy": "0.75", "test_accuracy": "0.5",
             "test_split": "public_private_test"}]
