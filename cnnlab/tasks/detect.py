"""Object detection: every object of an image, its class and box, on any backbone.

``cnnlab train detect --data DIR --model yolo|ssd|sliding_window|rcnn|fast_rcnn|faster_rcnn|mask_rcnn
--backbone NAME``; the region-based four live in ``tasks/detect_regions.py``. DIR is a COCO, VOC
or YOLO-txt folder (``cnnlab.data.detection`` recognizes the layout). Images are resized to
``--img-size`` squares and held in memory. Batches (DESIGN): ``images`` list of f32 (3, S, S),
``targets`` list of dict(boxes f32[N,4] xyxy px, labels i64[N], image_id).

Metrics: COCO AP@[.5:.95] (``map``), AP50 (``map50``, picks the best checkpoint), AP75 via
pycocotools, Pascal VOC AP50 (all-point) and per-class AP50 (``ap50_<class>``); with Mask R-CNN,
mask AP (``mask_map``, ``mask_map50``, ``mask_map75``, pycocotools ``segm``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.engine.config import opt
from cnnlab.errors import ConfigError, DataError
from cnnlab.tasks import register_task
from cnnlab.tasks.base import BackboneTaskConfig, DataBundle, Evaluator, Task, backbone_kwargs, create_backbone

DETECTORS = ("yolo", "ssd", "sliding_window", "rcnn", "fast_rcnn", "faster_rcnn", "mask_rcnn")
DEFAULT_SIZE = 320  # when a folder's images differ in size


@dataclass
class DetectConfig(BackboneTaskConfig):
    data: str = opt("", "a COCO, Pascal VOC or YOLO-txt folder (train and val splits, or val carved from train)",
                    group="data")
    model: str = opt("yolo", "detector: yolo (grid + anchor boxes), ssd (default boxes on several maps), "
                     "sliding_window (a window classifier run as convolutions), rcnn (warped selective-search "
                     "regions, SVMs), fast_rcnn (one pass, RoI Pool), faster_rcnn (region proposal network), "
                     "mask_rcnn (+ RoI Align and a mask head; needs COCO instance masks)", group="model",
                     choices=DETECTORS)
    roi: str | None = opt(None, "RoI feature pooling: align (RoI Align, the default of faster_rcnn and mask_rcnn) or "
                          "pool (RoI Pool, the default of fast_rcnn)", group="model", choices=("align", "pool"))
    feature_stride: int | None = opt(None, "fast_rcnn, faster_rcnn, mask_rcnn: stride of the feature map the RoIs "
                                     "are pooled from: 8 (the default; the stride-8 stage joined with the coarser "
                                     "ones) or 16 (the classic single map)", group="model", choices=(8, 16))
    proposals: int = opt(2000, "rcnn, fast_rcnn: selective-search proposals kept per image (the best-ranked)",
                         group="model", min=1)
    warp: int = opt(64, "rcnn: the square size each region is warped to (the paper's 227 for AlexNet)", group="model",
                    min=8)
    svm_images: int = opt(300, "rcnn: training images whose regions train the SVMs and box regressors",
                          group="model", min=1)
    backbone: str = opt("mobilenet_v2", "backbone: any registered model (see `cnnlab models`)", group="model")
    img_size: int | None = opt(None, "resize images to this square size (default: the images' size when they are "
                               f"all one square size, else {DEFAULT_SIZE})", group="data", min=32)
    augment: str = opt("scale+color", "'none' or '+'-joined: hflip (mirror; not by default, since it changes what "
                       "digits, letters and signs mean: add it for natural photos), scale (zoom 0.75-1.25x and shift), "
                       "color", group="data")
    anchors: str = opt("kmeans", "YOLO anchor boxes: kmeans (k-means on the training boxes with 1 - IoU distance, "
                       "YOLOv2), hand (five hand-picked shapes), or 'w,h w,h ...' in pixels", group="model")
    num_anchors: int = opt(5, "YOLO anchors per cell (with --anchors kmeans)", group="model", min=1)
    anchor_iou: float = opt(0.5, "YOLO: besides the best anchor of the object's cell (the course's rule), also train "
                            "the cell's other anchors whose shape IoU with the object is >= this (YOLOv4); 1 = the "
                            "best anchor only", group="model", min=0, max=1)
    score_threshold: float = opt(0.3, "score needed to report a detection in predict (evaluation uses 0.01, "
                                 "as mAP needs the whole precision-recall curve)", group="model", min=0)
    nms_iou: float = opt(0.5, "non-max suppression: drop a box overlapping a better one of its class by IoU >= this",
                         group="model", min=0, max=1)
    freeze: int | None = opt(None, "freeze the first N backbone stages (default: 2 with pretrained weights, as "
                             "torchvision's detectors train 3 of 5; else 0)", group="model", min=0)
    epochs: int | None = opt(None, "number of passes over the training set (default: 30; faster_rcnn, mask_rcnn 10; "
                             "fast_rcnn 6; rcnn 2, its fine-tuning)", group="optimization", min=1)
    lr: float | None = opt(2e-3, "peak learning rate (AdamW, cosine after a 1-epoch warm-up)", group="optimization",
                           min=0, min_open=True)
    batch_size: int | None = opt(None, "images per training step (default: 32; 8 for the region-based detectors, "
                                 "whose few epochs need more steps)", group="optimization", min=1)

    def validate(self) -> "DetectConfig":
        from cnnlab.tasks.detect_regions import EPOCHS, PROPOSAL_DETECTORS

        if self.epochs is None:
            self.epochs = EPOCHS.get(self.model, 30)
        if self.batch_size is None:
            self.batch_size = 8 if self.model in EPOCHS else 32
        if self.model in PROPOSAL_DETECTORS:  # proposals are computed once per image: no geometric augmentation
            if self.augment == "scale+color":
                self.augment = "color"
            elif {"scale", "hflip"} & set(self.augment.split("+")):
                raise ConfigError(f"--augment {self.augment}: {self.model} reads selective-search proposals computed "
                                  "once per image, so boxes cannot move; use --augment color or none")
        if self.weights in ("auto", "none", ""):
            from cnnlab.models.pretrained import names_for

            self.weights = "imagenet" if self.weights == "auto" and "imagenet" in names_for(self.backbone) else None
        weights = self.weights
        if self.freeze is None:
            self.freeze = 2 if weights else 0
        self.weights = None  # BackboneTaskConfig would resolve them for `model` (the detector): done above
        super().validate()
        self.weights = weights
        parts = set(self.augment.split("+"))
        if not parts <= {"none", "hflip", "scale", "color"}:
            raise ConfigError(f"--augment {self.augment}: use none, or '+'-joined hflip, scale, color")
        if self.anchors not in ("kmeans", "hand"):
            parse_anchors(self.anchors)
        return self


def parse_anchors(spec: str) -> list[list[float]]:
    """'w,h w,h ...' (pixels) -> [[w, h], ...]; ConfigError naming the bad part."""
    out = []
    for part in spec.replace(";", " ").split():
        try:
            w, h = (float(v) for v in part.split(","))
        except ValueError:
            raise ConfigError(f"--anchors {spec!r}: {part!r} is not 'width,height' (e.g. --anchors '20,30 40,40')") from None
        if w <= 0 or h <= 0:
            raise ConfigError(f"--anchors {spec!r}: {part!r} must be positive")
        out.append([w, h])
    if not out:
        raise ConfigError(f"--anchors {spec!r}: give kmeans, hand, or 'w,h w,h ...'")
    return out


class DetectEvaluator(Evaluator):
    """Keeps every image's detections and truth; compute() runs DetectionMetrics (pycocotools + VOC AP)."""

    def __init__(self, classes: list[str]):
        self.classes = classes
        super().__init__()

    def reset(self) -> None:
        super().reset()
        self.preds: list[dict] = []
        self.targets: list[dict] = []

    @torch.no_grad()
    def update(self, out: dict[str, Any]) -> None:
        from cnnlab.tasks.detect_regions import masks_to_rles

        super().update(out)
        for p, t in zip(out["preds"], out["targets"]):
            pred = {k: v.detach().cpu() for k, v in p.items() if k != "masks"}
            truth = {"boxes": t["boxes"].cpu(), "labels": t["labels"].cpu(), "image_id": t["image_id"]}
            if "ignore_boxes" in t:  # VOC "difficult" objects, COCO crowd regions
                truth["ignore_boxes"], truth["ignore_labels"] = t["ignore_boxes"].cpu(), t["ignore_labels"].cpu()
            if "masks" in p:  # instance masks are kept as run-length codes (an image's 100 masks would be MBs)
                pred["rles"], truth["rles"] = masks_to_rles(p["masks"]), masks_to_rles(t["masks"])
                if "ignore_masks" in t:  # COCO crowds: mask AP ignores them too
                    truth["ignore_rles"] = masks_to_rles(t["ignore_masks"])
            self.preds.append(pred)
            self.targets.append(truth)

    def sync(self) -> None:
        import torch.distributed as dist

        super().sync()
        if dist.is_available() and dist.is_initialized():
            gathered: list = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, (self.preds, self.targets))
            self.preds = [p for g in gathered for p in g[0]]
            self.targets = [t for g in gathered for t in g[1]]

    def metrics(self):
        from cnnlab.metrics.detection import DetectionMetrics

        m = DetectionMetrics(self.classes)
        m.update(self.preds, self.targets)
        return m

    def compute(self) -> dict[str, Any]:
        n = max(1.0, float(self.n))
        out = {k: float(v) / n for k, v in self.sums.items()}
        m = self.metrics()
        out.update(m.compute())
        if self.preds and all("rles" in p for p in self.preds):
            from cnnlab.tasks.detect_regions import mask_ap

            out.update(mask_ap(self.preds, self.targets, len(self.classes)))
        out["count"] = int(self.n)
        out["pr_curves"] = {c: [r.tolist(), p.tolist()] for c, (r, p) in m.pr_curves().items()}  # for plots only
        return out


