"""Per-sample gradient clipping, the heart of DP-SGD: ``p.grad`` becomes the sum of clipped per-sample gradients.

All ways there are exact:
- Flat tables (:class:`FlatARGN`): "ghost" norms. Every parameter's per-sample gradient is an outer
  product (or a single embedding row), so its norm follows from activations and output gradients
  without materialising per-sample gradients; a second backward pass of the loss weighted by the
  clip factors then yields the clipped sum. Costs about two ordinary steps.
- Event sequences (:class:`SequenceARGN`): the event heads hold most of the weights and see a
  subject's steps as rows, so their per-sample gradients are sums of outer products over the
  steps, whose norms come from per-sample Gram matrices (steps x steps). The small network before
  the heads (context, GRU history, step states) gets explicit per-sample gradients with
  ``torch.func`` (``vmap`` over the vector-Jacobian product with the heads' gradient), and the
  event embeddings, used on both sides, add both parts before their norm is taken.
- Any other model: per-sample gradients with ``torch.func`` (``vmap`` over ``grad``) in micro-batches.

Noise, scaling and the optimizer step are Opacus' (:class:`DPOptimizerFastGradientClipping`).
"""

from __future__ import annotations

import torch
from torch.func import functional_call, grad, grad_and_value, vmap

from spark_synth.model.argn import FlatARGN
from spark_synth.model.sequence import SequenceARGN

MICRO_BATCH = 64  # samples per vmap call: bounds the memory of materialised per-sample gradients
NORM_MARGIN = 1e-5


def clipped_gradient_sum(model: torch.nn.Module, batch: tuple[torch.Tensor, ...], before: torch.Tensor,
                         max_norm: float) -> torch.Tensor:
    """Set ``p.grad`` to the sum over samples of each sample's gradient clipped to ``max_norm``; returns the
    per-sample losses (detached)."""
    if isinstance(model, FlatARGN):
        return _ghost_clipped_sum(model, batch[0], before, max_norm)
    if isinstance(model, SequenceARGN) and model.config.dropout == 0 and batch[1].shape[1] > 0:
        # the state network must be deterministic: its per-sample gradients come from a second pass
        norms, losses = sequence_per_sample_norms(model, batch, before)
        return _clip_and_backward(model, norms, losses, max_norm)
    return _vmap_clipped_sum(model, batch, before, max_norm)


