"""MTCNN's three networks (Zhang et al. 2016): P-Net, R-Net and O-Net.

P-Net is fully convolutional: on a 12x12 window it gives one face probability and one box
offset, and on a whole image it gives a map of them, one per 12x12 window with a stride of 2:
the course's convolutional sliding window. R-Net (24x24) and O-Net (48x48) re-score and refine
the windows P-Net keeps; O-Net adds 5 landmarks (eyes, nose, mouth corners).

The architectures are written here; the trained weights are data: the PyTorch state dicts shipped
in PyPI ``facenet-pytorch`` (``facenet_pytorch/data/{pnet,rnet,onet}.pt``), converted from the
authors' Caffe models. Their dense layers read the feature map in Caffe's (W, H, C) order, hence
the transpose before flattening.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from cnnlab.errors import ModelError


class PNet(nn.Module):
    """12x12 proposal net: (B, 3, H, W) -> face prob (B, H', W'), box offsets (B, 4, H', W'); H' = (H - 2) // 2 - 4."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)  # face / not face
        self.conv4_2 = nn.Conv2d(32, 4, 1)  # box offsets

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))  # (B, 32, H', W')
        return self.conv4_1(x).softmax(1)[:, 1], self.conv4_2(x)


def _caffe_flatten(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 2, 1).flatten(1)  # (B, C, H, W) -> (B, W*H*C), the order the weights expect


class RNet(nn.Module):
    """24x24 refinement net: (B, 3, 24, 24) -> face prob (B,), box offsets (B, 4)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))  # (B, 28, 11, 11)
        x = self.pool2(self.prelu2(self.conv2(x)))  # (B, 48, 4, 4)
        x = self.prelu3(self.conv3(x))  # (B, 64, 3, 3)
        x = self.prelu4(self.dense4(_caffe_flatten(x)))  # (B, 128)
        return self.dense5_1(x).softmax(1)[:, 1], self.dense5_2(x)


class ONet(nn.Module):
    """48x48 output net: (B, 3, 48, 48) -> face prob (B,), box offsets (B, 4), landmarks (B, 10) = 5 x then 5 y."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))  # (B, 32, 23, 23)
        x = self.pool2(self.prelu2(self.conv2(x)))  # (B, 64, 10, 10)
        x = self.pool3(self.prelu3(self.conv3(x)))  # (B, 64, 4, 4)
        x = self.prelu4(self.conv4(x))  # (B, 128, 3, 3)
        x = self.prelu5(self.dense5(_caffe_flatten(x)))  # (B, 256)
        return self.dense6_1(x).softmax(1)[:, 1], self.dense6_2(x), self.dense6_3(x)


NETS = {"pnet": PNet, "rnet": RNet, "onet": ONet}


def weights_folder() -> Path:
    """facenet-pytorch's data folder, found without importing the package (its import needs `requests`)."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the MTCNN weights come with PyPI facenet-pytorch: "
                         "pip install --no-deps facenet-pytorch==2.6.0 (or run `make install`)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    if not (folder / "pnet.pt").is_file():
        raise ModelError(f"{folder / 'pnet.pt'} is missing; reinstall with pip install --no-deps --force-reinstall "
                         "facenet-pytorch==2.6.0")
    return folder


def load_mtcnn_nets(folder: str | Path | None = None) -> tuple[PNet, RNet, ONet]:
    """The three networks in eval mode with the published weights (state dicts read with weights_only=True)."""
    folder = Path(folder) if folder is not None else weights_folder()
    nets = []
    for name, cls in NETS.items():
        net = cls()
        path = folder / f"{name}.pt"
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError) as e:
            raise ModelError(f"{path}: cannot read the {name} weights ({str(e).splitlines()[0][:120]})") from None
        own = net.state_dict()
        if set(state) != set(own) or any(state[k].shape != own[k].shape for k in own):
            raise ModelError(f"{path}: the tensors do not match our {name} architecture")
        net.load_state_dict(state)
        nets.append(net.eval())
    return tuple(nets)  # type: ignore[return-value]
