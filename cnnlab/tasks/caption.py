"""Image captioning: a CNN encoder and an LSTM decoder (Show and Tell; Show, Attend and Tell).

One-to-many: the image's features start (or, with attention, steer at every step) an LSTM that
emits a word at a time until <END>. Training is teacher forcing: the decoder reads the true
caption shifted by one and is scored by cross-entropy on the next word (-1 padding ignored),
plus, with attention, the doubly stochastic penalty. Inference is greedy or beam search
(``--beam K``, length-normalized). With a frozen backbone (the default with pretrained weights)
each image's feature map is computed once and cached, so an epoch costs only the decoder.

Data: ``--data DIR``, a COCO captions folder (``train/``, ``val/``, optional ``test/`` and
``test_novel/``, each with annotations.json); ``cnnlab data scenes --kind caption`` writes one.
Batches: ``images f32[B,3,S,S]``, ``tokens i64[B,T]`` (-1 padded), ``lengths i64[B]``.
Metrics: ``bleu1``..``bleu4`` (corpus BLEU, monitored: bleu4), ``exact`` (caption equal to a
reference), ``loss`` (cross-entropy per word), and on scenes ``att_correct`` (attention mass inside
the box of the object a word names) beside ``att_chance`` (the box's share of the image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data import captions as cap
from cnnlab.engine.config import opt
from cnnlab.errors import ConfigError
from cnnlab.metrics.captioning import (attention_in_box, box_chance, corpus_bleu, exact_match, sentence_bleu)
from cnnlab.models.captioning import (CAPTIONERS, beam_search, create_captioner, doubly_stochastic_penalty,
                                      greedy_decode)
from cnnlab.tasks import register_task
from cnnlab.tasks.base import BackboneTaskConfig, DataBundle, Evaluator, Task, build_backbone_model, create_backbone

DEFAULT_SIZE = 192  # scenes are 96 px; 192 gives mobilenet_v2 a 6 x 6 map to attend over (128: 4 x 4, attention near chance)


@dataclass
class CaptionConfig(BackboneTaskConfig):
    decoder: str = opt("show_attend_tell", "show_tell (pooled features set the LSTM state) or show_attend_tell "
                       "(soft attention over the feature map at every word)", group="model", choices=tuple(CAPTIONERS))
    img_size: int | None = opt(None, "resize images to this square size (auto: 192, a 6 x 6 map of mobilenet_v2's "
                               "last stage to attend over)", group="data", min=8)
    train_backbone: bool | None = opt(None, "train the backbone jointly (default: frozen, features cached, when it "
                                      "starts from pretrained weights; trained when it starts random)", group="model",
                                      flag="--train-backbone")
    attention: str = opt("soft", "show_attend_tell: soft (a weighted mean of the locations) or hard (one sampled "
                         "location per word, trained with REINFORCE and a moving-average baseline)", group="model",
                         choices=("soft", "hard"))
    entropy_reg: float = opt(0.01, "hard attention: weight lambda_e of the attention entropy bonus", group="regularization",
                             min=0)
    embed_dim: int = opt(128, "word embedding size", group="model", min=1)
    hidden: int = opt(256, "LSTM hidden size", group="model", min=1)
    att_dim: int = opt(256, "attention layer size (and annotation vector size)", group="model", min=1)
    caption_dropout: float = opt(0.3, "dropout before the vocabulary layer", group="regularization", min=0, max=1,
                                 max_open=True)
    att_reg: float = opt(1.0, "lambda of the doubly stochastic attention penalty (0: off)", group="regularization", min=0)
    min_count: int = opt(2, "words seen fewer times in the training captions become <UNK>", group="data", min=1)
    max_len: int = opt(24, "longest caption in words (training truncates, decoding stops)", group="data", min=1)
    beam: int = opt(3, "beam width for evaluation and prediction (1 = greedy)", group="run", min=1)
    length_penalty: float = opt(0.7, "beam search ranks finished captions by log p / length^alpha", group="run", min=0)
    val_fraction: float | None = opt(0.1, "share of train kept for validation when the folder has no val/",
                                     group="data", min=0, max=1, max_open=True)
    epochs: int = opt(12, "number of passes over the training set", group="optimization", min=1)
    lr: float | None = opt(2e-3, "peak learning rate", group="optimization", min=0, min_open=True)
    warmup_epochs: float = opt(0.5, "linear warm-up length in epochs", group="optimization", min=0)
    weight_decay: float = opt(1e-4, "weight decay", group="regularization", min=0)
    grad_clip: float | None = opt(5.0, "clip the gradient norm to this value", group="optimization", min=0, min_open=True)


class CaptionEvaluator(Evaluator):
    """Collects each image's caption and references; ``compute`` gives corpus BLEU, exact match, loss, attention scores."""

    def reset(self) -> None:
        super().reset()
        self.hyps: list[list[str]] = []
        self.refs: list[list[list[str]]] = []
        self.names: list[str] = []

    @torch.no_grad()
    def update(self, out: dict[str, Any]) -> None:
        super().update({k: v for k, v in out.items() if k.endswith("_sum") or k == "n"})
        self.hyps += out["hyps"]
        self.refs += out["refs"]
        self.names += out["names"]

    def compute(self) -> dict[str, Any]:
        s = {k: float(v) for k, v in self.sums.items()}
        m: dict[str, Any] = corpus_bleu(self.refs, self.hyps) if self.hyps else {f"bleu{n}": 0.0 for n in range(1, 5)}
        m["exact"] = exact_match(self.refs, self.hyps)
        m["loss"] = s.get("ce", 0.0) / max(1.0, s.get("words", 0.0))
        if s.get("att_words", 0) > 0:
            m["att_correct"] = s["att_mass"] / s["att_words"]
            m["att_chance"] = s["att_chance"] / s["att_words"]
        return m | {"count": int(self.n)}

    def lowest(self, k: int = 8) -> list[dict[str, Any]]:
        """The k images whose caption scores lowest (sentence BLEU-4, smoothed)."""
        scored = [(sentence_bleu(r, h), n, h, r) for h, r, n in zip(self.hyps, self.refs, self.names)]
        scored.sort(key=lambda t: t[0])
        return [{"image": n, "bleu4": round(b, 4), "caption": " ".join(h), "reference": " ".join(r[0])}
                for b, n, h, r in scored[:k]]


