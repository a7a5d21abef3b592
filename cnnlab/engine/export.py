"""Export a run's network (any task) or a pretrained model to a file that runs without cnnlab.

Formats: ``onnx`` (run it with onnxruntime or any ONNX runtime), ``torchscript`` (``torch.jit.load``)
and ``exported-program`` (``torch.export.load(path).module()``). The batch dimension is dynamic (and the
sequence length for a character language model). The network is exported as it is, the raw outputs
of its ``forward``: preprocessing (size, scale, mean/std) and what turns outputs into predictions
(class names, a vocabulary, box decoding) are written beside the file as JSON (``model.onnx`` ->
``model.onnx.json``).

Every export is checked before it is kept: the saved file is loaded back and run on a batch of a
size other than the one it was traced with, and its outputs must match the eager network's.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

import cnnlab
from cnnlab.errors import CheckpointError, ConfigError

FORMATS = ("onnx", "torchscript", "exported-program")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt", "exported-program": ".pt2"}
TOLERANCE = 1e-4  # max |exported - eager|, relative to max(1, max |eager|)

# What turns each task's raw outputs into predictions (written in FILE.json for a user without cnnlab)
POSTPROCESS = {
    "classify": "softmax over the last dimension of 'output' gives class probabilities, in the order of 'classes'",
    "localize": "the task's raw head outputs (class logits and box/keypoint regressions in the network's input pixels)",
    "landmarks": "the task's raw head outputs (keypoint coordinates in the network's input pixels)",
    "detect": "raw detector outputs before decoding and non-maximum suppression (see cnnlab.models.detection for the "
              "box parametrization and 'anchors' below when present)",
    "segment": "per-pixel class logits (B, K, H, W): argmax over dimension 1 gives the class map, classes in 'classes'",
    "verify": "L2-normalized embeddings (B, D): two images are the same identity when the squared distance is <= 'tau'",
    "charlm": "logits (B, T, V) of the next character, classes in 'vocab'; feed the returned state back in with the "
              "next characters to continue a text",
    "stylenet": "the stylized image (B, 3, H, W) in [0, 1]",
    "autoencoder": "reconstruction logits (B, C, H, W): a sigmoid gives pixels in [0, 1]",
    "vae": "'logits' (sigmoid: the reconstruction in [0, 1]), 'mu' and 'logvar' of q(z|x), and 'z' (= mu in eval mode)",
    "gan": "generated images (B, C, H, W) in [-1, 1]: (x + 1) / 2 gives pixels; feed z ~ N(0, I)",
}


class _Flat(nn.Module):
    """The network with its outputs flattened to a tuple of tensors (what every format needs)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor):
        return tuple(t for _, t in _flatten(self.net(x)))


class _Recurrent(nn.Module):
    """A character language model as (tokens, state...) -> (logits, state...): the state is explicit."""

    def __init__(self, net: nn.Module, lstm: bool):
        super().__init__()
        self.net, self.lstm = net, lstm

    def forward(self, tokens: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None = None):
        logits, state = self.net(tokens, (h, c) if self.lstm else h)
        return (logits, *state) if self.lstm else (logits, state)


def _flatten(out: Any, prefix: str = "output") -> list[tuple[str, torch.Tensor]]:
    if isinstance(out, torch.Tensor):
        return [(prefix, out)]
    if isinstance(out, dict):
        return [p for k, v in out.items() for p in _flatten(v, str(k) if prefix == "output" else f"{prefix}_{k}")]
    if isinstance(out, (tuple, list)):
        return [p for i, v in enumerate(out) for p in _flatten(v, f"{prefix}_{i}")]
    raise ConfigError(f"cannot export a network whose forward returns {type(out).__name__}; it must return tensors")


# ---------------------------------------------------------------------------- what to export
def _image_spec(meta: dict[str, Any]) -> tuple[int, int, int]:
    size = meta.get("img_size")
    chans = meta.get("in_chans", 3)
    if not size:
        raise CheckpointError("the run's metadata has no 'img_size'; cannot tell the network's input size")
    h, w = (size, size) if isinstance(size, int) else size
    return int(chans), int(h), int(w)


