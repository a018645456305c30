"""`TestModels.evaluate` as the papers measured: ARM's test loop (batches of 64 in file order,
each batch's mean affinity map) beside the per-picture default, and FER-2013's official test set
(PublicTest + PrivateTest)."""

import numpy as np
import pytest

from adcorre.config import EXPRESSIONS_7
from adcorre.data import dataset_readers, input_pipeline, synth_faces
from adcorre.errors import SettingError
from adcorre.reports import classification_summary

SIZE = 96  # ResNet-18's map is 3 x 3 here: ARM gives 3 x 3 = 9 features
N_TEST = 70  # ARM's batches: 64 + a last one of 6


@pytest.fixture(scope="module")
def arm_file(tmp_path_factory):
    """An untrained `resnet18_arm` with random BatchNorm statistics and a large alpha, so the
    affinity map (each picture's or the batch's) moves its predictions."""
    import keras

    from adcorre.models import weights_io
    from adcorre.models.cnn_model import CNNModel

    keras.utils.set_random_seed(5)
    model = CNNModel().get_model("resnet18_arm", num_classes=7, weights=None, input_size=SIZE)
    rng = np.random.default_rng(5)
    arm = model.get_layer("arm")
    arm.alpha.assign([3.0])
    norm = arm.batch_norm
    norm.moving_mean.assign(rng.normal(0, 0.5, norm.moving_mean.shape))
    norm.moving_variance.assign(rng.uniform(0.05, 0.2, norm.moving_variance.shape))
    arm.moving_affinity.assign(rng.normal(0, 0.1, arm.moving_affinity.shape))
    folder = tmp_path_factory.mktemp("arm")
    return weights_io.save_model(model, str(folder / "arm.h5"), labels=EXPRESSIONS_7,
                                 arch="resnet18_arm")


@pytest.fixture(scope="module")
def rafdb(tmp_path_factory):
    return synth_faces.write_dataset(str(tmp_path_factory.mktemp("raf") / "rafdb"), "rafdb",
                                     n=5 * N_TEST, image_size=SIZE, seed=8)


def _probabilities(model, images, batches):
    outputs = [model.predict_on_batch(images[start:stop]) for start, stop in batches]
    return np.concatenate([out[0] if isinstance(out, (list, tuple)) else out for out in outputs])


def _spy(tester, monkeypatch):
    """Records the probabilities of every `predict` call `evaluate` makes."""
    calls = []
    predict = tester.predict

    def recording(crops):
        calls.append(predict(crops))
        return calls[-1]

    monkeypatch.setattr(tester, "predict", recording)
    return calls


@pytest.fixture(scope="module")
def test_split(rafdb):
    frame = dataset_readers.read_split("rafdb", rafdb, "test")
    # The pictures as the pipeline decodes them, in the label file's order.
    images = next(iter(input_pipeline.make_dataset(frame, input_size=SIZE, batch_size=N_TEST,
                                                   validate="none")))[0].numpy()
    return frame["label"].to_numpy(), images


def test_arm_protocol_is_their_test_loop(arm_file, rafdb, test_split, monkeypatch):
    from adcorre.inference.test_models import TestModels
    from adcorre.models import weights_io

    labels, images = test_split
    assert len(labels) == N_TEST
    tester = TestModels(arm_file, detector=None, verbose=False)
    before = tester.predict(images[:8])
    calls = _spy(tester, monkeypatch)
    arm = tester.evaluate("rafdb", rafdb, "test", protocol="arm")
    arm_calls, calls[:] = list(calls), []
    picture = tester.evaluate("rafdb", rafdb, "test")
    assert (arm["protocol"], picture["protocol"], arm["num_samples"]) == ("arm", "per_picture",
                                                                          N_TEST)
    # Their batches: 64 pictures, then the last 6, in file order.
    assert [len(p) for p in arm_calls] == [64, 6] and [len(p) for p in calls] == [32, 32, 6]
    # Reference: the same file loaded with the official batch affinity, fed rows 0-63 and 64-69.
    batch_model, _ = weights_io.load_model(arm_file, arm_affinity="batch")
    theirs = _probabilities(batch_model, images, [(0, 64), (64, 70)])
    np.testing.assert_allclose(np.concatenate(arm_calls), theirs, atol=1e-5)
    expected = classification_summary(labels, np.argmax(theirs, -1), 7)
    np.testing.assert_array_equal(arm["confusion_matrix"], expected["confusion_matrix"])
    assert arm["accuracy"] == expected["accuracy"]
    # Other batches give other answers: the protocol's batches are the ones that count.
    other = _probabilities(batch_model, images, [(0, 6), (6, 70)])
    assert np.abs(other - theirs).max() > 1e-3
    # The default: each picture on its own (the file's own affinity), whatever the batch.
    own_model, _ = weights_io.load_model(arm_file)
    singles = _probabilities(own_model, images, [(i, i + 1) for i in range(N_TEST)])
    np.testing.assert_allclose(np.concatenate(calls), singles, atol=1e-5)
    assert np.abs(singles - theirs).max() > 1e-3
    np.testing.assert_array_equal(
        picture["confusion_matrix"],
        classification_summary(labels, np.argmax(singles, -1), 7)["confusion_matrix"])
    # The tester's own predictions are per picture again afterwards.
    monkeypatch.undo()
    np.testing.assert_allclose(tester.predict(images[:8]), before, atol=1e-6)
    np.testing.assert_allclose(tester.predict(images[:1]), before[:1], atol=1e-5)


