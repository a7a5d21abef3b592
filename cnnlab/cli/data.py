"""`cnnlab data scenes`: generate annotated scenes (COCO / VOC / YOLO) for every application."""

from __future__ import annotations

import argparse

SCENES_EXAMPLES = """kinds:
  localize   one object per 64x64 image (boxes)               -> cnnlab train localize
  detect     1-4 objects per 128x128 image (boxes, masks)
  segment    1-4 shapes per 128x128 image (instance + semantic masks; also a VOC folder)
  keypoints  one quadrilateral per 64x64 image, its 4 corners  -> cnnlab train landmarks
  caption    1-3 coloured shapes per 96x96 image, 5 captions each

examples:
  cnnlab data scenes --kind localize --n 3000 --out data/loc
  cnnlab data scenes --kind keypoints --n 3000 --out data/quads
  cnnlab data scenes --kind detect --n 2000 --format coco yolo --out data/det
  cnnlab data scenes --kind segment --objects fashion --n 1000 --out data/seg
The folder holds train/, val/, test/ (each images/ + annotations.json), scenes.json (the
settings, to make it again) and preview.png (the first training scenes, annotated)."""


def register(sub: argparse._SubParsersAction) -> None:
    from cnnlab.data.scenes import FORMATS, KINDS, OBJECT_SETS

    p = sub.add_parser("data", help="make datasets: annotated scenes in COCO / VOC / YOLO formats",
                       description="Datasets cnnlab makes offline.")
    dsub = p.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    s = dsub.add_parser("scenes", help="objects pasted on real textures with exact boxes, masks, keypoints, captions",
                        description="Generate train/val/test scenes: Fashion-MNIST items, digits or shapes pasted on "
                                    "scikit-image textures among clutter, with exact annotations in the standard formats.",
                        epilog=SCENES_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--kind", required=True, choices=KINDS, help="what the scenes are annotated for (required)")
    s.add_argument("--n", type=int, default=1000, help="training images (default: 1000)")
    s.add_argument("--n-val", type=int, help="validation images (default: n/6)")
    s.add_argument("--n-test", type=int, help="test images (default: n/6)")
    s.add_argument("--n-novel", type=int, help="caption: test_novel/ images, each showing a colour-shape pair no "
                   "other split shows (default: n/6; 0 = no hold-out)")
    s.add_argument("--out", required=True, help="a new (or empty) folder to write (required)")
    s.add_argument("--size", type=int, help="image side in pixels (default: 64 localize/keypoints, 96 caption, 128 detect/segment)")
    s.add_argument("--objects", choices=OBJECT_SETS,
                   help="fashion (Fashion-MNIST, 7 categories: the 4 upper-body garments are 'top'), fashion10 (its 10 "
                        "labels), digits, shapes, shapes10 (default: fashion for localize/detect, shapes10 for "
                        "segment, shapes otherwise)")
    s.add_argument("--min-size", type=int, help="smallest object side in pixels (default depends on --kind)")
    s.add_argument("--max-size", type=int, help="largest object side in pixels (default depends on --kind)")
    s.add_argument("--max-objects", type=int, help="objects per image, at most (default: 4 detect/segment, 3 caption, 1 otherwise)")
    s.add_argument("--clutter", type=int, default=6, help="distracting strokes and dots per image (default: 6)")
    s.add_argument("--format", nargs="+", choices=FORMATS, dest="formats",
                   help="annotation formats to write (default: coco; segment: coco voc)")
    s.add_argument("--data-root", help="folder of the Fashion-MNIST IDX files (default: /usr/share/datasets/fashion-mnist)")
    s.add_argument("--seed", type=int, default=0, help="random seed: the same settings and seed give the same files (default: 0)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=run_scenes)


def run_scenes(args: argparse.Namespace) -> int:
    import time

    from cnnlab.data.scenes import SceneSpec, make_scenes

    spec = SceneSpec(args.kind, args.n, n_val=args.n_val, n_test=args.n_test, n_novel=args.n_novel, size=args.size, objects=args.objects,
                     min_size=args.min_size, max_size=args.max_size, max_objects=args.max_objects, clutter=args.clutter,
                     formats=tuple(args.formats) if args.formats else None, seed=args.seed, data_root=args.data_root)
    t0 = time.perf_counter()
    out = make_scenes(spec, out=args.out, progress=not args.quiet)
    total = spec.n + spec.n_val + spec.n_test + spec.n_novel
    novel = f", {spec.n_novel} test_novel" if spec.n_novel else ""
    print(f"wrote {total} {spec.kind} scenes ({spec.n} train, {spec.n_val} val, {spec.n_test} test{novel}; {spec.size}x{spec.size}, "
          f"{spec.objects}: {', '.join(spec.classes)}) to {out} in {time.perf_counter() - t0:.1f}s "
          f"[{', '.join(spec.formats)}]; preview: {out / 'preview.png'}")
    return 0
