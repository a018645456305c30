"""The official module name for inference: `TestModels` (from `inference`) and the CLI.

Example (needs a trained model file and a picture with a face):

```python
tester = TestModels(h5_address="trained_models/RafDB_8696.h5")
tester.recognize_fer("img.jpg")          # prints e.g. "Happy", returns
# {'label': 'Happy', 'probabilities': {'Neutral': 0.02, 'Happy': 0.91, ...}, 'box': (149, 100, 231, 231)}
```

CLI:
    python test.py --weights W --image PICTURE_OR_FOLDER [--image ...]
    python test.py --weights W --dataset rafdb --data-dir D [--split test] [--plot-cm cm.png]
    python test.py --weights W --export saved_model|tflite|onnx [--out PATH]
Foreign classifiers take `--labels fer2013 --input-range=-1,1` (see trained_models/README.md).
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import config  # noqa: E402
import face_crops  # noqa: E402
import weights_io  # noqa: E402
# Re-exported under the official module name (`from test import TestModels`).
from inference import (  # noqa: E402, F401
    EXPORT_FORMATS,
    USER_ERRORS,
    TestModels,
    configure_devices,
)
from reports import classification_report, format_report  # noqa: E402, F401

# ------------------------------------------------------------------------------------------- CLI


def _picture_paths(sources):
    paths = []
    for source in sources:
        if os.path.isdir(source):
            found = sorted(
                os.path.join(source, name) for name in os.listdir(source)
                if name.lower().endswith(config.IMAGE_EXTENSIONS)
            )
            if not found:
                raise FileNotFoundError(
                    f"No pictures in folder {source!r} (expected files ending in "
                    f"{', '.join(config.IMAGE_EXTENSIONS)}).")
            paths.extend(found)
        else:
            paths.append(source)
    return paths


def _print_pictures(tester, paths, as_json):
    """One line per picture (label, probability, box); returns how many failed."""
    failures, rows = 0, []
    for path in paths:
        try:
            result = tester.recognize_fer(path)
            rows.append({"picture": path, **result})
        except USER_ERRORS as error:
            failures += 1
            rows.append({"picture": path, "error": str(error)})
    if as_json:
        print(json.dumps(rows, indent=1))
        return failures
    width = min(60, max(len("picture"), *(len(row["picture"]) for row in rows)))
    print(f"{'picture':<{width}}  {'label':<9} {'prob':>5}  box")
    for row in rows:
        name = row["picture"] if len(row["picture"]) <= width else "..." + row["picture"][-width + 3:]
        if "error" in row:
            print(f"{name:<{width}}  error: {row['error']}")
            continue
        probability = row["probabilities"][row["label"]]
        box = "none (whole picture)" if row["box"] is None else ",".join(map(str, row["box"]))
        print(f"{name:<{width}}  {row['label']:<9} {probability:5.3f}  {box}")
    return failures


def _print_summary(summary):
    print(f"{summary['dataset']} {summary['split']}: {summary['num_samples']} images, "
          f"accuracy {summary['accuracy']:.4f}, mean class accuracy "
          f"{summary['mean_class_accuracy']:.4f} (skipped: {summary['skipped_images']} unreadable, "
          f"{summary['skipped_labels']} of classes the model lacks)")
    print(format_report(summary))


def _parse_range(text):
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (e.g. -1,1), got {text!r}") from None
    return lo, hi


def _parse_labels(text):
    if text is None or text.lower() in weights_io.LABEL_PRESETS:
        return text
    return [name.strip() for name in text.split(",")]


def build_parser():
    parser = argparse.ArgumentParser(
        description="Recognise facial expressions with an Ad-Corre (or other Keras) model.")
    parser.add_argument("--weights", required=True, help=".h5 / .keras model file")
    task = parser.add_mutually_exclusive_group(required=True)
    task.add_argument("--image", nargs="+", help="picture(s) or folder(s) of pictures")
    task.add_argument("--dataset", help="evaluate on a dataset: " + ", ".join(
        config.DatasetName.all))
    task.add_argument("--export", choices=EXPORT_FORMATS, help="write the model for serving")
    parser.add_argument("--data-dir", help="dataset folder (default: ./data/<dataset>)")
    parser.add_argument("--split", default="test", help="dataset split (default: test)")
    parser.add_argument("--plot-cm", help="write the normalised confusion matrix to this PNG")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", help="export destination (default: next to the weights)")
    parser.add_argument("--labels", help="label names, comma separated, or a preset: " + ", ".join(
        weights_io.LABEL_PRESETS))
    parser.add_argument("--input-range", type=_parse_range, help="LO,HI the model takes; write --input-range=-1,1 when LO is negative")
    parser.add_argument("--input-size", type=int, help="for files that do not fix it")
    parser.add_argument("--detector", default="haar", choices=("haar", "mtcnn", "none"))
    parser.add_argument("--no-align", action="store_true", help="crop the box without levelling")
    parser.add_argument("--margin", type=float, default=face_crops.DEFAULT_MARGIN)
    parser.add_argument("--cpu", action="store_true", help="do not use a GPU")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        tester = TestModels(
            args.weights, GPU=not args.cpu, labels=_parse_labels(args.labels),
            input_range=args.input_range, input_size=args.input_size,
            detector=None if args.detector == "none" else args.detector,
            align=not args.no_align, margin=args.margin, verbose=False)
        if args.image:
            failures = _print_pictures(tester, _picture_paths(args.image), args.json)
            return 1 if failures else 0
        if args.dataset:
            summary = tester.evaluate(args.dataset, args.data_dir, args.split,
                                      batch_size=args.batch_size, plot_cm=args.plot_cm)
            if args.json:
                print(json.dumps({**summary, "confusion_matrix": summary["confusion_matrix"].tolist()},
                                 indent=1))
            else:
                _print_summary(summary)
            if args.plot_cm:
                print(f"confusion matrix written to {args.plot_cm}")
            return 0
        suffix = {"saved_model": "_saved_model", "tflite": ".tflite", "onnx": ".onnx"}[args.export]
        out = args.out or os.path.splitext(args.weights)[0] + suffix
        tester.export(out, args.export)
        print(f"{args.export} written to {out} (labels and input range in {out.rstrip('/')}.json)")
        return 0
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
