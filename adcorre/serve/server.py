"""The web app and JSON API over one loaded model (`adcorre test --weights W --serve`).

- `GET /`: a page (`static/index.html` and its script and style sheet, nothing from the internet)
  to upload or drop a picture, or turn on the webcam, and see each face's box, label and
  probability bars.
- `POST /api/recognize` (multipart field `image`): `{"faces": [...], "width", "height",
  "model"}`, where `faces` is what `TestModels.recognize_faces` returns for that picture (largest
  face first; computed by `TestModels.recognize_batch` together with the pictures of other
  requests that arrived within a few milliseconds). `?whole=1` classifies the whole picture
  (`"box": null`) when no face is found, as `recognize_fer` and the CLI's `--image` do.
- `GET /api/health` -> `{"status": "ok"}`; `GET /api/model` -> labels, input size, arch...
- `GET /metrics`: requests, errors, latencies and batch sizes in Prometheus' text format
  (`metrics.ServerMetrics`).
- Bad input (no `image` field, an empty file, not a picture, an upload over the cap, a
  picture too large to decode) -> a 4xx with `{"error": "..."}`; the message of a picture
  problem is the one the CLI prints for the same picture.

`RecognitionApp` is a plain WSGI application: routing, multipart parsing and responses are
Werkzeug's. `RecognitionServer` runs it on waitress (a production WSGI server in pure Python:
HTTP/1.1 keep-alive and pipelining, request bodies read whole before the app sees them, the same
on Linux, macOS and Windows; docs/usage.md says why). Requests run in waitress' threads: each
reads and decodes its picture, then hands it to the app's `batching.Batcher`, whose one worker
runs detection and the model for every picture waiting (the model and the face detectors are
not safe for concurrent calls, and a batch costs the model less per picture).

Example (an untrained `tiny` model; Werkzeug's test client calls the app without a socket):
>>> from adcorre import CNNModel, TestModels, save_model
>>> from adcorre.config import EXPRESSIONS_7
>>> model = CNNModel().get_model("tiny", weights=None, input_size=32)
>>> path = save_model(model, "tiny.h5", labels=EXPRESSIONS_7, arch="tiny")
>>> app = RecognitionApp(TestModels(path, verbose=False))
>>> from werkzeug.test import Client
>>> Client(app).get("/api/health").json
{'status': 'ok'}
>>> Client(app).get("/api/model").json["input_size"]
[32, 32]
>>> response = Client(app).post("/api/recognize", data={})
>>> response.status_code, response.json["error"].split(" of ")[0]
(400, "expected the picture in the field 'image'")
>>> app.close()
"""

import errno
import json
import logging
import os
import socket
import threading
import time

import numpy as np
from waitress import create_server, wasyncore
from werkzeug.exceptions import (
    ClientDisconnected,
    HTTPException,
    MethodNotAllowed,
    NotFound,
    RequestEntityTooLarge,
)
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from adcorre.config import MAX_UPLOAD_BYTES
from adcorre.errors import AdCorreError
from adcorre.inference import face_crops
from adcorre.inference.test_models import USER_ERRORS, TestModels
from adcorre.serve.batching import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_WAIT_MS,
    Batcher,
    BatcherClosedError,
)
from adcorre.serve.metrics import UNMATCHED_ROUTE, ServerMetrics
from adcorre.serve.uploads import IMAGE_FIELD, UploadError, picture_upload  # noqa: F401 (names of this module too)

WEB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
# The only files the page is made of: name -> content type. Nothing else under static/ is served.
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
# The page may load only what this server sends (and the pictures and webcam frames the
# person picks, which the browser holds as blob: URLs); a CDN link would be refused.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_TRUE = ("1", "true", "yes")
_FALSE = ("0", "false", "no", "")
# Methods counted by name in the metrics; any other is counted as "other".
_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")

log = logging.getLogger(__name__)
access_log = logging.getLogger("adcorre.serve.access")


