"""`cnnlab lab` (the course's claims as experiments), `cnnlab lr-find` (LR range test) and `cnnlab search`
(coarse-to-fine random search), all on the training engine."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cnnlab.errors import ConfigError

LAB_EPILOG = """examples:
  cnnlab lab list                               every experiment: claim, course section, budget
  cnnlab lab run relu-vs-saturating             one experiment at its full budget -> runs/lab/relu-vs-saturating/report.md
  cnnlab lab run dropout --seeds 3 --out DIR    averaged over three seeds
  cnnlab lab run --all --quick                  every experiment as a smoke test (~2 s each)"""
LRFIND_EPILOG = """example:
  cnnlab lr-find classify --data digits --img-size 8 --model convnet_bn --optimizer sgd --out runs/lrf
writes lr_find.png (loss vs learning rate), lr_find.json and prints the suggested --lr."""
SEARCH_EPILOG = """example:
  cnnlab search classify --data digits --img-size 8 --epochs 2 --optimizer momentum \\
      --param lr=1e-4:1 --param weight_decay=1e-6:1e-2 --trials 8 --rounds 2 --out runs/search
ranges are sampled in log space unless suffixed :lin (uniform) or :int; writes search.md, search.json, search.png."""


def register(sub) -> None:
    lab = sub.add_parser("lab", help="the course's claims as experiments with a plot and a number",
                         description="Run the lab's experiments: each trains through the engine (or measures the "
                                     "models), writes report.md with figures, numbers, a verdict and the commands.",
                         epilog=LAB_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    labsub = lab.add_subparsers(dest="lab_command", metavar="COMMAND")
    ls = labsub.add_parser("list", help="list the experiments")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=run_list)
    run = labsub.add_parser("run", help="run one experiment (or --all)", epilog=LAB_EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("name", nargs="?", help="experiment name (see `cnnlab lab list`)")
    run.add_argument("--all", action="store_true", help="run every experiment, shortest first")
    run.add_argument("--seeds", type=int, default=1, help="training runs per setting, seeds 0..N-1 (default 1)")
    run.add_argument("--out", default=None, metavar="DIR", help="output folder (default runs/lab/NAME; with --all: "
                     "DIR/NAME per experiment)")
    run.add_argument("--quick", action="store_true", help="a tiny budget (seconds): a smoke test, not a measurement")
    run.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=run_lab)
    gal = labsub.add_parser("gallery", help="write docs/lab.md from a folder of full runs")
    gal.add_argument("results", metavar="DIR", help="folder of full runs (DIR/NAME/results.json), e.g. from --all --out DIR")
    gal.add_argument("--page", default="docs/lab.md", help="the page to write (default docs/lab.md)")
    gal.add_argument("--images", default="docs/images", help="where the figures go, as lab_NAME.png (default docs/images)")
    gal.add_argument("--intro", default=None, metavar="FILE", help="markdown to put above the table")
    gal.add_argument("--notes", default=None, metavar="FILE", help="markdown to put below the table")
    gal.set_defaults(func=run_gallery)
    lab.set_defaults(func=lambda args: lab.print_help() or 2)
    _task_command(sub, "lr-find", "find a learning rate: exponential sweep, loss vs LR, suggested LR",
                  "LR range test (Smith 2017; fastai's lr_find) over a real training config: the learning rate grows "
                  "exponentially for --steps steps; the loss-vs-LR plot and the suggested rate (steepest descent of the "
                  "smoothed loss) are written to --out.", LRFIND_EPILOG, _lr_find_args, run_lr_find)
    _task_command(sub, "search", "coarse-to-fine random hyperparameter search over real training runs",
                  "Random search in log space (Bergstra & Bengio 2012) over real training runs; each round narrows the "
                  "ranges to the best quarter of the previous round's trials. Model selection uses the validation split.",
                  SEARCH_EPILOG, _search_args, run_search)


def _task_command(sub, name, help_, description, epilog, add_args, func) -> None:
    from cnnlab.cli.train import add_config_flags
    from cnnlab.tasks import get_task, list_tasks

    p = sub.add_parser(name, help=help_, description=description, epilog=epilog,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    tasks = p.add_subparsers(dest="task", metavar="TASK")
    for task in list_tasks():
        t = tasks.add_parser(task, help=f"{name} for the {task} task", description=description, epilog=epilog,
                             formatter_class=argparse.RawDescriptionHelpFormatter, argument_default=argparse.SUPPRESS)
        add_config_flags(t, get_task(task).Config)
        add_args(t)
        t.set_defaults(func=func, task_name=task)
    p.set_defaults(func=lambda args: p.print_help() or 2)


# ---------------------------------------------------------------------------- lab
def run_list(args) -> int:
    from cnnlab.lab import list_experiments

    exps = list_experiments()
    if args.json:
        print(json.dumps([dict(name=e.name, claim=e.claim, section=e.section, budget_s=e.budget_s, trains=e.trains)
                          for e in exps], indent=1))
        return 0
    width = max(len(e.name) for e in exps)
    print(f"{'experiment':<{width}}  budget   claim  [course section]")
    for e in exps:
        print(f"{e.name:<{width}}  {e.budget:<7}  {e.claim}  [{e.section}]")
    print(f"\n{len(exps)} experiments; budgets are one seed on 2 CPU cores. Run one: cnnlab lab run NAME")
    return 0


def run_lab(args) -> int:
    import torch

    from cnnlab.lab import get_experiment, list_experiments, run_experiment

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.all == bool(args.name):
        raise ConfigError("give one experiment NAME or --all (see `cnnlab lab list`)")
    names = [e.name for e in list_experiments()] if args.all else [get_experiment(args.name).name]
    failed = []
    for name in names:
        out = (Path(args.out) / name if args.out else None) if args.all else args.out
        try:
            r = run_experiment(name, out=out, seeds=args.seeds, quick=args.quick, progress=not args.quiet)
        except ConfigError:
            raise
        except Exception as e:  # with --all, one broken experiment does not stop the others
            if not args.all:
                raise
            failed.append(name)
            print(f"{name}: FAILED: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", file=sys.stderr)
            continue
        where = Path(out) if out else Path("runs") / "lab" / (f"{name}-quick" if args.quick else name)
        print(f"{name}: {'HELD' if r['held'] else 'NOT HELD'}: {r['verdict']} ({r['seconds']:.0f} s; {where / 'report.md'})")
    if failed:
        print(f"{len(failed)} experiment(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def run_gallery(args) -> int:
    from cnnlab.lab.gallery import write_gallery

    if not Path(args.results).is_dir():
        raise ConfigError(f"{args.results}: no such folder; run `cnnlab lab run --all --out {args.results}` first")
    intro = Path(args.intro).read_text().splitlines() if args.intro else None
    notes = Path(args.notes).read_text().splitlines() if args.notes else None
    missing = write_gallery(args.results, args.page, args.images, intro, notes)
    print(f"wrote {args.page}" + (f"; not yet run: {', '.join(missing)}" if missing else ""))
    return 0


# ---------------------------------------------------------------------------- lr-find
def _lr_find_args(p) -> None:
    p.add_argument("--start-lr", type=float, default=1e-7, help="first learning rate (default 1e-7)")
    p.add_argument("--end-lr", type=float, default=10.0, help="last learning rate (default 10)")
    p.add_argument("--steps", type=int, default=100, help="training steps of the sweep (default 100)")


def run_lr_find(args) -> int:
    from cnnlab.cli.train import config_from_args
    from cnnlab.engine.tuning import lr_find, plot_lr_find

    cfg = config_from_args(args, args.task_name)
    out = Path(cfg.out or f"runs/lr-find-{cfg.task}-{cfg.model}")
    out.mkdir(parents=True, exist_ok=True)
    res = lr_find(cfg, start_lr=args.start_lr, end_lr=args.end_lr, num_steps=args.steps)
    plot_lr_find(res, out / "lr_find.png")
    (out / "lr_find.json").write_text(json.dumps({"suggestion": res.suggestion, "min_loss_lr": res.min_loss_lr,
                                                  "stopped_early": res.stopped_early, "lrs": res.lrs,
                                                  "losses": [x if x == x and abs(x) != float("inf") else None for x in res.losses],
                                                  "optimizer": cfg.optimizer}, indent=1))
    print(f"{len(res.lrs)} steps from lr {res.lrs[0]:.2g} to {res.lrs[-1]:.2g}"
          + (" (stopped: the loss diverged)" if res.stopped_early else ""))
    print(f"suggested --lr {res.suggestion:.3g} (steepest descent; the loss is lowest at {res.min_loss_lr:.3g}) "
          f"for --optimizer {cfg.optimizer}; plot: {out / 'lr_find.png'}")
    return 0


# ---------------------------------------------------------------------------- search
def _search_args(p) -> None:
    p.add_argument("--param", action="append", dest="params", metavar="NAME=LOW:HIGH[:lin|:int]", default=None,
                   help="a training flag and its range (log scale unless :lin or :int); repeatable")
    p.add_argument("--trials", type=int, default=8, help="training runs per round (default 8)")
    p.add_argument("--rounds", type=int, default=2, help="coarse-to-fine rounds (default 2)")
    p.add_argument("--search-seed", type=int, default=0, help="seed of the sampler (default 0)")


def parse_param(text: str) -> tuple[str, tuple]:
    """'lr=1e-4:1' -> ('lr', (1e-4, 1.0, 'log')); ':lin' / ':int' suffixes pick the scale."""
    if "=" not in text:
        raise ConfigError(f"--param {text!r} must look like NAME=LOW:HIGH (e.g. lr=1e-4:1)")
    name, rng = text.split("=", 1)
    parts = rng.split(":")
    scale = "log"
    if parts and parts[-1] in ("lin", "linear", "int", "log"):
        scale = {"lin": "linear"}.get(parts[-1], parts[-1])
        parts = parts[:-1]
    try:
        low, high = (float(v) for v in parts)
    except ValueError:
        raise ConfigError(f"--param {text!r}: give two numbers, LOW:HIGH (e.g. lr=1e-4:1)") from None
    return name.replace("-", "_"), (int(low) if scale == "int" else low, int(high) if scale == "int" else high, scale)


def run_search(args) -> int:
    from cnnlab.cli.train import config_from_args
    from cnnlab.engine.tuning import plot_search, random_search, search_table

    if not getattr(args, "params", None):
        raise ConfigError("search needs at least one --param NAME=LOW:HIGH (e.g. --param lr=1e-4:1)")
    space = dict(parse_param(p) for p in args.params)
    cfg = config_from_args(args, args.task_name)
    out = Path(cfg.out or f"runs/search-{cfg.task}-{cfg.model}")
    out.mkdir(parents=True, exist_ok=True)
    res = random_search(cfg, space, trials=args.trials, rounds=args.rounds, seed=args.search_seed)
    best = res.best()
    plot_search(res, out / "search.png")
    table = search_table(res)
    ranges = [f"- round {i + 1}: " + ", ".join(f"{k} {lo:.3g}..{hi:.3g} ({s})" for k, (lo, hi, s) in sp.items())
              for i, sp in enumerate(res.spaces)]
    flags = " ".join(f"--{k.replace('_', '-')} {v:.4g}" for k, v in best.params.items())
    (out / "search.md").write_text("\n".join([f"# search: {cfg.task}, {cfg.model}", "", "Ranges:", *ranges, "",
                                              f"Best: `{flags}` (validation {res.monitor} {best.score:.4f})", "",
                                              *table, "", "![search](search.png)", ""]))
    (out / "search.json").write_text(json.dumps({"monitor": res.monitor, "mode": res.mode, "best": best.params,
                                                 "best_score": best.score, "spaces": res.spaces,
                                                 "trials": [t.__dict__ for t in res.trials]}, indent=1))
    print("\n".join(table))
    print(f"best: {flags} -> validation {res.monitor} {best.score:.4f}; {out / 'search.md'}, {out / 'search.png'}")
    return 0
