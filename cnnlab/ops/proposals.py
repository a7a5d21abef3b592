"""Region proposals by selective search (Uijlings et al. 2013, "Selective Search for Object Recognition").

The image is over-segmented by Felzenszwalb and Huttenlocher's graph method (scikit-image's
``felzenszwalb``); then, greedily, the two most similar neighbouring regions are merged until one
region covers the image. Every region ever formed is a proposal (its bounding box). Similarity
(each term in [0, 1]) sums any of:

- colour: histogram intersection of 25-bin per-channel colour histograms (L1-normalized);
- texture: intersection of histograms (10 bins) of Gaussian derivatives (sigma 1) in 8 orientations
  per channel, a SIFT-like descriptor;
- size: 1 - (size_i + size_j) / size_image, so small regions merge first and the hierarchy grows
  evenly over the image;
- fill: 1 - (size of the pair's bounding box - size_i - size_j) / size_image, so regions that fill
  each other's gaps merge early.

Diversification (the paper's "fast" mode): two colour spaces (HSV, Lab) x two thresholds k (50, 100)
x two similarity sets (colour+texture+size+fill, texture+size+fill) = 8 hierarchies. Ranking: a box at
hierarchy position p (1 = the final, whole-image region) gets score RND x p with RND uniform in [0, 1]
(seeded); the boxes of all hierarchies are sorted by that score and duplicates removed.
"""

from __future__ import annotations

import heapq

import numpy as np
import torch

COLOUR_BINS, TEXTURE_BINS, ORIENTATIONS = 25, 10, 8
SIMILARITIES = {"cstf": ("colour", "size", "texture", "fill"), "stf": ("size", "texture", "fill")}


def _as_rgb(image) -> np.ndarray:
    """(3, H, W) tensor (uint8 or float in [0, 1]) or (H, W, 3) array -> float64 (H, W, 3) in [0, 1]."""
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, -1)
    a = a.astype(np.float64)
    return a / 255.0 if a.max() > 1.0 else a


def _colour_space(rgb: np.ndarray, space: str) -> np.ndarray:
    """(H, W, 3) in [0, 1] -> the colour space, each channel scaled to [0, 1]."""
    from skimage import color

    if space == "rgb":
        return rgb
    if space == "hsv":
        return color.rgb2hsv(rgb)
    if space == "lab":
        lab = color.rgb2lab(rgb)
        return np.stack([lab[..., 0] / 100, (lab[..., 1] + 128) / 255, (lab[..., 2] + 128) / 255], -1).clip(0, 1)
    raise ValueError(f"colour space {space!r}: use rgb, hsv or lab")


def _histograms(labels: np.ndarray, values: np.ndarray, bins: int, n: int) -> np.ndarray:
    """Per region, per channel histograms of ``values`` (H, W, K) in [0, 1] -> (n, K * bins), L1-normalized."""
    flat = labels.ravel()
    out = []
    for k in range(values.shape[-1]):
        b = np.minimum((values[..., k].ravel() * bins).astype(np.int64), bins - 1)
        out.append(np.bincount(flat * bins + b, minlength=n * bins).reshape(n, bins))
    h = np.concatenate(out, 1).astype(np.float64)
    return h / np.maximum(h.sum(1, keepdims=True), 1e-12)


def _texture_values(img: np.ndarray) -> np.ndarray:
    """Gaussian-derivative (sigma 1) responses in 8 orientations per channel, rectified and scaled to [0, 1]:
    (H, W, 3 * 8)."""
    from scipy.ndimage import gaussian_filter

    out = []
    for c in range(img.shape[-1]):
        gy = gaussian_filter(img[..., c], 1.0, order=(1, 0))
        gx = gaussian_filter(img[..., c], 1.0, order=(0, 1))
        for k in range(ORIENTATIONS):
            t = 2 * np.pi * k / ORIENTATIONS
            r = np.maximum(np.cos(t) * gx + np.sin(t) * gy, 0)
            out.append(r / max(r.max(), 1e-12))
    return np.stack(out, -1)


def _neighbours(labels: np.ndarray) -> set[tuple[int, int]]:
    """Pairs (i < j) of regions touching horizontally or vertically."""
    pairs = []
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1], labels[1:])):
        d = a != b
        pairs.append(np.stack([np.minimum(a[d], b[d]), np.maximum(a[d], b[d])], 1))
    p = np.unique(np.concatenate(pairs), axis=0)
    return set(map(tuple, p.tolist()))


def region_features(labels: np.ndarray, img: np.ndarray, texture_values: np.ndarray | None = None) -> dict:
    """What grouping needs of the initial regions ``labels`` (H, W) of ``img`` (H, W, 3) in [0, 1]: sizes (n,),
    boxes (n, 4) xyxy, colour (n, 75) and texture (n, 240) histograms."""
    from scipy.ndimage import find_objects

    n = int(labels.max()) + 1
    box = np.zeros((n, 4))
    for i, sl in enumerate(find_objects(labels + 1, n)):  # each region's bounding slices
        if sl is not None:
            box[i] = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
    tex = _texture_values(img) if texture_values is None else texture_values
    return {"sizes": np.bincount(labels.ravel(), minlength=n).astype(np.float64), "boxes": box,
            "colour": _histograms(labels, img, COLOUR_BINS, n), "texture": _histograms(labels, tex, TEXTURE_BINS, n),
            "pairs": _neighbours(labels), "shape": labels.shape}


