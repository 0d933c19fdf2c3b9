"""The running batch's tensors: rows, KV cache, attention mask, next tokens and position ids.

Kept apart from the batcher's queueing because this is where the tensor bookkeeping lives: rows leave
(`select`, which also cuts columns that became padding in every row) and join (`merge`, which
left-pads the shorter KV cache) between decoding steps. The cache is transformers' `DynamicCache`
(what GPT-Neo's forward returns in transformers 5), passed and read back as `cache`: the name since
transformers 5.24, which deprecates `past_key_values` (hence the `transformers>=5.24` lower bound: one
code path). `batch_select_indices` prunes rows; joining and cutting columns edit each layer's `keys` /
`values` ([rows, heads, length, head_dim]) directly.
Pruning and merging give the same logits as never having batched (tests/unit/gateway/test_batcher.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["BatchState", "PendingPrefill"]


@dataclass(eq=False)
class BatchState:
    """The running batch: rows, their KV cache, attention mask, next input token and position id.

    All rows end at the same column (left padding); `mask` marks each row's real tokens.
    """

    rows: list[Any]
    cache: Any  # transformers DynamicCache: layers with .keys / .values [rows, heads, length, dim]
    mask: torch.Tensor  # [rows, length]
    next_tokens: torch.Tensor  # [rows]: the token fed at the next step
    positions: torch.Tensor  # [rows]: its position id (= the row's real tokens so far)
    key: tuple[object, ...] | None = None
    # Whether `mask` has no padding, remembered for the mask tensor it was read from: a step only adds a
    # column of ones, so the answer holds until rows join or leave (a new tensor), and reading it
    # (`mask.all()`) is a device-to-host sync on a GPU, once per change instead of once per step.
    _padding_free_of: torch.Tensor | None = field(default=None, repr=False)
    _padding_free: bool = field(default=False, repr=False)

    @classmethod
    def empty(cls) -> BatchState:
        none = torch.zeros(0, dtype=torch.long)
        return cls(rows=[], cache=None, mask=none.reshape(0, 0), next_tokens=none, positions=none)

    @classmethod
    def prefill(
        cls,
        model: Any,
        prompts: Sequence[Sequence[int]],
        rows_per_prompt: Sequence[int],
        *,
        pad_token_id: int,
    ) -> tuple[BatchState, torch.Tensor]:
        """Runs the prompts together (left-padded) in one forward pass and returns their state, with
        `rows_per_prompt[i]` rows for prompt i (num_return_sequences share one prefill), and float32
        next-token logits [rows, vocab]. `rows` are left for the caller to fill."""
        pending = PendingPrefill.of(prompts, rows_per_prompt, pad_token_id=pad_token_id, device=model.device)
        done = pending.advance(model, pending.width)
        assert done is not None
        return done

    def step(self, model: Any) -> torch.Tensor:
        """Feeds `next_tokens` (one per row) through the model; float32 next-token logits [rows, vocab].

        When no row has padding (always so for a lone request) the model gets no attention mask: its
        causal (and local-window) mask alone is then the same mask, the logits are bitwise the same
        (tests/unit/gateway/test_kv_batch.py), and transformers skips turning a [rows, length] mask
        into a 4-D one at every step (~0.5 ms of a ~29 ms one-row GPT-Neo-125M step on host C)."""
        mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=1)
        padding_free = self.padding_free()
        out = model(
            input_ids=self.next_tokens[:, None],
            attention_mask=None if padding_free else mask,
            position_ids=self.positions[:, None],
            cache=self.cache,
            use_cache=True,
        )
        self.cache = out.cache
        self.mask = mask
        self._padding_free_of, self._padding_free = mask, padding_free
        self.positions = self.positions + 1
        return out.logits[:, -1].to(dtype=torch.float32)

    def padding_free(self) -> bool:
        """No row of the mask has padding (read from the tensor once per new mask)."""
        if self._padding_free_of is not self.mask:
            self._padding_free_of, self._padding_free = self.mask, bool(self.mask.all())
        return self._padding_free

    def expand(self, source: torch.Tensor) -> None:
        """Row i becomes a copy of row source[i] (num_return_sequences share one prefill)."""
        self.cache.batch_select_indices(source)
        self.mask = self.mask[source]
        self.positions = self.positions[source]
        self.next_tokens = self.next_tokens[source]

    def select(self, keep: Sequence[int]) -> None:
        """Keeps only rows `keep` (in the cache too), then cuts columns that are padding in every row."""
        if not keep:
            self.rows, self.cache, self.key = [], None, None
            self.mask = self.mask[:0, :0]
            self.next_tokens = self.next_tokens[:0]
            self.positions = self.positions[:0]
            return
        index = torch.tensor(list(keep), device=self.mask.device)
        self.rows = [self.rows[i] for i in keep]
        self.cache.batch_select_indices(index)
        self.mask = self.mask[index]
        self.next_tokens = self.next_tokens[index]
        self.positions = self.positions[index]
        unused = int(self.mask.shape[1] - self.mask.sum(-1).max())
        if unused > 0:
            self.mask = self.mask[:, unused:]
            for layer in self.cache.layers:
                layer.keys = layer.keys[:, :, unused:, :]
                layer.values = layer.values[:, :, unused:, :]

    def merge(self, other: BatchState) -> None:
        """Appends `other`'s rows; the shorter cache is left-padded (masked) to the longer one."""
        if not other.rows:
            return
        if not self.rows:
            self.rows, self.cache, self.mask = other.rows, other.cache, other.mask
            self.next_tokens, self.positions, self.key = other.next_tokens, other.positions, other.key
            return
        width = max(self.mask.shape[1], other.mask.shape[1])
        pad = torch.nn.functional.pad

        def left(t: torch.Tensor, dim_from_end: int) -> torch.Tensor:
            missing = width - t.shape[-dim_from_end]
            if missing == 0:
                return t
            return pad(t, (0, 0) * (dim_from_end - 1) + (missing, 0))

        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            mine.keys = torch.cat([left(mine.keys, 2), left(theirs.keys, 2)], dim=0)
            mine.values = torch.cat([left(mine.values, 2), left(theirs.values, 2)], dim=0)
        self.mask = torch.cat([left(self.mask, 1), left(other.mask, 1)], dim=0)
        self.rows = self.rows + other.rows
        self.next_tokens = torch.cat([self.next_tokens, other.next_tokens])
        self.positions = torch.cat([self.positions, other.positions])


