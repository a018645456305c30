"""Evaluation protocols on the data side: FER-2013's three usages and the official
PublicTest + PrivateTest split, RAF-DB's original photos cropped by their box files, the
validation split carved out of train, and class-balanced sampling for AffectNet."""

import os
import shutil
import warnings

import cv2
import numpy as np
import pandas as pd
import pytest

from adcorre import config
from adcorre import data as data_helper
from adcorre.data import dataset_readers, datasets, input_pipeline, synth_faces
from adcorre.errors import DatasetNotFoundError, SettingError

N, SIZE, SEED = 40, 48, 11
N_TEST = 8  # round(N * 0.2)


@pytest.fixture(scope="module")
def generated():
    return synth_faces.generate(N, image_size=SIZE, seed=SEED)


@pytest.fixture(scope="module")
def fer_layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("fer")
    return {layout: synth_faces.write_dataset(str(root / layout), layout=layout, n=N, seed=SEED)
            for layout in ("fer2013", "ferplus")}


@pytest.fixture(scope="module")
def raf_original(tmp_path_factory):
    return synth_faces.write_dataset(str(tmp_path_factory.mktemp("raf") / "rafdb"), "rafdb", n=N,
                                     image_size=SIZE, seed=SEED, aligned=False)


def _copy(source, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(source, target)
    return target


def _box_file(data_dir, name):
    return os.path.join(data_dir, "Annotation", "boundingbox", f"{name}_boundingbox.txt")


# ------------------------------------------------------------------ FER-2013: three usages


@pytest.mark.parametrize("layout", ["fer2013", "ferplus"])
def test_fer_usages_and_public_private_test(fer_layouts, generated, layout):
    _, labels = generated
    d = fer_layouts[layout]
    splits = {split: data_helper.read_split(layout, d, split)
              for split in ("train", "val", "test", "public_private_test")}
    # The writer: train -> Training, the test faces' first half -> PublicTest, the rest ->
    # PrivateTest; FERPlus rows it must drop come on top (5 per usage, see synth_faces).
    public, private = labels[N - N_TEST:N - N_TEST // 2], labels[N - N_TEST // 2:]
    assert {s: len(f) for s, f in splits.items()} == {
        "train": N - N_TEST, "val": N_TEST // 2, "test": N_TEST - N_TEST // 2,
        "public_private_test": N_TEST}
    np.testing.assert_array_equal(splits["public_private_test"]["label"],
                                  np.concatenate([public, private]))
    both = splits["public_private_test"]
    # PublicTest then PrivateTest, in file order, each row naming its own usage.
    assert both["usage"].tolist() == ["PublicTest"] * (N_TEST // 2) + ["PrivateTest"] * (N_TEST // 2)
    assert both.attrs["usage"] == "PublicTest+PrivateTest"
    for row, image in enumerate(splits["val"]["image"].tolist() + splits["test"]["image"].tolist()):
        np.testing.assert_array_equal(both["image"][row], image)
    # The official test set is disjoint from the training faces.
    train_faces = {image.tobytes() for image in splits["train"]["image"]}
    assert not train_faces & {image.tobytes() for image in both["image"]}


def test_public_private_test_is_fer_only(raf_original):
    with pytest.raises(SettingError, match="public_private_test.*fer2013 and ferplus only"):
        data_helper.read_split("rafdb", raf_original, "public_private_test")
    with pytest.raises(SettingError, match="public_private_test"):
        data_helper.read_split("rafdb", raf_original, "private")


# ---------------------------------------------------------- RAF-DB: original photos and boxes


def test_rafdb_box_files_read_back_exactly_and_hold_the_face(raf_original, generated):
    images, labels = generated
    frame = data_helper.read_split("rafdb", raf_original, "train", aligned=False)
    assert len(frame) == N - N_TEST and frame.attrs["box_skipped"] == []
    np.testing.assert_array_equal(frame["label"], labels[:N - N_TEST])
    for i, row in enumerate(frame.itertuples()):
        name = os.path.splitext(os.path.basename(row.image))[0]
        # The box file, read as the common copies' scripts read it: x1 y1 x2 y2.
        x1, y1, x2, y2 = np.loadtxt(_box_file(raf_original, name))
        assert row.box == (x1, y1, x2 - x1, y2 - y1) == (x1, y1, SIZE, SIZE)
        photo = cv2.cvtColor(cv2.imread(row.image), cv2.COLOR_BGR2RGB).astype(float)
        assert photo.shape[0] > SIZE and photo.shape[1] > SIZE  # a photo around the face
        x, y = int(x1), int(y1)
        # The drawn face is at the box (up to JPEG), and not one pixel off.
        error = np.abs(photo[y:y + SIZE, x:x + SIZE] - images[i]).mean()
        shifted = photo[y + 1:y + SIZE + 1, x + 1:x + SIZE + 1]
        off_by_one = np.abs(shifted - images[i][:shifted.shape[0], :shifted.shape[1]]).mean()
        assert error < 8 and error < off_by_one / 2, (name, error, off_by_one)


def test_the_pipeline_crops_rafdb_photos_to_the_face(raf_original, generated):
    images, _ = generated
    frame = data_helper.read_split("rafdb", raf_original, "test", aligned=False)
    dataset = data_helper.make_dataset(frame, input_size=SIZE, batch_size=N_TEST, validate="none")
    crops = next(iter(dataset))[0].numpy()
    faces = images[N - N_TEST:] / 255.0
    errors = np.abs(crops - faces).mean(axis=(1, 2, 3))
    assert errors.max() < 0.05, errors  # the face as drawn, up to JPEG artefacts
    whole = data_helper.make_dataset(frame.drop(columns="box"), input_size=SIZE,
                                     batch_size=N_TEST, validate="none")
    uncropped = np.abs(next(iter(whole))[0].numpy() - faces).mean(axis=(1, 2, 3))
    assert uncropped.min() > 2 * errors.max()


def test_boxes_are_found_where_copies_keep_them(raf_original, tmp_path):
    expected = data_helper.read_split("rafdb", raf_original, "train")["box"].tolist()
    copy = _copy(raf_original, tmp_path)
    shutil.move(str(copy / "Annotation" / "boundingbox"), str(copy / "boundingbox"))
    os.rmdir(copy / "Annotation")
    frame = data_helper.read_split("rafdb", str(copy), "train")
    assert frame["box"].tolist() == expected
    assert frame.attrs["box_dir"] == str(copy / "boundingbox")
    shutil.rmtree(copy / "boundingbox")
    with pytest.raises(DatasetNotFoundError, match="Annotation/boundingbox.*boundingbox"):
        data_helper.read_split("rafdb", str(copy), "train")


def test_decimal_corners_round_to_whole_pixels(tmp_path):
    path = tmp_path / "test_0001_boundingbox.txt"
    path.write_text("10.4\t20.6\n58.4,68.5\n")
    assert dataset_readers.rafdb_box(str(path), (100, 100)) == ((10, 21, 48, 48), None)


def test_a_photo_without_its_box_file_is_skipped_with_one_warning(raf_original, tmp_path):
    copy = _copy(raf_original, tmp_path)
    for name in ("train_00002", "train_00005", "train_00009"):
        os.remove(_box_file(copy, name))
    with pytest.warns(dataset_readers.BadBoxWarning) as caught:
        frame = data_helper.read_split("rafdb", str(copy), "train")
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "Skipped 3 of 32 RAF-DB train photos that have no box file" in message
    assert "train_00002.jpg" in message and "train_00009.jpg" in message
    assert len(frame) == N - N_TEST - 3
    assert [os.path.basename(p) for p, _ in frame.attrs["box_skipped"]] == [
        "train_00002.jpg", "train_00005.jpg", "train_00009.jpg"]
    assert not any(p.endswith(("train_00002.jpg", "train_00005.jpg")) for p in frame["image"])


BAD_BOXES = {
    "train_00001": ("", "empty"),
    "train_00003": ("12 14 40\n", "not four numbers"),
    "train_00004": ("a b c d", "not four numbers"),
    "train_00006": ("1 2 3 4 5", "not four numbers"),
    "train_00007": ("30 5 20 40", "an inverted box (its right edge left of its left edge): "
                                  "x1 y1 x2 y2 = 30 5 20 40"),
    "train_00008": ("5 30 40 30", "an empty box (its height is 0)"),
    "train_00010": ("-20 -20 30 30", "outside its"),
    "train_00011": ("10 10 4000 40", "outside its"),
}


def test_bad_box_files_are_named_in_one_warning_and_their_photos_skipped(raf_original, tmp_path):
    copy = _copy(raf_original, tmp_path)
    for name, (text, _) in BAD_BOXES.items():
        with open(_box_file(copy, name), "w") as handle:
            handle.write(text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = data_helper.read_split("rafdb", str(copy), "train")
    messages = [str(w.message) for w in caught if issubclass(w.category,
                                                             dataset_readers.BadBoxWarning)]
    assert len(messages) == 1 and "\n" not in messages[0]
    message = messages[0]
    box_dir = os.path.dirname(_box_file(copy, "train_00001"))
    assert message.startswith(f"Skipped {len(BAD_BOXES)} of {N - N_TEST} RAF-DB train photos "
                              f"whose face box in {box_dir} is unusable: ")
    named = message.split(" is unusable: ", 1)[1].split(" (frame.attrs")[0].split("; ")
    assert len(named) == len(BAD_BOXES)
    for item, (name, (_, reason)) in zip(named, BAD_BOXES.items()):
        assert item.startswith(f"{name}_boundingbox.txt: ") and reason in item, item
        assert f"(photo {name}.jpg)" in item
    assert len(frame) == N - N_TEST - len(BAD_BOXES)
    skipped = {os.path.splitext(os.path.basename(p))[0] for p, _ in frame.attrs["box_skipped"]}
    assert skipped == set(BAD_BOXES)
    kept = {os.path.splitext(os.path.basename(p))[0] for p in frame["image"]}
    assert not kept & set(BAD_BOXES)


def test_only_bad_boxes_is_one_clear_error(raf_original, tmp_path):
    copy = _copy(raf_original, tmp_path)
    for name in os.listdir(copy / "Annotation" / "boundingbox"):
        if name.startswith("test_"):
            (copy / "Annotation" / "boundingbox" / name).write_text("")
    with pytest.warns(dataset_readers.BadBoxWarning), pytest.raises(
            data_helper.DatasetFormatError, match="None of the 8 RAF-DB test photos.*usable box"):
        data_helper.read_split("rafdb", str(copy), "test")


# ------------------------------------------------------------ validation carved out of train


def test_validation_split_is_stratified_seeded_and_disjoint():
    train = data_helper.read_split("synth", None, "train", n=400, image_size=24, seed=SEED)
    labels = train["label"].to_numpy()
    rest, val = dataset_readers.validation_split(train, 0.25, seed=3)
    # A partition of the training rows, each class split by its own share.
    rows = np.concatenate([rest.attrs["rows"], val.attrs["rows"]])
    assert sorted(rows.tolist()) == list(range(len(train)))
    for c in np.unique(labels):
        count = int((labels == c).sum())
        held = int((val["label"] == c).sum())
        assert held == int(np.floor(0.25 * count + 0.5)) and 0 < held < count
    assert set(val["label"]) == set(rest["label"]) == set(labels)
    for frame in (rest, val):
        for row, image in zip(frame.attrs["rows"], frame["image"]):
            np.testing.assert_array_equal(image, train["image"][row])
    assert val.attrs["split"] == "val_from_train" and rest.attrs["split"] == "train"
    # Seeded: the same seed holds out the same faces, another seed others.
    again = dataset_readers.validation_split(train, 0.25, seed=3)[1]
    other = dataset_readers.validation_split(train, 0.25, seed=4)[1]
    assert again.attrs["rows"].tolist() == val.attrs["rows"].tolist()
    assert other.attrs["rows"].tolist() != val.attrs["rows"].tolist()
    # Never the test faces: those come from a split of their own.
    test = data_helper.read_split("synth", None, "test", n=100, image_size=24, seed=SEED)
    held_out = {image.tobytes() for image in val["image"]}
    assert not held_out & {image.tobytes() for image in test["image"]}


def test_a_fraction_leaving_a_class_empty_is_one_clear_error():
    frame = pd.DataFrame({"image": [f"{i}.jpg" for i in range(23)],
                          "label": [0] * 10 + [1] * 10 + [5] * 3})
    with pytest.raises(SettingError, match=r"share of 0.1 \(--val-fraction\) leaves a class "
                                           r"without a validation face or without a training "
                                           r"face: Disgust \(3 faces: 0 for validation"):
        dataset_readers.validation_split(frame, 0.1, setting="--val-fraction")
    with pytest.raises(SettingError, match=r"Disgust \(3 faces: 3 for validation, 0 for training"):
        dataset_readers.validation_split(frame, 0.9)
    train, val = dataset_readers.validation_split(frame, 0.34)
    assert sorted(val["label"]) == [0, 0, 0, 1, 1, 1, 5]


# -------------------------------------------------------------- AffectNet: balanced sampling


def test_adcorre_recipe_scores_fer2013_on_both_tests_and_balances_affectnet_on_request(tmp_path):
    recipe = config.LearningConfig.from_recipe
    # No official file shows a balanced AffectNet copy: MRR is an option, not the default.
    assert recipe(dataset_name="affectnet").mrr is False
    assert recipe(dataset_name="affectnet", mrr=True).mrr is True  # the caller's wins
    assert recipe(dataset_name="fer2013").test_split == "public_private_test"
    assert recipe(dataset_name="fer2013", test_split="test").test_split == "test"
    for dataset in ("rafdb", "ferplus", "synth", "folder"):
        assert (recipe("adcorre", dataset_name=dataset).mrr,
                recipe("adcorre", dataset_name=dataset).test_split) == (False, "test")
    assert recipe("arm", dataset_name="affectnet").mrr is False  # other recipes: their own
    # The dataset's record checks the split (TrainModel calls check_settings on its config).
    with pytest.raises(SettingError, match="public_private_test.*fer2013 and ferplus only"):
        datasets.check_settings(recipe(dataset_name="rafdb", test_split="public_private_test"))
    with pytest.raises(SettingError, match="val_fraction"):
        recipe(dataset_name="rafdb", val_fraction=1.0)
    # What MRR does to AffectNet's imbalanced training split: every class as often as the
    # largest, each epoch.
    d = synth_faces.write_dataset(str(tmp_path / "aff"), "affectnet", n=120, image_size=24,
                                  seed=SEED)
    labels = data_helper.read_split("affectnet", d, "train_7")["label"].to_numpy()
    counts = np.bincount(labels)
    assert counts.max() > 2 * counts[counts > 0].min()  # imbalanced, as AffectNet is
    order = input_pipeline.epoch_order(labels, seed=0, epoch=0, mrr=True)
    balanced = np.bincount(labels[order], minlength=len(counts))
    assert set(balanced[counts > 0]) == {counts.max()}
    assert set(order.tolist()) == set(range(len(labels)))  # every face is still seen
