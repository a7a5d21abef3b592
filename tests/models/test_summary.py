import json

import pytest
import torch
import torchvision
from torch import nn

from cnnlab.errors import ConfigError, ModelError, ShapeError
from cnnlab.models import create_model
from cnnlab.models.summary import (
    count_macs,
    count_params,
    default_input_size,
    format_summary,
    summarize_registered,
    summary,
)

# The course's LeNet-5 table (input 32x32x3, activation size 3072): shape, size, parameters.
# Shapes are (C, H, W) here, the course writes them H x W x C.
LENET_TABLE = [
    ("CONV1", (8, 28, 28), 6272, 608),
    ("POOL1", (8, 14, 14), 1568, 0),
    ("CONV2", (16, 10, 10), 1600, 3216),
    ("POOL2", (16, 5, 5), 400, 0),
    ("FC3", (120,), 120, 48120),
    ("FC4", (84,), 84, 10164),
    ("Softmax", (10,), 10, 850),
]


def test_lenet5_reproduces_the_course_table():
    s = summary(create_model("lenet5", num_classes=10), (3, 32, 32))
    assert s.input_size == 3072
    shown = [r for r in s.rows if not r.elementwise]
    assert [(r.output_shape, r.activation_size, r.params) for r in shown] == [t[1:] for t in LENET_TABLE]
    assert [r.kind for r in shown] == ["Conv2d", "MaxPool2d", "Conv2d", "MaxPool2d", "Linear", "Linear", "Linear"]
    assert s.total_params == sum(t[3] for t in LENET_TABLE) == 62_958
    # Multiply-adds by hand: 28*28*8*75 + 10*10*16*200 + 400*120 + 120*84 + 84*10.
    assert s.total_macs == 470_400 + 320_000 + 48_000 + 10_080 + 840
    assert s.output_shape == (10,)


def test_lenet5_1998_parameter_count():
    s = summarize_registered("lenet5_1998")
    assert s.input_shape == (1, 32, 32) and s.total_params == 61_706  # LeCun et al. 1998


# Published multiply-adds at 224x224 (torchvision's model docs, "GFLOPS" = GMACs of conv + linear).
PUBLISHED_GMACS = {"alexnet_tv": 0.714, "vgg16": 15.47, "googlenet": 1.50, "resnet18": 1.81, "resnet50": 4.09}


@pytest.mark.parametrize("name,gmacs", sorted(PUBLISHED_GMACS.items()))
def test_published_multiply_adds(name, gmacs):
    s = summarize_registered(name, (3, 224, 224))
    decimals = len(str(gmacs).split(".")[1])
    assert round(s.total_macs / 1e9, decimals) == gmacs


@pytest.mark.parametrize(
    "tv_name,macs,params",
    [("alexnet", 714_188_480, 61_100_840), ("vgg16", 15_470_264_320, 138_357_544), ("resnet18", 1_814_073_344, 11_689_512),
     ("resnet50", 4_089_184_256, 25_557_032), ("googlenet", 1_498_376_192, 6_624_904)],
)  # fmt: skip
def test_torchvision_models_as_oracle(tv_name, macs, params):
    """Exact counts for torchvision's own models (random weights, built on meta), and ours agree."""
    kw = {"aux_logits": False, "init_weights": False} if tv_name == "googlenet" else {}
    with torch.device("meta"):
        tv = getattr(torchvision.models, tv_name)(weights=None, **kw)
    assert count_macs(tv, (3, 224, 224)) == macs
    assert count_params(tv) == params
    ours = {"alexnet": "alexnet_tv"}.get(tv_name, tv_name)
    assert summarize_registered(ours, (3, 224, 224)).total_macs == macs


def test_googlenet_in_train_mode_with_aux_heads_is_summarised_in_eval_mode():
    torch.manual_seed(0)
    model = create_model("googlenet", aux_logits=True)
    model.train()
    before = {k: v.clone() for k, v in list(model.state_dict().items())[:4]}
    s = summary(model, (3, 224, 224))
    assert round(s.total_macs / 1e9, 2) == 1.50  # aux heads do not run in eval mode
    assert s.output_shape == (1000,)
    assert model.training  # mode restored
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # weights untouched
    assert s.total_params > 6_624_904  # but their parameters are counted


