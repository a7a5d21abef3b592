"""Detection speed: training images/s and inference ms/image of our YOLO and SSD against torchvision's
``ssdlite320_mobilenet_v3_large`` (the peer: random weights, the same square input, the same run).

For each input size: a training step (forward, loss, backward, AdamW step) on a fixed in-memory batch
with two boxes per image, fastest of several rounds; inference on one image (model + decoding +
per-class NMS at a 0.01 score threshold, the evaluation setting; the peer's own post-processing with
its score threshold set to 0.01 too), fastest of several rounds. Our models run channels_last with the
MobileNetV2 backbone, as ``cnnlab train detect`` does (first two stages frozen, as with --weights
imagenet). The matmul peak is measured in the same process; MFU = 6 x MACs x images/s / peak.
The sliding-window conv speed-up (crops one by one vs FC layers as convolutions) is timed on the
course's 14x14 window net. JSON to stdout, Markdown to stderr.

    python benchmarks/detection.py --threads 2                      # 128, 320 and 640 px
    python benchmarks/detection.py --sizes 128 320 --rounds 2 --json benchmarks/results/detection.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from cnnlab.engine.transfer import freeze_stages  # noqa: E402
from cnnlab.models import create_model  # noqa: E402
from cnnlab.models.detection import SSD, YOLO, CourseWindowNet  # noqa: E402
from cnnlab.models.detection.sliding_window import classify_crops  # noqa: E402


def _targets(batch: int, size: int, num_classes: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(batch):
        xy = torch.rand(2, 2, generator=g) * size * 0.6
        wh = size * (0.1 + 0.3 * torch.rand(2, 2, generator=g))
        out.append({"boxes": torch.cat([xy, xy + wh], 1), "labels": torch.randint(0, num_classes, (2,), generator=g)})
    return out


def ours(name: str, size: int, num_classes: int) -> torch.nn.Module:
    backbone = create_model("mobilenet_v2", num_classes=1)
    if name == "yolo":
        anchors = torch.tensor([[0.12, 0.16], [0.15, 0.2], [0.19, 0.25], [0.22, 0.3], [0.27, 0.35]]) * size
        model = YOLO(backbone, num_classes, anchors)
    else:
        model = SSD(backbone, num_classes, size)
    freeze_stages(model.backbone, 2)
    return model.to(memory_format=torch.channels_last)


def peer(size: int, num_classes: int) -> torch.nn.Module:
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    model = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes + 1)
    model.transform.fixed_size = (size, size)  # the same input as ours (the builder's default is 320)
    model.transform.min_size, model.transform.max_size = (size,), size
    model.score_thresh = 0.01
    return model


def train_step(name: str, model: torch.nn.Module, size: int, batch: int, num_classes: int) -> Callable[[], Any]:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, 1e-4)
    targets = _targets(batch, size, num_classes)
    x = torch.rand(batch, 3, size, size)
    model.train()
    if name == "peer":
        images = list(x)

        def step():
            loss = sum(model(images, targets).values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    else:
        x = x.contiguous(memory_format=torch.channels_last)

        def step():
            loss = model.loss(model(x), targets, (size, size))["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return step


def infer_ms(name: str, model: torch.nn.Module, size: int, rounds: int, reps: int) -> float:
    model.eval()
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        if name == "peer":
            fn = lambda: model(list(x))  # noqa: E731
        else:
            x = x.contiguous(memory_format=torch.channels_last)
            fn = lambda: model.detect(model(x), 0.01)  # noqa: E731
        best = min(common.best_time(lambda: [fn() for _ in range(reps)], 1, warmup=1) for _ in range(rounds))
    return 1e3 * best / reps


class _PeerTrunk(torch.nn.Module):
    """The peer's backbone + head on a tensor, for counting its MACs."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        feats = list(self.model.backbone(x).values())
        return self.model.head(feats)


