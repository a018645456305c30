"""`adcorre test` / `python test.py`: recognise, evaluate, export, videos, webcams, the web app.

The options are read and checked (`inference_options`), and a missing model file reported, before
TensorFlow loads; then one `TestModels` does the task. Exit status 0, 2 for a bad option or input
(one line naming it), 1 when some pictures of `--image` could not be read or the disk failed.

    python test.py --weights W --image PICTURE_OR_FOLDER [--image ...]
    python test.py --weights W --dataset rafdb --data-dir D [--split test] [--plot-cm cm.png]
    python test.py --weights W --export saved_model|tflite|onnx [--out PATH] [--overwrite]
    python test.py --weights W --serve [--host 127.0.0.1] [--port 8000]    # web app, JSON API, /metrics
    python test.py --weights W --video clip.mp4 [--csv rows.csv] [--plot p.png] [--annotate a.mp4]
    python test.py --weights W --video rtsp://camera/stream --csv rows.csv [--smooth 1]
    python test.py --weights W --webcam [0] [--csv rows.csv]               # live, in a window
    python test.py --weights W --image folder/ --csv rows.csv              # one row per face
    python test.py --weights W --image face.jpg --explain gradcam.png
    python test.py --weights W --dataset D --embedding-plot tsne.png [--max-samples 1000]
Foreign classifiers take `--labels fer2013 --input-range=-1,1` (see trained_models/README.md).
"""

import json
import os
import sys
import time
import warnings

from adcorre import config
from adcorre.cli import inference_options
from adcorre.cli.common import exit_status, quiet_broken_pipe, run_task
from adcorre.errors import PictureError, one_line
from adcorre.models import named_weights


# ------------------------------------------------------------------------------------------- CLI


def _picture_paths(sources):
    paths = []
    for source in sources:
        if os.path.isdir(source):
            found = sorted(
                os.path.join(source, name) for name in os.listdir(source)
                # "._a.jpg" (macOS's resource forks) and other hidden files are no pictures:
                # skipped as dataset_readers skips them.
                if name.lower().endswith(config.IMAGE_EXTENSIONS) and not name.startswith(".")
            )
            if not found:
                raise PictureError(
                    f"No pictures in folder {source!r} (expected files ending in "
                    f"{', '.join(config.IMAGE_EXTENSIONS)}).")
            paths.extend(found)
        else:
            paths.append(source)
    return paths


def _print_pictures(tester, paths, as_json, batch_size):
    """One line per picture (label, probability, box, or the error that picture met), printed
    a batch at a time: the crops of `batch_size` pictures share one model call, and a bad
    picture does not stop the others. With `as_json` each line is one JSON object (JSON
    lines). Returns how many failed."""
    from adcorre.data.pictures import printable_path

    failures = 0
    names = [printable_path(path) for path in paths]  # a name that is not UTF-8 prints escaped
    width = min(60, max(len("picture"), *(len(name) for name in names)))
    if not as_json:
        print(f"{'picture':<{width}}  {'label':<9} {'prob':>5}  box", flush=True)
    outcomes = tester.recognize_each(paths, largest_only=True, batch_size=batch_size)
    for name, (_, boxes, outcome) in zip(names, outcomes):
        if boxes is None:
            failures += 1
            row = {"picture": name, "error": _picture_error(outcome)}
        else:
            row = {"picture": name, **outcome[0]}
        print(json.dumps(row) if as_json else _picture_line(row, width), flush=True)
    return failures


def _picture_error(error):
    """One picture's error as one line; OpenCV's own errors are that picture's too (named by
    their type). Anything else is a bug of ours: raised again."""
    import cv2

    if exit_status(error) is not None:
        return one_line(error)
    if isinstance(error, cv2.error):
        return f"{type(error).__name__}: {one_line(error)}"
    raise error


def _picture_line(row, width):
    name = row["picture"] if len(row["picture"]) <= width else "..." + row["picture"][-width + 3:]
    if "error" in row:
        return f"{name:<{width}}  error: {row['error']}"
    probability = row["probabilities"][row["label"]]
    box = "none (whole picture)" if row["box"] is None else ",".join(map(str, row["box"]))
    return f"{name:<{width}}  {row['label']:<9} {probability:5.3f}  {box}"


def _print_summary(summary):
    print(f"{summary['dataset']} {summary['split']}: {summary['num_samples']} images, "
          f"accuracy {summary['accuracy']:.4f}, mean class accuracy "
          f"{summary['mean_class_accuracy']:.4f} (skipped: {summary['skipped_images']} "
          f"unreadable or without a usable face box, {summary['skipped_labels']} of classes "
          "the model lacks)")
    from adcorre.reports import format_report

    print(format_report(summary))


