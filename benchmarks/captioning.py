"""Show and Tell vs Show, Attend and Tell on scenes captions, each trained by the plain command.

The issue's acceptance: on caption scenes with 1-2 coloured shapes and 3000 training images,
``show_attend_tell`` reaches BLEU-4 >= 0.60 on val and beats ``show_tell`` at equal training time.
Each decoder runs ``cnnlab train caption --data DIR --decoder D --threads T`` with every other flag at
its default (optionally ``--time-budget S`` for both); the figures come from the runs' summary.json
and metrics.csv: val/test BLEU, exact match, attention correctness (with its chance level), the
compositional split (test_novel/), and val BLEU-4 reached within the shorter run's training time.

    python benchmarks/captioning.py --threads 1                       # makes the scenes in --work
    python benchmarks/captioning.py --data data/cap --json benchmarks/results/captioning.json
    python benchmarks/captioning.py --decoding RUN_DIR     # greedy vs beam 3 vs beam 5 on a run's test split
JSON to stdout, Markdown to stderr. Timings are wall clock: on a shared machine they are indicative.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

DECODERS = ("show_tell", "show_attend_tell")
KEYS = ("val_bleu4", "bleu1", "bleu4", "exact", "att_correct", "att_chance", "novel_bleu4", "novel_exact",
        "novel_pair_recall", "test_seen_pair_recall", "novel_att_correct", "novel_att_chance", "train_seconds", "epochs")


def cnnlab(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "cnnlab.cli.main", *args], check=True)


def decoding(run_dir: str, beams=(1, 3, 5)) -> dict:
    """BLEU, exact match, share of captions naming a colour and mean length of a run's test captions per beam width."""
    import torch

    from cnnlab.data.scenes import COLOURS
    from cnnlab.engine.evaluate import load_task
    from cnnlab.metrics.captioning import corpus_bleu, exact_match
    from cnnlab.tasks.caption_report import _captions_of

    task, model, _, _ = load_task(run_dir)
    ds, split, _ = task.eval_data(task.cfg)
    refs = [ds.captions[i] for i in range(len(ds))]
    out = {"run_dir": run_dir, "split": split, "images": len(ds)}
    for beam in beams:
        words, _ = _captions_of(task, model, ds, torch.device("cpu"), beam)
        out[f"beam{beam}"] = {**corpus_bleu(refs, words), "exact": exact_match(refs, words),
                              "names_a_colour": sum(any(w in COLOURS for w in c) for c in words) / len(words),
                              "words_per_caption": sum(map(len, words)) / len(words)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="a captions folder (default: make 3000 caption scenes with 1-2 objects in --work)")
    p.add_argument("--work", default="runs/bench-captioning", help="folder for the scenes and the runs")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--time-budget", type=float, help="--time-budget seconds for both decoders (default: the defaults' epochs)")
    p.add_argument("--decoders", nargs="+", default=list(DECODERS), choices=DECODERS)
    p.add_argument("--json", help="also write the JSON report here")
    p.add_argument("--decoding", metavar="RUN_DIR", help="only compare greedy and beam decoding of this caption run")
    args = p.parse_args()
    if args.decoding:
        import torch

        torch.set_num_threads(args.threads)
        report = common.to_jsonable(decoding(args.decoding))
        rows = [[k, common.fmt(v["bleu4"]), common.fmt(v["exact"]), common.fmt(v["names_a_colour"]),
                 common.fmt(v["words_per_caption"])] for k, v in report.items() if k.startswith("beam")]
        common.emit_report(report, common.markdown_table(["decoding", "BLEU-4", "exact", "names a colour", "words"], rows),
                           args.json)
        return
    work = Path(args.work)
    data = args.data
    if data is None:
        data = str(work / "scenes")
        if not Path(data).is_dir():
            cnnlab("data", "scenes", "--kind", "caption", "--n", "3000", "--max-objects", "2", "--out", data, "--quiet")
    runs = {}
    for decoder in args.decoders:
        out = work / f"{decoder}-{time.strftime('%Y%m%d-%H%M%S')}"
        extra = ["--time-budget", str(args.time_budget)] if args.time_budget else []
        t0 = time.perf_counter()
        cnnlab("train", "caption", "--data", data, "--decoder", decoder, "--threads", str(args.threads), "--quiet",
               "--no-tensorboard", "--out", str(out), *extra)
        summary = json.loads((out / "summary.json").read_text())
        rows = common.read_metrics_csv(out / "metrics.csv")
        runs[decoder] = {"run_dir": str(out), "wall_seconds": time.perf_counter() - t0,
                         **{k: summary.get(k) for k in KEYS},
                         "curve": common.curve_from_rows(rows, "val_bleu4")}
    report = {"data": data, "threads": args.threads, "time_budget": args.time_budget, "runs": runs,
              "environment": common.environment()}
    if len(runs) == 2:
        budget = min(r["curve"][-1][0] for r in runs.values())  # the shorter run's training time
        report["equal_time_seconds"] = budget
        report["val_bleu4_at_equal_time"] = {d: common.accuracy_within(r["curve"], budget) for d, r in runs.items()}
    headers = ["decoder", "val BLEU-4", "test BLEU-1", "test BLEU-4", "exact", "att. correct (chance)",
               "novel BLEU-4", "novel pairs named", "seen pairs named", "train s"]
    table_rows = [[d, common.fmt(r["val_bleu4"]), common.fmt(r["bleu1"]), common.fmt(r["bleu4"]), common.fmt(r["exact"]),
                   f"{common.fmt(r['att_correct'])} ({common.fmt(r['att_chance'])})" if r.get("att_correct") is not None
                   else "-", common.fmt(r["novel_bleu4"]), common.fmt(r["novel_pair_recall"]),
                   common.fmt(r["test_seen_pair_recall"]), common.fmt(r["train_seconds"], 4)] for d, r in runs.items()]
    common.emit_report(common.to_jsonable(report), common.markdown_table(headers, table_rows), args.json)


if __name__ == "__main__":
    main()
