"""Drawing codes from logits cheaply and reproducibly.

One uniform number per row against the cumulative probabilities: several times cheaper than
``torch.multinomial`` on CPU, and every draw comes from an explicit generator.
"""

from __future__ import annotations

import torch


def draw(logits: torch.Tensor, generator: torch.Generator, temperature: float = 1.0) -> torch.Tensor:
    """One code per row from ``softmax(logits / temperature)``; -inf logits are never drawn."""
    if temperature != 1.0:
        logits = logits / temperature
    probs = torch.softmax(logits.float(), dim=-1)
    cdf = probs.cumsum(dim=-1)
    u = torch.rand(logits.shape[0], 1, generator=generator, dtype=cdf.dtype) * cdf[:, -1:]
    index = (cdf < u).sum(dim=-1)
    return index.clamp_(max=logits.shape[-1] - 1)
