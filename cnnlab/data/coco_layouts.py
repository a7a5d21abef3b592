"""Where the COCO JSON files of a folder are, in the layouts that tools write.

``find_coco_files(root, kind)`` gives split -> JSON file ({} when the folder holds none); the
first layout that has a train file wins:

- cnnlab's scene generator: ``root/{train,val,test}/annotations.json``;
- Roboflow's COCO export: ``root/{train,valid,test}/_annotations.coco.json`` (images beside it);
- COCO's own: ``root/annotations/<kind>_{train,val,test}*.json`` (instances_train2017.json; the
  images in ``root/train2017/`` or ``root/images/...``);
- CVAT's "COCO 1.0" export: a single ``root/annotations/<kind>_<anything>.json``
  (instances_default.json) with the images in ``root/images/``: it is the train split;
- one ``root/annotations.json`` (train).

``root`` may also be one JSON file: it is the train split (val is then carved from it).
Every reader of COCO data (detect, segment, localize, landmarks, caption) goes through here, so a
layout that works for one task works for all of them.
"""

from __future__ import annotations

from pathlib import Path

SPLITS = ("train", "val", "test")
ROBOFLOW_DIRS = {"train": "train", "val": "valid", "test": "test"}  # split -> Roboflow's folder name


def find_coco_files(root: str | Path, kind: str = "instances") -> dict[str, Path]:
    """split -> COCO JSON path for the layouts in the module docstring; {} when none has a train file."""
    base = Path(root)
    if base.is_file() and base.suffix.lower() == ".json":
        return {"train": base}
    if not base.is_dir():
        return {}
    layouts = [
        {s: base / s / "annotations.json" for s in SPLITS},
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
        for s in SPLITS:
            hits = sorted(folder.glob(f"{kind}_{s}*.json"))
            if hits:
                official[s] = hits[0]
        if "train" in official:
            return official
        anything = sorted(folder.glob(f"{kind}_*.json"))
        if len(anything) == 1:  # CVAT: instances_default.json; one file, so no ambiguity about the split
            return {"train": anything[0]}
    if (base / "annotations.json").is_file():
        return {"train": base / "annotations.json"}
    return {}
