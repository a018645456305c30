"""The embedding map (embedding_map, TestModels.embedding_map, --embedding-plot): t-SNE of the
concatenated heads and of each head, on a SynthFER split written in RAF-DB's layout."""


import cv2
import keras
import numpy as np
import pytest

from adcorre.inference import embedding_map
from adcorre.data import synth_faces
from adcorre.models import weights_io
from adcorre.models.cnn_model import CNNModel
from adcorre.config import EXPRESSIONS_7
from adcorre.cli import test as test_cli
from adcorre.inference.model_tester import TestModels

HEADS = 3




@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    model = CNNModel().get_model("tiny", num_classes=7, weights=None, input_size=32,
                                 num_embeddings=HEADS, embedding_size=16)
    path = tmp_path_factory.mktemp("model") / "tiny.h5"
    return str(weights_io.save_model(model, path, labels=EXPRESSIONS_7, arch="tiny"))


@pytest.fixture(scope="module")
def rafdb(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_rafdb")
    synth_faces.write_dataset(str(root), layout="rafdb", n=150, image_size=48, seed=0)
    return str(root)


def test_tsne_gives_two_coordinates_per_sample_even_for_few_samples():
    features = np.random.default_rng(0).normal(size=(6, 80))
    points = embedding_map.tsne_2d(features)  # perplexity (6 - 1) / 3 < 6
    assert points.shape == (6, 2) and np.isfinite(points).all()
    np.testing.assert_array_equal(points, embedding_map.tsne_2d(features))  # seeded
    with pytest.raises(ValueError, match="at least 5 samples, got 4"):
        embedding_map.tsne_2d(features[:4])


def test_tsne_keeps_separated_clusters_apart():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 40)) * 10
    labels = np.repeat(np.arange(3), 30)
    points = embedding_map.tsne_2d(centres[labels] + rng.normal(size=(90, 40)))
    # Each point's nearest neighbour in the map belongs to its own cluster.
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    assert np.mean(labels[np.argmin(distances, axis=1)] == labels) > 0.95


def test_collect_embeddings_keeps_each_head_in_order(model_file):
    model, _ = weights_io.load_model(model_file)
    images = np.random.default_rng(2).random((10, 32, 32, 3)).astype("float32")
    batches = [(images[:4], np.arange(4)), (images[4:], np.arange(4, 10) % 7)]
    heads, labels = embedding_map.collect_embeddings(model, batches)
    outputs = model.predict_on_batch(images)
    assert len(heads) == HEADS and labels.tolist() == [0, 1, 2, 3, 4, 5, 6, 0, 1, 2]
    for head, output in zip(heads, outputs[1:]):
        np.testing.assert_allclose(head, output, atol=1e-5)


def test_embedding_map_of_a_dataset_split(model_file, rafdb, tmp_path):
    tester = TestModels(model_file, verbose=False)
    out = tmp_path / "map.png"
    result = tester.embedding_map("rafdb", out, data_dir=rafdb, split="train", max_samples=40)
    assert result["num_samples"] == 40 and result["num_available"] == 120
    assert list(result["points"]) == ["heads concatenated"] + [f"head {i}" for i in (1, 2, 3)]
    assert all(p.shape == (40, 2) for p in result["points"].values())
    assert set(result["labels"]) <= set(range(7))
    image = cv2.imread(str(out))
    assert image is not None and image.shape[1] > image.shape[0]
    whole = tester.embedding_map("rafdb", tmp_path / "all.png", data_dir=rafdb, split="test")
    assert whole["num_samples"] == whole["num_available"] == 30


def test_cli_says_how_many_pictures_were_mapped(model_file, rafdb, tmp_path, capsys):
    out = tmp_path / "map.png"
    code = test_cli.main(["--weights", model_file, "--dataset", "rafdb", "--data-dir", rafdb,
                   "--embedding-plot", str(out), "--max-samples", "25", "--split", "train"])
    assert code == 0 and out.is_file()
    assert "of the embeddings of 25 of 120 rafdb train pictures (4 maps)" in capsys.readouterr().out


def test_a_model_without_heads_is_a_clear_error(tmp_path, capsys):
    classifier = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3),
                                   keras.layers.GlobalAveragePooling2D(),
                                   keras.layers.Dense(7, activation="softmax")])
    with pytest.raises(embedding_map.NoEmbeddingsError, match="no embedding heads"):
        embedding_map.require_heads(classifier)
    path = tmp_path / "classifier.keras"
    classifier.save(path)
    # The error comes before the dataset is read: this folder holds RAF-DB's files (which the
    # command checks before TensorFlow loads), but no face.
    (tmp_path / "empty" / "EmoLabel").mkdir(parents=True)
    (tmp_path / "empty" / "EmoLabel" / "list_patition_label.txt").write_text("")
    (tmp_path / "empty" / "Image" / "aligned").mkdir(parents=True)
    code = test_cli.main(["--weights", str(path), "--labels", "fer2013", "--dataset", "rafdb",
                          "--data-dir", str(tmp_path / "empty"), "--embedding-plot",
                          str(tmp_path / "map.png")])
    assert code == 2 and "no embedding heads" in capsys.readouterr().err
