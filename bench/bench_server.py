"""Latency of one `POST /api/recognize` (server.py) beside `recognize_fer` on the same picture.

For the `tiny` arch and `xcp` (Xception), both at 224 px with random weights: the server runs in
this process on a free loopback port (Werkzeug's threaded server, as `test.py --serve` runs
it) and each round times, one after the other, `TestModels.recognize_fer(path)` (what the
CLI's `--image` does), `TestModels.recognize_faces(bytes)` (what the server computes), one
HTTP request with the picture as multipart upload (a new connection each time, as a browser's
fetch to this server gets) and `GET /api/health` (the HTTP round trip alone). Interleaving the three puts them under the same machine load;
the ratio of the p50s is the figure to compare across machines.

Run: `python bench/bench_server.py [--repeats 30] [--threads 2]` (about a minute on 2 cores).
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench_inference import configure_threads, percentiles, random_tester  # noqa: E402


def bench_arch(arch, folder, picture, repeats):
    import requests

    from adcorre.serve import server

    tester = random_tester(arch, folder)
    with open(picture, "rb") as handle:
        data = handle.read()
    with server.RecognitionServer(tester, port=0, log_requests=False).start() as web:
        url = web.url + "api/recognize"
        calls = {
            "recognize_fer": lambda: tester.recognize_fer(picture),
            "recognize_faces": lambda: tester.recognize_faces(data),
            "POST /api/recognize": lambda: requests.post(
                url, files={"image": ("grace_hopper.jpg", data)}, timeout=120).raise_for_status(),
            # The HTTP round trip alone (connection, threads, JSON), no picture and no model.
            "GET /api/health": lambda: requests.get(web.url + "api/health",
                                                    timeout=120).raise_for_status(),
        }
        times = {name: [] for name in calls}
        for call in calls.values():  # traces the predict function, warms caches
            for _ in range(3):
                call()
        for _ in range(repeats):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    return {name: percentiles(values) for name, values in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow and OpenCV threads")
    args = parser.parse_args(argv)

    import matplotlib.cbook

    tf = configure_threads(args.threads)
    picture = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    print(f"{os.cpu_count()} CPUs visible, {args.threads} threads; TensorFlow {tf.__version__}; "
          f"grace_hopper.jpg (512 x 600, one face); {args.repeats} rounds after 3 warm-up calls "
          f"each; load average {os.getloadavg()[0]:.1f} at the start\n")
    with tempfile.TemporaryDirectory() as folder:
        results = {arch: bench_arch(arch, folder, picture, args.repeats) for arch in ("tiny", "xcp")}
    print(f"{'arch':<5} {'call':<20} {'p50 ms':>8} {'p95 ms':>8} {'p50 / recognize_fer':>20}")
    for arch, rows in results.items():
        baseline = rows["recognize_fer"][0]
        for name, (p50, p95) in rows.items():
            print(f"{arch:<5} {name:<20} {p50:8.1f} {p95:8.1f} {p50 / baseline:20.2f}")
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
