"""Throughput and latency of `adcorre test --serve` by number of concurrent clients.

Each server is `python test.py --weights xcp.h5 --serve --port 0` in a process of its own: this
checkout's (waitress, requests batched across clients) and, with `--baseline-repo`, another
checkout's (e.g. main's, before the batching) on the same model file, so the two are measured in
one run under the same load, level by level in turn. At each level N clients (threads of this
process, each with its own keep-alive connection) post grace_hopper.jpg to `/api/recognize` one
request after another for `--seconds`; the table gives requests/s, p50 and p95 latency and the mean
number of pictures per model call (from the server's `/metrics`; "-" for a server without it).
The ratios at the end are the issue's figures: the rate of 8 clients over the rate of one, and the
single-client p50 over the baseline's. "CPU ms/req" is the server process's CPU time per request
(Linux): on a machine shared with other work, where rates and latencies follow the load, it shows
what batching saves.

Run: `python bench/bench_server.py --baseline-repo /work/main` (about 4 minutes on 2 cores with
the default 15 s per level); `--server-options "--max-batch 8 --max-wait-ms 2"` passes options to
this checkout's server only, and given several times measures a server per set of options in the
same run (how the defaults were chosen).
"""

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LEVELS = (1, 2, 4, 8, 16)


def write_model(arch, folder, input_size=224):
    """A randomly initialised `arch` saved as train.py saves models (in a child process, so this
    one stays a light client); returns its path."""
    path = os.path.join(folder, f"{arch}.h5")
    code = ("import sys; from adcorre.models import weights_io; "
            "from adcorre.models.cnn_model import CNNModel; from adcorre.config import EXPRESSIONS_7; "
            f"m = CNNModel().get_model({arch!r}, num_classes=7, weights=None, input_size={input_size}); "
            f"weights_io.save_model(m, {path!r}, labels=EXPRESSIONS_7, arch={arch!r})")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    return path


