"""Any-order autoregressive network over a flat table's sub-columns (TabularARGN-style).

Every sub-column has an embedding and a head: a small MLP over the embeddings of the sub-columns
generated before it, then a softmax. Which sub-columns count as "before" is a mask: training draws
a random column order per batch, so at generation any subset of columns can be fixed first.

The first head layer is linear in the (masked) embeddings. Generation exploits that: for each
pair (earlier sub-column i, later head j) the contribution ``embed_i(code) @ W1[j, rows_i]`` is a
precomputed lookup table, so sampling a row costs gathers and adds instead of matrix products.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from spark_synth.encoding.protect import allowed_codes, draw_k
from spark_synth.model.sampling import draw


@dataclass
class ModelConfig:
    """Everything needed to rebuild the network exactly (stored as JSON beside the weights)."""

    cardinalities: list[int]
    column_slices: list[tuple[int, int]]
    embedding_dims: list[int] = field(default_factory=list)
    hidden: int = 256
    dropout: float = 0.3
    context_dim: int = 0  # width of a per-row context vector added to every head (event logs); 0 for flat tables

    def __post_init__(self) -> None:
        self.column_slices = [tuple(s) for s in self.column_slices]
        if not self.embedding_dims:
            self.embedding_dims = [embedding_dim(c) for c in self.cardinalities]

    def to_dict(self) -> dict:
        return asdict(self)


def embedding_dim(cardinality: int) -> int:
    """Grows slowly with the number of codes: small softmaxes need few dimensions."""
    return int(min(32, max(4, round(2.5 * cardinality**0.5))))


class FlatARGN(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        cards, dims = config.cardinalities, config.embedding_dims
        self.n_sub = len(cards)
        self.embeddings = nn.ModuleList(nn.Embedding(c, d) for c, d in zip(cards, dims, strict=True))
        offsets = torch.tensor([0, *dims]).cumsum(0)
        self.register_buffer("dim_owner", torch.repeat_interleave(torch.arange(self.n_sub), torch.tensor(dims, dtype=torch.long)))
        self.embed_offsets = offsets.tolist()
        width = int(offsets[-1]) + self.n_sub  # embeddings + one "is known" bit per sub-column
        self.w1 = nn.Parameter(torch.randn(self.n_sub, width, config.hidden) * max(width, 1)**-0.5)
        self.b1 = nn.Parameter(torch.zeros(self.n_sub, config.hidden))
        # a per-row context (subject + history state) enters every head's first layer: one GEMM for all heads
        self.wc = (nn.Parameter(torch.randn(config.context_dim, self.n_sub * config.hidden) * config.context_dim**-0.5)
                   if config.context_dim else None)
        self.norm = nn.LayerNorm(config.hidden)
        self.dropout = nn.Dropout(config.dropout)
        # all output layers as one padded batch: one matmul and one softmax for every head
        width_out = max(cards, default=1)  # no sub-column: a key-only subject table, nothing to draw
        self.w2 = nn.Parameter(torch.randn(self.n_sub, config.hidden, width_out) * config.hidden**-0.5)
        self.b2 = nn.Parameter(torch.zeros(self.n_sub, width_out))
        # -inf for padding and for codes held by fewer than k rows: generation never draws them (saved)
        padding = torch.arange(width_out)[None, :] >= torch.tensor(cards)[:, None]
        self.register_buffer("code_bias", torch.zeros(self.n_sub, width_out).masked_fill(padding, float("-inf")))
        # training's softmax support: padding and codes absent from the whole table. Not the k-row mask, which
        # would give the rare codes training does see an infinite loss; recomputed per training, never saved.
        self.register_buffer("fit_bias", self.code_bias.clone(), persistent=False)

    # ---- orders and masks -------------------------------------------------------------
    def sub_order(self, column_order: list[int]) -> torch.Tensor:
        """Expand a column order into the order of sub-columns (a column's parts stay together)."""
        slices = self.config.column_slices
        return torch.tensor([i for c in column_order for i in range(*slices[c])], dtype=torch.long)

    def precedence(self, sub_order: torch.Tensor) -> torch.Tensor:
        """(S, S) mask: entry [j, i] is 1 when sub-column i comes before sub-column j."""
        rank = torch.empty_like(sub_order)
        rank[sub_order] = torch.arange(len(sub_order))
        return (rank[None, :] < rank[:, None]).float()

    def input_mask(self, before: torch.Tensor) -> torch.Tensor:
        """(S, width) mask over the concatenated [embeddings, known-bits] input of each head."""
        return torch.cat([before[:, self.dim_owner], before], dim=1)

    # ---- training ---------------------------------------------------------------------
    def forward(self, codes: torch.Tensor, before: torch.Tensor, context: torch.Tensor | None = None,
                trace: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Summed cross-entropy per row, shape (B,), for codes (B, S) under precedence ``before``.

        ``trace``, when given, receives the intermediate tensors that per-sample gradient norms need
        (:mod:`spark_synth.training.clipping`).
        """
        inputs = x = self._inputs(codes)
        # masking the weights, not the inputs: every head's first layer is then one GEMM for all heads
        weights = (self.w1 * self.input_mask(before).unsqueeze(2)).transpose(0, 1).reshape(x.shape[1], -1)
        if context is not None:
            x, weights = torch.cat([x, context], dim=1), torch.cat([weights, self.wc], dim=0)
        pre = (x @ weights).view(x.shape[0], self.n_sub, self.config.hidden).transpose(0, 1) + self.b1.unsqueeze(1)
        normed = self.norm(pre)
        hidden = self.dropout(torch.nn.functional.gelu(normed))
        logits = torch.baddbmm((self.b2 + self.fit_bias).unsqueeze(1), hidden, self.w2)  # (S, B, C)
        if trace is not None:
            trace.update(inputs=inputs, pre=pre, normed=normed, hidden=hidden, logits=logits)
        log_probs = torch.log_softmax(logits, dim=-1)
        picked = log_probs.gather(2, codes.t().unsqueeze(2)).squeeze(2)  # (S, B)
        return -picked.sum(dim=0)

    def _inputs(self, codes: torch.Tensor) -> torch.Tensor:
        embedded = [emb(codes[:, i]) for i, emb in enumerate(self.embeddings)]
        return torch.cat([*embedded, torch.ones(codes.shape[0], self.n_sub, device=codes.device)], dim=1)

    @torch.no_grad()
    def set_seen_codes(self, codes: torch.Tensor, owners: torch.Tensor | None = None,
                       k: int | list[int] | None = None) -> None:
        """Forbid codes held by fewer than k rows (``owners``: subjects) of these codes; see :meth:`set_seen_counts`."""
        self.set_seen_counts(self.code_counts(codes, owners), k)

    def code_counts(self, codes: torch.Tensor, owners: torch.Tensor | None = None) -> torch.Tensor:
        """(sub-columns, widest cardinality) rows holding each code, or with ``owners`` (one id per row) distinct
        owners holding it. Summed across ranks (each owner on one rank only) they are the whole table's."""
        counts = torch.zeros(self.code_bias.shape, dtype=torch.float64)
        for j, card in enumerate(self.config.cardinalities):
            column = codes[:, j].long().cpu()
            if owners is not None:  # an owner counts once per code, however many of its rows hold it
                column = torch.unique(owners.long().cpu() * card + column) % card
            counts[j, :card] = torch.bincount(column, minlength=card)[:card].double()
        return counts

    @torch.no_grad()
    def set_seen_counts(self, counts: torch.Tensor, k: int | list[int] | None = None) -> None:
        """Generation draws a code only if at least k rows (subjects) hold it, so no digit or category of a
        single record can come out; training keeps every code the table holds.

        ``k``: one per column (its sub-columns share it), one for all, or None to draw each column's
        secretly (:func:`~spark_synth.encoding.protect.draw_k`); it is not stored, only the mask is. Under
        data parallelism rank 0's mask reaches every rank with its buffers. A sub-column with no code
        held by k rows keeps its most frequent one (see :func:`~spark_synth.encoding.protect.allowed_codes`).
        Null codes follow the same rule: the statistics' ``has_nulls`` already needs k null rows, and a
        null's other sub-columns hold code 0, shared by every null row.
        """
        slices = self.config.column_slices
        ks = [draw_k() for _ in slices] if k is None else [k] * len(slices) if isinstance(k, int) else list(k)
        if len(ks) != len(slices):
            raise ValueError(f"{len(ks)} thresholds for {len(slices)} columns")
        self.code_bias.fill_(float("-inf"))
        self.fit_bias.fill_(float("-inf"))
        for (lo, hi), column_k in zip(slices, ks, strict=True):
            for j in range(lo, hi):
                card = self.config.cardinalities[j]
                held = counts[j, :card].double().cpu()
                allowed = torch.from_numpy(allowed_codes(held.numpy(), column_k)).to(self.code_bias.device)
                self.code_bias[j, :card] = torch.where(allowed, 0.0, float("-inf"))
                self.fit_bias[j, :card] = torch.where(held.to(self.fit_bias.device) > 0, 0.0, float("-inf"))

    @torch.no_grad()
    def forbid_codes(self, codes: dict[int, list[int]]) -> None:
        """Never generate these codes (sub-column index -> codes); training is unaffected if done after it."""
        for j, forbidden in codes.items():
            self.code_bias[j, forbidden] = float("-inf")

    # ---- generation -------------------------------------------------------------------
    @torch.no_grad()
    def lookup_tables(self) -> torch.Tensor:
        """(S, total codes, H): row ``code_offset[i] + c`` of table k is the contribution of sub-column i
        holding code c to head k's first layer, ``embed_i(c) @ W1[k, rows of i] + W1[k, known-bit of i]``.

        A head's pre-activation is then a sum of table rows over the codes drawn before it: one fused
        ``embedding_bag`` per step, for any drawing order.
        """
        base = int(self.embed_offsets[-1])
        parts = []
        for i, emb in enumerate(self.embeddings):
            lo, hi = self.embed_offsets[i], self.embed_offsets[i + 1]
            parts.append(torch.einsum("cd,kdh->kch", emb.weight, self.w1[:, lo:hi, :]) + self.w1[:, base + i, :].unsqueeze(1))
        if not parts:  # no sub-column (a key-only subject table)
            return self.w1.new_zeros(0, 0, self.config.hidden)
        return torch.cat(parts, dim=1).contiguous()

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator,
        column_order: list[int] | None = None,
        fixed: dict[int, torch.Tensor] | None = None,
        temperature: float = 1.0,
        tables: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        top_p: float = 1.0,
        blind: set[int] | None = None,
        forbidden: dict[int, list[int]] | None = None,
    ) -> torch.Tensor:
        """Draw (n, S) codes; sub-columns in ``fixed`` (index -> codes) are taken as given.

        Fixed sub-columns should come first in ``column_order`` for conditional generation.
        ``context`` (n, context_dim) is the per-row state of an event log (subject and history).
        The heads of ``blind`` columns see only their own column's earlier sub-columns, so the column is
        drawn from its marginal, independent of every other column (statistical parity);
        ``forbidden`` (sub-column -> codes) are never drawn (imputation forbids the null code).

        Everything runs on the model's device: ``generator`` must live there, ``tables`` and ``context``
        too; ``fixed`` codes are moved there. The codes come back on that device.
        """
        device = self.b1.device
        columns = column_order if column_order is not None else list(range(len(self.config.column_slices)))
        tables = tables if tables is not None else self.lookup_tables()
        code_offset = torch.tensor([0, *self.config.cardinalities]).cumsum(0).tolist()  # plain ints: no device copy
        fixed = fixed or {}
        blind_subs = {j for c in (blind or ()) for j in range(*self.config.column_slices[c])}
        owner = {j: c for c, (lo, hi) in enumerate(self.config.column_slices) for j in range(lo, hi)}
        codes = torch.zeros(n, self.n_sub, dtype=torch.long, device=device)
        drawn_rows = torch.zeros(n, self.n_sub, dtype=torch.long, device=device)  # table rows of the codes drawn so far
        width = self.config.hidden
        order = self.sub_order(columns).tolist()
        for p, j in enumerate(order):
            if j in fixed:
                drawn = fixed[j].to(device=device, dtype=torch.long)
            else:
                if j in blind_subs:
                    mine = [q for q in range(p) if owner[order[q]] == owner[j]]
                    rows = drawn_rows[:, torch.tensor(mine, dtype=torch.long, device=device)]
                else:
                    rows = drawn_rows[:, :p]
                if rows.shape[1]:
                    pre = torch.nn.functional.embedding_bag(rows.contiguous(), tables[j], mode="sum")
                    pre += self.b1[j]
                else:
                    pre = self.b1[j].expand(n, -1)
                if context is not None:  # this head's share of the context product only: (n, H) stays in cache
                    pre = torch.addmm(pre, context, self.wc[:, j * width:(j + 1) * width])
                hidden = torch.nn.functional.gelu(self.norm(pre))
                card = self.config.cardinalities[j]
                bias = self.b2[j, :card] + self.code_bias[j, :card]
                if forbidden and j in forbidden:
                    bias = bias.clone()
                    bias[torch.tensor(forbidden[j], dtype=torch.long, device=device)] = float("-inf")
                logits = torch.addmm(bias, hidden, self.w2[j, :, :card])
                drawn = draw(logits, generator, temperature, top_p)
            codes[:, j] = drawn
            drawn_rows[:, p] = drawn + code_offset[j]
        return codes
