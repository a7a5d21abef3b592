"""Random vs semi-hard vs batch-hard triplet mining at equal time, and triplet vs binary classification.

The course's claim: random triplets are too easy (their loss is already 0), so they teach little.
Each variant trains the same encoder (the verify task's defaults) for the same wall-clock budget;
every ``--eval-every`` seconds the held-out identities (never trained on) are scored: EER over all
their pairs, and the fraction of the batch's mined triplets with a non-zero triplet loss
("active", alpha 0.2, averaged over the steps since the last evaluation; for the binary variant,
of its batch-hard triplets).

    python benchmarks/verification.py --data digits --seconds 60
Prints JSON, writes benchmarks/results/verification.json and docs/images/verification_mining.png.
Timings are wall-clock: on a shared machine they are indicative only.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from cnnlab.metrics.verification import verification_metrics
from cnnlab.models.verification import mine_triplets, pairwise_sq_distances
from cnnlab.tasks.verify import Verify, VerifyConfig

VARIANTS = [("random", "triplet"), ("semihard", "triplet"), ("batchhard", "triplet"), ("batchhard", "binary")]


def held_out_eer(task, model, ds) -> float:
    model.eval()
    with torch.no_grad():
        emb = torch.cat([model(b["images"]) for b in task.eval_loader(task.cfg, None, ds)])
        m = verification_metrics(model.pair_distances(emb, emb), ds.labels, rounds=5)
    model.train()
    return m["eer"], m["oneshot_acc"]


def run_variant(data: str, mining: str, loss: str, seconds: float, eval_every: float, seed: int) -> dict:
    cfg = Verify.resolve(VerifyConfig(task="verify", data=data, mining=mining, loss=loss, seed=seed,
                                      encoding="projection", steps_per_epoch=10**6).resolved())
    task = Verify(cfg)
    bundle = task.build_data(cfg)
    torch.manual_seed(seed)
    model = task.build_model(cfg, bundle)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loader = task.train_loader(cfg, bundle)
    curve = []
    t_train, next_eval, step = 0.0, 0.0, 0
    active_sum, active_n = 0.0, 0
    for batch in loader:
        if t_train >= next_eval:
            eer, acc = held_out_eer(task, model, bundle.test)
            curve.append({"seconds": round(t_train, 2), "step": step, "eer": eer, "oneshot_acc": acc,
                          "active": active_sum / max(1, active_n)})
            active_sum, active_n = 0.0, 0
            next_eval += eval_every
            if t_train >= seconds:
                break
        t0 = time.perf_counter()
        out = task.training_step(model, batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        t_train += time.perf_counter() - t0
        with torch.no_grad():  # active fraction of the mining strategy's triplets under the triplet loss
            emb = model.project(batch["images"])  # the triplets are mined on what the loss sees
            dist = pairwise_sq_distances(emb)
            a, p, n = mine_triplets(dist, batch["identities"], mining)
            active_sum += float((dist[a, p] - dist[a, n] + 0.2 > 0).float().mean())
            active_n += 1
        step += 1
    return {"mining": mining, "loss": loss, "steps": step, "curve": curve, "final_eer": curve[-1]["eer"],
            "final_oneshot_acc": curve[-1]["oneshot_acc"]}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for r in results:
        label = f"{r['loss']} / {r['mining']}" if r["loss"] == "triplet" else "binary classification (|f_i - f_j|)"
        xs = [c["seconds"] for c in r["curve"]]
        if r["loss"] == "triplet":
            ax1.plot(xs[1:], [c["active"] for c in r["curve"][1:]], marker="o", label=label)
        ax2.plot(xs, [c["eer"] for c in r["curve"]], marker="o", label=label)
    ax1.set(xlabel="training seconds", ylabel="fraction of mined triplets with loss > 0", title="active triplets")
    ax2.set(xlabel="training seconds", ylabel="EER, held-out identities", title="one-shot verification (test pairs)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="digits")
    ap.add_argument("--seconds", type=float, default=60.0, help="training time per variant")
    ap.add_argument("--eval-every", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/verification.json")
    ap.add_argument("--plot", default="docs/images/verification_mining.png")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = [run_variant(args.data, m, loss, args.seconds, args.eval_every, args.seed) for m, loss in VARIANTS]
    report = {"data": args.data, "seconds_per_variant": args.seconds, "threads": args.threads,
              "note": "wall-clock budget; on a shared CPU the figures are indicative only", "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    plot(results, Path(args.plot))
    print(json.dumps({r["mining"] + "/" + r["loss"]: {"eer": round(r["final_eer"], 4), "steps": r["steps"],
                      "active_last": round(r["curve"][-1]["active"], 3)} for r in results}, indent=2))


if __name__ == "__main__":
    main()