def _serve(tester, args):
    """Serves until Ctrl+C; the model is already loaded, once, in `tester`."""
    import logging

    from adcorre.serve import server

    # The access log and the server's warnings, one plain line each on stderr.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("adcorre.serve", "waitress"):
        logger = logging.getLogger(name)
        if not logger.handlers:  # once per process
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    web = server.RecognitionServer(tester, args.host, args.port,
                                   max_upload_bytes=round(args.max_upload_mb * 1e6),
                                   max_batch=args.max_batch, max_wait_ms=args.max_wait_ms)
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
    """Rows go to the CSV (or stdout) as they are analysed, and are kept in memory only for
    `--plot`, so a long video runs in flat memory. Ctrl+C or SIGTERM on a video: the summary
    and plot of the rows so far, then `stopped: ...` and exit status 130 / 143."""
    from adcorre.inference import media_analysis

    start = time.perf_counter()
    target = args.csv if args.csv is not None else sys.stdout
    stopped = None
    if args.video is not None:
        try:
            rows = tester.recognize_video(
                args.video, target, args.every, annotate_path=args.annotate,
                detect_every=args.detect_every, progress=sys.stderr.isatty(),
                smooth=args.smooth, stall_timeout=args.stall_timeout,
                return_table=args.plot is not None)
        except media_analysis.VideoStopped as stop:
            rows, stopped = stop.table, stop
        source = media_analysis.printable_source(args.video)
    else:
        capture = media_analysis.open_webcam(args.webcam)
        rows = media_analysis.recognize_stream(tester, capture, media_analysis.show_in_window(),
                                               csv_path=target, smooth=args.smooth)
        source = f"camera {args.webcam}"
    seconds = time.perf_counter() - start
    counts = rows.attrs
    frames = counts["frames_analysed"]
    summary = (f"{source}: {frames} frames analysed in {seconds:.1f} s "
               f"({frames / max(seconds, 1e-9):.1f} frames/s), {counts['rows']} rows, "
               f"{counts['rows_with_face']} with a face, {counts['people']} people")
    if args.plot and len(rows):
        from adcorre.reports import plot_timeline

        plot_timeline(rows, tester.exps, args.plot, title=os.path.basename(source))
    if args.csv is None:  # the rows went to stdout, the summary goes to stderr
        print(summary, file=sys.stderr)
    else:
        print(summary + f"; rows written to {args.csv}")
    written = ((args.plot if len(rows) else None, "plot"), (args.annotate, "annotated video"))
    for option, what in written:
        if option:
            print(f"{what} written to {option}")
    if stopped is not None:
        raise stopped
    return 0


def _pictures_to_csv(tester, args):
    paths = _picture_paths(args.image)
    rows = tester.recognize_pictures(paths, args.csv, batch_size=args.batch_size)
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


def _run(args):
    """Does what `args` (`inference_options.parse_args`) ask; the exit status."""
    # A named file is fetched (or found not fetchable: one error) before TensorFlow loads.
    named_weights.locate(args.weights)
    from adcorre import runtime  # TensorFlow loads here, once the options are known to be right
    from adcorre.inference.test_models import TestModels

    runtime.announce_device(use_gpu=not args.cpu)
    tester = TestModels(
        args.weights, GPU=not args.cpu, labels=args.labels,
        input_range=args.input_range, input_size=args.input_size,
        detector=None if args.detector == "none" else args.detector,
        align=not args.no_align, margin=args.margin, verbose=False)
    note = tester.drawn_faces_note()
    if note and (args.image or args.video or args.webcam is not None or args.serve):
        print(note, file=sys.stderr)
    note = tester.assumptions_note()  # every task: a wrong guess gives wrong labels silently
    if note:
        print(note, file=sys.stderr)
    if args.serve:
        return _serve(tester, args)
    if _is_media_task(args):
        return _run_media_task(tester, args)
    if args.image:
        failures = _print_pictures(tester, _picture_paths(args.image), args.json,
                                   args.batch_size)
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
    if args.quantize:
        suffix = f"_{args.quantize}{suffix}"
    out = args.out or os.path.splitext(args.weights)[0] + suffix
    representative = None
    if args.representative:
        dataset, _, split = args.representative.partition(":")
        representative = (dataset, args.data_dir, split)
    tester.export(out, args.export, overwrite=args.overwrite, quantize=args.quantize,
                  representative=representative)
    print(f"{args.export} written to {out} (labels and input range in {out.rstrip('/')}.json)")
    return 0


def main(argv=None, prog="test.py"):
    """Runs `adcorre test` on `argv` (default: `sys.argv[1:]`); returns the exit status.

    Args:
        argv: the options, as strings.
        prog: the command's name in usage and error lines.
    """
    def run():
        return run_task(_run, inference_options.parse_args(argv, prog=prog))

    return quiet_broken_pipe(run)


if __name__ == "__main__":
    sys.exit(main())
