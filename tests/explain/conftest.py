"""Tiny subjects with known answers: a linear classifier, and a small CNN trained to find a bright square."""

import pytest
import torch
from torch import nn

from cnnlab.explain.common import Subject

SIZE = 16


def blob_images(n: int, seed: int = 0, size: int = SIZE):
    """Grey noise images; class 1 has a bright 4x4 square at a random place, class 0 has none. (N,1,S,S), (N,), corners."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 + 0.1 * torch.rand((n, 1, size, size), generator=g)
    y = torch.arange(n) % 2
    corners = torch.randint(0, size - 4, (n, 2), generator=g)
    for i in range(n):
        if y[i] == 1:
            r, c = corners[i].tolist()
            x[i, :, r:r + 4, c:c + 4] = 1.0
    return x, y, corners


class BlobNet(nn.Module):
    """conv-ReLU-conv-ReLU-global average pool-linear, with the backbone methods explain uses."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, padding=1),
                                      nn.ReLU(inplace=True))
        self.head = nn.Linear(8, 2)

    def forward_features(self, x):
        return self.features(x)  # (B, 8, H, W)

    def forward_head(self, x, pre_logits=False):
        x = x.mean((2, 3))
        return x if pre_logits else self.head(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


@pytest.fixture(scope="session")
def blob_subject():
    torch.manual_seed(0)
    model = BlobNet()
    x, y, _ = blob_images(256)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for step in range(150):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    xt, yt, _ = blob_images(128, seed=1)
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean()
    assert acc > 0.95, f"the blob model did not learn (test accuracy {acc:.2f})"
    return Subject(model, ["empty", "square"], (SIZE, SIZE), 1, name="blobnet")


@pytest.fixture()
def linear_subject():
    from cnnlab.models import create_model

    torch.manual_seed(0)
    model = create_model("linear", num_classes=4, in_chans=3, img_size=6)
    return Subject(model, ["a", "b", "c", "d"], (6, 6), 3, name="linear")
