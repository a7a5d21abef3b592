"""Selective search (cnnlab.ops.proposals) on images whose objects we drew: the hierarchy's structure,
the recall of the proposals, their ranking and bounds, and the recall count by hand."""

import numpy as np
import torch

from cnnlab.ops.proposals import hierarchical_grouping, proposal_recall, region_features, selective_search_proposals


def drawn_image(seed: int = 0):
    """A 96 x 96 noisy grey image with a red rectangle and a blue disc; their exact boxes."""
    rng = np.random.default_rng(seed)
    img = (120 + rng.normal(0, 6, (96, 96, 3))).clip(0, 255)
    img[10:40, 15:60] = (200, 30, 30)
    yy, xx = np.mgrid[:96, :96]
    img[(yy - 68.5) ** 2 + (xx - 66.5) ** 2 <= 15 ** 2] = (30, 40, 210)
    return img.astype(np.uint8), torch.tensor([[15.0, 10.0, 60.0, 40.0], [52.0, 54.0, 82.0, 84.0]])


def test_the_hierarchy_merges_until_one_region_covers_the_image():
    labels = np.zeros((8, 8), dtype=np.int64)
    labels[:, 4:] = 1
    labels[4:, :4] = 2  # three regions: top-left, right half, bottom-left
    img = np.random.default_rng(0).random((8, 8, 3))
    boxes = hierarchical_grouping(region_features(labels, img), ("colour", "size", "texture", "fill"))
    assert len(boxes) == 2 * 3 - 1  # n initial regions and n - 1 merges
    assert np.array_equal(boxes[:3], [[0, 0, 4, 4], [4, 0, 8, 8], [0, 4, 4, 8]])
    assert np.array_equal(boxes[-1], [0, 0, 8, 8])
    # size + fill only: the two left quarters (together a 4 x 8 box, no gap) merge first
    boxes = hierarchical_grouping(region_features(labels, img), ("size", "fill"))
    assert np.array_equal(boxes[3], [0, 0, 4, 8])


def test_proposals_find_the_drawn_objects_ranked_and_inside_the_image():
    img, gt = drawn_image()
    props = selective_search_proposals(img)
    assert props.dtype == torch.float32 and props.shape[1] == 4 and 50 <= len(props) <= 2000
    assert (props[:, :2] >= 0).all() and (props[:, 2] <= 96).all() and (props[:, 3] <= 96).all()
    assert ((props[:, 2:] - props[:, :2]) >= 4).all() and len(torch.unique(props, dim=0)) == len(props)
    assert proposal_recall(props, gt, 0.9) == (2, 2)  # both objects, nearly exactly
    assert proposal_recall(props[:50], gt, 0.5) == (2, 2)  # and already among the best-ranked
    again = selective_search_proposals(torch.from_numpy(img).permute(2, 0, 1))  # (3, H, W) tensor: the same boxes
    assert torch.equal(again, props)
    assert len(selective_search_proposals(img, max_boxes=10)) == 10


def test_proposal_recall_by_hand():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0], [50.0, 50.0, 60.0, 60.0]])
    props = torch.tensor([[0.0, 0.0, 10.0, 12.0], [20.0, 20.0, 40.0, 40.0]])  # IoU 0.83 and 0.25
    assert proposal_recall(props, gt, 0.5) == (1, 3) and proposal_recall(props, gt, 0.2) == (2, 3)
    assert proposal_recall(torch.zeros(0, 4), gt) == (0, 3) and proposal_recall(props, torch.zeros(0, 4)) == (0, 0)


def test_the_proposals_command_draws_and_measures(tmp_path, capsys):
    import json

    from PIL import Image

    from cnnlab.cli.main import main
    from cnnlab.data.scenes import make_scenes

    img, _ = drawn_image()
    Image.fromarray(img).save(tmp_path / "photo.png")
    assert main(["proposals", str(tmp_path / "photo.png"), "--top", "5", "--out", str(tmp_path / "p.png"), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert (tmp_path / "p.png").is_file() and row["count"] == len(row["boxes"]) >= 5
    scenes = make_scenes("detect", 4, tmp_path / "sc", objects="shapes", size=48, min_size=14, max_size=20, max_objects=2,
                         n_val=3, n_test=0, clutter=0, seed=2)
    assert main(["proposals", "--data", str(scenes), "--limit", "3", "--json"]) == 0
    t = json.loads(capsys.readouterr().out)
    assert t["images"] == 3 and 0 < t["recall_at_0.5"]["2000"] <= 1 and t["proposals_per_second"] > 0
    assert t["recall_at_0.5"]["100"] <= t["recall_at_0.5"]["2000"]
    assert main(["proposals"]) != 0 and "give an image" in capsys.readouterr().err