def test_mac_rules_by_hand():
    shared = nn.Linear(6, 6)
    model = nn.Sequential(
        nn.Conv2d(4, 8, 3, padding=1, groups=2, bias=False),  # 8*8*8 outputs x (4/2)*9 = 9,216
        nn.ConvTranspose2d(8, 2, 2, stride=2),  # 8*8*8 inputs x 2*4 = 4,096
        nn.BatchNorm2d(2),
        nn.AdaptiveAvgPool2d(3),  # (2, 3, 3)
        nn.Flatten(1),  # 18
        nn.Linear(18, 6),  # 108
        shared, nn.ReLU(), shared,  # 36 each call
    )  # fmt: skip
    s = summary(model, (4, 8, 8))
    assert [r.macs for r in s.rows] == [9216, 4096, 0, 0, 0, 108, 36, 0, 36]
    assert [r.params for r in s.rows][-3:] == [42, 0, 0]  # a shared layer's parameters counted once
    assert [r.name for r in s.rows][-3:] == ["6", "7", "6#2"]
    assert s.total_params == count_params(model) == 144 + 66 + 4 + 114 + 42
    assert count_macs(model, (4, 8, 8)) == 9216 + 4096 + 108 + 72


def test_model_that_cannot_run_on_meta_falls_back_to_a_real_forward():
    class NeedsValues(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            x = self.fc(x)
            if x.sum().item() > 1e9:  # .item() has no meta implementation
                x = x * 0
            return self.fc(x)

    s = summary(NeedsValues(), (4,))
    assert [(r.name, r.macs, r.params) for r in s.rows] == [("fc", 16, 20), ("fc#2", 16, 0)]


def test_bad_inputs_are_shape_errors():
    with pytest.raises(ShapeError, match="must be positive"):
        summary(nn.Linear(3, 3), (0, 3))
    with pytest.raises(ShapeError, match="does not fit"):
        summary(nn.Conv2d(3, 4, 5), (3, 2, 2))
    with pytest.raises(ShapeError, match="does not fit"):
        summary(create_model("lenet5").to("meta"), (3, 64, 64))  # a model on meta: no real fallback
    with pytest.raises(ConfigError, match="square"):
        summarize_registered("lenet5", (3, 32, 28))
    with pytest.raises(ModelError, match="unknown model"):
        summarize_registered("lenet6")


def test_default_input_rule():
    assert default_input_size("lenet5") == (3, 32, 32)  # builder's img_size
    assert default_input_size("lenet5_1998") == (1, 32, 32)  # builder's in_chans
    assert default_input_size("resnet50") == (3, 224, 224)  # ImageNet: 1000 classes
    assert default_input_size("convnet_bn") == (3, 32, 32)  # CIFAR-sized: 10 classes


def test_lenet_img_size_follows_the_input():
    s = summarize_registered("lenet5", (1, 48, 48))
    assert s.rows[0].output_shape == (8, 44, 44)
    assert [r.params for r in s.rows if r.kind == "Linear"][0] == 16 * 9 * 9 * 120 + 120  # 48-4=44, /2, -4, /2 = 9


def test_format_and_json():
    s = summary(create_model("lenet5", num_classes=10), (3, 32, 32))
    text = format_summary(s)
    assert "8x28x28" in text and "6,272" in text and "48,120" in text
    assert "total params: 62,958" in text and "total multiply-adds: 849,320" in text
    assert "ReLU" not in text and "ReLU" in format_summary(s, all_layers=True)
    d = json.loads(json.dumps(s.to_dict()))
    assert d["input_size"] == 3072 and d["total_macs"] == 849_320 and len(d["rows"]) == len(s.rows)


def test_every_registered_model_can_be_summarised_at_its_default_input():
    from cnnlab.models import list_models

    for name in list_models():
        s = summarize_registered(name)
        assert s.total_macs > 0 and s.total_params > 0, name
        assert sum(r.params for r in s.rows) <= s.total_params, name  # rows never double count