class ServerStartError(AdCorreError, OSError):
    """The server cannot listen where asked (port taken, address not on this machine)."""


def describe_model(tester):
    """What a client needs to know about the served model, as JSON-ready values.

    Args:
        tester: a `TestModels`.

    Returns:
        dict: `name` (the file name, not its folder: the server may be reachable by others),
        `kind`, `arch`, `labels`, `input_size` `[h, w]`, `channels`, `input_range` `[lo, hi]`,
        `detector` (`"blazeface"`, `"haar"`, `"mtcnn"` or None).
    """
    info = tester.info
    return {
        "name": os.path.basename(os.fspath(info.path)) if info.path else None,
        "kind": info.kind,
        "arch": info.arch,
        "labels": list(info.labels),
        "input_size": [int(v) for v in info.input_size],
        "channels": int(info.channels),
        "input_range": [float(v) for v in info.input_range],
        "detector": tester.detector.method if tester.detector is not None else None,
    }


class RecognitionApp:
    """The WSGI application: the page, its two files, the JSON API and the metrics.

    Args:
        tester: a `TestModels` (its model is loaded once, here, for every request).
        max_upload_bytes: larger request bodies get 413 with the cap in the message.
        web_dir: the folder holding `STATIC_FILES`.
        max_batch: at most this many pictures (of as many requests) per model call.
        max_wait_ms: how long the batching thread, once it has a picture, waits for more to
            share the model call (not when the batch is full).

    Any WSGI server can run it; `RecognitionServer` runs it on waitress. `close()` stops the
    batching thread (after the pictures already submitted).
    """

    def __init__(self, tester, max_upload_bytes=MAX_UPLOAD_BYTES, web_dir=WEB_DIR,
                 max_batch=DEFAULT_MAX_BATCH, max_wait_ms=DEFAULT_MAX_WAIT_MS):
        if not isinstance(max_upload_bytes, int) or max_upload_bytes < 1:
            raise ValueError(f"max_upload_bytes must be a positive number of bytes, got "
                             f"{max_upload_bytes!r}.")
        self.tester = tester
        self.max_upload_bytes = max_upload_bytes
        self.web_dir = web_dir
        self.model = describe_model(tester)
        self.metrics = ServerMetrics(self.model)
        self._batcher = Batcher(self._recognize_batch, max_batch=max_batch,
                                max_wait_ms=max_wait_ms, observe=self.metrics.observe_batch,
                                name="recognition-batches")
        self.url_map = Map([
            Rule("/", endpoint="page", methods=["GET"]),
            Rule("/static/<name>", endpoint="static", methods=["GET"]),
            Rule("/api/health", endpoint="health", methods=["GET"]),
            Rule("/api/model", endpoint="model", methods=["GET"]),
            Rule("/api/recognize", endpoint="recognize", methods=["POST"]),
            Rule("/metrics", endpoint="metrics", methods=["GET"]),
        ])
        self._fixed_routes = {rule.rule for rule in self.url_map.iter_rules()
                              if not rule.arguments}

    @property
    def max_batch(self):
        return self._batcher.max_batch

    @property
    def max_wait_ms(self):
        return self._batcher.max_wait_ms

    def __call__(self, environ, start_response):
        start = time.perf_counter()
        request = Request(environ)
        request.max_content_length = self.max_upload_bytes
        response, route = self._respond(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        method = request.method if request.method in _METHODS else "other"
        self.metrics.observe_request(route, method, response.status_code,
                                     time.perf_counter() - start)
        return response(environ, start_response)

    def warm_up(self):
        """Traces the model for one picture and for batches (about a second each for
        Xception), so the first visitors do not pay it."""
        height, width = self.tester.info.input_size
        for size in (1, 2):  # Keras traces anew for the second shape, then for any batch size
            self.tester.predict(np.zeros((size, height, width, 3), np.uint8))

    def close(self):
        """Finishes the pictures already submitted and stops the batching thread."""
        self._batcher.close()

    # ------------------------------------------------------------------------------- dispatch

    def _respond(self, request):
        """`(response, route)`: `route` labels the metrics (the URL rule, never the raw path)."""
        route = request.path if request.path in self._fixed_routes else UNMATCHED_ROUTE
        try:
            rule, arguments = self.url_map.bind_to_environ(request.environ).match(
                return_rule=True)
            route = rule.rule
            return getattr(self, "_" + rule.endpoint)(request, **arguments), route
        except UploadError as error:
            return _json_response({"error": str(error)}, error.status), route
        except RequestEntityTooLarge:
            return _json_response({"error": self._too_large_message(request)}, 413), route
        except ClientDisconnected:
            # The client left mid-upload (servers that stream the body to the app; waitress
            # reads it whole first): one line in the log, and the JSON error for whoever is
            # still listening (nobody, as a rule).
            log.warning("%s %s: the client disconnected before its upload ended (%s of %s "
                        "bytes announced)", request.method, request.path,
                        "some" if request.content_length else "an unknown number",
                        request.content_length or "?")
            return _json_response({"error": "the upload ended before the bytes its "
                                            "Content-Length announced; send it again."}, 400), route
        except BatcherClosedError as error:
            return _json_response({"error": str(error)}, 503), route
        except HTTPException as error:  # 404, 405 from the routing; other 4xx from Werkzeug
            response = _json_response({"error": self._http_error_message(request, error)},
                                      error.code)
            if error.code == 405:
                response.headers["Allow"] = ", ".join(error.valid_methods)
            return response, route
        except USER_ERRORS as error:  # the picture: the CLI prints the same message
            return _json_response({"error": str(error)}, 400), route
        except Exception as error:  # a bug, not the request: say so, keep serving
            log.exception("%s %s failed", request.method, request.path)
            return _json_response(
                {"error": f"internal error ({type(error).__name__}: {error}); the server's "
                          "log has the details"}, 500), route

    def _too_large_message(self, request):
        if request.content_length is not None and request.content_length <= self.max_upload_bytes:
            # Werkzeug's other form limits (number of parts, size of text fields) say 413 too.
            return (f"the form has too many parts or too long text fields; expected one file "
                    f"in the field '{IMAGE_FIELD}'.")
        size = f"{request.content_length} bytes" if request.content_length else "larger"
        return (f"the upload is {size}; the cap is {self.max_upload_bytes / 1e6:g} MB "
                f"({self.max_upload_bytes} bytes), set by --max-upload-mb.")

    def _http_error_message(self, request, error):
        if isinstance(error, NotFound):
            return (f"no such page: {request.path}; this server has GET /, GET /api/health, "
                    "GET /api/model, POST /api/recognize and GET /metrics.")
        if isinstance(error, MethodNotAllowed):
            allowed = ", ".join(sorted(error.valid_methods or ()))
            return f"{request.method} is not allowed on {request.path}; use {allowed}."
        return f"{error.name}: {error.description}"

    # ------------------------------------------------------------------------------ endpoints

    def _page(self, request):
        return self._static(request, "index.html")

    def _static(self, request, name):
        if name not in STATIC_FILES:
            raise NotFound()
        with open(os.path.join(self.web_dir, name), "rb") as handle:
            body = handle.read()
        response = Response(body, content_type=STATIC_FILES[name])
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["Cache-Control"] = "no-cache"
        return response

    def _health(self, request):
        return _json_response({"status": "ok"})

    def _model(self, request):
        return _json_response(self.model)

    def _metrics(self, request):
        body, content_type = self.metrics.exposition()
        response = Response(body, content_type=content_type)
        response.headers["Cache-Control"] = "no-store"
        return response

    def _recognize(self, request):
        whole = request.args.get("whole", "0").lower()
        if whole not in _TRUE + _FALSE:
            raise UploadError(f"whole must be 1 or 0 (true or false), got {whole!r}.")
        upload = picture_upload(request)
        # The same reader recognize_faces uses for bytes, called here so the picture's size
        # can be reported; reading and decoding run in this request's thread, in parallel.
        picture = face_crops.read_picture(upload.read())
        faces = self._batcher.submit((picture, whole in _TRUE))
        height, width = picture.shape[:2]
        return _json_response({
            "faces": [{**face, "box": None if face["box"] is None else list(face["box"])}
                      for face in faces],
            "width": int(width),
            "height": int(height),
            "model": self.model,
        })

    def _recognize_batch(self, items):
        """`recognize_faces`' answer for each `(picture, whole)`: the batcher's one call."""
        answers = [None] * len(items)
        for whole in (False, True):
            chosen = [i for i, (_, wanted) in enumerate(items) if wanted == whole]
            if chosen:
                found = self.tester.recognize_batch([items[i][0] for i in chosen], whole=whole,
                                                    batch_size=self.max_batch)
                for i, faces in zip(chosen, found):
                    answers[i] = faces
        return answers


def _json_response(payload, status=200):
    try:
        body = json.dumps(payload, allow_nan=False)
    except ValueError:  # NaN is not JSON: a broken model is the server's fault (500), not the user's
        raise RuntimeError("the model's output is not a finite number (NaN or infinity)") from None
    response = Response(body, status=status, content_type="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


def create_app(h5_address, max_upload_bytes=MAX_UPLOAD_BYTES, max_batch=DEFAULT_MAX_BATCH,
               max_wait_ms=DEFAULT_MAX_WAIT_MS, **tester_options):
    """A warmed-up `RecognitionApp` on a model file: the entry point for other WSGI servers.

    Args:
        h5_address: the model file (as `TestModels`).
        max_upload_bytes, max_batch, max_wait_ms: as `RecognitionApp`.
        **tester_options: `TestModels`' (`labels`, `input_range`, `detector`, ...).

    Example: several processes, each with its own copy of the model (Linux, macOS):
    `gunicorn -w 2 -b 127.0.0.1:8000 "adcorre.serve.server:create_app('W.h5')"`.
    """
    tester = TestModels(h5_address, **{"verbose": False, **tester_options})
    app = RecognitionApp(tester, max_upload_bytes=max_upload_bytes, max_batch=max_batch,
                         max_wait_ms=max_wait_ms)
    app.warm_up()
    return app


# ---------------------------------------------------------------------------------- the server


class RecognitionServer:
    """Serves a `RecognitionApp` on waitress (threads, HTTP/1.1 keep-alive and pipelining).

    Args:
        tester: a `TestModels`.
        host: the address to listen on. The default, 127.0.0.1, is this computer only; any
            other address lets whoever reaches it send pictures to the model.
        port: the TCP port; 0 takes a free one (see `port` and `url` after starting).
        max_upload_bytes: the upload cap of `RecognitionApp`. waitress itself refuses a body
            over twice the cap before reading it (its own plain-text 413).
        log_requests: one access-log line per request on the logger `adcorre.serve.access`.
        max_batch, max_wait_ms: the batching of `RecognitionApp`.
        threads: waitress' request threads (default `2 * max_batch + 4`: one batch can fill
            while another runs, and pages and health checks still find a thread).

    Raises:
        ServerStartError: the address cannot be listened on (the message says why).

    Example (a tester as in the module docstring):

    ```python
    with RecognitionServer(tester, port=0).start() as web:
        requests.post(web.url + "api/recognize", files={"image": open("photo.jpg", "rb")}).json()
    ```
    """

    def __init__(self, tester, host="127.0.0.1", port=8000, max_upload_bytes=MAX_UPLOAD_BYTES,
                 log_requests=True, max_batch=DEFAULT_MAX_BATCH, max_wait_ms=DEFAULT_MAX_WAIT_MS,
                 threads=None):
        self.app = RecognitionApp(tester, max_upload_bytes=max_upload_bytes,
                                  max_batch=max_batch, max_wait_ms=max_wait_ms)
        self.host = host
        self.log_requests = log_requests
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self._map = {}
        try:
            self.app.warm_up()
            listener = _listen(host, port)
            self._server = create_server(
                self._wsgi, map=self._map, sockets=[listener],
                threads=threads or 2 * self.app.max_batch + 4,
                max_request_body_size=2 * max_upload_bytes + 65536,
                ident="adcorre", expose_tracebacks=False)
        except BaseException:
            self.app.close()
            raise
        self.port = listener.getsockname()[1]
        self._listener = self._server
        self._stopping = threading.Event()
        self._thread = None
        self._closed = False

    @property
    def url(self):
        """`http://HOST:PORT/`; a wildcard host (0.0.0.0, ::) shows as this computer's loopback."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}/" if ":" in host else f"http://{host}:{self.port}/"

    def serve_forever(self):
        """Handles requests until `close` is called from another thread (or Ctrl+C)."""
        while not self._stopping.is_set():
            wasyncore.loop(timeout=1.0, map=self._map, count=1)
        self._drain()

    def start(self):
        """Serves from a background thread; returns self (a context manager that stops it)."""
        self._thread = threading.Thread(target=self.serve_forever, name="recognition-server",
                                        daemon=True)
        self._thread.start()
        return self

    def close(self):
        """Stops accepting connections, lets the requests already running answer (5 s at
        most), then frees the port and stops the app's batching thread."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        if self._thread is not None:
            self._server.pull_trigger()  # wakes the loop now rather than at its timeout
            self._thread.join()
            self._thread = None
        else:  # serve_forever ran in this thread and ended (Ctrl+C) or never ran
            self._drain()
        self._server.task_dispatcher.shutdown()
        wasyncore.close_all(self._map)
        self.app.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # ------------------------------------------------------------------------------ internals

    def _drain(self, seconds=5.0):
        """Closes the listening socket, then runs the loop until no request is in the app and
        no answer waits to be sent (twice in a row), or `seconds` pass."""
        if self._listener is not None:
            wasyncore.dispatcher.close(self._listener)  # the socket only, not waitress' trigger
            self._listener = None
        deadline, quiet = time.monotonic() + seconds, 0
        while quiet < 2 and time.monotonic() < deadline:
            busy = self._in_flight or any(channel.writable() for channel in
                                          list(self._map.values()))
            quiet = 0 if busy else quiet + 1
            wasyncore.loop(timeout=0.05, map=self._map, count=1)

    def _wsgi(self, environ, start_response):
        """The app, counted in flight, with an access-log line."""
        with self._in_flight_lock:
            self._in_flight += 1
        start, answer = time.perf_counter(), {}

        def recording_start_response(status, headers, exc_info=None):
            answer["status"] = status.split(" ", 1)[0]
            answer["size"] = next((v for k, v in headers if k.lower() == "content-length"), "-")
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, recording_start_response)
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1
            if self.log_requests:
                access_log.info('%s "%s %s %s" %s %s %.3fs', environ.get("REMOTE_ADDR", "-"),
                                environ.get("REQUEST_METHOD"), _request_target(environ),
                                environ.get("SERVER_PROTOCOL"), answer.get("status", "-"),
                                answer.get("size", "-"), time.perf_counter() - start)


def _request_target(environ):
    query = environ.get("QUERY_STRING")
    path = environ.get("PATH_INFO", "")
    return f"{path}?{query}" if query else path


def _listen(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as error:
        reason = error.strerror or str(error)
        hint = ("another program uses that port: pick another --port (0 takes a free one)"
                if error.errno == errno.EADDRINUSE else
                "expected an address of this machine, e.g. 127.0.0.1 (this computer only) "
                "or 0.0.0.0 (every network it is on)")
        raise ServerStartError(f"cannot listen on {host}:{port} ({reason}); {hint}.") from None
