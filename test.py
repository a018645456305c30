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
    python test.py --weights W --serve [--host 127.0.0.1] [--port 8000]    # web app + JSON API
    python test.py --weights W --video clip.mp4 [--csv rows.csv] [--plot p.png] [--annotate a.mp4]
    python test.py --weights W --webcam [0] [--csv rows.csv]               # live, in a window
    python test.py --weights W --image folder/ --csv rows.csv              # one row per face
    python test.py --weights W --image face.jpg --explain gradcam.png
    python test.py --weights W --dataset D --embedding-plot tsne.png [--max-samples 1000]
Foreign classifiers take `--labels fer2013 --input-range=-1,1` (see trained_models/README.md).
"""

import argparse
import json
import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import config  # noqa: E402
import face_crops  # noqa: E402
import media_analysis  # noqa: E402
import server  # noqa: E402
import weights_io  # noqa: E402
# Re-exported under the official module name (`from test import TestModels`).
from inference import (  # noqa: E402, F401
    EXPORT_FORMATS,
    USER_ERRORS,
    TestModels,
    configure_devices,
)
from reports import classification_report, format_report, plot_timeline  # noqa: E402, F401

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
    _add_serve_arguments(parser, task)
    _add_media_arguments(parser, task)
    return parser


def _add_serve_arguments(parser, task):
    task.add_argument("--serve", action="store_true",
                      help="start the web app and HTTP API (see --host, --port)")
    serving = parser.add_argument_group(
        "web app and HTTP API (with --serve)",
        "GET / is the page; POST /api/recognize takes a picture in the multipart field "
        "'image' and answers JSON (README: Web app and HTTP API).")
    serving.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this computer only). Any other "
             "address, e.g. 0.0.0.0, lets everyone who can reach this machine use the model "
             "and see its name and labels: your explicit choice")
    serving.add_argument("--port", type=_parse_port, default=8000,
                         help="TCP port (default 8000; 0 takes a free one)")
    serving.add_argument(
        "--max-upload-mb", type=_parse_megabytes, default=server.MAX_UPLOAD_BYTES / 1e6,
        help=f"largest picture upload in MB (default {server.MAX_UPLOAD_BYTES / 1e6:g}); "
             "bigger ones are refused with HTTP 413")


def _parse_port(text):
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port 0..65535 (0: any free one), got {text!r}")
    return port


def _parse_megabytes(text):
    try:
        megabytes = float(text)
    except ValueError:
        megabytes = 0.0
    if not megabytes > 0 or megabytes == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of MB, got {text!r}")
    return megabytes


def _serve(tester, args):
    """Serves until Ctrl+C; the model is already loaded, once, in `tester`."""
    try:
        web = server.RecognitionServer(tester, args.host, args.port,
                                       max_upload_bytes=int(args.max_upload_mb * 1e6))
    except server.ServerStartError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    where = "" if args.host == "127.0.0.1" else f" (listening on {args.host})"
    print(f"Serving {os.path.basename(args.weights)} at {web.url}{where}; "
          f"API: POST {web.url}api/recognize. Ctrl+C stops.", flush=True)
    try:
        web.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        web.close()
    return 0


# ---------------------------------------------- videos, webcams, folders to CSV; explanations


def _add_media_arguments(parser, task):
    task.add_argument("--video", help="recognise every face of every frame of a video file")
    task.add_argument("--webcam", type=int, nargs="?", const=0, metavar="INDEX",
                      help="live recognition from a camera (default 0) in a window; q quits")
    media = parser.add_argument_group(
        "videos, webcams, folders and explanations",
        "Rows: one per face per frame (or picture): frame, time_s (or path), face, x, y, w, h, "
        "label, one probability per class (README: Videos, webcams, folders, Grad-CAM and the "
        "embedding map).")
    media.add_argument("--csv", help="write the rows to this CSV (with --video, --webcam, or "
                                     "--image: one row per face per picture, errors included)")
    media.add_argument("--plot", help="with --video / --webcam: PNG of each class's probability "
                                      "over time (largest face)")
    media.add_argument("--annotate", help="with --video: write the video with boxes and labels "
                                          "(.mp4, .avi, .mkv or .mov)")
    media.add_argument("--every", type=_positive_int, default=1,
                       help="with --video: analyse every N-th frame (default 1)")
    media.add_argument("--detect-every", type=_positive_int, default=1,
                       help="with --video: run the face detector on every N-th analysed frame "
                            "and reuse its faces between (faster; default 1 = detect on each)")
    media.add_argument("--explain", help="with one --image: PNG of the face crop and the "
                                         "Grad-CAM of the predicted class")
    media.add_argument("--embedding-plot", help="with --dataset: PNG of the t-SNE of the "
                                                "embedding heads by true class (instead of "
                                                "the evaluation)")
    media.add_argument("--max-samples", type=_positive_int, default=1000,
                       help="with --embedding-plot: at most this many pictures (default 1000, "
                            "a random sample)")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _check_media_arguments(parser, args):
    """Options of this group used without the task they belong to: one usage error."""
    stream = args.video is not None or args.webcam is not None
    needs = [("--plot", args.plot, stream, "--video or --webcam"),
             ("--annotate", args.annotate, args.video, "--video"),
             ("--every", args.every != 1, args.video, "--video"),
             ("--detect-every", args.detect_every != 1, args.video, "--video"),
             ("--csv", args.csv, stream or args.image, "--video, --webcam or --image"),
             ("--explain", args.explain, args.image, "--image"),
             ("--embedding-plot", args.embedding_plot, args.dataset, "--dataset"),
             ("--max-samples", args.max_samples != 1000, args.embedding_plot, "--embedding-plot")]
    for option, given, task, expected in needs:
        if given and not task:
            parser.error(f"{option} goes with {expected}")
    if args.explain and (args.csv or len(args.image) != 1 or os.path.isdir(args.image[0])):
        parser.error("--explain takes exactly one picture (--image PICTURE), without --csv")


def _is_media_task(args):
    return bool(args.video or args.webcam is not None or args.explain or args.embedding_plot
                or (args.image and args.csv))


def _run_media_task(tester, args):
    """Runs the task; warnings (a video broken in the middle) print as one line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if args.explain:
                return _explain(tester, args)
            if args.embedding_plot:
                return _embedding_plot(tester, args)
            if args.image:
                return _pictures_to_csv(tester, args)
            return _video_or_webcam(tester, args)
        finally:
            for warning in caught:
                print(f"warning: {warning.message}", file=sys.stderr)


