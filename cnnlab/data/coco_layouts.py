"""Where the COCO JSON files of a folder are, in the layouts that tools write.

``find_coco_files(root, kind)`` gives split -> JSON file ({} when the folder holds none); the
first layout that has a train file wins:

- cnnlab's scene generator: ``root/{train,val,test}/annotations.json``;
- Roboflow's COCO export: ``root/{train,valid,test}/_annotations.coco.json`` (images beside it);
- COCO's own: ``root/annotations/<kind>_{train,val,test}*.json`` (instances_train2017.json; the
  images in ``root/train2017/`` or ``root/images/...``);
- CVAT's "COCO 1.0" export: a single ``root/annotations/<kind>_<anything>.json``
  (instances_default.json) with the images in ``root/images/``: it is the train split;
- one ``root/annotations.json`` (train), or FiftyOne's ``root/labels.json`` with the images in ``root/data/``.

``root`` may also be one JSON file: it is the train split (val is then carved from it).
Every reader of COCO data (detect, segment, localize, landmarks, caption) goes through here, so a
layout that works for one task works for all of them. ``image_records`` finds each image a COCO
file lists (beside it, in ``images/``, COCO's ``<split>2017/``; by base name for another machine's path).
"""

from __future__ import annotations

from pathlib import Path

from cnnlab.errors import DataError

SPLITS = ("train", "val", "test")
ROBOFLOW_DIRS = {"train": "train", "val": "valid", "test": "test"}  # split -> Roboflow's folder name


def find_coco_files(root: str | Path, kind: str = "instances", splits: tuple[str, ...] = SPLITS) -> dict[str, Path]:
    """split -> COCO JSON path for the layouts in the module docstring; {} when none has a train file.
    ``splits``: the split folders cnnlab's own layout may hold (captions add ``test_novel``)."""
    base = Path(root)
    if base.is_file() and base.suffix.lower() == ".json":
        return {"train": base}
    if not base.is_dir():
        return {}
    layouts = [
        {s: base / s / "annotations.json" for s in splits},
        {s: base / ROBOFLOW_DIRS[s] / "_annotations.coco.json" for s in SPLITS},
        {s: base / s / "_annotations.coco.json" for s in SPLITS},  # Roboflow with val/ renamed
    ]
    for layout in layouts:
        found = {s: p for s, p in layout.items() if p.is_file()}
        if "train" in found:
            return found
    folder = base / "annotations"
    if folder.is_dir():
        official = {}
        for s in splits:
            hits = sorted(folder.glob(f"{kind}_{s}*.json"))
            if hits:
                official[s] = hits[0]
        if "train" in official:
            return official
        anything = sorted(folder.glob(f"{kind}_*.json"))
        if len(anything) == 1:  # CVAT: instances_default.json; one file, so no ambiguity about the split
            return {"train": anything[0]}
    for name in ("annotations.json", "labels.json"):  # labels.json + data/: FiftyOne's COCO export
        if (base / name).is_file():
            return {"train": base / name}
    return {}


# ---------------------------------------------------------------------------- image files of a COCO file
def image_records(entries: list, path: Path, image_root, check_files: bool) -> list[ImageRecord]:
    """COCO ``images`` -> ImageRecords, resolving every ``file_name``: the folder found for the first image
    is tried first for the rest (see ``_candidate_folders``)."""
    from cnnlab.data.coco import ImageRecord

    records, seen, base = [], set(), None
    missing: list[int] = []  # records whose file was not found (they have width and height)
    first_missing = None
    for j, e in enumerate(entries):
        if not isinstance(e, dict) or "id" not in e or "file_name" not in e:
            raise DataError(f"{path}: images[{j}] needs 'id' and 'file_name'")
        if e["id"] in seen:
            raise DataError(f"{path}: images[{j}].id {e['id']!r} appears twice")
        seen.add(e["id"])
        fn = str(e["file_name"])
        bases = _candidate_folders(path, image_root)
        if base is not None:
            bases.insert(0, base)
        found = next((b for b in bases if (b / fn).is_file()), None) if check_files else bases[0]
        if found is None:  # Label Studio writes /data/upload/1/x.jpg, Windows tools images\\x.jpg: try the base name
            short = fn.replace("\\", "/").rsplit("/", 1)[-1]
            found = next((b for b in bases if short and (b / short).is_file()), None)
            fn = short if found is not None else fn
        w, h = e.get("width"), e.get("height")
        sized = isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0
        if found is None and sized and first_missing is None:
            first_missing = (j, fn, bases)
        if found is None and sized:
            # Exports often list images that were not exported with them. The record is kept with the
            # folder the other images are in; decoding it names the missing file, and --skip-bad skips it.
            missing.append(len(records))
            records.append(ImageRecord(e["id"], fn, Path(fn), int(w), int(h)))
            continue
        if found is None:
            raise _not_found(path, j, fn, bases)
        base = found
        if not sized:
            if not check_files:
                raise DataError(f"{path}: images[{j}] ({fn}) needs positive integer 'width' and 'height'")
            from cnnlab.data.images import probe_image

            h, w = probe_image(found / fn).size
        records.append(ImageRecord(e["id"], fn, found / fn, int(w), int(h)))
    if first_missing is not None and base is None:  # not one image found: the folder is wrong, say where we looked
        raise _not_found(path, *first_missing)
    for k in missing:
        fn = records[k].file_name
        records[k].path = base / (fn.replace("\\", "/").rsplit("/", 1)[-1] if fn.startswith("/") or "\\" in fn else fn)
    return records


def _not_found(path: Path, j: int, fn: str, bases: list[Path]) -> DataError:
    looked = ", ".join(str(b) for b in dict.fromkeys(bases))
    return DataError(f"{path}: images[{j}].file_name {fn!r} not found; looked in {looked} (put the images "
                     "there, e.g. in images/ beside the file, or fix file_name)")


def _candidate_folders(path: Path, image_root) -> list[Path]:
    if image_root is not None:
        return [Path(image_root)]
    d = path.parent
    out = [d, d / "images", d.parent / "images", d.parent, d / "data"]  # data/: FiftyOne's export
    stem = path.stem.rsplit("_", 1)[-1]  # instances_val2017.json -> val2017 (COCO's own layout)
    if stem != path.stem:
        out += [d.parent / stem, d.parent / "images" / stem]
    return out
