"""`cnnlab faces detect|enroll|verify|identify`: real face detection and a database of encodings.

detect    MTCNN boxes + 5 landmarks, drawn on each photo;
enroll    detect, align (similarity transform on the landmarks), crop, encode with a verify run's
          encoder, and store the encodings under a name (never the images);
verify    1:1: is this photo NAME?  same when d(photo, NAME) <= tau (the run's validation tau);
identify  1:K: the nearest enrolled name, or "not recognized" when even it is farther than tau.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EXAMPLES = """examples:
  cnnlab faces detect photo.jpg --out drawn/
  cnnlab faces enroll runs/verify-x --db people --name ada ada1.jpg ada2.jpg
  cnnlab faces verify runs/verify-x --db people --name ada photo.jpg
  cnnlab faces identify runs/verify-x --db people photo.jpg
  cnnlab faces identify runs/verify-x --db items --no-detect shoe.png     # images that are not faces"""


def register(sub: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("faces", help="face detection (MTCNN), enrollment, verification and identification",
                       description=__doc__.split("\n", 1)[1], epilog=EXAMPLES, formatter_class=fmt)
    cmds = p.add_subparsers(dest="faces_command", metavar="COMMAND", required=True)
    d = cmds.add_parser("detect", help="faces and 5 landmarks of photos, drawn", epilog=EXAMPLES, formatter_class=fmt)
    d.add_argument("photos", nargs="+", metavar="PHOTO", help="image files to find faces in")
    d.add_argument("--out", default=".", help="folder for the drawings <name>-faces.png (default: .)")
    d.add_argument("--min-face", type=int, default=20, help="smallest face sought, pixels (default: 20)")
    d.add_argument("--json", action="store_true", help="print the detections as JSON")
    d.set_defaults(func=run_detect)
    for name, text in (("enroll", "add photos of NAME to the database"), ("verify", "is PHOTO the person NAME?"),
                       ("identify", "who is in PHOTO (or not recognized)?")):
        c = cmds.add_parser(name, help=text, epilog=EXAMPLES, formatter_class=fmt)
        c.add_argument("run_dir", metavar="RUN_DIR", help="a run folder of `cnnlab train verify`")
        c.add_argument("--db", required=True, help="the database folder (enroll creates it)")
        if name != "identify":
            c.add_argument("--name", required=True, help="the identity")
        c.add_argument("photos", nargs="+" if name == "enroll" else 1, metavar="PHOTO",
                       help="photos of the person (faces are detected, aligned and cropped unless --no-detect)")
        c.add_argument("--no-detect", dest="detect", action="store_false",
                       help="encode the whole image (already cropped faces, or images that are not faces)")
        if name != "enroll":
            c.add_argument("--tau", type=float, help="distance threshold (default: the run's, chosen on validation pairs)")
            c.add_argument("--json", action="store_true", help="print the answer as JSON")
        c.set_defaults(func={"enroll": run_enroll, "verify": run_verify, "identify": run_identify}[name])


# ---------------------------------------------------------------------------- helpers
def detect_faces(detector, path: str):
    from cnnlab.data.images import load_image

    image = load_image(path, 3)  # uint8 (3, H, W)
    return image, detector.detect(image)


def encode(run_dir: str, photos: list[str], detect: bool):
    """(task, model, encodings (n, D)) of photos: detect + align + crop each (or the whole image)."""
    import torch

    from cnnlab.data.images import load_image
    from cnnlab.engine.evaluate import load_task
    from cnnlab.errors import ConfigError, DataError

    task, model, meta, _ = load_task(run_dir)
    if task.name != "verify":
        raise ConfigError(f"{run_dir} is a {task.name} run; `cnnlab faces` needs a run of `cnnlab train verify`")
    inputs = []
    detector = None
    for path in photos:
        if detect:
            from cnnlab.models.face import MTCNN, align_face

            detector = detector or MTCNN()
            image, faces = detect_faces(detector, path)
            if not faces:
                raise DataError(f"{path}: no face found; pass --no-detect to encode the whole image")
            if len(faces) > 1:
                print(f"note: {path}: {len(faces)} faces, using the most confident one")
            crop = align_face(image, faces[0].landmarks, size=112)  # uint8 (3, 112, 112)
        else:
            crop = load_image(path, meta["in_chans"])
        inputs.append(task.prepare_array(crop))
    with torch.no_grad():
        encodings = model(torch.stack(inputs))  # (n, D)
    return task, model, encodings


def _run_key(run_dir: str) -> str:
    return str(Path(run_dir).resolve())


def _open_db(db_path: str, run_dir: str):
    from cnnlab.errors import ConfigError
    from cnnlab.models.face.database import FaceDB

    db = FaceDB.load(db_path)
    if db.run != _run_key(run_dir):
        raise ConfigError(f"{db_path} was enrolled with the encoder of {db.run}; encodings of another run are not "
                          "comparable: pass that run or enroll into a new --db")
    return db


def _tau(task, args) -> float:
    return float(args.tau) if args.tau is not None else task.tau()


# ---------------------------------------------------------------------------- commands
def run_detect(args: argparse.Namespace) -> int:
    from cnnlab.engine.plots import draw_boxes
    from cnnlab.models.face import MTCNN, MTCNNConfig

    detector = MTCNN(config=MTCNNConfig(min_face=args.min_face))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for path in args.photos:
        image, faces = detect_faces(detector, path)
        results[path] = [f.to_json() for f in faces]
        drawing = out / f"{Path(path).stem}-faces.png"
        points = [p for f in faces for p in f.landmarks]
        draw_boxes(image, [f.box for f in faces], [f"{f.score:.3f}" for f in faces], drawing,
                   points=points if points else None)
        if not args.json:
            print(f"{path}: {len(faces)} face{'s' if len(faces) != 1 else ''}" +
                  "".join(f"\n  box {[round(v, 1) for v in f.box]} score {f.score:.4f}" for f in faces) +
                  f"\n  drawn: {drawing}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def run_enroll(args: argparse.Namespace) -> int:
    from cnnlab.models.face.database import FaceDB

    db_path = Path(args.db)
    db = _open_db(args.db, args.run_dir) if (db_path / "db.json").exists() or \
        (db_path.exists() and any(db_path.iterdir()) if db_path.is_dir() else db_path.exists()) else None
    task, _, encodings = encode(args.run_dir, args.photos, args.detect)  # everything is read before anything is written
    if db is None:
        db = FaceDB.new(db_path, _run_key(args.run_dir), encodings.shape[1])
    db.add(args.name, encodings, args.photos)
    db.save()
    print(f"enrolled {len(args.photos)} photo{'s' if len(args.photos) != 1 else ''} of {args.name!r} in {db_path} "
          f"({len(db.identities())} identities, {len(db.names)} encodings)")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from cnnlab.errors import ConfigError

    db = _open_db(args.db, args.run_dir)
    if args.name not in db.names:
        raise ConfigError(f"{args.name!r} is not enrolled in {args.db} (it has {', '.join(db.identities()) or 'nobody'})")
    task, model, enc = encode(args.run_dir, args.photos, args.detect)
    tau = _tau(task, args)
    d = db.distances_to(enc[0], model.pair_distances)[args.name]
    same = d <= tau
    answer = {"photo": args.photos[0], "name": args.name, "same": same, "distance": round(d, 5), "tau": round(tau, 5)}
    if args.json:
        print(json.dumps(answer))
    else:
        print(f"{args.photos[0]}: {'same person as' if same else 'not'} {args.name} (distance {d:.4f}, tau {tau:.4f})")
    return 0


def run_identify(args: argparse.Namespace) -> int:
    db = _open_db(args.db, args.run_dir)
    task, model, enc = encode(args.run_dir, args.photos, args.detect)
    tau = _tau(task, args)
    dists = db.distances_to(enc[0], model.pair_distances)
    name, d = min(dists.items(), key=lambda kv: kv[1]) if dists else (None, float("inf"))
    recognized = name is not None and d <= tau
    answer = {"photo": args.photos[0], "name": name if recognized else None, "recognized": recognized,
              "nearest": name, "distance": round(d, 5) if dists else None, "tau": round(tau, 5)}
    if args.json:
        print(json.dumps(answer))
    elif recognized:
        print(f"{args.photos[0]}: {name} (distance {d:.4f}, tau {tau:.4f})")
    else:
        print(f"{args.photos[0]}: not recognized (nearest {name}, distance {d:.4f} > tau {tau:.4f})")
    return 0
