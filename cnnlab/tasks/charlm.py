"""Character-level language model: predict the next character, trained with truncated BPTT.

Data: ``--data shakespeare`` (the plays, Hamlet held out) or any UTF-8 ``FILE.txt`` (validation =
its last 10 %, or ``--val-file``). The text becomes ``--batch-size`` parallel streams walked in
chunks of ``--bptt`` characters; the hidden state at the end of one chunk starts the next (detached:
gradients stop at the chunk boundary), and is reset where the streams start over.
Batches: ``tokens i64[B,T]``, ``targets i64[B,T]``, ``first bool``.
Metrics: ``loss`` (nats/char), ``bpc`` (bits/char = loss / ln 2), ``perplexity`` (e^loss); the
best checkpoint is the lowest validation loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data.text import SHAKESPEARE_VAL, TextStreams, Vocab, load_texts
from cnnlab.engine.config import TrainConfig, opt
from cnnlab.errors import ConfigError
from cnnlab.models.language import CharLM, detach_state, sample_ids
from cnnlab.models.language.cells import CELLS
from cnnlab.tasks import register_task
from cnnlab.tasks.base import DataBundle, Evaluator, Task

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")

# Named recipes (--recipe): measured on 2 cores (Intel Xeon with AVX-512, and AMD EPYC), see docs/sequences.md.
RECIPES: dict[str, dict[str, Any]] = {
    # 5 minutes of training (--time-budget 290: the cosine follows the clock, so a slower machine sees fewer
    # characters and still stops in time): a 2-layer LSTM of 256 that takes many small steps of 32 streams x 32
    # characters. In bf16 (precision auto: where the CPU has AMX / AVX-512 BF16) torch's LSTM kernels run about
    # 2x the characters/s of 8 streams in fp32 once 16+ streams fill a tile, and at equal characters 32 x 32
    # learned as much as 8 x 128 (tuned on held-out Hamlet, docs/sequences.md; benchmarks/charlm.py)
    "fast": dict(cell="lstm", layers=2, hidden=256, embed=64, bptt=32, batch_size=32, optimizer="adam", lr=5e-3,
                 epochs=16, epoch_chars=1_000_000, time_budget=290.0, schedule="cosine", warmup_epochs=0.1,
                 grad_clip=1.0, weight_decay=0.0, dropout=0.0, precision="auto"),
    # 20 minutes of training: a wider LSTM with light dropout (it sees the plays about three times)
    "best": dict(cell="lstm", layers=2, hidden=384, embed=64, bptt=128, batch_size=8, optimizer="adam", lr=2e-3,
                 epochs=30, epoch_chars=1_000_000, time_budget=1190.0, schedule="cosine", warmup_epochs=0.1,
                 grad_clip=1.0, weight_decay=0.0, dropout=0.1),
}


@dataclass
class CharLMConfig(TrainConfig):
    data: str = opt("shakespeare", "shakespeare (the plays; Hamlet held out) or a UTF-8 .txt file", group="data")
    val_file: str | None = opt(None, "validation text (default: the last 10 % of --data)", group="data")
    val_play: str = opt(SHAKESPEARE_VAL, "with --data shakespeare: the play held out for validation", group="data")
    model: str = opt("charlm", "the character language model (its shape: --cell, --layers, --hidden, --embed)",
                     group="model", choices=("charlm",))
    cell: str = opt("lstm", "recurrent cell: rnn (vanilla), lstm or gru", group="model", choices=CELLS)
    layers: int = opt(2, "stacked recurrent layers", group="model", min=1)
    hidden: int = opt(384, "hidden units per layer", group="model", min=1)
    embed: int = opt(64, "character embedding size", group="model", min=1)
    dropout: float = opt(0.0, "dropout between layers and before the output", group="regularization", min=0, max=1,
                         max_open=True)
    tie_weights: bool = opt(False, "share the embedding matrix with the output layer", group="model")
    unfused: bool = opt(False, "run the cells' equations step by step in Python instead of torch's fused kernels "
                        "(same weights, same numbers, much slower)", group="model")
    bptt: int = opt(128, "characters per chunk of truncated backpropagation through time", group="data", min=2)
    epoch_chars: int | None = opt(None, "characters per epoch (default: one pass over the text); the next epoch goes "
                                  "on where this one stopped", group="data", min=1)
    recipe: str | None = opt(None, "named recipe: fast (about 5 minutes on 2 cores) or best (about 20 minutes)",
                             group="run", choices=tuple(RECIPES))
    epochs: int = opt(4, "number of epochs", group="optimization", min=1)
    batch_size: int = opt(64, "parallel text streams per step", group="optimization", min=1)
    optimizer: str = opt("adam", ", ".join(OPTIMIZERS), group="optimization", choices=OPTIMIZERS)
    lr: float | None = opt(2e-3, "peak learning rate", group="optimization", min=0, min_open=True)
    grad_clip: float | None = opt(1.0, "clip the gradient norm to this value (exploding gradients); the fraction of "
                                  "steps clipped is logged as train_clipped", group="optimization", min=0, min_open=True)
    weight_decay: float = opt(0.0, "weight decay", group="regularization", min=0)

    def validate(self) -> "CharLMConfig":
        super().validate()
        if self.tie_weights and self.cell and self.embed < 1:
            raise ConfigError("--tie-weights needs --embed >= 1")
        return self


class CharLMEvaluator(Evaluator):
    def compute(self) -> dict[str, Any]:
        n = max(1.0, float(self.n))
        loss = float(self.sums.get("loss", 0.0)) / n
        return {"loss": loss, "bpc": loss / math.log(2), "perplexity": math.exp(min(loss, 50.0)), "count": int(self.n)}


@register_task
class CharLMTask(Task):
    name = "charlm"
    Config = CharLMConfig
    monitor, mode = "loss", "min"
    progress_keys = ("loss",)
    summary_keys = ("loss", "bpc", "perplexity")
    required_meta = ("vocab",)
    recipes = RECIPES
    examples = """examples:
  cnnlab train charlm --recipe fast                       # Shakespeare, about 5 minutes on 2 cores
  cnnlab train charlm --data notes.txt --epochs 10        # any UTF-8 text file (validation: its last 10 %)
  cnnlab train charlm --cell gru --hidden 512 --bptt 64
  cnnlab sample runs/charlm-... --prompt "ROMEO:" --chars 500 --temperature 0.8
  cnnlab explain-cells runs/charlm-... --text some.txt"""

    def __init__(self, cfg, meta=None):
        super().__init__(cfg, meta)
        self.states: dict[str, Any] = {"train": None, "eval": None}

    # ------------------------------------------------------------------ data and model
    def build_data(self, cfg: CharLMConfig) -> DataBundle:
        train, val, source = load_texts(cfg.data, cfg.val_file, val_play=cfg.val_play)
        if cfg.limit:
            train = train[: cfg.limit]
        if cfg.limit_test:
            val = val[: cfg.limit_test]
        vocab = Vocab(self.meta["vocab"]) if self.meta.get("vocab") else Vocab.from_text(train)
        unknown = vocab.unknown(val)
        if unknown:
            print(f"note: {len(unknown)} characters of the validation text never occur in training "
                  f"(e.g. {''.join(sorted(unknown)[:10])!r}); they are read as the unknown character")
        meta = {"vocab": vocab.chars, "cell": cfg.cell, "layers": cfg.layers, "hidden": cfg.hidden, "embed": cfg.embed,
                "dropout": cfg.dropout, "tie_weights": cfg.tie_weights, "model": "charlm"}
        return DataBundle(vocab.encode(train), vocab.encode(val), None, meta=meta, source=source)

    def create_network(self, meta: dict[str, Any]) -> nn.Module:
        return CharLM(len(meta["vocab"]), embed=meta["embed"], hidden=meta["hidden"], layers=meta["layers"],
                      cell=meta["cell"], dropout=meta.get("dropout", 0.0), tie_weights=meta.get("tie_weights", False),
                      fused=not getattr(self.cfg, "unfused", False))

    def train_loader(self, cfg: CharLMConfig, data: DataBundle, rank: int = 0, world_size: int = 1):
        if world_size > 1:
            raise ConfigError("charlm trains in one process (its streams carry state across steps); drop torchrun")
        steps = max(1, cfg.epoch_chars // (cfg.batch_size * cfg.bptt)) if cfg.epoch_chars else None
        return TextStreams(data.train, cfg.batch_size, cfg.bptt, steps)

    def eval_loader(self, cfg: CharLMConfig, data: DataBundle, split: Any, rank: int = 0, world_size: int = 1):
        streams = max(1, min(32, (len(split) - 1) // max(2, 4 * cfg.bptt)))  # long streams: little context is lost
        return TextStreams(split, streams, max(cfg.bptt, 256))

    def batch_size(self, batch: dict[str, Any]) -> int:
        return batch["tokens"].numel()  # characters: the progress bar's rate is characters per second

    # ------------------------------------------------------------------ steps
    def _forward(self, model: nn.Module, batch: dict[str, Any], which: str) -> torch.Tensor:
        """Logits of a chunk, starting from the state the previous chunk left (reset where streams start)."""
        state = None if batch["first"] else self.states[which]
        if state is not None and _state_batch(state) != batch["tokens"].shape[0]:
            state = None
        logits, state = model(batch["tokens"], state)  # (B, T, V)
        self.states[which] = detach_state(state)  # truncated BPTT: the gradient stops at the chunk boundary
        return logits

    def training_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        logits = self._forward(model, batch, "train")
        loss = F.cross_entropy(logits.flatten(0, 1).float(), batch["targets"].flatten())
        return {"loss": loss}

    def validation_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        logits = self._forward(model, batch, "eval")
        n = batch["targets"].numel()
        loss = F.cross_entropy(logits.flatten(0, 1).float(), batch["targets"].flatten(), reduction="sum")
        return {"loss_sum": loss, "n": n}

    def evaluator(self) -> Evaluator:
        self.states["eval"] = None
        return CharLMEvaluator()

    def summary_extra(self, final: dict[str, Any]) -> dict[str, Any]:
        return {"val_bpc": final.get("bpc"), "val_perplexity": final.get("perplexity")} if final else {}

    # ------------------------------------------------------------------ using a trained model
    def sample(self, model: nn.Module, prompt: str, chars: int, temperature: float = 0.8, top_k: int | None = None,
               seed: int = 0) -> str:
        vocab = Vocab(self.meta["vocab"])
        g = torch.Generator().manual_seed(seed)
        ids = sample_ids(model, vocab.encode(prompt).tolist(), chars, temperature, top_k, generator=g)
        return vocab.decode(ids)

    def report(self, run_dir: Path, model: nn.Module, data: DataBundle, final: dict[str, Any], split: str | None,
               device: torch.device) -> list[str]:
        prompt = "\n" if data.meta.get("vocab") and "\n" in data.meta["vocab"] else data.meta["vocab"][1]
        text = self.sample(model, prompt, 600, temperature=0.8, seed=0)
        (run_dir / "sample.txt").write_text(text, encoding="utf-8")
        lines = [f"Validation: {final.get('loss', float('nan')):.4f} nats/char, {final.get('bpc', float('nan')):.4f} "
                 f"bits/char, perplexity {final.get('perplexity', float('nan')):.2f}.", "",
                 "A sample (temperature 0.8, `cnnlab sample RUN_DIR` for more):", "", "```", text, "```", ""]
        return lines


def _state_batch(state) -> int:
    return (state[0] if isinstance(state, tuple) else state).shape[1]
