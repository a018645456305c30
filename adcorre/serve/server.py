"""A local web app and JSON API over one loaded model (`python test.py --weights W --serve`).

- `GET /`: a page (`static/index.html` and its script and style sheet, nothing from the internet)
  to upload or drop a picture, or turn on the webcam, and see each face's box, label and
  probability bars.
- `POST /api/recognize` (multipart field `image`): `{"faces": [{"label", "probabilities",
  "box"}], "width", "height", "model"}`, where `faces` is what `TestModels.recognize_faces`
  returns for that picture (largest face first). `?whole=1` classifies the whole picture
  (`"box": null`) when no face is found, as `recognize_fer` and the CLI's `--image` do.
- `GET /api/health` -> `{"status": "ok"}`; `GET /api/model` -> labels, input size, arch...
- Bad input (no `image` field, an empty file, not a picture, an upload over the cap, a
  picture too large to decode) -> a 4xx with `{"error": "..."}`; the message of a picture
  problem is the one the CLI prints for the same picture.

HTTP, routing and multipart parsing are Werkzeug's (already installed with TensorBoard; see the
docs/usage.md, "Web app and HTTP API", for why). Requests are handled in threads; the model and the
face detectors are not safe for concurrent calls, so recognition runs under one lock while
reading the upload and decoding the picture happen in parallel.

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
"""

import errno
import json
import logging
import os
import socket
import threading

import numpy as np
from werkzeug.exceptions import (
    ClientDisconnected,
    HTTPException,
    MethodNotAllowed,
    NotFound,
    RequestEntityTooLarge,
)
from werkzeug.routing import Map, Rule
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from adcorre.config import MAX_UPLOAD_BYTES
from adcorre.errors import AdCorreError
from adcorre.inference import face_crops
from adcorre.inference.test_models import USER_ERRORS

# The multipart field that carries the picture.
IMAGE_FIELD = "image"
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

log = logging.getLogger(__name__)


class ServerStartError(AdCorreError, OSError):
    """The server cannot listen where asked (port taken, address not on this machine)."""


