"""Readers (every layout, awkward files, errors) and the tf.data pipeline."""

import csv
import json
import os
import shutil
import warnings

import cv2
import numpy as np
import pandas as pd
import pytest

from adcorre import config
from adcorre import data as data_helper
from adcorre.data import synth_faces
from adcorre.errors import PictureNotFoundError
from helpers import run_python

N, SIZE, SEED = 30, 48, 5
N_TEST = 6  # round(N * 0.2)


@pytest.fixture(scope="module")
def generated():
    return synth_faces.generate(N, image_size=SIZE, seed=SEED)


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    out = {}
    for layout in synth_faces.LAYOUTS:
        out[layout] = synth_faces.write_dataset(str(root / layout), layout=layout, n=N,
                                                image_size=SIZE, seed=SEED)
    return out


def _copy(layouts, layout, tmp_path):
    target = tmp_path / layout
    shutil.copytree(layouts[layout], target)
    return target


def _array_frame(values, labels, size=8):
    """Images filled with a constant value each, so a pipeline's output names its row."""
    images = [np.full((size, size, 3), v, np.uint8) for v in values]
    return pd.DataFrame({"image": images, "label": np.asarray(labels)})


def _ids(images):
    return np.round(images[:, 0, 0, 0] * 255).astype(int)


# ---------------------------------------------------------------------------- readers


@pytest.mark.parametrize("layout", ["rafdb", "affectnet", "preprocessed"])
def test_layouts_read_back_canonical_labels(layouts, generated, layout):
    _, labels = generated
    train = data_helper.read_split(layout, layouts[layout], "train")
    test = data_helper.read_split(layout, layouts[layout], "test")
    np.testing.assert_array_equal(train["label"], labels[:N - N_TEST])
    np.testing.assert_array_equal(test["label"], labels[N - N_TEST:])
    assert all(os.path.isfile(p) for p in train["image"])


def test_folder_layout_reads_back(layouts, generated):
    _, labels = generated
    frame = data_helper.read_split("folder", layouts["folder"], "train")
    # Files are named by their index in the split; folders by class name.
    index = [int(os.path.splitext(os.path.basename(p))[0]) for p in frame["image"]]
    np.testing.assert_array_equal(frame["label"], labels[:N - N_TEST][index])
    assert sorted(index) == list(range(N - N_TEST))


