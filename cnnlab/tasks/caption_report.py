"""Figures and the report section of a captioning run: attention per word, sample captions, the novel split.

``draw_attention`` shows the image, then one panel per emitted word (and <END>) with that
step's attention map upsampled over it (bilinear, as Xu et al.'s figures). ``caption_report``
writes sample captions of the evaluated split, attention figures, and scores ``test_novel/``
(colour-shape pairs never seen in training) when the folder has it: BLEU there, and how often a
caption names an object's colour-shape pair right ("pair recall"), for novel and for seen pairs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F


def _grid(n: int) -> int:
    return int(round(math.sqrt(n)))


def draw_attention(image: torch.Tensor, words: Sequence[str], attention, path: Path, cols: int = 6) -> None:
    """image uint8 (3, H, W); attention (len(words) + 1, L) or None (no attention: the image and its caption)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = image.permute(1, 2, 0).numpy()
    h, w = img.shape[:2]
    steps = [] if attention is None else list(words) + ["<END>"]
    n = 1 + len(steps)
    cols = min(cols, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.0 * rows), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k >= n:
            continue
        ax.imshow(img)
        if k == 0:
            ax.set_title(" ".join(words) if attention is None else "input", fontsize=7, wrap=True)
            continue
        a = torch.as_tensor(attention[k - 1], dtype=torch.float32)
        g = _grid(a.numel())
        up = F.interpolate(a.reshape(1, 1, g, g), size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        ax.imshow(up.numpy(), cmap="gray", alpha=0.65, vmin=0, vmax=float(up.max()) or 1.0)
        ax.set_title(steps[k - 1], fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pair_recall(captions: list[list[str]], objects: list[list], novel: set[tuple[str, str]]) -> dict[str, float]:
    """Share of objects whose 'colour shape' pair appears in their image's caption, for novel and for seen pairs."""
    hit = {True: 0, False: 0}
    tot = {True: 0, False: 0}
    for words, objs in zip(captions, objects):
        pairs = set(zip(words, words[1:]))
        for _box, shape, colour in objs:
            if colour is None:
                continue
            is_novel = (colour, shape) in novel
            tot[is_novel] += 1
            hit[is_novel] += (colour, shape) in pairs
    out = {}
    if tot[True]:
        out["novel_pair_recall"] = hit[True] / tot[True]
    if tot[False]:
        out["seen_pair_recall"] = hit[False] / tot[False]
    return out


@torch.no_grad()
def _captions_of(task, model, ds, device, beam: int, n: int | None = None):
    """(word lists, attention maps) for the first n images of a caption set (normalized like training)."""
    from cnnlab.data.captions import collate_captions

    n = len(ds) if n is None else min(n, len(ds))
    words, maps = [], []
    for s in range(0, n, 64):
        batch = collate_captions([ds[i] for i in range(s, min(n, s + 64))])
        batch = {k: v.to(device) for k, v in batch.items()}
        feats = task.features(model, batch)
        w, m, _ = task.decode(model, feats, beam)
        words += w
        maps += m
    return words, maps


def caption_report(task, run_dir: Path, model, data, final: dict[str, Any], split: str | None, device) -> list[str]:
    from cnnlab.data.scenes import NOVEL_COMBOS
    from cnnlab.engine.trainer import to_device

    lines: list[str] = []
    if split is None:
        return lines
    ds = getattr(data, split)
    model.eval()
    beam = getattr(task.cfg, "beam", 3)
    words, maps = _captions_of(task, model, ds, device, beam, n=4)
    for i in range(len(words)):
        path = run_dir / "plots" / f"attention-{split}-{i}.png"
        draw_attention(ds.images[i], words[i], maps[i], path)
        lines += [f"- `{ds.names[i]}`: *{' '.join(words[i])}* (reference: {' '.join(ds.captions[i][0])})",
                  "", f"  ![attention](plots/{path.name})", ""]
    lines.insert(0, f"Captions of {split} images (beam {beam})" + (", attention per word:" if maps[0] is not None else ":"))
    lines.insert(1, "")
    if "att_correct" in final:
        lines += [f"Attention correctness on {split}: {final['att_correct']:.3f} of a word's attention falls in the box "
                  f"of the object it names; chance (the box's share of the image) {final['att_chance']:.3f}.", ""]
    novel_ds = getattr(task, "extra_splits", {}).get("test_novel")
    task.novel_metrics = {}
    if novel_ds is not None:
        ev = task.evaluator()
        for batch in task.eval_loader(task.cfg, data, novel_ds):
            ev.update(task.validation_step(model, to_device(batch, device)))
        m = ev.compute()
        task.novel_metrics = {f"novel_{k}": v for k, v in m.items() if k != "count"}
        held = set(NOVEL_COMBOS)
        if novel_ds.objects is not None:
            task.novel_metrics.update(pair_recall(ev.hyps, novel_ds.objects, held))
        if ds.objects is not None:
            seen_words, _ = _captions_of(task, model, ds, device, beam)
            task.novel_metrics["test_seen_pair_recall"] = pair_recall(seen_words, ds.objects, held).get("seen_pair_recall", 0.0)
        nm = task.novel_metrics
        lines += [f"Compositional split (test_novel/, {len(novel_ds)} images, each with a colour-shape pair never seen "
                  f"in training): BLEU-4 {nm['novel_bleu4']:.3f} (test: {final.get('bleu4', float('nan')):.3f}); "
                  f"novel pairs named right {nm.get('novel_pair_recall', float('nan')):.3f}, seen pairs "
                  f"{nm.get('test_seen_pair_recall', float('nan')):.3f} on test.", ""]
    return lines