def prepare_run(run_dir: str | Path, which: str = "best") -> tuple[nn.Module, tuple, dict[str, Any]]:
    """(module to export, example inputs, description for FILE.json) of a run folder."""
    from cnnlab.engine.evaluate import load_task

    task, model, meta, path = load_task(run_dir, which)
    info: dict[str, Any] = {"task": task.name, "model": getattr(task.cfg, "model", None) or meta.get("model"),
                            "source": {"run": str(Path(run_dir).resolve()), "checkpoint": path.name,
                                       "epoch": meta.get("epoch")}}
    if task.name == "charlm":
        cell, layers, hidden = meta["cell"], meta["layers"], meta["hidden"]
        lstm = cell == "lstm"
        module = _Recurrent(model, lstm).eval()
        tokens = torch.randint(0, len(meta["vocab"]), (2, 12))
        h = torch.zeros(layers, 2, hidden)
        example = (tokens, h, torch.zeros_like(h)) if lstm else (tokens, h)
        info.update(vocab=meta["vocab"], cell=cell,
                    inputs=[{"name": "tokens", "shape": ["batch", "time"], "dtype": "int64",
                             "meaning": "character ids, indices into 'vocab'"},
                            *[{"name": n, "shape": [layers, "batch", hidden], "dtype": "float32",
                               "meaning": "recurrent state (zeros to start a text)"} for n in (("h", "c") if lstm else ("h",))]],
                    output_names=["logits", *(("h_next", "c_next") if lstm else ("h_next",))])
    elif task.name == "gan":  # the generator: noise in, images out (the discriminator stays behind)
        nz = int(meta["latent"])
        module = _Flat(model).eval()
        example = (torch.randn(2, nz, generator=torch.Generator().manual_seed(0)),)
        info["inputs"] = [{"name": "z", "shape": ["batch", nz], "dtype": "float32", "meaning": "noise z ~ N(0, I)"}]
        info["classes"] = meta.get("classes")
    else:
        chans, h, w = _image_spec(meta)
        module = _Flat(model).eval()
        example = (_example_images(2, chans, h, w),)
        info["inputs"] = [{"name": "images", "shape": ["batch", chans, h, w], "dtype": "float32"}]
        info["preprocessing"] = _preprocessing(meta, chans, h, w, task.name)
        if getattr(task.cfg, "backbone", None):
            info["backbone"] = task.cfg.backbone
        for key in ("classes", "category_ids", "detector", "anchors", "strides", "num_classes", "embed_dim"):
            if key in meta:
                info[key] = meta[key]
        if task.name == "verify" and "tau" in (meta.get("metrics") or {}):
            info["tau"] = float(meta["metrics"]["tau"])
            if meta.get("loss") == "binary":  # tau is on 1 - P(same) of the pairwise head, which stays in cnnlab
                info["tau_note"] = ("this run compares encodings with a learned pairwise head (not exported): its tau "
                                    "is on 1 - P(same), not on the squared distance")
    info["postprocessing"] = POSTPROCESS.get(task.name, "the network's raw outputs")
    return module, example, info


def prepare_pretrained(model_name: str, weights: str) -> tuple[nn.Module, tuple, dict[str, Any]]:
    """(module, example inputs, description) of a zoo model with pretrained weights (ImageNet preprocessing)."""
    from cnnlab.models import create_model
    from cnnlab.models.pretrained import IMAGENET_MEAN, IMAGENET_STD, pretrained_meta

    classes = pretrained_meta(model_name, weights)["classes"]
    model = create_model(model_name, num_classes=len(classes), weights=weights).eval()
    info = {"task": "classify", "model": model_name, "source": {"weights": weights},
            "inputs": [{"name": "images", "shape": ["batch", 3, 224, 224], "dtype": "float32"}],
            "preprocessing": {"size": [224, 224], "channels": 3, "resize": "shorter side to 256, then the centre 224 x 224",
                              "scale": "pixels / 255 (RGB)",
                              "normalization": {"mode": "channel", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}},
            "classes": classes, "postprocessing": POSTPROCESS["classify"]}
    return _Flat(model).eval(), (_example_images(2, 3, 224, 224),), info


