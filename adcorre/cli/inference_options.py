"""The options of `python test.py`, parsed before TensorFlow loads.

`parse_args` answers `--help` at once and rejects a bad value (a margin out of range, a port
that is not one, a misspelt option, an option without its task, a model file, picture, video
or dataset folder that is not there...) with one usage error and exit status 2, before the seconds TensorFlow takes to import;
`adcorre.cli.test.main` then loads the model.

Example (the parser alone; `parse_args` also checks that the files named exist):
>>> args = build_parser().parse_args(["--weights", "m.h5", "--image", "a.jpg", "--margin", "0.3"])
>>> args.image, args.margin, args.detector
(['a.jpg'], 0.3, 'blazeface')
"""

import argparse
import os

from adcorre import config
from adcorre.cli.common import (
    check_data_dir,
    input_range,
    labels,
    number,
    positive_int,
    refuse_dash_values,
)
from adcorre.cli.option_parser import OptionParser
from adcorre.cli.weights import ListWeights
from adcorre.data import datasets
from adcorre.inference import face_crops
from adcorre.models import weights_table
from adcorre.serve import batching

# `media_analysis.DEFAULT_STALL_TIMEOUT_S` (that module loads pandas: not before an option is
# known to be right); tests/cli checks that the two agree.
DEFAULT_STALL_TIMEOUT_S = 10.0

# `--workers N` above 1: what waitress does instead, and where several processes are to be had.
WORKERS_REFUSED = (
    "--workers {workers}: the server of --serve (waitress) runs in one process, whose threads "
    "share one copy of the model and batch their pictures onto it; for several processes, "
    "each loading its own copy, run the same app under gunicorn (Linux, macOS): "
    "gunicorn -w {workers} -b 127.0.0.1:8000 \"adcorre.serve.server:create_app('{weights}')\" "
    "(docs/usage.md, Web app and HTTP API)")


def parse_args(argv=None, prog="test.py"):
    """Parses `argv` (default `sys.argv[1:]`); a bad value exits with status 2 and one line.

    A model file, picture, video or dataset folder that is not there is such a value too: it is
    reported here, naming its flag, before TensorFlow loads. An unknown option is reported
    before a missing one, so a misspelt `--imgae` is named rather than "--image is required".

    Args:
        argv: the options, as strings.
        prog: the command's name in usage and error lines.

    Returns:
        An `argparse.Namespace`.
    """
    parser = build_parser(prog)
    refuse_dash_values(parser, argv)
    _, unknown = build_parser(prog, require_task=False).parse_known_args(argv)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args = parser.parse_args(argv)
    check_media_arguments(parser, args)
    check_paths(parser, args)
    return args


def check_paths(parser, args):
    """A `--weights` file, an `--image` or `--video` path or a `--dataset`'s folder that is not
    there: one usage error. A file that is there but does not decode is said later, when it is
    read (one picture's error row, exit status 1; a video's error)."""
    named = not os.path.exists(args.weights) and weights_table.is_name(args.weights)
    if not os.path.isfile(args.weights) and not named:
        what = "a folder, not a file" if os.path.isdir(args.weights) else "not found"
        parser.error(f"argument --weights: {args.weights!r}: {what}; expected a Keras .h5 / "
                     ".keras model file, a PyTorch .pth checkpoint or a released model's name "
                     f"({', '.join(weights_table.ALIASES)}, ...; --list-weights lists them)")
    if named and weights_table.resolve(args.weights).kind == "keras_backbone":
        record = weights_table.resolve(args.weights)
        parser.error(f"argument --weights: {args.weights} is {record.kind_text}: it starts "
                     f"training (adcorre train --arch {record.arch} --weights {record.name}); "
                     "expected a model that recognises expressions")
    for path in args.image or ():
        if not os.path.exists(path):
            parser.error(f"argument --image: {path!r}: not found; expected a picture or a "
                         "folder of pictures")
    if args.video is not None and "://" in args.video and not os.path.exists(args.video):
        from adcorre.inference.media_analysis import STREAM_SCHEMES, is_stream

        if not is_stream(args.video):
            parser.error(f"argument --video: {args.video.split('://')[0]}:// addresses are not "
                         "read; expected a video file or an address starting with "
                         f"{', '.join(scheme + '://' for scheme in STREAM_SCHEMES)}")
    elif args.video is not None and not os.path.exists(args.video):
        camera = " (a camera is --webcam INDEX)" if args.video.isdigit() else ""
        parser.error(f"argument --video: {args.video!r}: not found; expected a video "
                     f"file or an http(s):// or rtsp:// address{camera}")
    if args.dataset and args.dataset != config.DatasetName.synth:
        check_data_dir(parser, args.dataset, args.data_dir)