@dataclass(eq=False)
class PendingPrefill:
    """Prompts whose prefill runs a chunk of columns at a time, so that a long prompt joining a running
    batch does not stall the other rows for its whole prefill: the batcher advances it by a chunk
    between decoding steps. One chunk as wide as the prompts is the plain one-pass prefill.

    Left padding with an attention mask, and position ids counted from the mask: GPT-Neo's default
    positions would give a padded row shifted positions (and different text). Each chunk attends to
    the cache of the chunks before it, so the result equals the one-pass prefill up to fp32 rounding
    (tests/unit/gateway/test_kv_batch.py)."""

    ids: torch.Tensor  # [prompts, width], left-padded
    mask: torch.Tensor  # [prompts, width]
    positions: torch.Tensor  # [prompts, width]
    rows_per_prompt: list[int]
    cache: Any = None
    done: int = 0  # columns already run

    @classmethod
    def of(
        cls,
        prompts: Sequence[Sequence[int]],
        rows_per_prompt: Sequence[int],
        *,
        pad_token_id: int,
        device: Any,
    ) -> PendingPrefill:
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, prompt in enumerate(prompts):
            ids[i, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
            mask[i, width - len(prompt) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return cls(ids=ids, mask=mask, positions=positions, rows_per_prompt=list(rows_per_prompt))

    @property
    def width(self) -> int:
        return int(self.ids.shape[1])

    @property
    def rows(self) -> int:
        return sum(self.rows_per_prompt)

    def advance(self, model: Any, columns: int) -> tuple[BatchState, torch.Tensor] | None:
        """Runs up to `columns` more columns; once the last one ran, the state and float32 next-token
        logits [rows, vocab] (see `BatchState.prefill`), else None."""
        end = min(self.width, self.done + max(1, columns))
        out = model(
            input_ids=self.ids[:, self.done : end],
            attention_mask=self.mask[:, :end],
            position_ids=self.positions[:, self.done : end],
            cache=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.cache, self.done = out.cache, end
        if end < self.width:
            return None
        device = self.ids.device
        logits = out.logits[:, -1].to(dtype=torch.float32)
        state = BatchState(
            rows=[],
            cache=self.cache,
            mask=self.mask,
            next_tokens=torch.zeros(len(self.rows_per_prompt), dtype=torch.long, device=device),
            positions=self.mask.sum(-1),
        )
        if any(n != 1 for n in self.rows_per_prompt):
            source = torch.repeat_interleave(
                torch.arange(len(self.rows_per_prompt), device=device),
                torch.tensor(self.rows_per_prompt, device=device),
            )
            state.expand(source)
            logits = logits[source]
        return state, logits