@register_task
class Detect(Task):
    name = "detect"
    Config = DetectConfig
    monitor, mode = "map50", "max"
    progress_keys = ("loss",)
    summary_keys = ("map50", "map", "map75", "voc_map50", "mask_map50", "mask_map")
    required_meta = ("classes", "num_classes", "img_size", "normalization", "detector")
    examples = """examples:
  cnnlab data scenes --kind detect --objects digits --n 1500 --out data/det
  cnnlab train detect --data data/det                       # YOLO on ImageNet MobileNetV2
  cnnlab train detect --data data/det --model ssd
  cnnlab train detect --data data/det/voc --model sliding_window --epochs 5
  cnnlab train detect --data ~/my_coco --img-size 320 --backbone resnet18
  cnnlab evaluate runs/detect-yolo-...                        # AP, AP50, AP75, per-class AP50
  cnnlab predict runs/detect-yolo-... photo.jpg --coco-json out.json
  cnnlab anchors --data data/det --k 5"""

    # ------------------------------------------------------------------ data and model
    def build_data(self, cfg: DetectConfig) -> DataBundle:
        from cnnlab.data import detection as D
        from cnnlab.data.single_object import limit_and_carve
        from cnnlab.data.normalize import Normalization, normalization_from_images

        src = D.find_detection_splits(cfg.data)
        records = dict(src.splits)
        fraction = 0.1 if cfg.val_fraction is None else cfg.val_fraction  # no val split given: carve 10 % off train
        limit_and_carve(records, cfg, fraction, min_train=10)
        size = self.meta.get("img_size", [None])[0] or cfg.img_size or _common_size(records["train"]) or DEFAULT_SIZE
        classes = src.classes
        if not classes:
            raise DataError(f"--data {cfg.data}: no class names found (add classes.txt)")
        if self.meta.get("classes") and list(self.meta["classes"]) != list(classes):
            raise DataError(f"--data {cfg.data}: its classes {classes[:5]} are not the run's {self.meta['classes'][:5]}; "
                            "evaluate on data with the same class list")
        skipped: list = []
        with_masks = cfg.model == "mask_rcnn"
        sets = {s: D.load_detection_set(r, size, len(classes), cfg.skip_bad, skipped, src.files.get(s, cfg.data),
                                        with_masks=with_masks)
                for s, r in records.items() if r}
        if "normalization" in self.meta:
            norm = Normalization.from_dict(self.meta["normalization"])
        else:
            norm = normalization_from_images(sets["train"].images, "channel")
        for ds in sets.values():
            ds.classes = classes
        sets["train"].transform = D.detection_transform(cfg.augment, norm, size)
        for s in ("val", "test"):
            if s in sets:
                sets[s].transform = D.eval_transform(norm)
        from cnnlab.tasks.detect_regions import PROPOSAL_DETECTORS, attach_proposals

        if cfg.model in PROPOSAL_DETECTORS:
            attach_proposals(sets, cfg.proposals)  # computed on first use (the first epoch), then kept
            self.svm_source = sets["train"]
        meta = {"classes": classes, "num_classes": len(classes), "in_chans": 3, "img_size": [size, size],
                "normalization": norm.to_dict(), "data": cfg.data, "format": src.format,
                "category_ids": src.category_ids or list(range(1, len(classes) + 1))}
        source = f"{src.format.upper()} folder {cfg.data} ({', '.join(sets)}), {size}x{size}, {len(classes)} classes"
        return DataBundle(sets["train"], sets.get("val"), sets.get("test"), meta, source,
                          collate=D.collate_detection, skipped=skipped)

    def create_network(self, meta: dict[str, Any]) -> nn.Module:
        from cnnlab.models.detection import SSD, YOLO, SlidingWindowDetector

        from cnnlab.tasks.detect_regions import REGION_DETECTORS, create_region_network

        backbone = create_backbone(meta)
        c, size = meta["num_classes"], meta["img_size"][0]
        if meta["detector"] in REGION_DETECTORS:
            return create_region_network(meta, backbone)
        if meta["detector"] == "yolo":
            return YOLO(backbone, c, meta["anchors"], extra_anchor_iou=meta.get("anchor_iou", 1.0))
        if meta["detector"] == "ssd":
            return SSD(backbone, c, size)
        return SlidingWindowDetector(backbone, c)

    def build_model(self, cfg: DetectConfig, data: DataBundle, *, resume: bool = False) -> nn.Module:
        from cnnlab.engine.transfer import freeze_stages, init_and_load

        as_backbone = dataclasses.replace(cfg, model=cfg.backbone)
        self.meta.update(model=cfg.backbone, detector=cfg.model, head_drop_rate=cfg.drop_rate, anchor_iou=cfg.anchor_iou,
                         roi=cfg.roi, warp=cfg.warp, feature_stride=cfg.feature_stride or 8,
                         model_kwargs=backbone_kwargs(as_backbone, self.meta["img_size"][0]))
        if cfg.model == "yolo" and "anchors" not in self.meta:
            self.meta["anchors"], self.meta["anchor_report"] = choose_anchors(cfg, data.train)
            print(self.meta["anchor_report"])
        model = self.create_network(self.meta)
        if not resume:
            init_and_load(model.backbone, as_backbone, head_used=False)
        if cfg.freeze:
            freeze_stages(model.backbone, cfg.freeze)
        return model

    # ------------------------------------------------------------------ steps
    def _size(self, x: torch.Tensor) -> tuple[int, int]:
        return int(x.shape[-2]), int(x.shape[-1])

    def _images(self, batch: dict[str, Any]) -> torch.Tensor:
        x = torch.stack(batch["images"]) if isinstance(batch["images"], list) else batch["images"]
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def training_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        from cnnlab.tasks.detect_regions import REGION_DETECTORS

        x = self._images(batch)
        if self.meta["detector"] in REGION_DETECTORS:
            return model.losses(x, batch["targets"])
        if self.meta["detector"] == "sliding_window":
            import torch.nn.functional as F

            crops, labels = model.sample_windows(x, batch["targets"])
            logits = model(crops)
            loss = F.cross_entropy(logits, labels)
            return {"loss": loss, "acc": (logits.detach().argmax(1) == labels).float().mean()}
        return model.loss(model(x), batch["targets"], self._size(x))

    def _detect(self, model: nn.Module, x: torch.Tensor, score_threshold: float, targets: list | None = None) -> list[dict]:
        from cnnlab.tasks.detect_regions import REGION_DETECTORS, region_detect

        if self.meta["detector"] in REGION_DETECTORS:
            return region_detect(self, model, x, score_threshold, targets)
        if self.meta["detector"] == "sliding_window":
            return model.detect(model.dense(x), score_threshold, min(self.cfg.nms_iou, 0.3))
        return model.detect(model(x), score_threshold, self.cfg.nms_iou)

    @torch.no_grad()
    def validation_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        x = self._images(batch)
        out: dict[str, Any] = {"n": len(x), "targets": batch["targets"]}
        from cnnlab.tasks.detect_regions import REGION_DETECTORS

        if self.meta["detector"] in REGION_DETECTORS:  # no validation loss: torchvision's heads give it in training only
            out["preds"] = self._detect(model, x, 0.01, batch["targets"])
        elif self.meta["detector"] == "sliding_window":
            dense = model.dense(x)
            out["preds"] = model.detect(dense, 0.01, min(self.cfg.nms_iou, 0.3))
        else:
            raw = model(x)
            out["loss_sum"] = model.loss(raw, batch["targets"], self._size(x))["loss"] * len(x)
            out["preds"] = model.detect(raw, 0.01, self.cfg.nms_iou)
        return out

    def evaluator(self) -> DetectEvaluator:
        return DetectEvaluator(self.meta["classes"])

    def evaluation_plots(self, m: dict[str, Any], folder: Path) -> list[Path]:
        import numpy as np

        from cnnlab.metrics.detection import plot_pr_curves

        path = folder / "pr.png"
        plot_pr_curves({c: (np.asarray(r), np.asarray(p)) for c, (r, p) in m["pr_curves"].items()}, path,
                       "precision-recall at IoU 0.5")
        return [path]

    def print_details(self, m: dict[str, Any]) -> None:
        from cnnlab.metrics.detection import DetectionMetrics

        keys = DetectionMetrics(self.meta["classes"]).keys
        rows = [(c, m.get(f"ap50_{k}")) for c, k in zip(self.meta["classes"], keys)]
        print("per-class AP50 (VOC, all-point):")
        for c, v in rows:
            print(f"  {c:<20} {'-' if v is None else f'{v:.3f}'}")

    # ------------------------------------------------------------------ using a trained model
    def prepare(self, path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
        from cnnlab.data.single_object import prepare_image

        return prepare_image(self.meta, path)

    @torch.no_grad()
    def predict(self, model: nn.Module, images: torch.Tensor, originals: list[torch.Tensor] | None = None) -> list[dict]:
        """Per image: {"detections": [{"class", "score", "box" xyxy in the original image's pixels}]}."""
        from cnnlab.tasks.detect_regions import masks_to_rles, resize_masks

        s = images.shape[-1]
        out = []
        for i, det in enumerate(self._detect(model, images, self.cfg.score_threshold)):
            h, w = originals[i].shape[-2:] if originals is not None else (s, s)
            scale = torch.tensor([w / s, h / s, w / s, h / s])
            rows = [{"class": self.meta["classes"][int(c)], "label": int(c), "score": round(float(p), 4),
                     "box": [round(float(v), 1) for v in (b.cpu() * scale)]}
                    for b, p, c in zip(det["boxes"], det["scores"], det["labels"])]
            if "masks" in det:  # COCO RLE (compressed counts) in the original image's pixels
                for row, rle in zip(rows, masks_to_rles(resize_masks(det["masks"].cpu(), h, w))):
                    row["mask"] = {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()}
            out.append({"detections": rows, "count": len(rows)})
        return out

    @torch.no_grad()
    def coco_predictions(self, model: nn.Module, path: str, data: str | None = None, split: str | None = None):
        """Detections on a split (of the run's data, or of ``data``) written as COCO results:
        (path, images, detections, split). Boxes are in the original images' pixels."""
        from cnnlab.data.coco import write_coco_results

        ds, split, bundle = self.eval_data(self.cfg, split, data)
        s = self.meta["img_size"][0]
        preds = []
        loader = self.eval_loader(self.cfg, bundle, ds)
        k = 0
        for batch in loader:
            x = self._images(batch)
            for det in self._detect(model, x, 0.01, batch["targets"]):
                h, w = ds.sizes[k]
                scale = torch.tensor([w / s, h / s, w / s, h / s])
                preds.append({"image_id": ds.image_ids[k], "boxes": det["boxes"].cpu() * scale,
                              "labels": det["labels"].cpu(), "scores": det["scores"].cpu()})
                if "masks" in det:
                    from cnnlab.tasks.detect_regions import resize_masks

                    preds[-1]["masks"] = (resize_masks(det["masks"].cpu(), h, w) > 0.5).numpy()
                k += 1
        try:
            out = write_coco_results(path, preds, bundle.meta.get("category_ids"))
        except OSError as e:
            raise DataError(f"--coco-json {path}: cannot write it ({e.strerror or e})") from None
        return out, len(preds), sum(len(p["scores"]) for p in preds), split

    def draw(self, image: torch.Tensor, prediction: dict, path: Path) -> None:
        from cnnlab.engine.plots import draw_boxes

        dets = prediction["detections"]
        if any("mask" in d for d in dets):
            from cnnlab.tasks.detect_regions import draw_masks

            return draw_masks(image, dets, path)
        draw_boxes(image, [d["box"] for d in dets], [f"{d['class']} {d['score']:.2f}" for d in dets], path)

    def report(self, run_dir: Path, model: nn.Module, data: DataBundle, final: dict[str, Any], split: str | None,
               device: torch.device) -> list[str]:
        from cnnlab.tasks.detect_report import detection_report

        return detection_report(self, run_dir, model, data, split, device)


def _common_size(records) -> int | None:
    """The images' size when the first 16 are all one square size (up to 640), else None."""
    sizes = {(r.height, r.width) for r in records[:16]}
    if len(sizes) == 1:
        h, w = sizes.pop()
        if h == w and h <= 640:
            return h
    return None


def choose_anchors(cfg: DetectConfig, train) -> tuple[list[list[float]], str]:
    """YOLO's anchors for a run and a line comparing them by mean best IoU with the training boxes."""
    from cnnlab.models.detection.yolo import HAND_PICKED_ANCHORS
    from cnnlab.ops.anchors import kmeans_anchors, mean_best_iou

    size = train.images.shape[-1]
    boxes = train.all_boxes()
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-3)
    hand = torch.tensor(HAND_PICKED_ANCHORS) * size
    if cfg.anchors == "hand" or len(wh) < cfg.num_anchors:
        chosen, how = hand, "hand-picked"
    elif cfg.anchors == "kmeans":
        chosen, _ = kmeans_anchors(wh, cfg.num_anchors, seed=cfg.seed)
        how = f"k-means (k={cfg.num_anchors})"
    else:
        chosen, how = torch.tensor(parse_anchors(cfg.anchors)), "given"
    report = f"anchors ({how}): " + " ".join(f"{w:.0f}x{h:.0f}" for w, h in chosen.tolist())
    if len(wh):
        report += (f"; mean best IoU with the {len(wh)} training boxes {mean_best_iou(wh, chosen):.3f}"
                   f" (hand-picked: {mean_best_iou(wh, hand):.3f})")
    return chosen.tolist(), report