def test_arm_protocol_takes_their_batch_size_and_rejects_unknown_protocols(arm_file, rafdb,
                                                                            test_split,
                                                                            monkeypatch):
    from adcorre.inference.test_models import TestModels
    from adcorre.models import weights_io

    _, images = test_split
    tester = TestModels(arm_file, detector=None, verbose=False)
    calls = _spy(tester, monkeypatch)
    tester.evaluate("rafdb", rafdb, "test", protocol="arm", batch_size=32)
    batch_model, _ = weights_io.load_model(arm_file, arm_affinity="batch")
    np.testing.assert_allclose(np.concatenate(calls),
                               _probabilities(batch_model, images, [(0, 32), (32, 64), (64, 70)]),
                               atol=1e-5)
    with pytest.raises(SettingError, match="protocol must be one of"):
        tester.evaluate("rafdb", rafdb, "test", protocol="batch")


def test_evaluate_on_fer2013s_official_test_set(tester, tmp_path):
    data = synth_faces.write_dataset(str(tmp_path / "fer"), "fer2013", n=60, seed=3)
    both = tester.evaluate("fer2013", data, "public_private_test")
    public = tester.evaluate("fer2013", data, "val")
    private = tester.evaluate("fer2013", data, "test")
    assert (public["num_samples"], private["num_samples"], both["num_samples"]) == (6, 6, 12)
    np.testing.assert_array_equal(both["confusion_matrix"],
                                  public["confusion_matrix"] + private["confusion_matrix"])
    assert both["split"] == "public_private_test"


def _rewrite_first_rows(path, edit, rows_to_edit):
    import csv

    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    for row in rows_to_edit:
        edit(rows[row])
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)


@pytest.mark.parametrize("layout", ["rafdb", "affectnet"])
def test_faces_skipped_for_their_box_count_in_skipped_images(tester, tmp_path, layout):
    """Issue 31: the evaluation said `skipped_images` 0 where RAF-DB box files were skipped, and
    scored an AffectNet box outside its picture as a 1-pixel crop."""
    import os
    import warnings

    data = synth_faces.write_dataset(str(tmp_path / layout), layout, n=40, image_size=32,
                                     seed=4, aligned=False)
    listed = len(dataset_readers.read_split(layout, data, "test"))
    if layout == "rafdb":
        box_dir = os.path.join(data, "Annotation", "boundingbox")
        os.remove(os.path.join(box_dir, "test_0001_boundingbox.txt"))
        with open(os.path.join(box_dir, "test_0002_boundingbox.txt"), "w") as handle:
            handle.write("900 900 940 940")  # outside its photo
    else:
        def far_right(row):
            row[1] = "4000"
        _rewrite_first_rows(os.path.join(data, "validation.csv"), far_right, (1, 2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = tester.evaluate(layout, data, "test")
    assert summary["skipped_images"] == 2 and summary["num_samples"] == listed - 2
    assert summary["confusion_matrix"].sum() == listed - 2
    assert [w for w in caught if "face box" in str(w.message) or "no box file" in str(w.message)]