def _example_images(b: int, c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def _preprocessing(meta: dict[str, Any], chans: int, h: int, w: int, task: str) -> dict[str, Any]:
    norm = meta.get("normalization")
    if norm and norm.get("mode") == "channel":  # (C, 1, 1) nested lists -> C floats
        norm = dict(norm, mean=torch.tensor(norm["mean"]).flatten().tolist())
    resize = (f"scale so the image covers {h} x {w} (antialiased bilinear), then centre-crop {h} x {w}"
              if task == "classify" else
              f"resize to {h} x {w}, antialiased bilinear (the aspect ratio is not kept; boxes and points are predicted "
              "in these pixels)")
    return {"size": [h, w], "channels": chans, "resize": resize,
            "scale": "pixels / 255" + (" (RGB)" if chans == 3 else " (grey)" if chans == 1 else ""),
            "normalization": norm if norm else None,
            "note": "x = (pixels / 255 - mean) / std, mean and std per channel (or a mean image for mode 'image')"}


# ---------------------------------------------------------------------------- the formats
def _dynamic(example: tuple, recurrent: bool, time: bool = True):
    from torch.export import Dim

    batch = Dim("batch", min=1, max=4096)
    if recurrent:
        first = {0: batch, 1: Dim("time", min=1, max=1 << 20)} if time else {0: batch}
        return (first, *[{1: batch}] * (len(example) - 1))
    return ({0: batch},)


def _write_onnx(module: nn.Module, example: tuple, path: Path, input_names: list[str], output_names: list[str],
                recurrent: bool) -> None:
    try:
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError:
        raise ConfigError("--format onnx needs the onnx and onnxscript packages: pip install 'cnnlab[export]'") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, example, dynamo=True, input_names=input_names, output_names=output_names,
                                    dynamic_shapes=_dynamic(example, recurrent), external_data=False, verbose=False,
                                    report=False)
    program.save(str(path), external_data=False)
    if recurrent:  # the graph takes any length (ONNX's LSTM op); declare it on the outputs too
        import onnx

        proto = onnx.load(str(path))
        dim = proto.graph.output[0].type.tensor_type.shape.dim
        if len(dim) == 3:
            dim[1].ClearField("dim_value")
            dim[1].dim_param = "time"
            onnx.save(proto, str(path))


def _write_torchscript(module: nn.Module, example: tuple, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example, check_trace=False)
        torch.jit.save(traced, str(path))


def _write_exported_program(module: nn.Module, example: tuple, path: Path, recurrent: bool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # torch.export unrolls a recurrent net over a fixed length: the program takes one character per call
        program = torch.export.export(module, example, dynamic_shapes=_dynamic(example, recurrent, time=False))
        torch.export.save(program, str(path))


def run_exported(fmt: str, path: str | Path, inputs: tuple) -> list[torch.Tensor]:
    """Outputs of an exported file on ``inputs`` (tensors), loaded the way a user without cnnlab would."""
    path = str(path)
    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError("checking an ONNX file needs onnxruntime: pip install 'cnnlab[export]'") from None
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs)}
        return [torch.from_numpy(o) for o in session.run(None, feeds)]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
        if fmt == "torchscript":
            out = torch.jit.load(path)(*inputs)
        else:
            out = torch.export.load(path).module()(*inputs)
    return [t for _, t in _flatten(out)]


def _check_inputs(example: tuple, recurrent: bool) -> tuple:
    """Inputs of another batch size (and length) than the traced ones: a dynamic dimension is really dynamic."""
    if recurrent:
        length = 7 if example[0].shape[1] > 1 else 1
        tokens = torch.randint(0, int(example[0].max()) + 1, (3, length), generator=torch.Generator().manual_seed(1))
        return (tokens, *[torch.randn(t.shape[0], 3, t.shape[2], generator=torch.Generator().manual_seed(2)) * 0.1
                          for t in example[1:]])
    x = example[0]
    return (torch.randn(3, *x.shape[1:], generator=torch.Generator().manual_seed(1)),)


