"""Anchor boxes: YOLO's anchor assignment and k-means anchors, SSD's default boxes, matching and offsets.

YOLO (deeplearning.ai, "Anchor boxes"; YOLOv2, Redmon & Farhadi 2017): an object goes to the grid
cell holding its midpoint and to the anchor whose *shape* fits it best (IoU of the two boxes placed
at the same centre). SSD (Liu et al. 2016): a fixed set of default boxes per feature-map cell, each
default matched to ground truth by IoU, regressed as variance-scaled offsets, and trained with hard
negative mining. All boxes here are xyxy pixels unless a name says otherwise.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from cnnlab.errors import ConfigError
from cnnlab.ops.boxes import box_iou, encode_cells

# ---------------------------------------------------------------------------------------------
# YOLO: shape IoU, anchor assignment, k-means anchors
# ---------------------------------------------------------------------------------------------


def wh_iou(wh1: torch.Tensor, wh2: torch.Tensor) -> torch.Tensor:
    """IoU by shape only: boxes (N, 2) and (M, 2) as (w, h), both placed at the same centre -> (N, M)."""
    inter = torch.minimum(wh1[:, None, 0], wh2[None, :, 0]) * torch.minimum(wh1[:, None, 1], wh2[None, :, 1])
    area1 = (wh1[:, 0] * wh1[:, 1])[:, None]  # (N, 1)
    area2 = (wh2[:, 0] * wh2[:, 1])[None, :]  # (1, M)
    return inter / (area1 + area2 - inter).clamp(min=1e-12)  # (N, M)


def assign_anchors(boxes_xyxy: torch.Tensor, img_h: int, img_w: int, grid: int | tuple[int, int],
                   anchors_wh: torch.Tensor, return_kept: bool = False):
    """YOLO targets: each object -> (cell holding its midpoint, anchor with the highest shape IoU).

    ``anchors_wh`` (A, 2) are (w, h) in pixels. Returns ``rows``, ``cols``, ``anchor_idx`` i64 (K,) and
    ``b`` (K, 4) = (b_x, b_y, b_h, b_w) relative to the cell as in :func:`encode_cells`.

    Collisions: the output holds one slot per (cell, anchor). When several objects land in the same
    cell and anchor, the one with the largest box area keeps the slot (earliest in input order on
    ties) and the others are dropped, so ``K <= N`` and a target tensor can be filled by plain
    indexing without silent overwrites. The kept objects stay in input order; ``return_kept=True``
    adds a fifth output, their indices into ``boxes_xyxy`` (K,).
    """
    rows, cols, b = encode_cells(boxes_xyxy, img_h, img_w, grid)  # (N,), (N,), (N, 4)
    wh = boxes_xyxy[:, 2:] - boxes_xyxy[:, :2]  # (N, 2)
    anchor_idx = wh_iou(wh, anchors_wh.to(wh)).argmax(dim=1)  # (N,)

    # Resolve collisions: visit objects from largest to smallest area; the first to claim a slot keeps it.
    area = wh[:, 0] * wh[:, 1]
    taken: set[tuple[int, int, int]] = set()
    kept = []
    for i in torch.argsort(area, descending=True, stable=True).tolist():
        slot = (int(rows[i]), int(cols[i]), int(anchor_idx[i]))
        if slot not in taken:
            taken.add(slot)
            kept.append(i)
    kept_t = torch.tensor(sorted(kept), dtype=torch.long, device=boxes_xyxy.device)
    out = (rows[kept_t], cols[kept_t], anchor_idx[kept_t], b[kept_t])
    return (*out, kept_t) if return_kept else out


def mean_best_iou(wh: torch.Tensor, anchors: torch.Tensor) -> float:
    """Average over boxes (N, 2) of the best shape IoU with any anchor (k, 2): YOLOv2's "Avg IOU"."""
    return float(wh_iou(wh, anchors).max(dim=1).values.mean())


def kmeans_anchors(wh: torch.Tensor, k: int, iters: int = 100, seed: int = 0, n_init: int = 3
                   ) -> tuple[torch.Tensor, float]:
    """Anchor shapes by k-means on box (w, h) with distance d = 1 - IoU(box, centroid) (YOLOv2).

    Euclidean k-means would let large boxes dominate; 1 - IoU is scale-free. Centroids start
    k-means++-style (each new one drawn with probability proportional to d^2 from the nearest chosen
    one) from a fixed ``seed``; each update sets a centroid to the *mean* (w, h) of its members, as
    YOLOv2's k-means does. An empty cluster is re-seeded with the box worst fitted by its centroid.
    The best of ``n_init`` restarts (by mean best IoU) is kept.

    Returns the anchors (k, 2) sorted by area, smallest first, and their mean best IoU.
    """
    wh = torch.as_tensor(wh, dtype=torch.float64).reshape(-1, 2)  # (N, 2)
    n = wh.shape[0]
    if not 1 <= k <= n:
        raise ConfigError(f"kmeans_anchors: k={k} must be between 1 and the number of boxes ({n})")
    gen = torch.Generator().manual_seed(seed)
    best, best_iou = None, -1.0
    for _ in range(n_init):
        centroids = _kmeans_pp_init(wh, k, gen)
        for _ in range(iters):
            dist = 1 - wh_iou(wh, centroids)  # (N, k)
            assign = dist.argmin(dim=1)  # (N,)
            new = centroids.clone()
            for j in range(k):
                members = wh[assign == j]
                if members.shape[0] > 0:
                    new[j] = members.mean(dim=0)
                else:  # empty cluster: take the box its current centroid fits worst
                    new[j] = wh[dist.gather(1, assign[:, None]).argmax()]
            if torch.allclose(new, centroids):
                break
            centroids = new
        score = mean_best_iou(wh, centroids)
        if score > best_iou:
            best, best_iou = centroids, score
    order = torch.argsort(best[:, 0] * best[:, 1])
    return best[order].float(), best_iou