@register_task
class Caption(Task):
    name = "caption"
    Config = CaptionConfig
    monitor, mode = "bleu4", "max"
    progress_keys = ("loss", "ce")
    summary_keys = ("bleu4", "bleu1", "exact", "att_correct", "att_chance")
    required_meta = ("vocab", "img_size", "normalization", "decoder")
    examples = """examples:
  cnnlab data scenes --kind caption --n 3000 --max-objects 2 --out data/cap
  cnnlab train caption --data data/cap                       # Show, Attend and Tell on frozen mobilenet_v2
  cnnlab train caption --data data/cap --decoder show_tell   # no attention
  cnnlab train caption --data data/cap --train-backbone --model resnet20 --weights none
  cnnlab evaluate runs/caption-... --split test              # BLEU and the lowest-scoring captions
  cnnlab predict runs/caption-... photo.png --draw out/      # captions (beam and greedy), attention per word"""

    # ------------------------------------------------------------------ data and model
    def build_data(self, cfg: CaptionConfig) -> DataBundle:
        from cnnlab.data.normalize import Normalization, normalization_from_images
        from cnnlab.data.single_object import limit_and_carve
        from cnnlab.models.pretrained import IMAGENET_MEAN, IMAGENET_STD

        files = cap.find_caption_splits(cfg.data)
        records = {s: cap.read_caption_records(p) for s, p in files.items()}
        limit_and_carve(records, cfg, cfg.val_fraction or 0, min_train=2)
        size = cfg.img_size or DEFAULT_SIZE
        sets = {s: cap.load_caption_set(r, size) for s, r in records.items()}
        if cfg.train_backbone is None:
            cfg.train_backbone = cfg.weights is None
        if "vocab" in self.meta:
            vocab = cap.Vocabulary(self.meta["vocab"])
        else:
            vocab = cap.Vocabulary.build([c for caps in sets["train"].captions for c in caps], cfg.min_count)
        if "normalization" in self.meta:
            norm = Normalization.from_dict(self.meta["normalization"])
        elif cfg.weights == "imagenet":
            norm = Normalization("channel", torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1))
        else:
            norm = normalization_from_images(sets["train"].images, "channel")

        def normalize(item):
            item["images"] = norm(item["images"])
            return item

        for s, ds in sets.items():
            ds.vocab, ds.max_len, ds.transform, ds.train = vocab, cfg.max_len, normalize, s == "train"
        meta = {"vocab": vocab.words, "img_size": [size, size], "in_chans": 3, "normalization": norm.to_dict(),
                "decoder": cfg.decoder, "attention": cfg.attention, "train_backbone": bool(cfg.train_backbone), "embed_dim": cfg.embed_dim,
                "hidden": cfg.hidden, "att_dim": cfg.att_dim, "dropout": cfg.caption_dropout, "max_len": cfg.max_len,
                "num_classes": 1, "data": cfg.data}
        self.meta.update(meta)
        self.extra_splits = {s: ds for s, ds in sets.items() if s not in ("train", "val", "test")}
        source = f"COCO captions {cfg.data} ({', '.join(f'{s}/' for s in files)}), {size}x{size}, {len(vocab)} words"
        return DataBundle(sets["train"], sets.get("val"), sets.get("test"), meta, source, collate=cap.collate_captions)

    def create_network(self, meta: dict[str, Any]) -> nn.Module:
        return create_captioner(meta["decoder"], create_backbone(meta), len(meta["vocab"]), embed_dim=meta["embed_dim"],
                                hidden=meta["hidden"], att_dim=meta["att_dim"], att_feat=meta["att_dim"],
                                dropout=meta["dropout"], frozen=not meta["train_backbone"],
                                hard=meta.get("attention") == "hard")

    def build_model(self, cfg: CaptionConfig, data: DataBundle, *, resume: bool = False) -> nn.Module:
        model = build_backbone_model(self, cfg, resume)
        model.set_frozen(model.frozen)  # loading weights leaves requires_grad as it was; say it again
        return model

    @property
    def vocab(self) -> cap.Vocabulary:
        if not hasattr(self, "_vocab"):
            self._vocab = cap.Vocabulary(self.meta["vocab"])
        return self._vocab

    # ------------------------------------------------------------------ steps
    def features(self, model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        """(B, L, D) backbone features: computed once per image and cached when the backbone is frozen."""
        core = getattr(model, "module", model)
        images = batch["images"]
        if not core.frozen or "set_id" not in batch:
            return core.encode(images)
        ds = cap.find_set(int(batch["set_id"][0]))
        idx = batch["index"].cpu()
        if ds.cached is None:
            ds.cached = torch.zeros(len(ds), dtype=torch.bool)
        missing = ~ds.cached[idx]
        if bool(missing.any()):
            with torch.no_grad():
                f = core.encode(images[missing.to(images.device)])  # (b, L, D)
            if ds.features is None:
                ds.features = torch.zeros(len(ds), *f.shape[1:], dtype=torch.float16)
            ds.features[idx[missing]] = f.to(torch.float16).cpu()
            ds.cached[idx[missing]] = True
        return ds.features[idx].to(images.device).float()

    def _forward(self, model: nn.Module, batch: dict[str, Any]):
        feats = self.features(model, batch)
        tokens = batch["tokens"]  # (B, T) <START> w_1 .. w_n <END>, -1 padded
        inputs, targets = tokens[:, :-1].clamp(min=0), tokens[:, 1:]  # (B, T-1) each; padding reads <PAD>
        logits, alphas = model(feats, inputs)  # (B, T-1, V), (B, T-1, L) or None
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=-1,
                             reduction="sum")
        return feats, logits, alphas, ce, targets

    def training_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        _, logits, alphas, ce, targets = self._forward(model, batch)
        words = (targets >= 0).sum().clamp(min=1)
        loss = ce / words  # per word; the paper sums over words, so its penalty is divided by the words too
        core = getattr(model, "module", model)
        if getattr(core, "hard", False):
            return {"loss": loss + self.reinforce(core, logits, targets) / words, "ce": (ce / words).detach(),
                    "baseline": core.baseline.clone()}
        if alphas is not None and self.cfg.att_reg > 0:
            loss = loss + self.cfg.att_reg * doubly_stochastic_penalty(alphas, targets >= 0) * len(targets) / words
        return {"loss": loss, "ce": (ce / words).detach()}

    def reinforce(self, core: nn.Module, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Hard attention's surrogate, summed over the batch: -(log p(y|s) - b) sum_t log alpha_s - lambda_e sum_t H."""
        mask = (targets >= 0).float()  # (B, T)
        logp = -F.cross_entropy(logits.transpose(1, 2).float(), targets.clamp(min=0), reduction="none") * mask
        reward = logp.sum(1).detach()  # log p(y | s, a) per caption (B,)
        log_ps, entropy = core.hard_terms()  # (B, T) each
        with torch.no_grad():
            if float(core.baseline) == 0.0:  # before any update: start at this batch's mean
                core.baseline.copy_(reward.mean())
            advantage = reward - core.baseline  # (B,)
            core.baseline.mul_(0.9).add_(0.1 * reward.mean())
        return -(advantage[:, None] * log_ps * mask).sum() - self.cfg.entropy_reg * (entropy * mask).sum()

    @torch.no_grad()
    def validation_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        feats, _, alphas, ce, targets = self._forward(model, batch)
        core = getattr(model, "module", model)
        hyps = self.decode(core, feats, getattr(self.cfg, "beam", 1))[0]
        ds = cap.find_set(int(batch["set_id"][0]))
        idx = batch["index"].tolist()
        out = {"ce_sum": ce, "words_sum": (targets >= 0).sum(), "n": len(idx), "hyps": hyps,
               "refs": [ds.references(i) for i in idx], "names": [ds.names[i] for i in idx]}
        if alphas is not None and ds.objects is not None:
            out.update(self.attention_scores(alphas.cpu(), targets.cpu(), [ds.objects[i] for i in idx],
                                             tuple(batch["images"].shape[-2:])))
        return out

    def attention_scores(self, alphas: torch.Tensor, targets: torch.Tensor, objects: list, size: tuple[int, int]):
        """Sums of attention mass inside, and chance of, the box of each target word that names one object of its image.

        A word names an object when it is the object's category or colour and no other object of the image shares it."""
        g = int(round(math.sqrt(alphas.shape[-1])))
        mass = chance = count = 0.0
        words = self.vocab.words
        for a, t, objs in zip(alphas, targets, objects):
            for step, w in enumerate(t.tolist()):
                if w < 0:
                    break
                word = words[w]
                hits = [o for o in objs if word in (o[1], o[2])]
                if len(hits) != 1:
                    continue
                box = hits[0][0]
                mass += attention_in_box(a[step], (g, g), box, size)
                chance += box_chance(box, size)
                count += 1
        return {"att_mass_sum": torch.tensor(mass), "att_chance_sum": torch.tensor(chance),
                "att_words_sum": torch.tensor(count)}

    def decode(self, model: nn.Module, feats: torch.Tensor, beam: int):
        """(word lists, attention maps, scores or None) by beam search (beam > 1) or greedy decoding."""
        v, max_len = self.vocab, self.meta.get("max_len", 24)
        if beam > 1:
            ids, maps, scores = beam_search(model, feats, v.start, v.end, beam, max_len,
                                            getattr(self.cfg, "length_penalty", 0.7))
        else:
            (ids, maps), scores = greedy_decode(model, feats, v.start, v.end, max_len), None
        return [v.decode(s) for s in ids], maps, scores

    def evaluator(self) -> CaptionEvaluator:
        self.last_evaluator = CaptionEvaluator()
        return self.last_evaluator

    # ------------------------------------------------------------------ using a trained model
    def eval_data(self, cfg, split: str | None = None, data: str | None = None, data_root: str | None = None):
        """As the base task, and also the extra splits of a captions folder (test_novel)."""
        if split in cap.SPLITS[3:]:
            import dataclasses

            cfg = dataclasses.replace(cfg, limit=None, **({"data": data} if data else {}))
            bundle = self.build_data(cfg)
            if split not in self.extra_splits:
                raise ConfigError(f"data {cfg.data!r} has no {split}/ split")
            return self.extra_splits[split], split, bundle
        return super().eval_data(cfg, split, data, data_root)

    def print_details(self, metrics: dict[str, Any]) -> None:
        ev = getattr(self, "last_evaluator", None)
        if ev is None or not ev.hyps:
            return
        print("lowest-scoring captions (sentence BLEU-4):")
        for row in ev.lowest():
            print(f"  {row['bleu4']:.3f}  {row['image']}: {row['caption']!r}  (reference: {row['reference']!r})")

    def prepare(self, path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
        from cnnlab.data.single_object import prepare_image

        return prepare_image(self.meta, path)

    @torch.no_grad()
    def predict(self, model: nn.Module, images: torch.Tensor, originals: list[torch.Tensor] | None = None) -> list[dict]:
        feats = model.encode(images)
        beam = max(2, getattr(self.cfg, "beam", 3))
        b_words, b_maps, b_scores = self.decode(model, feats, beam)
        g_words, g_maps, _ = self.decode(model, feats, 1)
        out = []
        for i in range(len(images)):
            row = {"caption": " ".join(b_words[i]), "beam": beam, "score": round(b_scores[i], 4),
                   "greedy": " ".join(g_words[i])}
            if b_maps[i] is not None:
                row["attention"] = [[round(float(x), 4) for x in step] for step in b_maps[i]]
            out.append(row)
        return out

    def draw(self, image: torch.Tensor, prediction: dict, path: Path) -> None:
        from cnnlab.tasks.caption_report import draw_attention

        draw_attention(image, prediction["caption"].split(), prediction.get("attention"), path)

    def report(self, run_dir: Path, model: nn.Module, data: DataBundle, final: dict[str, Any], split: str | None,
               device: torch.device) -> list[str]:
        from cnnlab.tasks.caption_report import caption_report

        return caption_report(self, run_dir, model, data, final, split, device)

    def summary_extra(self, final: dict[str, Any]) -> dict[str, Any]:
        return dict(getattr(self, "novel_metrics", {}))
