"""Gradient flow through time (CS231n lecture 10, "Vanilla RNN gradient flow"; Pascanu et al. 2013): in a
vanilla RNN the gradient reaching h_t shrinks (or grows) geometrically with the distance to the loss, since
each step multiplies by W_hh^T diag(tanh'); the LSTM's additive cell state keeps it open. Measured with
``models.language.gradients.gradient_by_distance`` on untrained char-level models."""

from __future__ import annotations

import torch

from cnnlab.lab.core import Context, Outcome
from cnnlab.lab.registry import register_experiment
from cnnlab.models.language.charlm import CharLM
from cnnlab.models.language.gradients import gradient_by_distance, largest_singular_value


@register_experiment(name="rnn-gradient-flow", claim="In a vanilla RNN the gradient vanishes geometrically with the "
                     "distance in time; the LSTM's cell state keeps it flowing", budget_s=10, trains=False,
                     section="CS231n lecture 10 (vanilla RNN gradient flow, LSTM)")
def rnn_gradient_flow(ctx: Context) -> Outcome:
    T = ctx.pick(60, 30)
    curves, sigma = {}, {}
    for label, cell, forget_bias in (("rnn", "rnn", 0), ("gru", "gru", 0), ("lstm", "lstm", 0), ("lstm-fb1", "lstm", 1)):
        per_seed = []
        for s in ctx.seeds:
            torch.manual_seed(s)
            model = CharLM(40, embed=32, hidden=128, layers=1, cell=cell)
            if forget_bias:  # the usual LSTM init (Gers et al. 2000; Jozefowicz et al. 2015): the forget gate starts open
                with torch.no_grad():
                    model.rnn.rnn.bias_ih_l0[128:256] += forget_bias
            tokens = torch.randint(0, 40, (16, T + 1), generator=torch.Generator().manual_seed(s))
            per_seed.append(gradient_by_distance(model, tokens))  # (T,) from the loss backwards
            sigma[label] = largest_singular_value(model)
        curves[label] = torch.stack(per_seed).mean(0)
    fig, ax = ctx.figure("gradient")
    for cell, g in curves.items():
        ax.semilogy(range(len(g)), (g / g[0]).numpy(), label=f"{cell} (sigma_max(W_hh) {sigma[cell]:.2f})")
    ax.set(xlabel="steps back from the loss", ylabel="||dL/dh_t|| / ||dL/dh_T||", title="untrained, 128 hidden units")
    ax.legend()
    fig_path = ctx.save(fig, "gradient")
    d = min(20, T - 1)
    n = {f"grad_at_{d}_steps_{c}": float(g[d] / g[0]) for c, g in curves.items()}
    n.update({f"sigma_max_{c}": v for c, v in sigma.items()})
    n["lstm_over_rnn"] = n[f"grad_at_{d}_steps_lstm"] / n[f"grad_at_{d}_steps_rnn"]
    n["lstm_fb1_over_rnn"] = n[f"grad_at_{d}_steps_lstm-fb1"] / n[f"grad_at_{d}_steps_rnn"]
    held = n["lstm_fb1_over_rnn"] > 10 and n["lstm_over_rnn"] > 1
    verdict = (f"{d} steps back the gradient is {n[f'grad_at_{d}_steps_rnn']:.2g} of its size at the loss for the vanilla "
               f"RNN, {n[f'grad_at_{d}_steps_lstm']:.2g} for the LSTM ({n['lstm_over_rnn']:.2g}x), "
               f"{n[f'grad_at_{d}_steps_lstm-fb1']:.2g} for the LSTM with forget-gate bias 1 ({n['lstm_fb1_over_rnn']:.2g}x) "
               f"and {n[f'grad_at_{d}_steps_gru']:.2g} for the GRU (all untrained: the LSTM's path is only as open as its "
               f"forget gate)")
    return Outcome(n, held, verdict, [fig_path])
