"""R-CNN (Girshick et al. 2014): warp every region proposal to a fixed size, run the CNN on each, score
the features with one linear SVM per class, refine the box with a class-specific linear regressor.

Three training stages, as in the paper:

1. Fine-tuning (the SGD loop of ``cnnlab train``): warped proposals (IoU >= 0.5 with an object: that
   class; else background), 32 foreground + 96 background in a batch of 128 (here: per image, 8 + 24),
   C + 1-way softmax on the backbone's pooled features.
2. SVMs (``fit_svms``, scikit-learn ``LinearSVC``, outside the SGD loop): per class, the ground-truth
   boxes are positives, proposals with IoU < 0.3 with every object of the class are negatives; hard
   negative mining: start from a random set of negatives, then repeatedly add the negatives the current
   SVM scores above -1 (inside the margin or wrong) and refit.
3. Box regression (ridge, lambda = 1000): per class, proposals with IoU >= 0.6 with an object of the
   class, regressing the R-CNN targets (t_x, t_y, t_w, t_h) from the same features.

Warping: each box is grown by 16 px of context at the 227-px scale (16 / 227 of the warp size per side,
as in the paper), then resampled to ``warp`` x ``warp`` with RoI Align (bilinear). Features are scaled to a
mean L2 norm of 20, the paper's setting. SVM margins become scores by a logistic squash (monotone, so
average precision sees only their order). The SVMs and regressors are buffers: saved with the checkpoint.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models.detection.regions import class_boxes_to_detections, decode_boxes, encode_boxes, sample_rois

CONTEXT = 16 / 227  # context padding per side, as a fraction of the warped size (the paper's p = 16 at 227 px)


def warp_regions(x: torch.Tensor, boxes: list[torch.Tensor], size: int) -> torch.Tensor:
    """Images (B, 3, H, W) and per image boxes (K_i, 4) xyxy -> (sum K_i, 3, size, size): each box grown by
    the context padding, then warped (anisotropically) to size x size by bilinear sampling."""
    from torchvision.ops import roi_align

    grown = []
    for b in boxes:
        b = b.float().reshape(-1, 4)
        c, wh = (b[:, :2] + b[:, 2:]) / 2, (b[:, 2:] - b[:, :2]).clamp(min=1)
        wh = wh / (1 - 2 * CONTEXT)  # the box covers the middle (1 - 2p) of the warped window
        grown.append(torch.cat([c - wh / 2, c + wh / 2], 1).to(x.device))
    return roi_align(x, grown, size, 1.0, sampling_ratio=2, aligned=True)


def fit_linear_svm(pos: np.ndarray, neg: np.ndarray, c: float = 0.01, rounds: int = 2, start: int = 2000,
                   seed: int = 0) -> tuple[np.ndarray, float, list[int]]:
    """One class's SVM with hard negative mining: (w (D,), b, sizes of the negative set in each round).

    Round 0 trains on ``start`` random negatives; each later round adds every negative the current SVM
    scores above -1 that is not in the set yet (the hardest first, at most as many as the set holds)."""
    from sklearn.svm import LinearSVC

    rng = np.random.default_rng(seed)
    chosen = rng.permutation(len(neg))[:start]
    sizes = []
    svm = None
    for r in range(rounds + 1):
        sizes.append(len(chosen))
        x = np.concatenate([pos, neg[chosen]])
        y = np.concatenate([np.ones(len(pos)), -np.ones(len(chosen))])
        svm = LinearSVC(C=c, dual=False, max_iter=2000, intercept_scaling=10.0, random_state=seed).fit(x, y)
        if r == rounds:
            break
        margin = svm.decision_function(neg)
        hard = np.setdiff1d(np.nonzero(margin > -1)[0], chosen)
        if len(hard) == 0:
            break
        hard = hard[np.argsort(-margin[hard])][:max(len(chosen), 1)]
        chosen = np.concatenate([chosen, hard])
    return svm.coef_[0].astype(np.float32), float(svm.intercept_[0]), sizes


class RCNN(nn.Module):
    """Backbone on warped regions -> pooled features -> SVM scores per class and ridge box deltas."""

    def __init__(self, backbone: nn.Module, num_classes: int, warp: int = 64, fg_per_image: int = 8,
                 rois_per_image: int = 32):
        super().__init__()
        self.backbone = backbone
        self.num_classes, self.warp = num_classes, warp
        self.fg_per_image, self.rois_per_image = fg_per_image, rois_per_image
        d = backbone.feature_info[-1]["num_chs"]
        self.finetune = nn.Linear(d, num_classes + 1)  # stage 1 only: the softmax of fine-tuning
        self.register_buffer("svm_w", torch.zeros(num_classes, d))
        self.register_buffer("svm_b", torch.zeros(num_classes))
        self.register_buffer("reg_w", torch.zeros(num_classes, 4, d))
        self.register_buffer("reg_b", torch.zeros(num_classes, 4))
        self.register_buffer("feat_scale", torch.ones(()))
        self.register_buffer("fitted", torch.zeros(()))  # 1 once fit_svms ran after the last training step

    def stages(self) -> list[nn.Module]:
        return self.backbone.stages()

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """Warped regions (K, 3, w, w) -> features (K, D), globally average-pooled."""
        return self.backbone.forward_features(crops).mean((2, 3))

    def embed(self, x: torch.Tensor, boxes: list[torch.Tensor], chunk: int = 256) -> torch.Tensor:
        """Features (sum K_i, D) of the boxes of each image, scaled by ``feat_scale``, in chunks of crops."""
        crops = warp_regions(x, boxes, self.warp)
        feats = [self(crops[i:i + chunk]) for i in range(0, len(crops), chunk)]
        return (torch.cat(feats) if feats else crops.new_zeros(0, self.svm_w.shape[1])) * self.feat_scale

    def losses(self, x: torch.Tensor, targets: list[dict]) -> dict[str, torch.Tensor]:
        """Stage 1: C + 1-way cross-entropy on warped proposals (a quarter foreground)."""
        boxes, classes = [], []
        for t in targets:
            r, c, _ = sample_rois(t["proposals"].cpu(), t["boxes"].cpu(), t["labels"].cpu(), self.rois_per_image,
                                  self.fg_per_image / self.rois_per_image, bg_iou=(0.0, 0.5))
            boxes.append(r)
            classes.append(c)
        classes = torch.cat(classes).to(x.device)
        logits = self.finetune(self(warp_regions(x, boxes, self.warp)))
        self.fitted.zero_()  # the features changed: the SVMs must be fitted again
        loss = F.cross_entropy(logits, classes)
        return {"loss": loss, "classifier": loss.detach(), "acc": (logits.argmax(1) == classes).float().mean()}

    @torch.no_grad()
    def fit_svms(self, items, negatives_per_image: int = 40, svm_c: float = 0.01, ridge_alpha: float = 1000.0,
                 seed: int = 0) -> dict:
        """Stages 2 and 3 on ``items``: iterable of (x (3, S, S) normalized, gt boxes (G, 4), gt labels (G,),
        proposals (P, 4)). Sets the SVM and regressor buffers; returns a small report (counts per class)."""
        from sklearn.linear_model import Ridge

        from cnnlab.ops.boxes import box_iou

        was_training = self.training
        self.eval()
        gen = torch.Generator().manual_seed(seed)
        self.feat_scale.fill_(1.0)
        feats, is_gt, labels, ious, gt_of = [], [], [], [], []
        for x, gt, lab, props in items:
            props = props.reshape(-1, 4).float()
            props = props[torch.randperm(len(props), generator=gen)[:negatives_per_image]]
            boxes = torch.cat([gt.float().reshape(-1, 4), props])
            f = self.embed(x[None], [boxes]).cpu()  # (G + P, D)
            iou = box_iou(boxes, gt.float()) if len(gt) else torch.zeros(len(boxes), 0)
            per_class = torch.zeros(len(boxes), self.num_classes)  # best IoU with an object of each class
            which = torch.full((len(boxes), self.num_classes), -1, dtype=torch.long)
            for c in lab.unique().tolist():
                m = lab == c
                best, arg = iou[:, m].max(1)
                per_class[:, c] = best
                which[:, c] = m.nonzero().flatten()[arg]
            feats.append(f)
            is_gt.append(torch.arange(len(boxes)) < len(gt))
            labels.append(torch.cat([lab.long(), torch.full((len(props),), -1)]))
            ious.append(per_class)
            gt_of.append(torch.cat([gt.float().reshape(-1, 4)[which.clamp(min=0)].reshape(len(boxes), -1, 4),
                                    boxes[:, None].expand(-1, self.num_classes, 4)], 2))  # (K, C, 8): gt, box
        f = torch.cat(feats)
        scale = 20.0 / f.norm(dim=1).mean().clamp(min=1e-6)  # mean norm 20 (the paper's scaling)
        f = (f * scale).numpy()
        is_gt, labels, ious, pairs = torch.cat(is_gt).numpy(), torch.cat(labels).numpy(), torch.cat(ious).numpy(), \
            torch.cat(gt_of)
        report = {"regions": int(len(f)), "classes": []}
        for c in range(self.num_classes):
            pos = f[is_gt & (labels == c)]
            neg = f[(~is_gt) & (ious[:, c] < 0.3)]
            row = {"positives": int(len(pos)), "negatives": int(len(neg))}
            if len(pos) and len(neg):
                w, b, sizes = fit_linear_svm(pos, neg, svm_c, seed=seed + c)
                self.svm_w[c], self.svm_b[c] = torch.from_numpy(w), b
                row["negative_set"] = sizes
            else:
                self.svm_w[c].zero_()
                self.svm_b[c] = -10.0  # a class never seen in training is never detected
            close = (~is_gt) & (ious[:, c] >= 0.6)
            row["regression"] = int(close.sum())
            if close.sum() >= 5:
                t = encode_boxes(pairs[close, c, :4], pairs[close, c, 4:]).numpy()
                ridge = Ridge(alpha=ridge_alpha).fit(f[close], t)
                self.reg_w[c], self.reg_b[c] = torch.from_numpy(ridge.coef_).float(), torch.from_numpy(ridge.intercept_).float()
            else:
                self.reg_w[c].zero_()
                self.reg_b[c].zero_()
            report["classes"].append(row)
        self.feat_scale.fill_(float(scale))
        self.fitted.fill_(1.0)
        self.train(was_training)
        return report

    @torch.no_grad()
    def detect_images(self, x: torch.Tensor, score_threshold: float = 0.01, iou_threshold: float = 0.5,
                      proposals: list[torch.Tensor] | None = None) -> list[dict[str, torch.Tensor]]:
        """Per image: every proposal warped and embedded, scored by each class's SVM, moved by its regressor."""
        if proposals is None:
            raise ValueError("R-CNN needs region proposals for each image")
        out = []
        for i, p in enumerate(proposals):
            p = p.to(x.device).float().reshape(-1, 4)
            f = self.embed(x[i:i + 1], [p])  # (K, D)
            scores = torch.sigmoid(f @ self.svm_w.T + self.svm_b)  # (K, C)
            deltas = torch.einsum("kd,cjd->kcj", f, self.reg_w) + self.reg_b  # (K, C, 4)
            boxes = decode_boxes(deltas, p)  # (K, C, 4)
            out.append(class_boxes_to_detections(boxes, scores, tuple(x.shape[-2:]), score_threshold, iou_threshold))
        return out