class UploadError(AdCorreError, ValueError):
    """A request to the API that is not what it expects; `status` is the HTTP code."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


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
    """The WSGI application: the page, its two files and the JSON API over one `TestModels`.

    Args:
        tester: a `TestModels` (its model is loaded once, here, for every request).
        max_upload_bytes: larger request bodies get 413 with the cap in the message.
        web_dir: the folder holding `STATIC_FILES`.

    Any WSGI server can run it; `RecognitionServer` runs it on Werkzeug's threaded server.
    """

    def __init__(self, tester, max_upload_bytes=MAX_UPLOAD_BYTES, web_dir=WEB_DIR):
        if not isinstance(max_upload_bytes, int) or max_upload_bytes < 1:
            raise ValueError(f"max_upload_bytes must be a positive number of bytes, got "
                             f"{max_upload_bytes!r}.")
        self.tester = tester
        self.max_upload_bytes = max_upload_bytes
        self.web_dir = web_dir
        self.model = describe_model(tester)
        # One recognition at a time: Keras' predict and the Haar cascades share state.
        self._recognition_lock = threading.Lock()
        self.url_map = Map([
            Rule("/", endpoint="page", methods=["GET"]),
            Rule("/static/<name>", endpoint="static", methods=["GET"]),
            Rule("/api/health", endpoint="health", methods=["GET"]),
            Rule("/api/model", endpoint="model", methods=["GET"]),
            Rule("/api/recognize", endpoint="recognize", methods=["POST"]),
        ])

    def __call__(self, environ, start_response):
        request = Request(environ)
        request.max_content_length = self.max_upload_bytes
        response = self._respond(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response(environ, start_response)

    # ------------------------------------------------------------------------------- dispatch

    def _respond(self, request):
        try:
            endpoint, arguments = self.url_map.bind_to_environ(request.environ).match()
            return getattr(self, "_" + endpoint)(request, **arguments)
        except UploadError as error:
            return _json_response({"error": str(error)}, error.status)
        except RequestEntityTooLarge:
            return _json_response({"error": self._too_large_message(request)}, 413)
        except ClientDisconnected:
            # The client left mid-upload: one line in the log, and the JSON error for whoever
            # is still listening (nobody, as a rule).
            log.warning("%s %s: the client disconnected before its upload ended (%s of %s "
                        "bytes announced)", request.method, request.path,
                        "some" if request.content_length else "an unknown number",
                        request.content_length or "?")
            return _json_response({"error": "the upload ended before the bytes its "
                                            "Content-Length announced; send it again."}, 400)
        except HTTPException as error:  # 404, 405 from the routing; other 4xx from Werkzeug
            response = _json_response({"error": self._http_error_message(request, error)},
                                      error.code)
            if error.code == 405:
                response.headers["Allow"] = ", ".join(error.valid_methods)
            return response
        except USER_ERRORS as error:  # the picture: the CLI prints the same message
            return _json_response({"error": str(error)}, 400)
        except Exception as error:  # a bug, not the request: say so, keep serving
            log.exception("%s %s failed", request.method, request.path)
            return _json_response(
                {"error": f"internal error ({type(error).__name__}: {error}); the server's "
                          "log has the details"}, 500)

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
                    "GET /api/model and POST /api/recognize.")
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

    def _recognize(self, request):
        whole = request.args.get("whole", "0").lower()
        if whole not in _TRUE + _FALSE:
            raise UploadError(f"whole must be 1 or 0 (true or false), got {whole!r}.")
        uploads = request.files.getlist(IMAGE_FIELD)
        if len(uploads) > 1:
            names = ", ".join(repr(upload.filename or "unnamed") for upload in uploads)
            raise UploadError(
                f"the field '{IMAGE_FIELD}' holds {len(uploads)} files ({names}); expected one "
                "picture per request: send each in a request of its own.")
        upload = uploads[0] if uploads else None
        if upload is None and IMAGE_FIELD in request.form:
            raise UploadError(
                f"the field '{IMAGE_FIELD}' came as text, not as a file: send the picture's "
                f"bytes as a file (curl -F {IMAGE_FIELD}=@photo.jpg, with the @).")
        if upload is None:
            raise UploadError(self._missing_field_message(request))
        # The same reader recognize_faces uses for bytes, called here so the picture's size
        # can be reported; decoding runs outside the lock, in parallel with other requests.
        picture = face_crops.read_picture(upload.read())
        with self._recognition_lock:
            faces = self.tester.recognize_faces(picture, whole=whole in _TRUE)
        height, width = picture.shape[:2]
        return _json_response({
            "faces": [{**face, "box": None if face["box"] is None else list(face["box"])}
                      for face in faces],
            "width": int(width),
            "height": int(height),
            "model": self.model,
        })

    def _missing_field_message(self, request):
        sent = sorted(set(request.files) | set(request.form))
        if not request.mimetype.startswith("multipart/"):
            got = f"a body of type {request.mimetype}" if request.mimetype else "no body"
        else:
            got = "fields " + ", ".join(map(repr, sent)) if sent else "no fields"
        return (f"expected the picture in the field '{IMAGE_FIELD}' of a multipart/form-data "
                f"POST (curl -F {IMAGE_FIELD}=@photo.jpg ...), got {got}.")


def _json_response(payload, status=200):
    try:
        body = json.dumps(payload, allow_nan=False)
    except ValueError:  # NaN is not JSON: a broken model is the server's fault (500), not the user's
        raise RuntimeError("the model's output is not a finite number (NaN or infinity)") from None
    response = Response(body, status=status, content_type="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


# ---------------------------------------------------------------------------------- the server


class _RequestHandler(WSGIRequestHandler):
    """Werkzeug's handler with a plain access-log line (Werkzeug colours it for terminals
    even when stderr is a file); `log_requests = False` drops it (errors still log)."""

    log_requests = True

    def log_request(self, code="-", size="-"):
        if self.log_requests:
            self.log("info", '"%s" %s %s', self.requestline, getattr(code, "value", code), size)


class _QuietRequestHandler(_RequestHandler):
    log_requests = False


class RecognitionServer:
    """Serves a `RecognitionApp` on Werkzeug's threaded HTTP server.

    Args:
        tester: a `TestModels`.
        host: the address to listen on. The default, 127.0.0.1, is this computer only; any
            other address lets whoever reaches it send pictures to the model.
        port: the TCP port; 0 takes a free one (see `port` and `url` after starting).
        max_upload_bytes: the upload cap of `RecognitionApp`.
        log_requests: print one access-log line per request on stderr.

    Raises:
        ServerStartError: the address cannot be listened on (the message says why).

    Example (a tester as in the module docstring):

    ```python
    with RecognitionServer(tester, port=0).start() as web:
        requests.post(web.url + "api/recognize", files={"image": open("photo.jpg", "rb")}).json()
    ```
    """

    def __init__(self, tester, host="127.0.0.1", port=8000, max_upload_bytes=MAX_UPLOAD_BYTES,
                 log_requests=True):
        self.app = RecognitionApp(tester, max_upload_bytes=max_upload_bytes)
        self.host = host
        # The first prediction traces the model (about a second); pay it before the first visitor.
        height, width = tester.info.input_size
        tester.predict(np.zeros((1, height, width, 3), np.uint8))
        listener = _listen(host, port)
        try:
            # Werkzeug takes over a duplicate of the socket bound here, so a taken port is
            # our ServerStartError rather than the message and sys.exit Werkzeug gives.
            self._server = make_server(
                host, port, self.app, threaded=True, fd=listener.fileno(),
                request_handler=_RequestHandler if log_requests else _QuietRequestHandler)
        finally:
            listener.close()
        self.port = self._server.server_address[1]
        self._thread = None

    @property
    def url(self):
        """`http://HOST:PORT/`; a wildcard host (0.0.0.0, ::) shows as this computer's loopback."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}/" if ":" in host else f"http://{host}:{self.port}/"

    def serve_forever(self):
        """Handles requests until `close` is called from another thread (or Ctrl+C)."""
        self._server.serve_forever(poll_interval=0.2)

    def start(self):
        """Serves from a background thread; returns self (a context manager that stops it)."""
        self._thread = threading.Thread(target=self.serve_forever, name="recognition-server",
                                        daemon=True)
        self._thread.start()
        return self

    def close(self):
        """Stops serving and frees the port; requests already running finish on their own."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


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
