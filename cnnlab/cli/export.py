"""`cnnlab export`: a run's network (or a pretrained model) as ONNX, TorchScript or a torch.export program."""

from __future__ import annotations

import argparse

from cnnlab.errors import ConfigError

EXAMPLES = """examples:
  cnnlab export runs/classify-lenet5-20261123-120000 --format onnx --out lenet.onnx
  cnnlab export RUN_DIR --format torchscript --out model.pt          torch.jit.load('model.pt')(x)
  cnnlab export RUN_DIR --format exported-program --out model.pt2    torch.export.load('model.pt2').module()(x)
  cnnlab export --model mobilenet_v2 --weights imagenet --format onnx --out mobilenet_v2.onnx

The batch dimension is dynamic. Beside FILE goes FILE.json: the input (shape, dtype), the preprocessing
(size, scale, mean/std), class names (or the vocabulary), the outputs and what they mean. Every export is
loaded back and compared with the network on a fresh batch before it is kept."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a run's model as ONNX / TorchScript / torch.export, runnable without cnnlab",
                       description="Export the network of a run folder (any task) or of --model with --weights to a file "
                                   "that runs without cnnlab (onnxruntime, torch.jit.load or torch.export.load).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="a run folder written by `cnnlab train`")
    p.add_argument("--model", help="a registered model with pretrained --weights instead of a run folder")
    p.add_argument("--weights", help="with --model: imagenet, or a weights file")
    p.add_argument("--format", required=True, choices=["onnx", "torchscript", "exported-program"], help="file format")
    p.add_argument("--out", required=True, metavar="FILE", help="the file to write (.onnx, .pt, .pt2); FILE.json goes beside it")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"], help="which checkpoint of the run (default: best)")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from cnnlab.engine.export import export, metadata_path, prepare_pretrained, prepare_run

    if args.model:
        if args.run_dir:
            raise ConfigError("give a run folder or --model with --weights, not both")
        if not args.weights:
            raise ConfigError(f"--model {args.model} needs --weights (imagenet, or a weights file)")
        module, example, info = prepare_pretrained(args.model, args.weights)
    elif args.run_dir:
        if args.weights:
            raise ConfigError("--weights goes with --model; a run folder has its own")
        module, example, info = prepare_run(args.run_dir, args.checkpoint)
    else:
        raise ConfigError("give a run folder (cnnlab export RUN_DIR --format onnx --out model.onnx) or --model with --weights")
    doc = export(module, example, info, args.format, args.out)
    shapes = ", ".join(f"{i['name']} {i['shape']}" for i in doc["inputs"])
    print(f"wrote {doc['path']} ({args.format}; input {shapes}; checked on a batch of {doc['check']['batch']}: "
          f"max relative difference {doc['check']['max_rel_diff']:.1e})")
    print(f"wrote {metadata_path(doc['path'])} (inputs, {'vocabulary' if 'vocab' in doc else 'preprocessing, classes'}, "
          "outputs, how to load it)")
    return 0
