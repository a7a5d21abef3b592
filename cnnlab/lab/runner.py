"""Run an experiment and write its report: OUT/report.md (claim, verdict, numbers, figures, the exact
commands) and OUT/results.json (the same, machine-readable)."""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import torch

from cnnlab.lab.core import Context, Outcome
from cnnlab.lab.registry import Experiment, get_experiment


def run_experiment(name: str, out: str | Path | None = None, seeds: int = 1, quick: bool = False,
                   progress: bool = True) -> dict[str, Any]:
    """Run experiment ``name`` into ``out`` (default runs/lab/NAME, or runs/lab/NAME-quick) and return results.json's dict."""
    exp = get_experiment(name)
    if seeds < 1:
        from cnnlab.errors import ConfigError

        raise ConfigError(f"--seeds {seeds}: at least 1")
    out = Path(out) if out is not None else Path("runs") / "lab" / (f"{name}-quick" if quick else name)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(out, seeds=seeds, quick=quick, progress=progress)
    t0 = time.perf_counter()
    try:
        outcome: Outcome = exp.fn(ctx)
    finally:
        ctx.close()
    seconds = time.perf_counter() - t0
    numbers = {k: (float(v) if v is not None and math.isfinite(float(v)) else None) for k, v in outcome.numbers.items()}
    command = "cnnlab lab run " + name + (f" --seeds {seeds}" if seeds != 1 else "") + (" --quick" if quick else "")
    results = {"experiment": name, "claim": exp.claim, "section": exp.section, "quick": quick, "seeds": seeds,
               "held": bool(outcome.held), "verdict": outcome.verdict, "numbers": numbers, "figures": outcome.figures,
               "seconds": round(seconds, 1), "training_runs": ctx.runs, "command": command,
               "run_commands": list(dict.fromkeys(ctx.commands)), "torch": torch.__version__,
               "machine": f"{platform.machine()}, {torch.get_num_threads()} threads"}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "report.md").write_text(_report(exp, outcome, results))
    return results


def _report(exp: Experiment, o: Outcome, r: dict[str, Any]) -> str:
    mode = "quick mode (tiny budget: the numbers are a smoke test, not the measurement)" if r["quick"] else "full budget"
    lines = [f"# {exp.name}", "", f"**Claim** ({exp.section}): {exp.claim}", "",
             f"**Verdict**: {'HELD' if o.held else 'NOT HELD'}: {o.verdict}", "",
             f"{mode}; {r['seeds']} seed(s); {r['training_runs']} training run(s) through the engine; "
             f"{r['seconds']:.0f} s on {r['machine']}.", "", "| number | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in r["numbers"].items()]
    lines.append("")
    if o.table:
        lines += o.table + [""]
    lines += [f"![{Path(f).stem}]({f})" for f in o.figures]
    if o.notes:
        lines += ["", *[f"- {n}" for n in o.notes]]
    lines += ["", "Reproduce:", "", "```", r["command"], "```"]
    if r["run_commands"]:
        shown = r["run_commands"][:12]
        lines += ["", "Each training run is the same as one `cnnlab train` run (here without a run folder), e.g.:", "",
                  "```", *shown, "```"]
        if len(r["run_commands"]) > len(shown):
            lines.append(f"... and {len(r['run_commands']) - len(shown)} more (results.json lists them all)")
    return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    return f"{v:.4g}" if isinstance(v, float) else str(v)