def _kmeans_pp_init(wh: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ seeding under d = 1 - IoU: (k, 2) centroids chosen among the boxes."""
    n = wh.shape[0]
    chosen = [int(torch.randint(n, (1,), generator=gen))]
    for _ in range(1, k):
        d = (1 - wh_iou(wh, wh[chosen])).min(dim=1).values.clamp(min=0)  # (N,)
        weights = d**2
        if float(weights.sum()) <= 0:  # every box already coincides with a centroid
            weights = torch.ones(n, dtype=wh.dtype)
            weights[chosen] = 0
        chosen.append(int(torch.multinomial(weights, 1, generator=gen)))
    return wh[chosen].clone()


# ---------------------------------------------------------------------------------------------
# SSD: default boxes, matching, offsets, hard negative mining
# ---------------------------------------------------------------------------------------------


def boxes_per_cell(aspect_ratios: Sequence[float]) -> int:
    """Default boxes per cell of one SSD feature map: 2 squares (s_k, sqrt(s_k s_k+1)) + a and 1/a per ratio."""
    return 2 + 2 * len(aspect_ratios)


def ssd_scales(num_maps: int, s_min: float = 0.2, s_max: float = 0.9) -> list[float]:
    """SSD's scales s_1..s_m, s_k = s_min + (s_max - s_min)(k - 1)/(m - 1), plus s_m+1 = 1.

    The paper leaves s_m+1 (needed by the last map's extra square box) open; 1.0 (the whole image)
    is the common choice. With a single map s_1 = s_min.
    """
    m = num_maps
    if m == 1:
        return [s_min, 1.0]
    return [s_min + (s_max - s_min) * (k - 1) / (m - 1) for k in range(1, m + 1)] + [1.0]


def ssd_default_boxes(feature_sizes: Sequence[tuple[int, int]], img_size: int | tuple[int, int],
                      s_min: float = 0.2, s_max: float = 0.9,
                      aspect_ratios: Sequence[Sequence[float]] | Sequence[float] = (2, 3),
                      scales: Sequence[float] | None = None, clip: bool = True) -> torch.Tensor:
    """SSD default boxes (D, 4) xyxy pixels for feature maps of sizes ``[(f_h, f_w), ...]``.

    Map k (1-based, of m) has scale s_k (:func:`ssd_scales`, or ``scales`` of length m + 1 to set
    them yourself, e.g. smaller ones for small objects). Scales are fractions of the image side:
    a box of scale s and ratio a = w/h has w = s sqrt(a) W and h = s / sqrt(a) H.
    ``aspect_ratios`` is one tuple per map, or a single tuple used for every map.

    Order (the SSD head's outputs must follow it): map by map; within a map, cells row-major
    (i over f_h, then j over f_w); within a cell, :func:`boxes_per_cell` boxes:
    [square s_k, square sqrt(s_k s_k+1), then for each ratio a in order: a, 1/a].
    Cell (i, j) is centred at ((j + 0.5)/f_w W, (i + 0.5)/f_h H). ``clip`` clips boxes to the image.
    """
    img_h, img_w = (img_size, img_size) if isinstance(img_size, int) else img_size
    m = len(feature_sizes)
    if scales is None:
        scales = ssd_scales(m, s_min, s_max)
    if len(scales) != m + 1:
        raise ConfigError(f"ssd_default_boxes: scales needs {m + 1} values (one per map plus one), got {len(scales)}")
    if len(aspect_ratios) == 0 or not isinstance(aspect_ratios[0], (tuple, list)):
        aspect_ratios = [tuple(aspect_ratios)] * m
    if len(aspect_ratios) != m:
        raise ConfigError(f"ssd_default_boxes: aspect_ratios needs one tuple per map ({m}), got {len(aspect_ratios)}")

    all_boxes = []
    for k, (f_h, f_w) in enumerate(feature_sizes):
        s, s_next = scales[k], scales[k + 1]
        shapes = [(s, s), (math.sqrt(s * s_next),) * 2]  # (w, h) as fractions of the image
        for a in aspect_ratios[k]:
            shapes += [(s * math.sqrt(a), s / math.sqrt(a)), (s / math.sqrt(a), s * math.sqrt(a))]
        wh = torch.tensor(shapes) * torch.tensor([img_w, img_h])  # (P, 2) pixels
        cy = (torch.arange(f_h) + 0.5) / f_h * img_h
        cx = (torch.arange(f_w) + 0.5) / f_w * img_w
        cy, cx = torch.meshgrid(cy, cx, indexing="ij")  # (f_h, f_w) each, row-major
        centres = torch.stack([cx, cy], dim=-1).reshape(-1, 1, 2)  # (f_h f_w, 1, 2)
        boxes = torch.cat([centres - wh / 2, centres + wh / 2], dim=-1)  # (f_h f_w, P, 4)
        all_boxes.append(boxes.reshape(-1, 4))
    boxes = torch.cat(all_boxes)  # (D, 4)
    if clip:
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, img_w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, img_h)
    return boxes


def match_default_boxes(default_xyxy: torch.Tensor, gt_xyxy: torch.Tensor, iou_threshold: float = 0.5) -> torch.Tensor:
    """SSD matching: index of the ground truth each default box (D,) predicts, -1 for background (i64, (D,)).

    Every default with IoU >= ``iou_threshold`` with its best ground truth takes that one; in
    addition each ground truth takes its own best default box even below the threshold, so every
    object is trained. If two ground truths share a best default box the later one wins it.
    """
    d = default_xyxy.shape[0]
    matched = torch.full((d,), -1, dtype=torch.long, device=default_xyxy.device)
    if gt_xyxy.shape[0] == 0:
        return matched
    iou = box_iou(gt_xyxy, default_xyxy)  # (N, D)
    best_iou, best_gt = iou.max(dim=0)  # (D,) for each default, its best ground truth
    matched = torch.where(best_iou >= iou_threshold, best_gt, matched)
    for g, best_default in enumerate(iou.argmax(dim=1).tolist()):  # forced: each gt's best default
        matched[best_default] = g
    return matched


def encode_offsets(gt_xyxy: torch.Tensor, default_xyxy: torch.Tensor,
                   variances: tuple[float, float] = (0.1, 0.2)) -> torch.Tensor:
    """SSD regression targets (D, 4) for matched pairs (D, 4) xyxy:
    ((g_cx - d_cx) / (d_w v0), (g_cy - d_cy) / (d_h v0), log(g_w / d_w) / v1, log(g_h / d_h) / v1).

    The variances only rescale the targets to about unit size (the paper's "variance" trick).
    """
    g_c, g_wh = (gt_xyxy[:, :2] + gt_xyxy[:, 2:]) / 2, gt_xyxy[:, 2:] - gt_xyxy[:, :2]
    d_c, d_wh = (default_xyxy[:, :2] + default_xyxy[:, 2:]) / 2, default_xyxy[:, 2:] - default_xyxy[:, :2]
    t_c = (g_c - d_c) / (d_wh * variances[0])
    t_wh = torch.log(g_wh / d_wh) / variances[1]
    return torch.cat([t_c, t_wh], dim=-1)  # (D, 4)


def decode_offsets(offsets: torch.Tensor, default_xyxy: torch.Tensor,
                   variances: tuple[float, float] = (0.1, 0.2)) -> torch.Tensor:
    """Inverse of :func:`encode_offsets`: predicted offsets (..., D, 4) -> boxes (..., D, 4) xyxy."""
    d_c, d_wh = (default_xyxy[:, :2] + default_xyxy[:, 2:]) / 2, default_xyxy[:, 2:] - default_xyxy[:, :2]
    c = d_c + offsets[..., :2] * variances[0] * d_wh
    wh = d_wh * torch.exp(offsets[..., 2:] * variances[1])
    return torch.cat([c - wh / 2, c + wh / 2], dim=-1)


def hard_negative_mining(conf_loss: torch.Tensor, positive: torch.Tensor, ratio: int = 3,
                         min_negatives: int | None = None) -> torch.Tensor:
    """SSD hard negative mining: mask (B, D) of the positives plus, per image, the negatives with the
    highest confidence loss, at most ``ratio`` per positive.

    Most default boxes are easy background; keeping all of them would swamp the loss. An image
    with no positives still contributes ``min_negatives`` hard negatives (default ``ratio``, as if it
    had one positive) so that false alarms on empty images are penalized.
    """
    min_negatives = ratio if min_negatives is None else min_negatives
    b, d = conf_loss.shape
    num_pos = positive.sum(dim=1, keepdim=True)  # (B, 1)
    num_neg = (ratio * num_pos).clamp(min=min_negatives)
    num_neg = torch.minimum(num_neg, d - num_pos)  # never more negatives than exist
    loss = conf_loss.detach().masked_fill(positive, float("-inf"))  # positives sort last
    order = torch.argsort(loss, dim=1, descending=True, stable=True)  # (B, D)
    rank = torch.argsort(order, dim=1)  # rank of each default by loss, 0 = hardest
    negative = (rank < num_neg) & ~positive
    return positive | negative
