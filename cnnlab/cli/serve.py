"""`cnnlab serve`: a page to try a model in the browser, and ``POST /predict`` for programs."""

from __future__ import annotations

import argparse
import socket
import sys

from cnnlab.errors import ConfigError

EXAMPLES = """examples:
  cnnlab serve --model mobilenet_v2 --weights imagenet       ImageNet classes, Grad-CAM of the top one
  cnnlab serve runs/classify-lenet5-20261123-120000 --port 8080
  cnnlab serve runs/detect-yolo-...                           boxes drawn on the photo
  curl -F file=@photo.jpg http://127.0.0.1:8000/predict      the JSON of `cnnlab predict --json`

It listens on 127.0.0.1 (this computer only) unless --host says otherwise; Ctrl-C stops it."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="a web page to try a model on your images, and a JSON API (POST /predict)",
                       description="Serve a run folder of an image task (classify, localize, landmarks, detect, segment) "
                                   "or a pretrained model: drop an image on the page, see the top-5 classes (with a "
                                   "Grad-CAM overlay) or the drawn boxes, points or mask.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="a run folder written by `cnnlab train`")
    p.add_argument("--model", help="a registered model with pretrained --weights instead of a run folder")
    p.add_argument("--weights", help="with --model: imagenet, or a weights file")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this computer only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    p.add_argument("--max-mb", type=float, default=10.0, help="largest upload accepted, in MB (default: 10)")
    p.add_argument("--topk", type=int, default=5, help="classes shown per image (default: 5)")
    p.add_argument("--no-gradcam", action="store_true", help="classifiers: skip the Grad-CAM overlay (faster)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: must be 0..65535")
    if not args.max_mb > 0:
        raise ConfigError(f"--max-mb {args.max_mb}: must be above 0")
    if args.topk < 1:
        raise ConfigError(f"--topk {args.topk}: must be at least 1")
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("cnnlab serve needs fastapi, uvicorn and python-multipart: pip install 'cnnlab[serve]'") from None
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from cnnlab.serve.app import build_app
    from cnnlab.serve.predictor import Predictor

    predictor = Predictor(args.run_dir, args.model, args.weights, topk=args.topk, gradcam=not args.no_gradcam)
    app = build_app(predictor, max_bytes=int(args.max_mb * 1024 * 1024))
    sock = _bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {predictor.name} ({predictor.kind}) on http://{shown}:{port}/  (POST /predict for JSON; Ctrl-C stops)",
          flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", limit_concurrency=64,
                            timeout_keep_alive=5)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    print("stopped", file=sys.stderr)
    return 0


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno in (98, 48):  # EADDRINUSE (Linux, macOS)
            raise ConfigError(f"--port {port}: already in use on {host}; choose another (or --port 0 for a free one)") from None
        raise ConfigError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e})") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
