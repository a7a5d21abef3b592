"""The web app of `cnnlab serve` (FastAPI): ``GET /`` the page, ``POST /predict`` the JSON API.

``POST /predict`` takes the image as a multipart form field (``curl -F file=@photo.jpg URL/predict``)
or as the raw request body with an ``image/*`` content type, and answers the JSON that
``cnnlab predict --json`` prints for that image (plus ``overlay``/``drawing``: PNG data URLs).
A bad upload gets a 4xx with ``{"detail": one line}``; requests over ``max_bytes`` get 413 before
they are read whole.
"""

# no `from __future__ import annotations` here: FastAPI reads the handlers' annotations at run time
import json
from typing import Any

from cnnlab.serve.page import render
from cnnlab.serve.predictor import BadImage, Predictor

DEFAULT_MAX_BYTES = 10 * 1024 * 1024


class _TooLarge(Exception):
    pass


class LimitBody:
    """ASGI middleware: refuse bodies over ``max_bytes`` (by Content-Length, or while they stream in)."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit_mb = self.max_bytes / 1024 / 1024
        message = f"the upload is over the server's limit of {limit_mb:g} MB; send a smaller image"
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_bytes
            except ValueError:
                return await _send_json(send, 400, {"detail": "the request has an invalid Content-Length header"})
            if too_big:
                await self._drain(receive, 0)
                return await _send_json(send, 413, {"detail": message})
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge()
            return msg

        async def tracked_send(msg):
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except _TooLarge:
            if not started:
                await self._drain(receive, seen)
                await _send_json(send, 413, {"detail": message})

    async def _drain(self, receive, seen: int) -> None:
        """Read (and drop) the rest of an oversized body, up to 8x the limit, so that the client, still sending,
        reads the 413 instead of a reset connection; past that the connection is closed."""
        cap = 8 * self.max_bytes
        while seen <= cap:
            msg = await receive()
            if msg["type"] != "http.request":
                return
            seen += len(msg.get("body", b""))
            if not msg.get("more_body", False):
                return


async def _send_json(send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def build_app(predictor: Predictor, max_bytes: int = DEFAULT_MAX_BYTES):
    """The ASGI app (FastAPI wrapped in the body-size limit) serving one model."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.concurrency import run_in_threadpool
        from fastapi.responses import HTMLResponse, JSONResponse
    except ImportError:
        from cnnlab.errors import ConfigError

        raise ConfigError("cnnlab serve needs fastapi, uvicorn and python-multipart: pip install 'cnnlab[serve]'") from None

    app = FastAPI(title="cnnlab", docs_url=None, redoc_url=None, openapi_url=None)
    page = render(predictor.name, predictor.kind)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/info")
    def info() -> dict[str, Any]:
        return predictor.info()

    @app.post("/predict")
    async def predict(request: Request):
        kind = request.headers.get("content-type", "")
        if kind.startswith("multipart/form-data"):
            try:
                form = await request.form()
            except _TooLarge:
                raise
            except Exception as e:  # noqa: BLE001  (a malformed multipart body)
                return JSONResponse({"detail": f"the form data could not be read ({type(e).__name__}); "
                                               "send the image as the multipart field 'file'"}, status_code=400)
            upload = form.get("file") or form.get("image")
            if upload is None or isinstance(upload, str):
                return JSONResponse({"detail": "no image in the form: send it as the multipart field 'file' "
                                               "(curl -F file=@photo.jpg .../predict)"}, status_code=400)
            data, name = await upload.read(), upload.filename or "upload"
        elif kind.startswith("image/") or kind == "application/octet-stream":
            data, name = await request.body(), "upload"
        else:
            return JSONResponse({"detail": "send an image: a multipart form with the field 'file', or the raw bytes "
                                           "with an image/* content type"}, status_code=415)
        try:
            return await run_in_threadpool(predictor.predict, data, name)
        except BadImage as e:
            return JSONResponse({"detail": str(e)}, status_code=e.status)

    return LimitBody(app, max_bytes)