def _parse_margin(text):
    try:
        return face_crops.check_margin(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser(prog="test.py", require_task=True):
    """The parser of `adcorre test`.

    Args:
        prog: the command's name in usage and error lines.
        require_task: False leaves `--weights` and the task optional (`parse_args` looks for
            unknown options with it first).

    Returns:
        A `cli.option_parser.OptionParser` (argparse's, with suggestions for misspelt options).
    """
    parser = OptionParser(
        prog=prog,
        usage=f"{'python ' if prog.endswith('.py') else ''}{prog} --weights W (--image P [P ...] "
              "| --dataset D | --export FORMAT | --video V | --webcam [I] | --serve) [options]",
        description="Recognise facial expressions with an Ad-Corre (or other Keras) model.")
    parser.add_argument("--weights", required=require_task,
                        help=".h5 / .keras model file, a PyTorch checkpoint (.pth), or a "
                             "released model by name (" + ", ".join(weights_table.ALIASES)
                             + ", or arch.tag: adcorre weights lists them), fetched once into "
                             "the cache")
    parser.add_argument("--list-weights", action=ListWeights,
                        help="list the released weights by name (file, source, classes, "
                             "reported accuracy, cached or not) and exit")
    task = parser.add_mutually_exclusive_group(required=require_task)
    task.add_argument("--image", nargs="+", help="picture(s) or folder(s) of pictures")
    task.add_argument("--dataset", help="evaluate on a dataset: " + ", ".join(datasets.names()))
    task.add_argument("--export", choices=config.EXPORT_FORMATS, help="write the model for serving")
    parser.add_argument("--data-dir", help="dataset folder (default: ./data/<dataset>)")
    parser.add_argument("--split", default="test", help="dataset split (default: test)")
    parser.add_argument("--plot-cm", help="write the normalised confusion matrix to this PNG")
    parser.add_argument("--batch-size", type=positive_int, default=32,
                        help="pictures (--dataset) or face crops (--image) per model call "
                             "(default: 32)")
    parser.add_argument("--out", help="export destination (default: next to the weights); "
                                      "never a folder or file the export did not write")
    parser.add_argument("--overwrite", action="store_true",
                        help="with --export: replace an earlier export of another model at "
                             "--out (an earlier export of the same model is replaced anyway)")
    parser.add_argument("--quantize", choices=("float16", "int8"),
                        help="with --export tflite: half-precision weights, or 8-bit weights and "
                             "activations calibrated on --representative (default: float32)")
    parser.add_argument("--representative", metavar="DATASET:SPLIT",
                        help="with --quantize int8: the pictures that calibrate it, e.g. "
                             "rafdb:train (with --data-dir) or synth:train")
    parser.add_argument("--labels", type=labels,
                        help="label names, comma separated, or a preset: " + ", ".join(
                            config.LABEL_PRESETS))
    parser.add_argument("--input-range", type=input_range,
                        help="LO,HI the model takes; write --input-range=-1,1 when LO is negative")
    parser.add_argument("--input-size", type=int, help="for files that do not fix it")
    parser.add_argument("--detector", default=face_crops.DEFAULT_DETECTOR,
                        choices=(*face_crops.DETECTORS, "none"),
                        help=f"face detector (default {face_crops.DEFAULT_DETECTOR}: BlazeFace, "
                             "fast, with eye keypoints; haar: OpenCV's cascades; mtcnn: needs "
                             "the mtcnn package; none: classify whole pictures)")
    parser.add_argument("--no-align", action="store_true", help="crop the box without levelling")
    parser.add_argument("--margin", type=_parse_margin, default=face_crops.DEFAULT_MARGIN,
                        help="context on each side of the face, a fraction of its width: 0 to "
                             f"{face_crops.MAX_MARGIN:g} (default {face_crops.DEFAULT_MARGIN:g})")
    parser.add_argument("--cpu", action="store_true", help="do not use a GPU")
    parser.add_argument("--json", action="store_true",
                        help="print results as JSON (--image: JSON lines, one object per "
                             "picture as each is done)")
    _add_serve_arguments(parser, task)
    _add_media_arguments(parser, task)
    return parser


def _add_serve_arguments(parser, task):
    task.add_argument("--serve", action="store_true",
                      help="start the web app and HTTP API (see --host, --port)")
    serving = parser.add_argument_group(
        "web app and HTTP API (with --serve)",
        "GET / is the page; POST /api/recognize takes a picture in the multipart field "
        "'image' and answers JSON (docs/usage.md: Web app and HTTP API).")
    serving.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this computer only). Any other "
             "address, e.g. 0.0.0.0, lets everyone who can reach this machine use the model "
             "and see its name and labels: your explicit choice")
    serving.add_argument("--port", type=_parse_port, default=8000,
                         help="TCP port (default 8000; 0 takes a free one)")
    serving.add_argument(
        "--max-upload-mb", type=number(1e-6, inclusive=True, why=" MB (1 byte)"),
        default=config.MAX_UPLOAD_BYTES / 1e6,
        help=f"largest picture upload in MB (default {config.MAX_UPLOAD_BYTES / 1e6:g}); "
             "bigger ones are refused with HTTP 413")
    serving.add_argument(
        "--max-batch", type=positive_int, default=batching.DEFAULT_MAX_BATCH,
        help=f"at most this many pictures of concurrent requests share one model call "
             f"(default {batching.DEFAULT_MAX_BATCH}; 1 turns batching off)")
    serving.add_argument(
        "--max-wait-ms", type=number(0, inclusive=True, why=" ms"),
        default=batching.DEFAULT_MAX_WAIT_MS,
        help=f"how long the model, once it has a picture, waits for more to share its call "
             f"(default {batching.DEFAULT_MAX_WAIT_MS:g} ms; 0: only the pictures already waiting)")
    serving.add_argument(
        "--workers", type=positive_int, default=1,
        help="server processes: 1 (waitress serves from one process, whose threads batch "
             "their pictures onto one copy of the model); for several processes see "
             "docs/usage.md (gunicorn with adcorre.serve.server:create_app)")