def flat_per_sample_norms(model: FlatARGN, codes: torch.Tensor, before: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-sample gradient norms, per-sample losses with their graph) of a :class:`FlatARGN` batch."""
    trace: dict[str, torch.Tensor] = {}
    losses = model(codes, before, trace=trace)
    x, pre, normed, hidden, logits = (trace[k] for k in ("inputs", "pre", "normed", "hidden", "logits"))
    g_x, g_pre, g_normed, g_logits = torch.autograd.grad(losses.sum(), [x, pre, normed, logits], retain_graph=True)
    base = model.embed_offsets[-1]
    squared = g_x[:, :base].pow(2).sum(1)  # each embedding table gets one row per sample: that row's gradient
    pre_sq = g_pre.pow(2).sum(-1).t()  # (B, S): |d loss / d pre-activation of head j|^2
    reach = x.detach().pow(2) @ model.input_mask(before).t()  # (B, S): |masked input of head j|^2
    squared += (reach * pre_sq).sum(1) + pre_sq.sum(1)  # w1 (an outer product per head) and b1
    unit = torch.nn.functional.layer_norm(pre.detach(), (pre.shape[-1],))
    squared += (unit * g_normed).sum(0).pow(2).sum(1) + g_normed.sum(0).pow(2).sum(1)  # LayerNorm weight, bias
    logit_sq = g_logits.pow(2).sum(-1)  # (S, B)
    squared += (hidden.detach().pow(2).sum(-1) * logit_sq).sum(0) + logit_sq.sum(0)  # w2 and b2
    return squared.sqrt(), losses


def sequence_per_sample_norms(model: SequenceARGN, batch: tuple[torch.Tensor, ...],
                              before: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-sample gradient norms, per-sample losses with their graph) of a :class:`SequenceARGN` batch.

    The heads score only real steps (rows); for the Gram matrices each head's rows are laid out
    (subject, step) one head at a time, so padding never reaches the heads' matrix products.
    """
    subject_codes, event_codes, lengths, starts = batch
    n, window, _ = event_codes.shape
    heads = model.events
    length_loss, state, valid = model.states(subject_codes, event_codes, lengths, starts)
    where = valid.nonzero()  # (rows, 2): subject and step of every real step, subject-major
    owner, slot = where[:, 0], where[:, 0] * window + where[:, 1]
    trace: dict[str, torch.Tensor] = {}
    rows = heads(event_codes[valid], before, context=state[valid], trace=trace)
    losses = length_loss + torch.zeros(n, device=rows.device).index_add(0, owner, rows)
    x, pre, normed, hidden, logits = (trace[k] for k in ("inputs", "pre", "normed", "hidden", "logits"))
    g_state, g_x, g_pre, g_normed, g_logits = torch.autograd.grad(
        losses.sum(), [state, x, pre, normed, logits], retain_graph=True)

    def laid_out(t: torch.Tensor) -> torch.Tensor:  # (rows, d) -> (n, W, d), zero where no step
        return t.new_zeros(n * window, t.shape[-1]).index_copy_(0, slot, t.detach()).view(n, window, -1)

    def gram(t: torch.Tensor) -> torch.Tensor:  # (n, W, d) -> (n, W, W)
        return torch.bmm(t, t.transpose(1, 2))

    def by_subject(t: torch.Tensor) -> torch.Tensor:  # (..., rows, d) -> (..., n, d): each subject's sum
        return t.new_zeros(*t.shape[:-2], n, t.shape[-1]).index_add_(-2, owner, t.detach())

    # a head's masked input is the sub-columns before it, so its Gram matrix is a sum of per-sub-column ones
    inputs = laid_out(x)
    offsets, base = heads.embed_offsets, heads.embed_offsets[-1]
    input_grams = torch.stack([gram(inputs[..., offsets[k]:offsets[k + 1]]) + gram(inputs[..., base + k:base + k + 1])
                               for k in range(heads.n_sub)])  # (S, n, W, W), the known bit included
    squared = torch.zeros(n, device=rows.device)
    pre_grams = torch.zeros(n, window, window, device=rows.device)
    for j in range(heads.n_sub):  # per head: w1 (masked inputs x pre-activation grads) and w2 (hidden x logit grads)
        pre_gram = gram(laid_out(g_pre[j]))
        pre_grams += pre_gram
        masked_gram = torch.tensordot(before[j], input_grams, dims=1)
        squared += (masked_gram * pre_gram).sum((1, 2))
        squared += (gram(laid_out(hidden[j])) * gram(laid_out(g_logits[j]))).sum((1, 2))
    squared += (gram(state.detach()) * pre_grams).sum((1, 2))  # wc: the step states feed every head
    squared += by_subject(g_pre).pow(2).sum((0, 2)) + by_subject(g_logits).pow(2).sum((0, 2))  # b1, b2
    unit = torch.nn.functional.layer_norm(pre.detach(), (pre.shape[-1],))
    squared += by_subject((unit * g_normed).sum(0)).pow(2).sum(1) + by_subject(g_normed.sum(0)).pow(2).sum(1)  # LayerNorm

    upstream = _upstream_grads(model, batch, g_state.detach())
    head_embeddings = _embedding_grads(heads, event_codes[valid], g_x.detach(), owner, n)
    for name, g in upstream.items():
        g = g + head_embeddings.get(name, 0)
        squared += g.reshape(n, -1).pow(2).sum(1)
    return squared.sqrt(), losses


class _States(torch.nn.Module):
    """``model.states`` as a module's forward, for ``functional_call``."""

    def __init__(self, model: SequenceARGN) -> None:
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.model.states(*inputs)


