"""The gallery page (docs/lab.md) from a folder of full runs: each experiment's figure, numbers, verdict, command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cnnlab.lab.registry import list_experiments


def write_gallery(results: str | Path, page: str | Path, images: str | Path, intro: list[str] | None = None,
                  notes: list[str] | None = None) -> list[str]:
    """Copy RESULTS/NAME/plots/*.png to IMAGES/lab_NAME.png and write PAGE (``intro``, the summary table, ``notes``,
    one section per experiment); returns the experiments not yet run."""
    results, page, images = Path(results), Path(page), Path(images)
    images.mkdir(parents=True, exist_ok=True)
    rel = Path("images") if images.parent == page.parent else images
    lines = list(intro or [])
    missing = []
    rows = []
    for e in list_experiments():
        path = results / e.name / "results.json"
        if not path.is_file():
            missing.append(e.name)
            continue
        r = json.loads(path.read_text())
        if r.get("quick"):
            missing.append(e.name)
            continue
        rows.append((e, r))
    held = sum(r["held"] for _, r in rows)
    lines += [f"{len(rows)} of {len(rows) + len(missing)} experiments run at their full budget; the claim held in {held}.",
              "", "| experiment | held | verdict |", "|---|---|---|",
              *[f"| [{e.name}](#{e.name}) | {'yes' if r['held'] else '**no**'} | {r['verdict']} |" for e, r in rows], ""]
    lines += list(notes or [])
    for e, r in rows:
        lines += [f"## {e.name}", "", f"**Claim** ({e.section}): {e.claim}", "",
                  f"**{'Held' if r['held'] else 'Did not hold'}**: {r['verdict']}", ""]
        for i, fig in enumerate(r["figures"]):
            name = f"lab_{e.name}{'' if i == 0 else f'_{i}'}.png"
            src = results / e.name / fig
            if src.is_file():
                shutil.copyfile(src, images / name)
                lines += [f"![{e.name}]({rel / name})", ""]
        nums = ", ".join(f"{k} {_fmt(v)}" for k, v in r["numbers"].items())
        lines += [f"Numbers: {nums}.", "", f"`{r['command']}` ({r['seconds']:.0f} s, {r['seeds']} seed(s), "
                  f"{r['training_runs']} training runs, {r['machine']})", ""]
    if missing:
        lines += ["## Not yet run at the full budget", "", ", ".join(missing), ""]
    page.write_text("\n".join(lines))
    return missing


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    return f"{v:.4g}" if isinstance(v, float) else str(v)
