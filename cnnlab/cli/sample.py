"""`cnnlab sample RUN_DIR`: text from a character language model run, or a grid of images from a VAE or GAN run."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  cnnlab sample runs/charlm-charlm-x --prompt "ROMEO:" --chars 500
  cnnlab sample runs/charlm-charlm-x --temperature 0.5 --top-k 10 --seed 3
  cnnlab sample runs/charlm-charlm-x --temperature 0      # argmax: watch it fall into a loop
  cnnlab sample runs/vae-x --n 64 --out samples.png       # VAE or GAN: a grid of images from z ~ N(0, I)"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="sample from a trained generative run (character language model, VAE, GAN)",
                       description="charlm: feed --prompt through the model, then draw each next character from "
                                   "softmax(logits / temperature), optionally from the top-k only. vae, gan: decode --n "
                                   "noise vectors z ~ N(0, I) into a grid of images (--out).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a `cnnlab train charlm` run folder")
    p.add_argument("--prompt", default="\n", help="text to start from (default: a new line)")
    p.add_argument("--chars", type=int, default=500, help="characters to generate (default 500)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="softmax temperature: lower is safer and more repetitive, 0 = argmax (default 0.8)")
    p.add_argument("--top-k", type=int, default=None, help="sample only among the K most likely characters")
    p.add_argument("--seed", type=int, default=0, help="random seed (the same seed gives the same text)")
    p.add_argument("--n", type=int, default=64, help="vae/gan: images to draw (default 64)")
    p.add_argument("--out", default="samples.png", help="vae/gan: the grid to write (default samples.png)")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"), help="which checkpoint (default best)")
    p.set_defaults(func=run_sample)


def run_sample(args: argparse.Namespace) -> int:
    from cnnlab.engine.evaluate import load_task
    from cnnlab.errors import ConfigError

    if args.chars < 0:
        raise ConfigError(f"--chars {args.chars}: must be 0 or more")
    if args.temperature < 0:
        raise ConfigError(f"--temperature {args.temperature}: must be 0 (argmax) or more")
    if args.top_k is not None and args.top_k < 1:
        raise ConfigError(f"--top-k {args.top_k}: must be at least 1")
    if not args.prompt:
        raise ConfigError("--prompt is empty; give at least one character (the default is a new line)")
    task, model, _, _ = load_task(args.run_dir, args.checkpoint)
    if task.name in ("vae", "gan"):
        return _sample_images(task, model, args)
    if task.name == "autoencoder":
        raise ConfigError(f"{args.run_dir} is an autoencoder run: its codes have no prior to sample from; "
                          "train a vae (cnnlab train vae) to sample")
    if not hasattr(task, "sample"):
        raise ConfigError(f"{args.run_dir} is a {task.name} run; `cnnlab sample` takes a charlm, vae or gan run")
    from cnnlab.data.text import Vocab

    unknown = Vocab(task.meta["vocab"]).unknown(args.prompt)
    if unknown:
        print(f"note: the prompt's {''.join(sorted(unknown))!r} never occurred in training; read as the unknown character")
    text = task.sample(model, args.prompt, args.chars, args.temperature, args.top_k, args.seed)
    print(args.prompt + text)
    return 0


def _sample_images(task, model, args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnlab.errors import ConfigError
    from cnnlab.tasks.generate import save_grid

    if not 1 <= args.n <= 4096:
        raise ConfigError(f"--n {args.n}: must be 1..4096")
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ConfigError(f"--out {args.out}: end it in .png (or .jpg)")
    if not out.parent.exists():
        raise ConfigError(f"--out {args.out}: the folder {out.parent} does not exist; create it first")
    images = task.sample(model, args.n, args.seed)
    save_grid(images, out, nrow=max(1, round(args.n ** 0.5)))
    print(f"wrote {out} ({args.n} samples of the {task.name} run, seed {args.seed})")
    return 0
