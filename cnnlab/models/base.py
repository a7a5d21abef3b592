"""The backbone contract every classifier of the zoo keeps (timm's shape).

- ``forward_features(x) -> (B, C, h, w)``: the last feature map, unpooled;
- ``forward_head(x, pre_logits=False)``: pool (and, for AlexNet/VGG/LeNet, the FC stack) then the
  classifier; ``pre_logits=True`` stops before it and gives the (B, num_features) "CNN code";
- ``forward_intermediates(x, indices)``: the feature maps at the ends of the chosen stages;
- ``feature_info``: one ``dict(num_chs=, reduction=, module=)`` per feature stage, measured once on probe
  inputs (``reduction``: the stage's stride, input side / map side; ``module``: the dotted name of the
  module whose output it is);
- ``stages()`` for --freeze: feature stage i is ``stages()[i]`` (AlexNet, VGG and LeNet add their FC
  layers, which are not feature stages).
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
        bad = [i for i in (indices or []) if not -n <= i < n]
        if bad:
            raise IndexError(f"feature stage {bad[0]} does not exist: {type(self).__name__} has {n} (0..{n - 1}, or -1..-{n})")
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

    def _probe_input(self, side: int) -> torch.Tensor:
        """A zero image of ``side`` x ``side`` with the model's input channels, dtype and device."""
        first = next(m for m in self.modules() if isinstance(m, nn.Conv2d))
        p = next(self.parameters())
        return torch.zeros(1, first.in_channels, side, side, dtype=p.dtype, device=p.device)

    @property
    def feature_info(self) -> list[dict]:
        """One dict(num_chs, reduction, module) per feature stage, measured once on two probe inputs.

        ``reduction`` is the stage's stride: input side / map side, measured as the change in map side per
        64 more input pixels, so valid-padded nets (AlexNet, LeNet) get 8, 16, 32 instead of ratios that
        depend on the input size; for 'same'-padded nets at multiples of 32 it is exactly input / map."""
        if getattr(self, "_feature_info", None) is None:
            side = max(64, getattr(self, "min_input_size", 0))
            modes = [(m, m.training) for m in self.modules()]  # restored one by one: frozen batch norms stay in eval
            self.eval()
            try:
                with torch.no_grad():
                    small = self.forward_intermediates(self._probe_input(side))
                    large = self.forward_intermediates(self._probe_input(side + 64))
            finally:
                for m, mode in modes:
                    m.training = mode
            self._feature_info = [dict(num_chs=int(a.shape[1]), reduction=64 // (b.shape[-1] - a.shape[-1]), module=name)
                                  for a, b, (name, _) in zip(small, large, self._stage_outputs())]
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
