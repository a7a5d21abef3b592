"""Style transfer speed and convergence: Gatys at 256 and 512 px with `cnnlab stylize`'s defaults, and the fast net.

    python benchmarks/style.py [--sizes 256 512] [--steps 150] [--threads 2] [--fast-only] [--out benchmarks/results/style.json]

Anchors (Johnson et al. 2016, Table 1, GTX Titan X): Gatys, 500 L-BFGS iterations at 512 px ~47 s (0.094 s per
iteration); the fast net 0.05 s per 512 px image. Goals on 2 CPU cores: Gatys at 512 px <= 10 min, fast net <= 0.5 s.
Content: scikit-image's chelsea; style: starry_night.jpg from Debian's opencv-doc. Prints and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

STARRY = Path("/usr/share/doc/opencv-doc/examples/data/starry_night.jpg")
JOHNSON_GATYS_512_S, JOHNSON_GATYS_ITERS, JOHNSON_FAST_512_S = 47.0, 500, 0.05


def chelsea(size: int) -> torch.Tensor:
    from skimage import data
    from torchvision.transforms.v2 import functional as TF

    img = torch.from_numpy(data.chelsea()).permute(2, 0, 1)  # (3, 300, 451)
    h, w = img.shape[-2:]
    s = size / max(h, w)
    return (TF.resize(img, [round(h * s), round(w * s)], antialias=True).float() / 255)[None]


def gatys(size: int, steps: int) -> dict:
    from cnnlab.cli.stylize import DEFAULT_STEPS
    from cnnlab.models.style.extractors import get_extractor
    from cnnlab.models.style.gatys import gatys_transfer
    from cnnlab.tasks.stylenet import load_style

    steps = steps or DEFAULT_STEPS
    ext = get_extractor("vgg16_hed")
    content, style = chelsea(size), load_style(STARRY, size)
    t0 = time.perf_counter()
    _, history = gatys_transfer(ext, content, style, steps)
    seconds = time.perf_counter() - t0
    first, last = history[0], history[-1]
    return {"size": list(content.shape[-2:]), "steps": steps, "seconds": round(seconds, 1),
            "seconds_per_step": round(seconds / steps, 3), "style_ratio": last["style"] / first["style"],
            "final": {k: last[k] for k in ("loss", "content", "style", "tv")}, "start_style": first["style"],
            "johnson_titanx_seconds_per_iter_512": JOHNSON_GATYS_512_S / JOHNSON_GATYS_ITERS,
            "goal_512_seconds": 600}


def fast(size: int, width: float, repeats: int = 3) -> dict:
    from cnnlab.models.style.transformer import TransformerNet

    net = TransformerNet(width=width).eval()  # speed does not depend on the weights
    x = chelsea(size)
    with torch.no_grad():
        net(x)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - t0)
    return {"size": list(x.shape[-2:]), "width": width, "seconds": round(min(times), 4),
            "johnson_titanx_seconds": JOHNSON_FAST_512_S, "goal_seconds": 0.5}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--steps", type=int, default=0, help="0 = `cnnlab stylize`'s default")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fast-only", action="store_true")
    p.add_argument("--out", default="benchmarks/results/style.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    result = {"machine": platform.processor() or platform.machine(), "threads": args.threads,
              "torch": torch.__version__, "fast_net": [fast(512, w) for w in (0.5, 1.0)]}
    if not args.fast_only:
        result["gatys"] = [gatys(s, args.steps) for s in args.sizes]
    print(json.dumps(result, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
