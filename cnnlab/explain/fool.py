"""Fooling images / adversarial examples (Szegedy et al. 2014, Goodfellow et al. 2015).

- ``fgsm_smallest``: the fast gradient sign method x + eps * sign(d loss / d x), at the smallest eps (in steps
  of 1/255, pixel units) that changes the predicted class.
- ``iterative_targeted``: repeated small sign steps up the log-probability of a chosen class until the network
  predicts it (Kurakin et al. 2017's iterative method, targeted, no eps ball).
Both report the perturbation's L-inf size (pixel units, [0, 1] scale) and the network's confidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.explain.common import Subject


@dataclass
class FoolResult:
    image: np.ndarray  # (C, H, W) the perturbed image in [0, 1]
    success: bool
    linf: float  # max |x_adv - x| in [0, 1] pixel units
    label: int  # the class it was (the original prediction)
    predicted: int  # the class the network now predicts
    confidence: float  # its probability
    steps: int  # eps steps (FGSM) or iterations (iterative) taken

    def as_dict(self, classes) -> dict:
        return {"success": self.success, "linf": round(self.linf, 6), "linf_255": round(self.linf * 255, 2),
                "from": classes[self.label], "to": classes[self.predicted], "confidence": round(self.confidence, 6),
                "steps": self.steps}


def fgsm_smallest(subject: Subject, x: torch.Tensor, label: int | None = None, eps_step: float = 1 / 255,
                  eps_max: float = 32 / 255) -> FoolResult:
    """The smallest multiple of eps_step (up to eps_max) whose FGSM image is classified as another class."""
    label = int(subject.probs(x)[0].argmax()) if label is None else label
    xg = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(subject(xg), torch.tensor([label]))
    (grad,) = torch.autograd.grad(loss, xg)
    direction = grad.sign()
    n = int(round(eps_max / eps_step))
    eight_bit = bool(((x * 255) - (x * 255).round()).abs().max() < 1e-4) and abs(eps_step * 255 - round(eps_step * 255)) < 1e-6
    adv = x
    for k in range(1, n + 1):
        adv = (x + k * eps_step * direction).clamp(0, 1)
        adv = (adv * 255).round() / 255 if eight_bit else adv  # an 8-bit image stays one (as saved)
        p = subject.probs(adv)[0]
        if int(p.argmax()) != label:
            return FoolResult(adv[0].numpy(), True, float((adv - x).abs().max()), label, int(p.argmax()),
                              float(p.max()), k)
    p = subject.probs(adv)[0]
    return FoolResult(adv[0].numpy(), False, float((adv - x).abs().max()), label, int(p.argmax()), float(p.max()), n)


def iterative_targeted(subject: Subject, x: torch.Tensor, target: int, alpha: float = 1 / 255, max_iter: int = 200,
                       confidence: float = 0.0) -> FoolResult:
    """Sign steps of alpha up log p(target) until target is the top class (with p >= confidence)."""
    label = int(subject.probs(x)[0].argmax())
    adv = x.detach().clone()
    for it in range(1, max_iter + 1):
        adv.requires_grad_(True)
        logp = subject(adv).log_softmax(1)[0]
        (grad,) = torch.autograd.grad(logp[target], adv)
        adv = (adv.detach() + alpha * grad.sign()).clamp(0, 1)
        p = subject.probs(adv)[0]
        if int(p.argmax()) == target and float(p[target]) >= confidence:
            return FoolResult(adv[0].numpy(), True, float((adv - x).abs().max()), label, target, float(p[target]), it)
    p = subject.probs(adv)[0]
    return FoolResult(adv[0].numpy(), False, float((adv - x).abs().max()), label, int(p.argmax()), float(p.max()), max_iter)