def sliding_window_speedup(image: int = 64, rounds: int = 3) -> dict[str, Any]:
    """The course's 14x14 window net at stride 2 over an image: every crop classified vs one conv pass."""
    net = CourseWindowNet(4).eval()
    conv = net.to_convolutional().eval()
    x = torch.rand(3, image, image)
    with torch.no_grad():
        crops = common.best_time(lambda: classify_crops(net, x, 14, 2, batch=1), rounds)
        dense = common.best_time(lambda: conv(x[None]), rounds)
        err = float((conv(x[None])[0].permute(1, 2, 0) - classify_crops(net, x, 14, 2)).abs().max())
    n = ((image - 14) // 2 + 1) ** 2
    return {"image": image, "windows": n, "crops_one_by_one_ms": 1e3 * crops, "convolutional_ms": 1e3 * dense,
            "speedup": crops / dense, "max_abs_difference": err}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 320, 640], help="square input sizes (default: 128 320 640)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=8, help="training batch (default: 8)")
    p.add_argument("--steps", type=int, default=3, help="timed training steps per round (default: 3)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds, the fastest counts (default: 3)")
    p.add_argument("--reps", type=int, default=3, help="inference calls per round (default: 3)")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--models", nargs="+", default=["yolo", "ssd", "peer"], choices=["yolo", "ssd", "peer"])
    p.add_argument("--peak-sizes", type=int, nargs="+", default=[1024, 1536, 2048])
    p.add_argument("--json", help="also write the JSON report here")
    p.add_argument("--markdown", help="also write the Markdown table here")
    args = p.parse_args(argv)
    if min(args.sizes) < 64 or args.batch < 1 or args.threads < 1:
        p.error("--sizes must be >= 64, --batch and --threads >= 1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    peak = common.matmul_peak_gflops(args.peak_sizes)
    rows = []
    for size in args.sizes:
        for name in args.models:
            model = peer(size, args.num_classes) if name == "peer" else ours(name, size, args.num_classes)
            counted = _PeerTrunk(model) if name == "peer" else model
            macs = common.forward_macs(counted.eval(), (3, size, size))
            step = train_step(name, model, size, args.batch, args.num_classes)
            m = common.measure_step(step, args.batch, steps=args.steps, rounds=args.rounds, warmup=1)
            ms = infer_ms(name, model, size, args.rounds, args.reps)
            util = common.utilization(m["images_per_s"], common.training_flops(macs), peak)
            rows.append({"model": name, "size": size, "train_images_per_s": m["images_per_s"], "infer_ms_per_image": ms,
                         "forward_gmacs": macs / 1e9, "train_mfu": util["mfu"]})
            print(f"{name} {size}px: {m['images_per_s']:.1f} train img/s, {ms:.1f} ms/image", file=sys.stderr)
    peak = max(peak, common.matmul_peak_gflops(args.peak_sizes))
    for r in rows:  # ratios against the peer at the same size
        base = next((q for q in rows if q["model"] == "peer" and q["size"] == r["size"]), None)
        if base is not None:
            r["train_speed_vs_peer"] = r["train_images_per_s"] / base["train_images_per_s"]
            r["infer_speed_vs_peer"] = base["infer_ms_per_image"] / r["infer_ms_per_image"]
    report = common.to_jsonable({
        "benchmark": "detection", "environment": common.environment(), "peak_gflops": peak, "batch": args.batch,
        "peer": "torchvision ssdlite320_mobilenet_v3_large, random weights, fixed_size = the input, score_thresh 0.01",
        "ours": "cnnlab YOLO / SSD on mobilenet_v2 (random weights, first 2 stages frozen as with --weights imagenet), "
                "channels_last; inference includes decoding and per-class NMS at score 0.01",
        "rows": rows, "sliding_window": sliding_window_speedup(rounds=args.rounds)})
    headers = ["model", "size", "train img/s", "infer ms/img", "GMACs", "train MFU", "train vs peer", "infer vs peer"]
    table = common.markdown_table(headers, [[r["model"], r["size"], common.fmt(r["train_images_per_s"]),
                                             common.fmt(r["infer_ms_per_image"]), common.fmt(r["forward_gmacs"]),
                                             common.fmt(r["train_mfu"], pct=True) + " %",
                                             common.fmt(r.get("train_speed_vs_peer")), common.fmt(r.get("infer_speed_vs_peer"))]
                                            for r in report["rows"]])
    sw = report["sliding_window"]
    table += (f"\n\nsliding windows, {sw['windows']} windows of 14x14 at stride 2 on a {sw['image']}x{sw['image']} image: "
              f"crops one by one {common.fmt(sw['crops_one_by_one_ms'])} ms, as convolutions "
              f"{common.fmt(sw['convolutional_ms'])} ms ({common.fmt(sw['speedup'])}x), max difference {sw['max_abs_difference']:.1e}\n")
    common.emit_report(report, table, args.json, args.markdown)
    return report


if __name__ == "__main__":
    main()