def hierarchical_grouping(feats: dict, similarity: tuple[str, ...]) -> np.ndarray:
    """One hierarchy over the initial regions described by ``feats`` (:func:`region_features`) -> the boxes
    (M, 4) xyxy of every region formed, in creation order (the initial regions first, the whole image last).

    Regions live in arrays of 2n - 1 rows (row t = the t-th region formed); a heap holds the candidate
    pairs by similarity, pairs whose regions were merged since are skipped when popped."""
    h, w = feats["shape"]
    size_img = float(h * w)
    n = len(feats["sizes"])
    m = 2 * n - 1
    size, box = np.zeros(m), np.zeros((m, 4))
    size[:n], box[:n] = feats["sizes"], feats["boxes"]
    use_c, use_t = "colour" in similarity, "texture" in similarity
    colour = np.zeros((m, feats["colour"].shape[1])) if use_c else None
    texture = np.zeros((m, feats["texture"].shape[1])) if use_t else None
    if use_c:
        colour[:n] = feats["colour"]
    if use_t:
        texture[:n] = feats["texture"]
    nbrs: dict[int, set[int]] = {i: set() for i in range(n)}
    for i, j in feats["pairs"]:
        nbrs[i].add(j)
        nbrs[j].add(i)

    def sims(t: int, others: np.ndarray) -> np.ndarray:
        """Similarity (len(others),) of region t with each of ``others`` (the module docstring's terms)."""
        s = np.zeros(len(others))
        if use_c:
            s += np.minimum(colour[t], colour[others]).sum(1)
        if use_t:
            s += np.minimum(texture[t], texture[others]).sum(1)
        if "size" in similarity:
            s += 1.0 - (size[t] + size[others]) / size_img
        if "fill" in similarity:
            lo = np.minimum(box[t, :2], box[others, :2])
            hi = np.maximum(box[t, 2:], box[others, 2:])
            s += 1.0 - ((hi - lo).prod(1) - size[t] - size[others]) / size_img
        return s

    heap = []
    for i in range(n):
        later = np.array(sorted(k for k in nbrs[i] if k > i), dtype=np.int64)
        if len(later):
            heap += [(-v, i, int(k)) for v, k in zip(sims(i, later).tolist(), later.tolist())]
    heapq.heapify(heap)
    alive = np.zeros(m, dtype=bool)
    alive[:n] = True
    t = n
    while heap:
        _, i, j = heapq.heappop(heap)
        if not (alive[i] and alive[j]):
            continue  # a stale pair: one side was merged already
        size[t] = size[i] + size[j]
        box[t, :2], box[t, 2:] = np.minimum(box[i, :2], box[j, :2]), np.maximum(box[i, 2:], box[j, 2:])
        if use_c:
            colour[t] = (colour[i] * size[i] + colour[j] * size[j]) / size[t]
        if use_t:
            texture[t] = (texture[i] * size[i] + texture[j] * size[j]) / size[t]
        alive[i] = alive[j] = False
        around = (nbrs.pop(i) | nbrs.pop(j)) - {i, j}
        for k in around:
            nbrs[k] -= {i, j}
            nbrs[k].add(t)
        nbrs[t] = around
        alive[t] = True
        if around:
            others = np.fromiter(around, dtype=np.int64)
            for v, k in zip(sims(t, others).tolist(), others.tolist()):
                heapq.heappush(heap, (-v, k, t))
        t += 1
    return box[:t].astype(np.float32)


def selective_search_proposals(image, *, colour_spaces: tuple[str, ...] = ("hsv", "lab"), ks: tuple[int, ...] = (50, 100),
                               similarities: tuple[str, ...] = ("cstf", "stf"), sigma: float = 0.8, min_size: int = 20,
                               min_box: float = 4.0, max_boxes: int = 2000, seed: int = 0) -> torch.Tensor:
    """Selective-search proposals of one image ((3, H, W) tensor or (H, W, 3) array, uint8 or [0, 1]):
    (N, 4) f32 xyxy pixels, best ranked first (see the module docstring), at most ``max_boxes``, each at
    least ``min_box`` px wide and high. ``ks`` are Felzenszwalb's k (scikit-image ``scale``)."""
    from skimage.segmentation import felzenszwalb

    rgb = _as_rgb(image)
    rng = np.random.default_rng(seed)
    boxes, scores = [], []
    for space in colour_spaces:
        img = _colour_space(rgb, space)
        tex = _texture_values(img)
        for k in ks:
            labels = felzenszwalb(img, scale=k, sigma=sigma, min_size=min_size)  # (H, W) region ids
            feats = region_features(labels, img, tex)
            for name in similarities:
                b = hierarchical_grouping(feats, SIMILARITIES[name])
                position = np.arange(len(b), 0, -1, dtype=np.float64)  # 1 = the last merge (whole image)
                boxes.append(b)
                scores.append(rng.random(len(b)) * position)
    b = np.concatenate(boxes)
    order = np.argsort(np.concatenate(scores), kind="stable")
    b = b[order]
    keep = ((b[:, 2] - b[:, 0]) >= min_box) & ((b[:, 3] - b[:, 1]) >= min_box)
    b = b[keep]
    _, first = np.unique(b, axis=0, return_index=True)  # duplicates: keep the best-ranked copy
    b = b[np.sort(first)][:max_boxes]
    return torch.from_numpy(np.ascontiguousarray(b))


def proposal_recall(proposals: torch.Tensor, gt: torch.Tensor, iou: float = 0.5) -> tuple[int, int]:
    """(ground-truth boxes covered by some proposal with IoU >= ``iou``, ground-truth boxes)."""
    from cnnlab.ops.boxes import box_iou

    if len(gt) == 0:
        return 0, 0
    if len(proposals) == 0:
        return 0, len(gt)
    best = box_iou(gt.float(), proposals.float()).max(1).values
    return int((best >= iou).sum()), len(gt)