def test_fer2013_usage_split_mapping(layouts, generated):
    _, labels = generated
    d = layouts["fer2013"]
    train = data_helper.read_split("fer2013", d, "train")
    public = data_helper.read_split("fer2013", d, "val")
    private = data_helper.read_split("fer2013", d, "test")
    np.testing.assert_array_equal(train["label"], labels[:N - N_TEST])
    np.testing.assert_array_equal(public["label"], labels[N - N_TEST:N - N_TEST // 2])
    np.testing.assert_array_equal(private["label"], labels[N - N_TEST // 2:])
    assert set(public["usage"]) == {"PublicTest"} and set(private["usage"]) == {"PrivateTest"}
    assert data_helper.read_split("fer2013", d, config.DatasetType.eval)["label"].tolist() == \
        public["label"].tolist()
    image = train["image"][0]
    assert image.shape == (48, 48) and image.dtype == np.uint8


def test_fer2013_emotion_codes_are_remapped(tmp_path):
    # FER-2013 codes 0..6 = Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral.
    pixels = " ".join(["7"] * 48 * 48)
    with open(tmp_path / "fer2013.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for code in range(7):
            w.writerow([code, pixels, "Training"])
    frame = data_helper.read_split("fer2013", str(tmp_path), "train")
    assert frame["label"].tolist() == [6, 5, 4, 1, 2, 3, 0]


def test_ferplus_votes_and_drops(layouts, generated):
    _, labels = generated
    d = layouts["ferplus"]
    train7 = data_helper.read_split("ferplus", d, "train")
    np.testing.assert_array_equal(train7["label"], labels[:N - N_TEST])
    assert train7.attrs["dropped"] == {"tie": 1, "unknown": 1, "NF": 1, "excluded": 1,
                                       "contempt": 1}
    train8 = data_helper.read_split("ferplus", d, "train", num_classes=8)
    assert train8["label"].tolist() == labels[:N - N_TEST].tolist() + [7]
    # Pixels come from the row-aligned fer2013.csv.
    fer = data_helper.read_split("fer2013", d, "train")
    np.testing.assert_array_equal(train7["image"][3], fer["image"][3])


def test_ferplus_label_rule():
    cols = list(config.FERPLUS_VOTE_COLUMNS)

    def votes(**counts):
        v = [0] * len(cols)
        for name, count in counts.items():
            v[cols.index(name)] = count
        return v

    assert data_helper.ferplus_label(votes(sadness=6, anger=4)) == (2, None)
    assert data_helper.ferplus_label(votes(surprise=4, fear=3, neutral=3)) == (3, None)
    assert data_helper.ferplus_label(votes(happiness=5, neutral=5)) == (None, "tie")
    assert data_helper.ferplus_label(votes(unknown=6, neutral=4)) == (None, "unknown")
    assert data_helper.ferplus_label(votes(NF=10)) == (None, "NF")
    assert data_helper.ferplus_label(votes(contempt=6, anger=4)) == (None, "contempt")
    assert data_helper.ferplus_label(votes(contempt=6, anger=4), num_classes=8) == (7, None)
    assert data_helper.ferplus_label(votes()) == (None, "no votes")
    # Strict majority (the FERPlus authors' rule): single votes are outliers, the
    # winner needs more than half of what remains.
    assert data_helper.ferplus_label(votes(fear=4, neutral=3, sadness=3), strict_majority=True) \
        == (None, "unknown")
    assert data_helper.ferplus_label(votes(fear=4, neutral=3, sadness=1, anger=1, disgust=1),
                                     strict_majority=True) == (4, None)


def test_affectnet_classes_drops_and_boxes(layouts, generated):
    images, labels = generated
    d = layouts["affectnet"]
    seven = data_helper.read_split("affectnet", d, "train")
    eight = data_helper.read_split("affectnet", d, "train", num_classes=8)
    n_contempt = max(1, round(0.05 * (N - N_TEST)))
    assert seven.attrs["dropped"] == {"expression 7": n_contempt, "expression 8": 1,
                                      "expression 9": 1, "expression 10": 1}
    assert eight["label"].tolist() == labels[:N - N_TEST].tolist() + [7] * n_contempt
    assert "expression 7" not in eight.attrs["dropped"]
    assert data_helper.read_split("affectnet", d, config.DatasetType.eval_7)["label"].tolist() == \
        labels[N - N_TEST:].tolist()
    with pytest.raises(ValueError, match="7 classes"):
        data_helper.read_split("affectnet", d, "train_7", num_classes=8)
    # The pipeline crops the box: the output is the pasted face, not the photo around it.
    ds = data_helper.make_dataset(seven.iloc[:8], input_size=SIZE, batch_size=8, validate="none")
    out = next(iter(ds))[0].numpy()
    # Reference: OpenCV's decode of the same JPEG, cropped by the CSV's box in NumPy.
    for row, crop in zip(seven.iloc[:8].itertuples(), out):
        x, y, w, h = row.box
        photo = cv2.cvtColor(cv2.imread(row.image), cv2.COLOR_BGR2RGB) / 255.0
        # The two decoders upsample chroma differently (a level or two on average, more at
        # colour edges); a crop one pixel off costs about ten times that.
        error = np.abs(crop - photo[y:y + h, x:x + w]).mean()
        off_by_one = np.abs(crop - photo[y + 1:y + h + 1, x + 1:x + w + 1]).mean()
        assert error < 4 / 255 and error < off_by_one / 3, (row.box, error, off_by_one)
    errors = np.abs(out - images[:8] / 255.0).mean(axis=(1, 2, 3))
    assert errors.max() < 0.05, errors  # the face as drawn, up to JPEG artefacts
    uncropped = data_helper.make_dataset(seven.iloc[:8].drop(columns="box"), input_size=SIZE,
                                         batch_size=8, validate="none")
    errors_uncropped = np.abs(next(iter(uncropped))[0].numpy() - images[:8] / 255.0).mean(
        axis=(1, 2, 3))
    assert errors_uncropped.min() > 3 * errors.max()


def test_rafdb_aligned_and_original(tmp_path, generated):
    _, labels = generated
    original = synth_faces.write_dataset(str(tmp_path / "raf"), "rafdb", n=N, image_size=SIZE,
                                         seed=SEED, aligned=False)
    frame = data_helper.read_split("rafdb", original, "train")
    assert all("/Image/original/" in p and not p.endswith("_aligned.jpg") for p in frame["image"])
    np.testing.assert_array_equal(frame["label"], labels[:N - N_TEST])
    synth_faces.write_dataset(str(tmp_path / "raf"), "rafdb", n=N, image_size=SIZE, seed=SEED)
    both = data_helper.read_split("rafdb", original, "test")
    assert all(p.endswith("_aligned.jpg") for p in both["image"])  # aligned preferred
    forced = data_helper.read_split("rafdb", original, "test", aligned=False)
    assert all("/Image/original/" in p for p in forced["image"])
    with pytest.raises(ValueError, match="no validation split"):
        data_helper.read_split("rafdb", original, "val")


def test_crlf_and_bom_label_files(layouts, tmp_path, generated):
    _, labels = generated
    raf = _copy(layouts, "rafdb", tmp_path)
    label_file = raf / "EmoLabel" / "list_patition_label.txt"
    text = label_file.read_text()
    label_file.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode() + b"\r\n")
    np.testing.assert_array_equal(data_helper.read_split("rafdb", str(raf), "train")["label"],
                                  labels[:N - N_TEST])
    # csv.writer wrote CRLF; an LF-only AffectNet CSV must read the same.
    aff = _copy(layouts, "affectnet", tmp_path)
    csv_file = aff / "training.csv"
    raw = csv_file.read_bytes()
    assert b"\r\n" in raw
    csv_file.write_bytes(raw.replace(b"\r\n", b"\n"))
    np.testing.assert_array_equal(data_helper.read_split("affectnet", str(aff), "train")["label"],
                                  labels[:N - N_TEST])


def test_synth_split_streams_do_not_overlap():
    train = data_helper.read_split("synth", None, "train", n=20, image_size=32, seed=3)
    test = data_helper.read_split("synth", None, "test", n=20, image_size=32, seed=3)
    again = data_helper.read_split("synth", None, "train", n=20, image_size=32, seed=3)
    assert train["image"][0].shape == (32, 32, 3)
    hashes = {img.tobytes() for img in train["image"]}
    assert not hashes & {img.tobytes() for img in test["image"]}
    assert all(np.array_equal(a, b) for a, b in zip(train["image"], again["image"]))


# ---------------------------------------------------------------------------- errors


def test_missing_label_file_names_path(tmp_path):
    (tmp_path / "Image" / "aligned").mkdir(parents=True)
    with pytest.raises(data_helper.DatasetNotFoundError) as err:
        data_helper.read_split("rafdb", str(tmp_path), "train")
    message = str(err.value)
    assert "list_patition_label.txt" in message and str(tmp_path) in message and "Expected" in message
    assert isinstance(err.value, FileNotFoundError)
    with pytest.raises(data_helper.DatasetNotFoundError, match="training.csv"):
        data_helper.read_split("affectnet", str(tmp_path), "train")
    with pytest.raises(data_helper.DatasetNotFoundError, match="data folder not found"):
        data_helper.read_split("fer2013", str(tmp_path / "nowhere"), "train")


def test_label_out_of_range_names_file_and_line(layouts, tmp_path):
    raf = _copy(layouts, "rafdb", tmp_path)
    label_file = raf / "EmoLabel" / "list_patition_label.txt"
    lines = label_file.read_text().splitlines()
    lines[3] = lines[3].split()[0] + " 9"
    label_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(data_helper.DatasetFormatError) as err:
        data_helper.read_split("rafdb", str(raf), "test")
    message = str(err.value)
    assert str(label_file) in message and "line 4" in message and "out of range 1..7" in message
    assert "Expected lines" in message
    lines[3] = "train_00004.jpg"
    label_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(data_helper.DatasetFormatError, match="line 4: cannot parse"):
        data_helper.read_split("rafdb", str(raf), "train")


def test_wrong_columns_and_bad_values_in_csvs(layouts, tmp_path):
    aff = _copy(layouts, "affectnet", tmp_path)
    csv_file = aff / "validation.csv"
    text = csv_file.read_text()
    csv_file.write_text(text.replace("expression", "emotion", 1))
    with pytest.raises(data_helper.DatasetFormatError) as err:
        data_helper.read_split("affectnet", str(aff), "test")
    assert f"{csv_file}, line 1" in str(err.value) and "expression" in str(err.value)
    rows = list(csv.reader(text.splitlines()))
    rows[2][6] = "12"
    with open(csv_file, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(data_helper.DatasetFormatError, match=r"line 3: expression 12 is out of range"):
        data_helper.read_split("affectnet", str(aff), "test")

    fer = _copy(layouts, "fer2013", tmp_path)
    rows = list(csv.reader(open(fer / "fer2013.csv", newline="")))
    rows[5][1] = " ".join(rows[5][1].split()[:100])
    rows[9][0] = "7"
    with open(fer / "fer2013.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(data_helper.DatasetFormatError, match=r"line 6: pixels holds 100 values"):
        data_helper.read_split("fer2013", str(fer), "train")
    rows[5] = rows[4]
    with open(fer / "fer2013.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(data_helper.DatasetFormatError, match=r"line 10: emotion 7 is out of range 0..6"):
        data_helper.read_split("fer2013", str(fer), "train")


def test_preprocessed_and_folder_errors(layouts, tmp_path):
    pre = _copy(layouts, "preprocessed", tmp_path)
    annotations = pre / "train_set" / "annotations"
    first = sorted(os.listdir(annotations))[0]
    np.save(annotations / first, np.array(11))
    with pytest.raises(data_helper.DatasetFormatError, match=f"{first}: label 11 is out of range 0..7"):
        data_helper.read_split("preprocessed", str(pre), "train")
    np.save(annotations / first, np.array([3, 4]))
    with pytest.raises(data_helper.DatasetFormatError,
                       match=rf"{first}: not a one-value \.npy label file \(holds 2 values\)"):
        data_helper.read_split("preprocessed", str(pre), "train")
    for value in (2.5, np.nan, np.inf):
        np.save(annotations / first, np.array(value))
        with pytest.raises(data_helper.DatasetFormatError,
                           match=f"{first}: label '{value}' is not an integer"):
            data_helper.read_split("preprocessed", str(pre), "train")
    os.remove(annotations / first)
    with pytest.raises(data_helper.DatasetNotFoundError, match=first):
        data_helper.read_split("preprocessed", str(pre), "train")

    folder = _copy(layouts, "folder", tmp_path)
    (folder / "train" / "Bored").mkdir()
    with pytest.raises(data_helper.DatasetFormatError, match="unknown class folder 'Bored'"):
        data_helper.read_split("folder", str(folder), "train")


def test_unknown_dataset_and_split():
    with pytest.raises(ValueError, match="Unknown dataset"):
        data_helper.read_split("imagenet", "/tmp", "train")
    with pytest.raises(ValueError, match="Unknown split"):
        data_helper.read_split("synth", None, "holdout", n=2)


# ---------------------------------------------------------------------------- images


def _encode(ext, image):
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def test_load_image_awkward_but_legal(tmp_path, generated):
    rgb = generated[0][0]
    bgr = rgb[..., ::-1]
    (tmp_path / "png_as.jpg").write_bytes(_encode(".png", bgr))
    np.testing.assert_array_equal(data_helper.load_image(str(tmp_path / "png_as.jpg")), rgb)
    grey = data_helper.load_image(_encode(".jpg", bgr[..., 0]))
    assert grey.shape == (SIZE, SIZE, 3) and np.array_equal(grey[..., 0], grey[..., 2])
    rgba = np.dstack([bgr, np.full(bgr.shape[:2], 90, np.uint8)])
    np.testing.assert_array_equal(data_helper.load_image(_encode(".png", rgba)), rgb)
    np.testing.assert_array_equal(data_helper.load_image(_encode(".bmp", bgr)), rgb)
    deep = data_helper.load_image(_encode(".png", bgr.astype(np.uint16) * 257))
    np.testing.assert_array_equal(deep, rgb)
    np.testing.assert_array_equal(data_helper.load_image(rgb.astype(np.float32) / 255.0), rgb)


def test_load_image_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.jpg") as missing:
        data_helper.load_image(str(tmp_path / "nothing.jpg"))
    assert isinstance(missing.value, PictureNotFoundError)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image at all")
    jpeg = _encode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    (tmp_path / "cut.jpg").write_bytes(jpeg[: len(jpeg) * 2 // 3])
    for name, reason in [("empty.jpg", "empty"), ("text.jpg", "not a JPEG"),
                         ("cut.jpg", "truncated JPEG")]:
        with pytest.raises(data_helper.ImageDecodeError, match=reason) as err:
            data_helper.load_image(str(tmp_path / name))
        assert name in str(err.value)


def _bad_rafdb(layouts, tmp_path):
    raf = _copy(layouts, "rafdb", tmp_path)
    image_dir = raf / "Image" / "aligned"
    names = [f"train_{i:05d}_aligned.jpg" for i in (2, 5, 7, 11)]
    os.remove(image_dir / names[0])
    (image_dir / names[1]).write_bytes(b"")
    (image_dir / names[2]).write_text("hello, I am text")
    data = (image_dir / names[3]).read_bytes()
    (image_dir / names[3]).write_bytes(data[: len(data) // 2])
    return raf, names


def test_bad_files_are_skipped_counted_and_warned_once(layouts, tmp_path):
    raf, names = _bad_rafdb(layouts, tmp_path)
    frame = data_helper.read_split("rafdb", str(raf), "train")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = data_helper.make_dataset(frame, input_size=32, batch_size=7, training=True, seed=1)
        seen = sum(int(y.shape[0]) for _, y in ds)
    bad = [w for w in caught if issubclass(w.category, data_helper.BadImageWarning)]
    assert len(bad) == 1
    message = str(bad[0].message)
    assert message.startswith(f"Skipped 4 of {N - N_TEST} images")
    assert all(name in message for name in names)
    assert seen == N - N_TEST - 4 == ds.num_examples
    reasons = dict((os.path.basename(p), r) for p, r in ds.skipped)
    assert reasons == {names[0]: "missing", names[1]: "empty file",
                       names[2]: reasons[names[2]], names[3]: "truncated JPEG (no end-of-image marker)"}
    assert reasons[names[2]].startswith("not a JPEG")


def test_undetected_corruption_is_dropped_not_raised(layouts, tmp_path):
    # validate="none" skips the checks: the pipeline itself must still drop bad files.
    raf, _ = _bad_rafdb(layouts, tmp_path)
    frame = data_helper.read_split("rafdb", str(raf), "train")
    ds = data_helper.make_dataset(frame, input_size=32, batch_size=8, validate="none")
    assert sum(int(y.shape[0]) for _, y in ds) == N - N_TEST - 4


def test_pipeline_decodes_awkward_files(layouts, tmp_path, generated):
    images, _ = generated
    folder = _copy(layouts, "folder", tmp_path)
    frame = data_helper.read_split("folder", str(folder), "train")
    paths = list(frame["image"])
    index = [int(os.path.splitext(os.path.basename(p))[0]) for p in paths]
    rgb = [images[i] for i in index[:5]]
    with open(paths[0], "wb") as f:  # PNG bytes under .jpg
        f.write(_encode(".png", rgb[0][..., ::-1]))
    with open(paths[1], "wb") as f:  # grey JPEG
        f.write(_encode(".jpg", cv2.cvtColor(rgb[1], cv2.COLOR_RGB2GRAY)))
    for k, (ext, image) in enumerate([(".bmp", rgb[2][..., ::-1]),
                                      (".png", np.dstack([rgb[3][..., ::-1], np.full((SIZE, SIZE), 7, np.uint8)])),
                                      (".png", rgb[4][..., ::-1].astype(np.uint16) * 257)], start=2):
        os.remove(paths[k])
        paths[k] = os.path.splitext(paths[k])[0] + ext
        with open(paths[k], "wb") as f:
            f.write(_encode(ext, image))
    frame = data_helper.read_split("folder", str(folder), "train")
    frame = frame[frame["image"].isin(paths[:5])]
    frame = frame.set_index("image").loc[paths[:5]].reset_index()
    ds = data_helper.make_dataset(frame, input_size=SIZE, batch_size=5)
    out = next(iter(ds))[0].numpy()
    np.testing.assert_allclose(out[0], rgb[0] / 255.0, atol=1e-5)  # lossless PNG
    assert np.allclose(out[1][..., 0], out[1][..., 1]) and np.allclose(out[1][..., 1], out[1][..., 2])
    for k in (2, 3, 4):
        np.testing.assert_allclose(out[k], rgb[k] / 255.0, atol=1e-5)


# ---------------------------------------------------------------------------- pipeline


@pytest.fixture(scope="module")
def synth_frame():
    return data_helper.read_split("synth", None, "train", n=24, image_size=40, seed=2)


def test_pipeline_output_contract(synth_frame):
    ds = data_helper.make_dataset(synth_frame, input_size=64, training=True, batch_size=10, seed=0)
    batches = list(ds)
    assert [int(b[0].shape[0]) for b in batches] == [10, 10, 4]
    images, labels = batches[0]
    assert images.shape == (10, 64, 64, 3) and images.dtype.name == "float32"
    assert labels.dtype.name == "int32"
    assert float(images.numpy().min()) >= 0.0 and float(images.numpy().max()) <= 1.0
    assert ds.steps_per_epoch == 3 and ds.num_examples == 24
    dropped = data_helper.make_dataset(synth_frame, input_size=64, batch_size=10, drop_remainder=True)
    assert [int(b[1].shape[0]) for b in dropped] == [10, 10] and dropped.steps_per_epoch == 2


def test_eval_is_exact_and_training_augments(synth_frame):
    source = np.stack(synth_frame["image"]) / 255.0
    labels = synth_frame["label"].to_numpy()
    eval_ds = data_helper.make_dataset(synth_frame, input_size=40, batch_size=24)
    first = next(iter(eval_ds))
    second = next(iter(eval_ds))
    np.testing.assert_allclose(first[0].numpy(), source, atol=1e-6)
    np.testing.assert_array_equal(first[0].numpy(), second[0].numpy())
    np.testing.assert_array_equal(first[1].numpy(), labels)
    train_ds = data_helper.make_dataset(synth_frame, input_size=40, batch_size=24, training=True,
                                        shuffle=False, seed=3)
    augmented, train_labels = next(iter(train_ds))
    np.testing.assert_array_equal(train_labels.numpy(), labels)
    change = np.abs(augmented.numpy() - source).mean(axis=(1, 2, 3))
    assert (change > 0.01).all(), change


def test_resize_matches_independent_bilinear(synth_frame):
    ds = data_helper.make_dataset(synth_frame.iloc[:4], input_size=80, batch_size=4)
    out = next(iter(ds))[0].numpy()
    for k in range(4):
        ref = cv2.resize(synth_frame["image"][k].astype(np.float32) / 255.0, (80, 80),
                         interpolation=cv2.INTER_LINEAR)
        assert np.abs(out[k] - ref).mean() < 0.01


def test_an_epoch_is_fixed_by_seed_and_epoch(synth_frame):
    def run(seed):
        epochs = [data_helper.make_dataset(synth_frame, input_size=32, training=True, batch_size=8,
                                           seed=seed, epoch=epoch) for epoch in (0, 1)]
        return np.concatenate([x.numpy() for ds in epochs for x, _ in ds])

    a, b, c = run(11), run(11), run(12)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a[:24], a[24:])  # the second epoch draws anew


def test_rows_prepared_once_give_every_epoch_the_frames_batches(synth_frame):
    from adcorre.data import input_pipeline

    rows = input_pipeline.prepare_rows(synth_frame, input_size=32)
    for epoch in (0, 1, 2):
        settings = dict(input_size=32, training=True, batch_size=8, seed=6, epoch=epoch,
                        skip_batches=epoch % 2, num_batches=2)
        from_rows = data_helper.make_dataset(rows, **settings)
        from_frame = data_helper.make_dataset(synth_frame, **settings)
        for (x, y), (x_ref, y_ref) in zip(from_rows, from_frame, strict=True):
            np.testing.assert_array_equal(x.numpy(), x_ref.numpy())
            np.testing.assert_array_equal(y.numpy(), y_ref.numpy())
        assert (from_rows.num_examples, from_rows.steps_per_epoch) == (
            from_frame.num_examples, from_frame.steps_per_epoch)
    with pytest.raises(ValueError, match="prepared for input_size 32, not 40"):
        data_helper.make_dataset(rows, input_size=40)


def test_the_pipelines_bad_arguments_are_one_error_each(synth_frame, tmp_path):
    """Each names what it expected, as the family's kind (also the ValueError it was)."""
    from types import SimpleNamespace

    from adcorre.data import input_pipeline
    from adcorre.errors import DatasetFormatError, SettingError

    with pytest.raises(SettingError, match="augment must be True, False, an input_pipeline"):
        data_helper.make_dataset(synth_frame, input_size=32, augment="sideways")
    with pytest.raises(SettingError, match=r"shard must be \(num_shards, index\).*got \(2, 2\)"):
        data_helper.make_dataset(synth_frame, input_size=32, shard=(2, 2))
    with pytest.raises(SettingError, match="frame needs 'image' and 'label' columns"):
        input_pipeline.prepare_rows(synth_frame.drop(columns="label"), input_size=32)
    with pytest.raises(SettingError, match="mode must be 'header', 'decode' or 'none'"):
        input_pipeline.prepare_rows(synth_frame, input_size=32, validate="thorough")
    picture = str(tmp_path / "face.png")
    cv2.imwrite(picture, np.zeros((40, 40, 3), np.uint8))
    mixed = pd.DataFrame({"image": [synth_frame["image"][0], picture], "label": [0, 1]})
    with pytest.raises(SettingError, match="mixes arrays and paths"):
        input_pipeline.prepare_rows(mixed, input_size=32)
    missing = pd.DataFrame({"image": [str(tmp_path / "gone.jpg")], "label": [0]})
    with pytest.warns(UserWarning), pytest.raises(DatasetFormatError,
                                                  match="No usable images: 1 skipped"):
        input_pipeline.prepare_rows(missing, input_size=32)
    two_replicas = SimpleNamespace(num_replicas_in_sync=2)
    with pytest.raises(SettingError, match="batch_size 5 does not split evenly over 2"):
        input_pipeline.distribute_dataset(two_replicas, synth_frame, batch_size=5)


def test_epochs_reshuffle_and_an_epoch_repeats_exactly(synth_frame):
    def first_batch(epoch):
        ds = data_helper.make_dataset(synth_frame, input_size=32, training=True, batch_size=24,
                                      seed=4, epoch=epoch, augment=False)
        return ds, next(iter(ds))[0].numpy()

    ds, one = first_batch(0)
    np.testing.assert_array_equal(next(iter(ds))[0].numpy(), one)  # iterated again: the same epoch
    _, two = first_batch(1)
    assert not np.array_equal(one, two)
    np.testing.assert_allclose(np.sort(one.reshape(24, -1).sum(1)), np.sort(two.reshape(24, -1).sum(1)),
                               rtol=1e-5)  # same images, new order


def test_epoch_order_is_the_one_trainmodel_uses():
    labels = np.array([0] * 6 + [1] * 3 + [3])
    order = data_helper.epoch_order(labels, seed=5, epoch=2)
    np.testing.assert_array_equal(order, np.random.default_rng([5, 2]).permutation(10))
    np.testing.assert_array_equal(data_helper.epoch_order(labels, 5, 2, shuffle=False), np.arange(10))
    mrr = data_helper.epoch_order(labels, seed=5, epoch=2, mrr=True)
    assert np.bincount(labels[mrr]).tolist() == [6, 6, 0, 6]


def test_skipped_batches_are_those_of_the_uninterrupted_epoch(synth_frame):
    whole = data_helper.make_dataset(synth_frame, input_size=32, training=True, batch_size=8,
                                     seed=3, epoch=1)
    resumed = data_helper.make_dataset(synth_frame, input_size=32, training=True, batch_size=8,
                                       seed=3, epoch=1, skip_batches=2)
    batches = [x.numpy() for x, _ in whole]
    assert resumed.num_examples == 8 and resumed.steps_per_epoch == 1
    np.testing.assert_array_equal(next(iter(resumed))[0].numpy(), batches[2])  # same augmentation


def test_mrr_tops_every_class_up_each_epoch():
    labels = np.array([0] * 10 + [1] * 4 + [2] * 2 + [4] * 1)
    frame = _array_frame(range(len(labels)), labels)
    epochs = []
    for epoch in range(3):
        ds = data_helper.make_dataset(frame, input_size=8, batch_size=100, mrr=True, seed=0,
                                      epoch=epoch, augment=False)
        assert ds.num_examples == 40 and ds.class_counts.tolist() == [10, 10, 10, 0, 10, 0, 0]
        images, out_labels = next(iter(ds))
        ids = _ids(images.numpy())
        np.testing.assert_array_equal(labels[ids], out_labels.numpy())
        counts = np.bincount(out_labels.numpy(), minlength=7)
        assert counts.tolist() == [10, 10, 10, 0, 10, 0, 0]
        assert set(ids) == set(range(len(labels)))  # every original sample appears
        epochs.append(np.sort(ids))
    assert not all(np.array_equal(epochs[0], e) for e in epochs[1:])  # re-drawn per epoch


def test_shards_are_disjoint_and_cover_the_epoch():
    frame = _array_frame(range(50), np.arange(50) % 7)
    parts = [data_helper.make_dataset(frame, input_size=8, batch_size=64, training=True,
                                      augment=False, seed=9, shard=(3, k)) for k in range(3)]
    ids = [_ids(next(iter(p))[0].numpy()) for p in parts]
    assert sorted(np.concatenate(ids).tolist()) == list(range(50))
    assert [len(i) for i in ids] == [p.num_examples for p in parts] == [17, 17, 16]


_DISTRIBUTED = r"""
import json
import numpy as np, pandas as pd, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from adcorre import data as data_helper
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
frame = pd.DataFrame({"image": [np.full((8, 8, 3), v, np.uint8) for v in range(40)],
                      "label": np.arange(40) % 7})
dist = data_helper.distribute_dataset(strategy, frame, batch_size=8, training=True, augment=False,
                                      seed=3)
steps = []
for images, labels in dist:
    per_replica = [np.round(t.numpy()[:, 0, 0, 0] * 255).astype(int).tolist()
                   for t in strategy.experimental_local_results(images)]
    steps.append(per_replica)
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "steps": steps}))
"""


def test_distribute_dataset_over_two_logical_cpus():
    result = run_python(_DISTRIBUTED, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    seen = []
    for per_replica in out["steps"]:
        assert [len(r) for r in per_replica] == [4, 4]  # global batch 8 split per replica
        assert not set(per_replica[0]) & set(per_replica[1])
        seen += per_replica[0] + per_replica[1]
    assert sorted(seen) == list(range(40))