def _video_or_webcam(tester, args):
    start = time.perf_counter()
    if args.video is not None:
        rows = tester.recognize_video(args.video, args.csv, args.every, annotate_path=args.annotate,
                                      detect_every=args.detect_every, progress=sys.stderr.isatty())
        source = args.video
    else:
        capture = media_analysis.open_webcam(args.webcam)
        rows = media_analysis.recognize_stream(tester, capture, media_analysis.show_in_window(),
                                               csv_path=args.csv)
        source = f"camera {args.webcam}"
    seconds = time.perf_counter() - start
    frames = rows["frame"].nunique()
    summary = (f"{source}: {frames} frames analysed in {seconds:.1f} s "
               f"({frames / max(seconds, 1e-9):.1f} frames/s), {len(rows)} rows, "
               f"{int(rows['x'].notna().sum())} with a face")
    if args.plot and len(rows):
        plot_timeline(rows, tester.exps, args.plot, title=os.path.basename(source))
    if args.csv is None:  # the rows go to stdout, the summary to stderr
        rows.to_csv(sys.stdout, index=False)
        print(summary, file=sys.stderr)
    else:
        print(summary + f"; rows written to {args.csv}")
    written = ((args.plot if len(rows) else None, "plot"), (args.annotate, "annotated video"))
    for option, what in written:
        if option:
            print(f"{what} written to {option}")
    return 0


def _pictures_to_csv(tester, args):
    paths = _picture_paths(args.image)
    rows = tester.recognize_pictures(paths, args.csv)
    failed = int((rows["error"] != "").sum())
    print(f"{len(paths)} pictures, {len(rows)} rows ({failed} pictures could not be read) "
          f"written to {args.csv}")
    return 1 if failed else 0


def _explain(tester, args):
    result = tester.explain(args.image[0], args.explain)
    probability = result["probabilities"][result["label"]]
    print(f"{args.image[0]}: {result['label']} {probability:.3f}; Grad-CAM on layer "
          f"{result['layer']} written to {args.explain}")
    return 0


def _embedding_plot(tester, args):
    result = tester.embedding_map(args.dataset, args.embedding_plot, args.data_dir, args.split,
                                  max_samples=args.max_samples, batch_size=args.batch_size)
    print(f"t-SNE of the embeddings of {result['num_samples']} of {result['num_available']} "
          f"{args.dataset} {args.split} pictures ({len(result['points'])} maps) written to "
          f"{args.embedding_plot}")
    return 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_media_arguments(parser, args)
    try:
        tester = TestModels(
            args.weights, GPU=not args.cpu, labels=_parse_labels(args.labels),
            input_range=args.input_range, input_size=args.input_size,
            detector=None if args.detector == "none" else args.detector,
            align=not args.no_align, margin=args.margin, verbose=False)
        if args.serve:
            return _serve(tester, args)
        if _is_media_task(args):
            return _run_media_task(tester, args)
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