def _upstream_grads(model: SequenceARGN, batch: tuple[torch.Tensor, ...], g_state: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample gradients of everything before the heads (event embeddings included), given the heads'
    gradient with respect to the step states."""
    wrapper = _States(model)
    params = {f"model.{k}": v.detach() for k, v in model.named_parameters()
              if not k.startswith("events.") or k.startswith("events.embeddings.")}
    fixed = {f"model.{k}": v.detach() for k, v in model.named_parameters() if f"model.{k}" not in params}
    fixed |= {f"model.{k}": v for k, v in model.named_buffers()}

    def surrogate(p: dict[str, torch.Tensor], *sample: torch.Tensor) -> torch.Tensor:
        *inputs, cotangent = sample
        length_loss, state, _ = functional_call(wrapper, {**p, **fixed}, tuple(s.unsqueeze(0) for s in inputs))
        return length_loss.sum() + (state[0] * cotangent).sum()

    grads = vmap(grad(surrogate), in_dims=(None, 0, 0, 0, 0, 0))
    parts = [grads(params, *[b[i:i + MICRO_BATCH] for b in (*batch, g_state)])
             for i in range(0, len(batch[0]), MICRO_BATCH)]
    return {k.removeprefix("model."): torch.cat([p[k] for p in parts]) for k in params}


def _embedding_grads(heads: FlatARGN, codes: torch.Tensor, g_inputs: torch.Tensor, owner: torch.Tensor,
                    n: int) -> dict[str, torch.Tensor]:
    """Per-sample gradients of the event embedding tables from the heads' side: each step (row) adds its
    input gradient to the row of its code, in its subject's copy of the table."""
    out = {}
    for i, embedding in enumerate(heads.embeddings):
        lo, hi = heads.embed_offsets[i], heads.embed_offsets[i + 1]
        card = embedding.num_embeddings
        grads = g_inputs.new_zeros(n * card, hi - lo).index_add_(0, owner * card + codes[:, i].long(), g_inputs[:, lo:hi])
        out[f"events.embeddings.{i}.weight"] = grads.view(n, card, hi - lo)
    return out


def _ghost_clipped_sum(model: FlatARGN, codes: torch.Tensor, before: torch.Tensor, max_norm: float) -> torch.Tensor:
    if model.wc is not None:
        raise ValueError("ghost clipping covers FlatARGN without a context; use the vmap path")
    norms, losses = flat_per_sample_norms(model, codes, before)
    return _clip_and_backward(model, norms, losses, max_norm)


def _clip_and_backward(model: torch.nn.Module, norms: torch.Tensor, losses: torch.Tensor, max_norm: float) -> torch.Tensor:
    """A second backward pass of the losses weighted by the clip factors: ``p.grad`` = sum of clipped gradients."""
    # the margin covers float rounding between the norm computation and the weighted backward pass
    factors = (max_norm / (norms * (1 + NORM_MARGIN) + 1e-6)).clamp(max=1.0).detach()
    model.zero_grad(set_to_none=True)
    (losses * factors).sum().backward()
    return losses.detach()


def _vmap_clipped_sum(model: torch.nn.Module, batch: tuple[torch.Tensor, ...], before: torch.Tensor,
                      max_norm: float) -> torch.Tensor:
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    buffers = dict(model.named_buffers())

    def loss_of_one(p: dict[str, torch.Tensor], *sample: torch.Tensor) -> torch.Tensor:
        inputs = tuple(s.unsqueeze(0) for s in sample)
        return functional_call(model, (p, buffers), (*inputs, before), {"dense": True}).sum()

    per_sample = vmap(grad_and_value(loss_of_one), in_dims=(None, *[0] * len(batch)), randomness="different")
    sums = {k: torch.zeros_like(v) for k, v in params.items()}
    losses = []
    for start in range(0, len(batch[0]), MICRO_BATCH):
        grads, loss = per_sample(params, *[b[start:start + MICRO_BATCH] for b in batch])
        norms = torch.sqrt(sum(g.reshape(g.shape[0], -1).pow(2).sum(1) for g in grads.values()))
        factors = (max_norm / (norms * (1 + NORM_MARGIN) + 1e-6)).clamp(max=1.0)
        for k, g in grads.items():
            sums[k] += torch.tensordot(factors, g, dims=1)
        losses.append(loss)
    for k, p in model.named_parameters():
        if p.requires_grad:
            p.grad = sums[k]
    return torch.cat(losses) if losses else torch.zeros(0)