class ServerProcess:
    """`python <repo>/test.py --weights W --serve --port 0 [options]` and its URL."""

    def __init__(self, name, repo, weights, options=()):
        self.name = name
        env = dict(os.environ, PYTHONPATH=repo)  # that checkout's `adcorre`, not the installed one
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(repo, "test.py"), "--weights", weights, "--serve",
             "--port", "0", *options], cwd=repo, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline()
        match = re.search(r"at (http://\S+/);", line)
        if not match:
            self.process.kill()
            raise RuntimeError(f"{name}: the server did not start ({line!r})")
        self.url = match.group(1)

    def close(self):
        self.process.terminate()
        self.process.wait(timeout=60)

    def cpu_seconds(self):
        """User + system CPU seconds of the server process so far (Linux), or None."""
        try:
            with open(f"/proc/{self.process.pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch_totals(session, url):
    """(model calls, pictures) so far from `/metrics`, or None where the server has none."""
    response = session.get(url + "metrics", timeout=60)
    if response.status_code != 200:
        return None
    found = dict(re.findall(r"^adcorre_batch_size_(count|sum) (\S+)$", response.text, re.M))
    return float(found.get("count", 0)), float(found.get("sum", 0))


def run_level(url, clients, seconds, data):
    """N clients posting `data` back to back for `seconds`: (requests/s, latencies in s)."""
    import requests

    latencies, lock = [], threading.Lock()
    start_line = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client():
        with requests.Session() as session:
            mine = []
            start_line.wait()
            while time.perf_counter() < deadline[0]:
                tick = time.perf_counter()
                response = session.post(url + "api/recognize", timeout=300,
                                        files={"image": ("grace_hopper.jpg", data)})
                response.raise_for_status()
                mine.append(time.perf_counter() - tick)
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start_line.wait()
    for thread in threads:
        thread.join()
    return len(latencies) / (time.perf_counter() - began), latencies


def measure(server, clients, seconds, data):
    """One round: the latencies, the seconds it took, the model calls and pictures it made."""
    import requests

    with requests.Session() as session:
        before = batch_totals(session, server.url)
        load = os.getloadavg()[0]
        cpu_before = server.cpu_seconds()
        rate, latencies = run_level(server.url, clients, seconds, data)
        cpu = None if cpu_before is None else server.cpu_seconds() - cpu_before
        after = batch_totals(session, server.url)
    calls = None if before is None else (after[0] - before[0], after[1] - before[1])
    print(f"  {server.name:<9} {clients:>2} clients: {rate:6.2f} req/s, p50 "
          f"{np.median(latencies) * 1000:7.1f} ms (load {load:.2f})", flush=True)
    return dict(latencies=latencies, seconds=len(latencies) / rate, calls=calls, load=load,
                cpu=cpu)


def combine(rounds):
    """A level's row from its rounds: requests/s over all of them, percentiles of all latencies."""
    latencies = np.concatenate([part["latencies"] for part in rounds]) * 1000
    calls = [part["calls"] for part in rounds]
    batch = None
    if all(calls) and sum(c[0] for c in calls):
        batch = sum(c[1] for c in calls) / sum(c[0] for c in calls)
    p50, p95 = np.percentile(latencies, [50, 95])
    cpu = [part["cpu"] for part in rounds]
    cpu_ms = None if None in cpu else 1000 * sum(cpu) / len(latencies)
    return dict(rate=len(latencies) / sum(part["seconds"] for part in rounds), p50=p50, p95=p95,
                batch=batch, load=float(np.mean([part["load"] for part in rounds])),
                cpu_ms=cpu_ms)


def warm_up(server, data):
    # The first calls of each batch size trace the model's function.
    run_level(server.url, 1, 3, data)
    run_level(server.url, 8, 5, data)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-repo", help="another checkout to measure in the same run "
                                                "(e.g. main's), with its default options")
    parser.add_argument("--arch", default="xcp")
    parser.add_argument("--seconds", type=float, default=15.0, help="per level and server")
    parser.add_argument("--rounds", type=int, default=3,
                        help="the servers take turns this many times at each level")
    parser.add_argument("--levels", type=int, nargs="+", default=list(LEVELS))
    parser.add_argument("--server-options", action="append",
                        help="options for this checkout's server, e.g. '--max-wait-ms 2'; given "
                             "again, another server of this checkout with those options takes "
                             "its turns too (this#2, ...)")
    args = parser.parse_args(argv)

    import matplotlib.cbook

    picture = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    with open(picture, "rb") as handle:
        data = handle.read()
    print(f"{os.cpu_count()} CPUs visible; {args.arch} at 224 px, random weights; "
          f"grace_hopper.jpg (512 x 600, one face); {args.seconds:g} s per level; "
          f"load average {os.getloadavg()[0]:.2f} at the start\n", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        weights = write_model(args.arch, folder)
        servers = []
        try:
            if args.baseline_repo:
                servers.append(ServerProcess("baseline", os.path.abspath(args.baseline_repo),
                                             weights))
            for number, options in enumerate(args.server_options or [""]):
                name = "this" if number == 0 else f"this#{number + 1}"
                servers.append(ServerProcess(name, REPO, weights, shlex.split(options)))
            for server in servers:
                warm_up(server, data)
            results = {server.name: {} for server in servers}
            for level in args.levels:
                # The servers take turns at each level, in short rounds: the same load for both.
                runs = {server.name: [] for server in servers}
                for _ in range(args.rounds):
                    for server in servers:
                        runs[server.name].append(
                            measure(server, level, args.seconds / args.rounds, data))
                for name, parts in runs.items():
                    results[name][level] = combine(parts)
        finally:
            for server in servers:
                server.close()
    print_table(results, args)


def print_table(results, args):
    print(f"\n{'server':<9} {'clients':>7} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'batch':>6} {'CPU ms/req':>10} {'load':>5}")
    for name, rows in results.items():
        for level, row in rows.items():
            batch = "-" if row["batch"] is None else f"{row['batch']:.2f}"
            cpu = "-" if row["cpu_ms"] is None else f"{row['cpu_ms']:.0f}"
            print(f"{name:<9} {level:>7} {row['rate']:7.2f} {row['p50']:8.1f} {row['p95']:8.1f} "
                  f"{batch:>6} {cpu:>10} {row['load']:5.2f}")
    print()
    for name, rows in results.items():
        if 1 in rows:
            for level in rows:
                if level != 1:
                    print(f"{name}: {level} clients / 1 client, requests/s: "
                          f"{rows[level]['rate'] / rows[1]['rate']:.2f}x")
    if "baseline" in results and 1 in results["baseline"] and 1 in results["this"]:
        print(f"single-client p50, this / baseline: "
              f"{results['this'][1]['p50'] / results['baseline'][1]['p50']:.2f}x")
        for level in results["this"]:
            if level in results["baseline"]:
                print(f"{level} clients, requests/s, this / baseline: "
                      f"{results['this'][level]['rate'] / results['baseline'][level]['rate']:.2f}x")
    options = args.server_options or [""]
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end; server options: " + "; ".join(
        f"{'this' if i == 0 else f'this#{i + 1}'}: {o or '(defaults)'}"
        for i, o in enumerate(options)))


if __name__ == "__main__":
    main()