def _parse_port(text):
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port 0..65535 (0: any free one), got {text!r}")
    return port


def _add_media_arguments(parser, task):
    task.add_argument("--video", help="recognise every face of every frame of a video file, or "
                                      "of a stream at an http(s):// or rtsp:// address")
    task.add_argument("--webcam", type=int, nargs="?", const=0, metavar="INDEX",
                      help="live recognition from a camera (default 0) in a window; q quits")
    media = parser.add_argument_group(
        "videos, webcams, folders and explanations",
        "Rows: one per face per frame (or picture): frame, time_s (or path), face, person "
        "(videos and webcams), x, y, w, h, label, one probability per class (docs/usage.md: "
        "Videos, webcams, folders, Grad-CAM and the embedding map).")
    media.add_argument("--csv", help="write the rows to this CSV (with --video, --webcam: as "
                                     "they are analysed, so a stop keeps them; or --image: "
                                     "one row per face per picture, errors included)")
    media.add_argument("--plot", help="with --video / --webcam: PNG of each class's probability "
                                      "over time, one timeline per person")
    media.add_argument("--annotate", help="with --video: write the video with boxes, persons "
                                          "and labels (.mp4, .avi, .mkv or .mov)")
    media.add_argument("--smooth", type=number(0, inclusive=True), default=0.0,
                       metavar="SECONDS",
                       help="with --video / --webcam: average each person's probabilities (and "
                            "so its label) over the last SECONDS, for a steadier live label "
                            "(default 0: each frame's own)")
    media.add_argument("--stall-timeout", type=number(0, inclusive=False),
                       default=DEFAULT_STALL_TIMEOUT_S, metavar="SECONDS",
                       help="with --video ADDRESS: a stream that does not open, or sends no "
                            "frame, for SECONDS ends the run with the rows so far (default "
                            f"{DEFAULT_STALL_TIMEOUT_S:g})")
    media.add_argument("--every", type=positive_int, default=1,
                       help="with --video: analyse every N-th frame (default 1)")
    media.add_argument("--detect-every", type=positive_int, default=1,
                       help="with --video: run the face detector on every N-th analysed frame "
                            "and reuse its faces between (faster; default 1 = detect on each)")
    media.add_argument("--explain", help="with one --image: PNG of the face crop and the "
                                         "Grad-CAM of the predicted class")
    media.add_argument("--embedding-plot", help="with --dataset: PNG of the t-SNE of the "
                                                "embedding heads by true class (instead of "
                                                "the evaluation)")
    media.add_argument("--max-samples", type=positive_int, default=1000,
                       help="with --embedding-plot: at most this many pictures (default 1000, "
                            "a random sample)")