def export(module: nn.Module, example: tuple, info: dict[str, Any], fmt: str, out: str | Path) -> dict[str, Any]:
    """Write ``out`` (and ``out``.json) in ``fmt``, check it reproduces the eager network; returns the JSON written."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a folder; give a file name such as {out / ('model' + SUFFIXES[fmt])}")
    if not out.suffix:
        out = out.with_suffix(SUFFIXES[fmt])
    if out.suffix == ".json":
        raise ConfigError(f"--out {out}: the model file cannot end in .json (its description goes beside it, "
                          f"as {out.name}{SUFFIXES[fmt]}.json); use {out.with_suffix(SUFFIXES[fmt])}")
    if not out.parent.exists():
        raise ConfigError(f"--out {out}: the folder {out.parent} does not exist; create it first")
    recurrent = info.get("task") == "charlm"
    if recurrent and fmt == "exported-program":
        example = (example[0][:, :1], *example[1:])
        info["inputs"][0]["shape"] = ["batch", 1]
        info["inputs"][0]["meaning"] += "; one character per call (torch.export fixes the length), state carried"
    input_names = [i["name"] for i in info["inputs"]]
    with torch.no_grad():
        named = _flatten(module.net(*example) if isinstance(module, _Flat) else module(*example))
    eager_example = [t for _, t in named]
    output_names = info.pop("output_names", None) or [n for n, _ in named]  # dict keys, or output / output_i
    # write to a temporary file beside the target, check it, then move it into place: a failed export leaves
    # an existing file of that name as it was
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=out.suffix, dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:  # traced without gradients: the inference path of every layer (e.g. SmallMapConv's plain conv)
            with torch.no_grad():
                if fmt == "onnx":
                    _write_onnx(module, example, tmp, input_names, output_names, recurrent)
                elif fmt == "torchscript":
                    _write_torchscript(module, example, tmp)
                else:
                    _write_exported_program(module, example, tmp, recurrent)
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001  (an exporter's failure on this network, said in one line)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"--format {fmt}: exporting this {info.get('model') or 'network'} failed ({first[:300]}); "
                              f"try another --format") from None
        check = _check_inputs(example, recurrent)
        with torch.no_grad():
            eager = [t for _, t in _flatten(module(*check))]
        got = run_exported(fmt, tmp, check)
        if len(got) != len(eager):
            raise ConfigError(f"--format {fmt}: the exported file returns {len(got)} outputs, the network {len(eager)}")
        diff = 0.0
        for a, b in zip(got, eager):
            if tuple(a.shape) != tuple(b.shape):
                raise ConfigError(f"--format {fmt}: output of shape {tuple(a.shape)} on a batch of {check[0].shape[0]}, "
                                  f"the network gives {tuple(b.shape)}; the batch dimension did not stay dynamic")
            scale = max(1.0, float(b.abs().max())) if b.numel() else 1.0
            diff = max(diff, float((a.float() - b.float()).abs().max()) / scale if b.numel() else 0.0)
        if diff > TOLERANCE:
            raise ConfigError(f"--format {fmt}: the exported file differs from the network by {diff:.2e} "
                              f"(more than {TOLERANCE:g}); try another --format")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    outputs = [{"name": n, "shape": ["batch", *list(t.shape[1:])] if not recurrent or i == 0 else list(t.shape)}
               for i, (n, t) in enumerate(zip(output_names, eager_example))]
    if recurrent:
        outputs[0]["shape"] = ["batch", "time" if example[0].shape[1] > 1 else 1, int(eager_example[0].shape[-1])]
        for o in outputs[1:]:
            o["shape"] = [o["shape"][0], "batch", o["shape"][2]]
    doc = {"format": fmt, "file": out.name, "cnnlab_version": cnnlab.__version__, "torch_version": torch.__version__,
           **info, "outputs": outputs, "check": {"max_rel_diff": diff, "batch": int(check[0].shape[0])},
           "load": _how_to_load(fmt, out.name, input_names)}
    from cnnlab.engine.checkpoint import atomic_write_json

    atomic_write_json(metadata_path(out), doc)
    doc["path"] = str(out)
    return doc


def metadata_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_suffix(out.suffix + ".json")


def _how_to_load(fmt: str, name: str, inputs: list[str]) -> str:
    args = ", ".join(inputs)
    if fmt == "onnx":
        feeds = ", ".join(f"'{n}': {n}" for n in inputs)
        return f"onnxruntime.InferenceSession('{name}').run(None, {{{feeds}}})  # numpy arrays, shapes and dtypes as 'inputs'"
    if fmt == "torchscript":
        return f"torch.jit.load('{name}')({args})"
    return f"torch.export.load('{name}').module()({args})"
