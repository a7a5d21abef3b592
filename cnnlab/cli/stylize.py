"""`cnnlab stylize CONTENT STYLE --out out.png`: neural style transfer (Gatys), or one pass of a trained fast net.

Writes out.png, out_figure.png (content / style / result) and out_losses.json (settings, seconds, losses per step).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

EXAMPLES = """examples:
  cnnlab stylize chelsea.png starry_night.jpg --out chelsea_starry.png          # Gatys, 512 px, L-BFGS
  cnnlab stylize photo.jpg starry_night.jpg --out out.png --size 256 --steps 100
  cnnlab stylize photo.jpg starry_night.jpg --out out.png --extractor mobilenet_v2
  cnnlab stylize photo.jpg --net runs/stylenet-... --out out.png                 # a trained fast net, one pass"""

DEFAULT_STEPS = 150


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stylize", help="neural style transfer: paint a photo in the style of an image",
                       description="Gatys et al.: optimize the pixels of an image so that its features match the "
                                   "content image on one layer and its Gram matrices match the style image's on "
                                   "several (J = alpha content + beta style + gamma TV). With --net, run a network "
                                   "trained by `cnnlab train stylenet` instead (one forward pass).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("content", metavar="CONTENT", help="the content image (a photo)")
    p.add_argument("style", metavar="STYLE", nargs="?", help="the style image (a painting); not with --net")
    p.add_argument("--out", required=True, help="the stylized image to write (.png or .jpg)")
    p.add_argument("--size", type=int, default=512, help="longer side of the result in pixels (default 512)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                   help=f"optimizer steps, one forward + backward each (default {DEFAULT_STEPS})")
    p.add_argument("--extractor", default="vgg16_hed",
                   help="feature network: vgg16_hed (default), mobilenet_v2, or a classify run folder")
    p.add_argument("--weights", help="with vgg16_hed: an explicit HED .weights.h5 or converted .safetensors file")
    p.add_argument("--content-layer", help="content layer (default: relu4_2 for vgg16_hed)")
    p.add_argument("--style-layers", help="comma-separated style layers (default: relu1_1,relu2_1,relu3_1,relu4_1,relu5_1)")
    p.add_argument("--content-weight", type=float, help="alpha (default: the extractor's, 1)")
    p.add_argument("--style-weight", type=float, help="beta (default: the extractor's)")
    p.add_argument("--tv-weight", type=float, help="gamma, total variation (default: the extractor's)")
    p.add_argument("--optimizer", default="lbfgs", choices=("lbfgs", "adam"), help="lbfgs (default) or adam")
    p.add_argument("--lr", type=float, help="step size (default: 1 for lbfgs, 0.02 for adam)")
    p.add_argument("--init", default="content", choices=("content", "noise"), help="start from the content image or noise")
    p.add_argument("--net", metavar="RUN_DIR", help="a `cnnlab train stylenet` run folder: stylize in one pass")
    p.add_argument("--seed", type=int, default=0, help="random seed (for --init noise)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_stylize)


def load_sized(path: str, size: int):
    """An image file as (1, 3, h, w) in [0, 1], its longer side resized to ``size``."""
    from cnnlab.tasks.stylenet import load_style

    if not Path(path).is_file():
        from cnnlab.errors import DataError

        raise DataError(f"{path}: no such image file")
    return load_style(path, size)


def save_rgb(path: Path, x) -> None:
    """(1, 3, H, W) in [0, 1] -> an image file."""
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (x[0].detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    Image.fromarray(arr).save(path)


def save_figure(path: Path, panels: list[tuple[str, object]], suptitle: str = "") -> None:
    import numpy as np

    from cnnlab.engine.plots import plt  # Agg backend

    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.2), squeeze=False)
    for ax, (title, x) in zip(axes[0], panels):
        ax.imshow(np.clip(x[0].detach().permute(1, 2, 0).cpu().numpy(), 0, 1))
        ax.set_title(title)
        ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_stylize(args: argparse.Namespace) -> int:
    import torch

    from cnnlab.errors import ConfigError

    if args.size < 16:
        raise ConfigError(f"--size {args.size}: must be at least 16 pixels")
    if args.steps < 0:
        raise ConfigError(f"--steps {args.steps}: must be 0 or more")
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ConfigError(f"--out {out}: name a .png or .jpg file")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    content = load_sized(args.content, args.size).to(device)  # (1, 3, h, w)
    figure = out.with_name(out.stem + "_figure.png")
    losses = out.with_name(out.stem + "_losses.json")
    if args.net:
        if args.style:
            raise ConfigError("--net stylizes with the style it was trained on; drop STYLE")
        return _fast(args, content, out, figure, losses, device)
    if not args.style:
        raise ConfigError("STYLE is missing: cnnlab stylize CONTENT STYLE --out out.png (or --net RUN_DIR)")
    style = load_sized(args.style, args.size).to(device)

    from cnnlab.models.style.extractors import get_extractor
    from cnnlab.models.style.gatys import gatys_transfer

    ext = get_extractor(args.extractor, args.weights).to(device)
    layers = [s.strip() for s in args.style_layers.split(",") if s.strip()] if args.style_layers else None
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=args.steps, desc="stylize", unit="step")

    def show(step: int, row: dict) -> None:
        if bar is not None and step < args.steps:
            bar.update(1)
            bar.set_postfix(content=f"{row['content']:.3g}", style=f"{row['style']:.3g}", tv=f"{row['tv']:.3g}")

    t0 = time.perf_counter()
    image, history = gatys_transfer(ext, content, style, args.steps, optimizer=args.optimizer, lr=args.lr,
                                    init=args.init, seed=args.seed, content_layer=args.content_layer,
                                    style_layers=layers, content_weight=args.content_weight,
                                    style_weight=args.style_weight, tv_weight=args.tv_weight, callback=show)
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    save_rgb(out, image)
    first, last = history[0], history[-1]
    ratio = last["style"] / first["style"] if first["style"] > 0 else float("nan")
    save_figure(figure, [("content", content), ("style", style), ("result", image)],
                f"{ext.name}, {args.steps} {args.optimizer} steps, {image.shape[-1]}x{image.shape[-2]} px, "
                f"{seconds:.0f} s; style loss {ratio:.1%} of its start")
    record = {"content": args.content, "style": args.style, "out": str(out), "size": list(image.shape[-2:]),
              "extractor": ext.name, "steps": args.steps, "optimizer": args.optimizer, "init": args.init,
              "device": str(device), "threads": torch.get_num_threads(), "seconds": round(seconds, 2),
              "seconds_per_step": round(seconds / max(1, args.steps), 3), "style_ratio": ratio,
              "final": last, "start": first, "history": history}
    losses.write_text(json.dumps(record, indent=1))
    print(f"wrote {out} ({image.shape[-1]}x{image.shape[-2]} px, {seconds:.1f} s): content {last['content']:.4g}, "
          f"style {last['style']:.4g} ({ratio:.1%} of its start), tv {last['tv']:.4g}; figure {figure}")
    return 0


def _fast(args, content, out: Path, figure: Path, losses: Path, device) -> int:
    import torch

    from cnnlab.engine.evaluate import load_task
    from cnnlab.errors import ConfigError

    task, model, meta, path = load_task(args.net)
    if task.name != "stylenet":
        raise ConfigError(f"--net {args.net} is a {task.name} run; pass a `cnnlab train stylenet` run folder")
    model = model.to(device).eval()
    with torch.no_grad():
        model(content[..., :64, :64])  # warm-up: first-call allocations are not the net's speed
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        image = model(content)  # (1, 3, h, w)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    save_rgb(out, image)
    save_figure(figure, [("content", content), ("result", image)],
                f"fast net {Path(args.net).name} ({meta.get('style', '?')}), {seconds:.2f} s")
    losses.write_text(json.dumps({"content": args.content, "net": str(args.net), "checkpoint": str(path),
                                  "size": list(image.shape[-2:]), "device": str(device),
                                  "threads": torch.get_num_threads(), "seconds": round(seconds, 4)}, indent=1))
    print(f"wrote {out} ({image.shape[-1]}x{image.shape[-2]} px) in {seconds:.3f} s; figure {figure}")
    return 0