def check_media_arguments(parser, args):
    """Options of this group used without the task they belong to: one usage error."""
    stream = args.video is not None or args.webcam is not None
    def changed(name):  # an option left at its default was not given (or changes nothing)
        return getattr(args, name) != parser.get_default(name)

    needs = [("--plot-cm", args.plot_cm, args.dataset, "--dataset"),
             ("--split", changed("split"), args.dataset, "--dataset"),
             ("--data-dir", args.data_dir, args.dataset or args.representative,
              "--dataset or --representative"),
             ("--out", args.out, args.export, "--export"),
             ("--overwrite", args.overwrite, args.export, "--export"),
             ("--host", changed("host"), args.serve, "--serve"),
             ("--port", changed("port"), args.serve, "--serve"),
             ("--max-upload-mb", changed("max_upload_mb"), args.serve, "--serve"),
             ("--max-batch", changed("max_batch"), args.serve, "--serve"),
             ("--max-wait-ms", changed("max_wait_ms"), args.serve, "--serve"),
             ("--workers", changed("workers"), args.serve, "--serve"),
("--plot", args.plot, stream, "--video or --webcam"),
             ("--annotate", args.annotate, args.video, "--video"),
             ("--smooth", changed("smooth"), stream, "--video or --webcam"),
             ("--stall-timeout", changed("stall_timeout"), args.video, "--video"),
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
    if args.workers > 1:
        parser.error(WORKERS_REFUSED.format(workers=args.workers, weights=args.weights))
    if args.quantize and args.export != "tflite":
        parser.error("--quantize goes with --export tflite")
    if args.representative and args.quantize != "int8":
        parser.error("--representative goes with --quantize int8")
    if args.quantize == "int8" and not args.representative:
        parser.error("--quantize int8 needs --representative DATASET:SPLIT (the pictures that "
                     "calibrate its 8-bit ranges), e.g. rafdb:train")
    if args.representative:
        dataset, _, split = args.representative.partition(":")
        if dataset not in datasets.names() or not split:
            parser.error(f"--representative: expected DATASET:SPLIT with a dataset among "
                         f"{', '.join(datasets.names())}, got {args.representative!r}")
