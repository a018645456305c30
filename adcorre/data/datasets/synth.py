"""SynthFER drawn in memory: nothing is read from disk.

Each split draws from its own seed stream (`(seed, SPLIT_STREAMS[split])`), so train, val and
test never share a face. Written to disk, SynthFER takes the other datasets' layouts
(`adcorre synth --layout`); this record has no writer of its own.
"""

from adcorre.config import SYNTH_SPLIT_SIZES
from adcorre.data.datasets import Dataset, register
from adcorre.data.label_files import frame
from adcorre.labels import EXPRESSIONS_7

SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}


def read(data_dir, split, forced=None, n=None, image_size=112, seed=0, class_prior=None):
    """One split of SynthFER: (s, s, 3) RGB uint8 faces.

    Args:
        data_dir: ignored.
        split: "train", "val" or "test".
        forced: ignored (SynthFER draws the 7 basic expressions).
        n: faces (default `config.SYNTH_SPLIT_SIZES[split]`).
        image_size, seed, class_prior: as `synth_faces.generate` takes them.
    """
    from adcorre.data.synth.drawing import generate  # noqa: PLC0415 - OpenCV: only to draw

    n = SYNTH_SPLIT_SIZES[split] if n is None else int(n)
    images, labels = generate(n, image_size=image_size, seed=(int(seed), SPLIT_STREAMS[split]),
                              class_prior=class_prior)
    return frame(list(images), labels, dict(source="synth", seed=seed, image_size=image_size))


def _run_options(settings, split):
    size = settings.synth_train_size if split == "train" else settings.synth_test_size
    # Draw at the model's input size (up to 224), so no resize blurs the faces.
    return {"n": size, "image_size": min(settings.input_size, 224), "seed": settings.seed}


DATASET = register(Dataset(
    name="synth",
    title="SynthFER",
    splits=tuple(SPLIT_STREAMS),
    label_map={c: c for c in range(len(EXPRESSIONS_7))},  # drawn with canonical labels
    layout=("nothing: SynthFER is drawn in memory (`--synth-train-size`, default "
            f"{SYNTH_SPLIT_SIZES['train']}; `--synth-test-size`, default "
            f"{SYNTH_SPLIT_SIZES['test']})"),
    read=read,
    options=("n", "image_size", "seed", "class_prior"),
    needs_data_dir=False,
    run_options=_run_options,
))
