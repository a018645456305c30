"""The embedding space, as the Ad-Corre paper pictures it: t-SNE of the k embedding heads.

The model's outputs after the probabilities are the k L2-normalised embeddings (n, d). The map
runs t-SNE (scikit-learn) on all of them concatenated (what the classifier reads) and on each
head alone, and draws the 2-D points coloured by the true class, one panel each, so one sees
whether the classes separate and whether the heads differ (ED pushes them apart).

Models without embedding heads (foreign classifiers, the ARM network) get a clear error: the
figure is about the heads, and a map of some other layer would be a different figure.

Example (random `tiny` model, random pictures):

```python
import numpy as np
from adcorre.models.cnn_model import CNNModel
from adcorre import config
model = CNNModel().get_model("tiny", weights=None, input_size=32, num_embeddings=2)
images, labels = np.random.rand(40, 32, 32, 3).astype("float32"), np.arange(40) % 7
heads, truth = collect_embeddings(model, [(images, labels)])
points = tsne_2d(np.concatenate(heads, axis=1))      # (40, 2)
plot_embedding_map({"heads concatenated": points}, truth, config.EXPRESSIONS_7, "map.png")
```
"""

import numpy as np

from adcorre.errors import ModelCapabilityError, SettingError
from adcorre.reports import pyplot, save_figure

# t-SNE's usual perplexity; smaller samples get (n - 1) / 3, which keeps it below n.
PERPLEXITY = 30.0
# Features are first reduced to this many principal components (t-SNE's usual first step:
# faster, and it drops the noise of the weakest directions).
PCA_COMPONENTS = 50
MIN_SAMPLES = 5


class NoEmbeddingsError(ModelCapabilityError):
    """The model has no embedding outputs to map."""


def require_heads(model):
    """Raises `NoEmbeddingsError` unless the model has embedding outputs after the class output."""
    if len(model.outputs) < 2:
        raise NoEmbeddingsError(
            f"Model {model.name!r} has one output (the classes) and no embedding heads: the "
            "embedding map draws the k embedding outputs of an Ad-Corre model ([probs, emb_1, "
            "..., emb_k]); foreign classifiers and the ARM network have none.")


def collect_embeddings(model, batches):
    """Runs the model over `(inputs, labels)` batches and keeps each head's embeddings.

    Args:
        model: a Keras model with outputs `[probs, emb_1, ..., emb_k]`.
        batches: iterable of `(model-ready inputs, labels)`.

    Returns:
        `(heads, labels)`: a list of k float arrays (n, d) and the int labels (n,).
    """
    require_heads(model)
    heads, labels = None, []
    for inputs, batch_labels in batches:
        outputs = [np.asarray(o) for o in model.predict_on_batch(inputs)[1:]]
        if heads is None:
            heads = [[] for _ in outputs]
        for head, output in zip(heads, outputs):
            head.append(output)
        labels.append(np.asarray(batch_labels).reshape(-1))
    if heads is None:
        raise SettingError("No samples to embed: the batches were empty.")
    return [np.concatenate(h) for h in heads], np.concatenate(labels).astype("int64")


def tsne_2d(features, seed=0):
    """2-D t-SNE of (n, d) features, after PCA to `PCA_COMPONENTS` dimensions when d is larger.

    Args:
        features: float array (n, d), n >= `MIN_SAMPLES`.
        seed: random state of PCA and t-SNE (the same seed gives the same map).

    Returns:
        float32 array (n, 2).
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    features = np.asarray(features, "float64")
    count = len(features)
    if count < MIN_SAMPLES:
        raise SettingError(f"t-SNE needs at least {MIN_SAMPLES} samples, got {count}.")
    components = min(PCA_COMPONENTS, count, features.shape[1])
    if features.shape[1] > components:
        features = PCA(components, random_state=seed).fit_transform(features)
    perplexity = min(PERPLEXITY, (count - 1) / 3.0)
    tsne = TSNE(2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed)
    # One OpenMP thread: on 2 shared cores its spinning threads made t-SNE of 1000 samples
    # 3x slower (10.2 s vs 3.4 s, load 6) and of 6 samples 200x slower.
    with threadpool_limits(limits=1, user_api="openmp"):
        embedded = tsne.fit_transform(features)
    return embedded.astype("float32")


def embedding_points(heads, seed=0):
    """The t-SNE maps of the concatenated heads and of each head.

    Returns:
        dict `{"heads concatenated": (n, 2), "head 1": (n, 2), ...}` (only the first key when
        there is one head).
    """
    points = {"heads concatenated": tsne_2d(np.concatenate(heads, axis=1), seed)}
    if len(heads) > 1:
        points.update({f"head {i + 1}": tsne_2d(head, seed) for i, head in enumerate(heads)})
    return points


def plot_embedding_map(points, labels, class_names, path, title=""):
    """Draws each 2-D map, points coloured by true class, in a grid; writes a PNG atomically.

    Args:
        points: `{panel title: (n, 2)}`, as `embedding_points` returns.
        labels: true class indices (n,) into `class_names`.
        class_names: names of the classes, in index order.
        path: the `.png` to write.
        title: the figure title.
    """
    plt = pyplot()
    columns = min(4, len(points))
    rows = -(-len(points) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.0 * rows + 0.6),
                                squeeze=False)
    colours = plt.get_cmap("tab10")
    labels = np.asarray(labels)
    for axis, (name, xy) in zip(axes.flat, points.items()):
        for index, class_name in enumerate(class_names):
            chosen = labels == index
            if chosen.any():
                axis.scatter(xy[chosen, 0], xy[chosen, 1], s=6, color=colours(index % 10),
                             label=class_name, linewidths=0)
        axis.set_title(name, fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
    for axis in list(axes.flat)[len(points):]:
        axis.set_axis_off()
    handles, names = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8,
                  markerscale=2.5, frameon=False)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout(rect=(0, 0.05, 1, 0.95))
    save_figure(figure, path)
    return path
