"""Event sequences conditioned on their subject: a length head, a recurrent history, per-column heads.

One training sample is one subject. Its encoded attributes form the context; a GRU runs over the
subject's previous events; the state at step t is (context, history, position t, remaining steps
L - t). The event heads are a :class:`FlatARGN` whose every head also sees that state, so the
any-order column masks of flat tables carry over to each event.

The length L is drawn first, from the context (the step-0 "remaining steps" prediction); the
terminal state is "remaining steps = 0", which zero-event subjects reach at once. Generation
therefore stops exactly at the learned length, and that length never exceeds the protected
maximum, because the head has no code above it.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from spark_synth.model.argn import FlatARGN, ModelConfig, embedding_dim
from spark_synth.model.sampling import draw

POSITION_BUCKETS = 64  # positions and remaining steps beyond this share the last embedding
LENGTH_SMOOTHING = 0.5  # subjects added to every length of a starting distribution: no length starts impossible


@dataclass
class SequenceModelConfig:
    """Everything needed to rebuild the network (stored as JSON beside the weights)."""

    subject_cardinalities: list[int]
    events: ModelConfig
    max_length: int  # the protected maximum sequence length
    history: int = 128
    state: int = 64
    dropout: float = 0.3
    subject_embedding_dims: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.events, dict):
            self.events = ModelConfig(**self.events)
        if not self.subject_embedding_dims:
            self.subject_embedding_dims = [embedding_dim(c) for c in self.subject_cardinalities]
        self.events.context_dim = self.state

    def to_dict(self) -> dict:
        out = asdict(self)
        out["events"] = self.events.to_dict()
        return out


class SequenceARGN(nn.Module):
    def __init__(self, config: SequenceModelConfig) -> None:
        super().__init__()
        self.config = config
        hidden = config.events.hidden
        self.subject_embeddings = nn.ModuleList(
            nn.Embedding(c, d) for c, d in zip(config.subject_cardinalities, config.subject_embedding_dims, strict=True))
        subject_width = sum(config.subject_embedding_dims) + 1  # +1: a constant, so a key-only subject table works
        self.context = nn.Sequential(nn.Linear(subject_width, hidden), nn.LayerNorm(hidden), nn.GELU())
        self.length_head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(hidden, hidden), nn.GELU(),
                                         nn.Linear(hidden, config.max_length + 1))
        self.events = FlatARGN(config.events)
        event_width = sum(config.events.embedding_dims)
        self.event_input = nn.Linear(event_width, config.history)
        self.start = nn.Parameter(torch.zeros(config.history))
        self.initial_state = nn.Linear(hidden, config.history)
        self.gru = nn.GRU(config.history, config.history, batch_first=True)
        self.position = nn.Embedding(POSITION_BUCKETS, 16)
        self.remaining = nn.Embedding(POSITION_BUCKETS, 16)
        self.to_state = nn.Sequential(nn.Dropout(config.dropout),
                                      nn.Linear(hidden + config.history + 32, config.state), nn.GELU())

    def start_lengths_at(self, subjects_per_length: list[float]) -> None:
        """Make the length head predict this length distribution before any step (lightly smoothed).

        From its default start, near uniform over hundreds of lengths, the head needs far more steps than the
        event heads: training stopped by early stopping or time ended with too much mass on long sequences.
        The last layer's weights start at zero, so every context starts at the distribution; training then
        learns how each context departs from it.
        """
        counts = torch.tensor(subjects_per_length, dtype=torch.float).clamp(min=0)
        if counts.shape != (self.config.max_length + 1,):
            raise ValueError(f"a length distribution over 0..{self.config.max_length} needs "
                             f"{self.config.max_length + 1} entries, got {len(subjects_per_length)}")
        share = (counts + LENGTH_SMOOTHING) / (counts.sum() + LENGTH_SMOOTHING * len(counts))
        last = self.length_head[-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.copy_(share.log())

    # ---- pieces shared by training and generation -------------------------------------
    def subject_context(self, subject_codes: torch.Tensor) -> torch.Tensor:
        parts = [emb(subject_codes[:, i]) for i, emb in enumerate(self.subject_embeddings)]
        # from the codes, not from their shape: under vmap (per-sample DP gradients) it is then batched too
        parts.append(torch.ones_like(subject_codes.sum(dim=1, keepdim=True), dtype=torch.float))
        return self.context(torch.cat(parts, dim=1))

    def embed_events(self, codes: torch.Tensor) -> torch.Tensor:
        """(..., S) event codes -> (..., history) GRU inputs."""
        parts = [emb(codes[..., i]) for i, emb in enumerate(self.events.embeddings)]
        return self.event_input(torch.cat(parts, dim=-1))

    def step_state(self, context: torch.Tensor, history: torch.Tensor, position: torch.Tensor,
                   remaining: torch.Tensor) -> torch.Tensor:
        last = POSITION_BUCKETS - 1
        features = [context, history, self.position(position.clamp(max=last)), self.remaining(remaining.clamp(max=last))]
        return self.to_state(torch.cat(features, dim=-1))

    # ---- training ---------------------------------------------------------------------
    def states(self, subject_codes: torch.Tensor, event_codes: torch.Tensor, lengths: torch.Tensor,
               starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Everything before the event heads: (length loss (B,), step states (B, W, state), valid steps (B, W))."""
        context = self.subject_context(subject_codes)
        length_loss = nn.functional.cross_entropy(self.length_head(context), lengths, reduction="none")
        batch, window, _ = event_codes.shape
        if window == 0:
            return length_loss, context.new_zeros(batch, 0, self.config.state), lengths.new_zeros(batch, 0).bool()
        inputs = self.embed_events(event_codes[:, :-1])
        inputs = torch.cat([self.start.expand(batch, 1, -1), inputs], dim=1)
        initial = torch.tanh(self.initial_state(context)).unsqueeze(0)
        history, _ = self.gru(inputs, initial)  # history[:, t] summarises the events before step t
        position = starts[:, None] + torch.arange(window, device=starts.device)[None, :]
        valid = position < lengths[:, None]
        remaining = (lengths[:, None] - position).clamp(min=0)
        state = self.step_state(context.unsqueeze(1).expand(-1, window, -1), history, position, remaining)
        return length_loss, state, valid

    def forward(self, subject_codes: torch.Tensor, event_codes: torch.Tensor, lengths: torch.Tensor,
                starts: torch.Tensor, before: torch.Tensor, dense: bool = False) -> torch.Tensor:
        """Negative log-likelihood per subject, shape (B,).

        ``event_codes`` (B, W, S) is a window of each subject's events beginning at step ``starts``
        (0 unless the sequence is longer than the window); ``lengths`` are the whole lengths.
        ``dense`` scores padded steps too and masks them out, with no data-dependent shapes, as
        per-sample gradients under ``torch.func.vmap`` need; otherwise only real steps are scored.
        """
        length_loss, state, valid = self.states(subject_codes, event_codes, lengths, starts)
        batch, window, _ = event_codes.shape
        if window == 0:
            return length_loss
        if dense:
            rows = self.events(event_codes.reshape(batch * window, -1), before, context=state.reshape(batch * window, -1))
            return length_loss + (rows.view(batch, window) * valid).sum(dim=1)
        rows = self.events(event_codes[valid], before, context=state[valid])
        event_loss = torch.zeros(batch, device=rows.device).index_add_(0, valid.nonzero()[:, 0], rows)
        return length_loss + event_loss

    # ---- generation -------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, subject_codes: torch.Tensor, generator: torch.Generator, tables: torch.Tensor,
               fixed_first: dict[int, int] | None = None, fixed_later: dict[int, int] | None = None,
               temperature: float = 1.0, top_p: float = 1.0,
               prefix: EventPrefix | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Events for each subject row: (codes (E, S), subject index (E,), step (E,)), subject-major.

        ``fixed_first`` / ``fixed_later`` pin sub-columns (index -> code) at step 0 / at later steps:
        the order column's "first value" and "gap" parts are each null where the other applies.
        ``prefix`` gives each subject's first events (some sub-columns of them): those steps keep the
        given codes, the history runs through them, and the length is drawn at least as long.

        Everything runs on the model's device (``generator`` and ``tables`` must live there; subject codes
        and the prefix are moved there); the outputs come back on that device. Under a bfloat16 autocast
        only the event heads use it: the subject context, the length and the history stay float32.
        """
        device = self.start.device
        subject_codes = subject_codes.to(device)
        if prefix is not None:
            prefix = replace(prefix, codes=prefix.codes.to(device), lengths=prefix.lengths.to(device))
        exact = ((lambda: torch.autocast(device.type, enabled=False)) if torch.is_autocast_enabled(device.type)
                 else nullcontext)
        n = subject_codes.shape[0]
        with exact():
            context = self.subject_context(subject_codes)
            length_logits = self.length_head(context)
            if prefix is not None:  # a subject is at least as long as its given events
                too_short = torch.arange(length_logits.shape[1], device=device)[None, :] < prefix.lengths[:, None]
                length_logits = length_logits.masked_fill(too_short, float("-inf"))
            lengths = draw(length_logits, generator, temperature, top_p)
            hidden = torch.tanh(self.initial_state(context)).unsqueeze(0)
        inputs = self.start.expand(n, -1)
        active = torch.arange(n, device=device)
        codes_out, subject_out, step_out = [], [], []
        for step in range(self.config.max_length):
            keep = (lengths[active] > step).nonzero().squeeze(1)  # the one wait for the device per step
            if len(keep) == 0:
                break
            active, inputs, hidden = active[keep], inputs[keep], hidden[:, keep]
            position = torch.full((len(active),), step, dtype=torch.long, device=device)
            with exact():
                output, hidden = self.gru(inputs.unsqueeze(1), hidden)
                state = self.step_state(context[active], output[:, 0], position, lengths[active] - step)
            pins = (fixed_first if step == 0 else fixed_later) or {}
            given = prefix.lengths[active] > step if prefix is not None else None
            if given is None or not bool(given.any()):
                codes = self._draw_step(len(active), generator, tables, state, pins, temperature, top_p)
            else:  # subjects still inside their given events: those sub-columns fixed and drawn first
                codes = torch.empty(len(active), self.events.n_sub, dtype=torch.long, device=device)
                free = ~given
                if bool(free.any()):
                    codes[free] = self._draw_step(int(free.sum()), generator, tables, state[free], pins, temperature,
                                                  top_p)
                rows = active[given]
                fixed = {**{j: prefix.codes[rows, step, j] for j in prefix.sub_columns},
                         **{j: torch.full((len(rows),), code, dtype=torch.long, device=device)
                            for j, code in pins.items()}}
                codes[given] = self.events.sample(len(rows), generator, prefix.column_order, fixed, temperature,
                                                  tables, state[given], top_p)
            codes_out.append(codes)
            subject_out.append(active)
            step_out.append(position)
            with exact():
                inputs = self.embed_events(codes)
        if not codes_out:
            empty = torch.zeros(0, dtype=torch.long, device=device)
            return torch.zeros(0, self.events.n_sub, dtype=torch.long, device=device), empty, empty
        codes, subjects, steps = torch.cat(codes_out), torch.cat(subject_out), torch.cat(step_out)
        order = torch.argsort(subjects * (self.config.max_length + 1) + steps)
        return codes[order], subjects[order], steps[order]

    def _draw_step(self, n: int, generator: torch.Generator, tables: torch.Tensor, state: torch.Tensor,
                   pins: dict[int, int], temperature: float, top_p: float) -> torch.Tensor:
        fixed = {j: torch.full((n,), code, dtype=torch.long, device=state.device) for j, code in pins.items()}
        return self.events.sample(n, generator, fixed=fixed, temperature=temperature, tables=tables, context=state,
                                  top_p=top_p)


@dataclass
class EventPrefix:
    """The given first events of each subject of a batch, as codes.

    ``codes`` (n, K, S) holds subject i's given events at steps 0..lengths[i]-1 (the rest is unused);
    only the sub-columns in ``sub_columns`` are given, and ``column_order`` draws them first.
    """

    codes: torch.Tensor
    lengths: torch.Tensor
    sub_columns: list[int]
    column_order: list[int]
