"""Choosing the next token from logits: greedy or temperature/top-p sampling driven by per-prompt random numbers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from nemotron.training.inference.backend import SamplingParams


def prompt_uniforms(seed: int, prompt_indices: Sequence[int], steps: int) -> torch.Tensor:
    """[len(prompt_indices), steps] float64 numbers in [0, 1) on the CPU: row r drives prompt prompt_indices[r].

    Each prompt has its own generator, seeded from (seed, the prompt's index in the request), so its
    draws do not depend on which other prompts share its batch, nor on the batch size.
    """
    rows = []
    for index in prompt_indices:
        state = np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0]
        generator = torch.Generator(device="cpu").manual_seed(int(state))
        rows.append(torch.rand(steps, generator=generator, dtype=torch.float64))
    return torch.stack(rows) if rows else torch.empty(0, steps, dtype=torch.float64)


def choose_tokens(
    logits: torch.Tensor, params: SamplingParams, uniforms: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The next token of each row of `logits` [rows, vocab] and its log-probability (see Completion.logprobs).

    Greedy: the argmax (the first one on ties). Otherwise inverse-CDF sampling with `uniforms` [rows]:
    the probabilities of logits / temperature, restricted to the top-p nucleus (most likely first, the
    most likely token always kept), are laid end to end and the token whose interval holds
    u * (their sum) is taken.
    """
    logits = logits.float()
    if params.greedy:
        tokens = torch.argmax(logits, dim=-1)
        return tokens, torch.log_softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    if uniforms is None or uniforms.shape != logits.shape[:1]:
        raise ValueError(f"sampling needs one uniform number per row ({logits.shape[0]}), got {uniforms!r}")
    logprobs = torch.log_softmax(logits / params.temperature, dim=-1)
    probs = logprobs.exp()
    if params.top_p < 1.0:
        probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)
        before = torch.cumsum(probs, dim=-1) - probs  # probability of the more likely tokens
        probs = probs.masked_fill(before >= params.top_p, 0.0)
    else:
        order = None
    picked = _inverse_cdf(probs, uniforms.to(device=logits.device))
    tokens = order.gather(-1, picked.unsqueeze(-1)).squeeze(-1) if order is not None else picked
    return tokens, logprobs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def _inverse_cdf(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Per row, the index whose cumulative-probability interval holds u * total; never a zero-probability index."""
    cdf = torch.cumsum(probs.double(), dim=-1)
    target = (uniforms * cdf[:, -1]).unsqueeze(-1)
    picked = torch.searchsorted(cdf, target, right=True).squeeze(-1)
    # u * total can round up to total: fall back to the last index with a positive probability.
    last_positive = probs.shape[-1] - 1 - torch.argmax(torch.flip(probs > 0, dims=[-1]).int(), dim=-1)
    return torch.minimum(picked, last_positive)
