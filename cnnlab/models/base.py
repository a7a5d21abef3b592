"""The backbone contract every classifier of the zoo keeps (timm's shape).

- ``forward_features(x) -> (B, C, h, w)``: the last feature map, unpooled;
- ``forward_head(x, pre_logits=False)``: pool (and, for AlexNet/VGG/LeNet, the FC stack) then the
  classifier; ``pre_logits=True`` stops before it and gives the (B, num_features) "CNN code";
- ``forward_intermediates(x, indices)``: the feature maps at the ends of the chosen stages;
- ``feature_info``: one ``dict(num_chs=, reduction=, module=)`` per feature stage, measured once on a
  probe input (``reduction`` = input side / map side; ``module`` = the dotted name of its output module);
- ``stages()`` for --freeze (AlexNet and VGG add FC6 and FC7, which are not feature stages).
``forward(x) == forward_head(forward_features(x))``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Backbone(nn.Module):
    """forward_intermediates and feature_info from ``feature_stages()`` and ``forward_features``."""

    num_features: int

    def feature_stages(self) -> list[nn.Module]:
        return self.stages()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def _stage_outputs(self) -> list[tuple[str, nn.Module]]:
        """(name, module) whose output ends each feature stage: the stage itself, or the last module of an ad-hoc group."""
        names = {id(m): n for n, m in self.named_modules()}
        out = []
        for stage in self.feature_stages():
            m = stage
            while id(m) not in names and isinstance(m, nn.Sequential) and len(m):
                m = m[-1]
            out.append((names.get(id(m), "?"), m))
        return out

    def forward_intermediates(self, x: torch.Tensor, indices: list[int] | None = None) -> list[torch.Tensor]:
        """The outputs of the feature stages ``indices`` (ints into feature_info, negative allowed; None = all)."""
        stages = self._stage_outputs()
        n = len(stages)
        wanted = list(range(n)) if indices is None else [i % n for i in indices]
        seen: dict[int, torch.Tensor] = {}
        hooks = [m.register_forward_hook(lambda mod, inp, out, k=k: seen.__setitem__(k, out))
                 for k, (_, m) in enumerate(stages) if k in wanted]
        try:
            self.forward_features(x)
        finally:
            for h in hooks:
                h.remove()
        return [seen[i] for i in wanted]

    @property
    def feature_info(self) -> list[dict]:
        if getattr(self, "_feature_info", None) is None:
            first = next(m for m in self.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
            chans = first.in_channels if isinstance(first, nn.Conv2d) else 1
            side = max(64, getattr(self, "min_input_size", 0))
            training = self.training
            self.eval()
            try:
                with torch.no_grad():
                    p = next(self.parameters())
                    maps = self.forward_intermediates(torch.zeros(1, chans, side, side, dtype=p.dtype, device=p.device))
            finally:
                self.train(training)
            self._feature_info = [dict(num_chs=int(t.shape[1]), reduction=side / t.shape[-1], module=name)
                                  for t, (name, _) in zip(maps, self._stage_outputs())]
        return self._feature_info


class Classifier(Backbone):
    """Global pooling, dropout (when drop_rate > 0) and one linear classifier under ``head_attr``."""

    head_attr = "head"
    drop_rate: float = 0.0

    def global_pool(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))  # (B, C, h, w) -> (B, C)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x) if x.ndim == 4 else x  # (B, num_features)
        if pre_logits:
            return x
        if self.drop_rate > 0:
            x = F.dropout(x, self.drop_rate, self.training)
        return getattr(self, self.head_attr)(x)

    def get_classifier(self) -> nn.Module:
        return getattr(self, self.head_attr)

    def reset_classifier(self, num_classes: int) -> None:
        setattr(self, self.head_attr, nn.Linear(self.num_features, num_classes))


class FCStackClassifier(Backbone):
    """Nets whose fully connected stack is ``self.classifier`` (AlexNet, VGG): the head pools to the
    stack's input size, runs FC6-FC7 (``pre_logits``: FC7's output, the "CNN code") and the last layer."""

    classifier: nn.Sequential

    def feature_stages(self) -> list[nn.Module]:
        return self.stages()[:-2]  # the conv blocks; FC6 and FC7 are stages for --freeze only

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.classifier[:-1](torch.flatten(self.avgpool(x), 1))  # (B, num_features)
        return x if pre_logits else self.classifier[-1](x)

    def get_classifier(self) -> nn.Module:
        return self.classifier[-1]

    def reset_classifier(self, num_classes: int) -> None:
        self.classifier[-1] = nn.Linear(self.num_features, num_classes)
