"""Greedy decoding with a megatron GPTModel: a short sample that shows what the model learned."""

from __future__ import annotations

import torch
from megatron.core import parallel_state
from megatron.core.tensor_parallel import gather_from_tensor_model_parallel_region


@torch.no_grad()
def greedy_tokens(
    model: torch.nn.Module,
    prompt_ids: list[int],
    new_tokens: int,
    *,
    vocab_size: int,
    max_length: int,
    device: torch.device,
    stop_id: int | None = None,
) -> list[int]:
    """Extend `prompt_ids` by up to `new_tokens` argmax tokens (collective over tensor-parallel ranks).

    The whole sequence is recomputed at each step (no KV cache): fine for a short sample. The
    vocabulary padding is never chosen; `stop_id` (e.g. end of document) ends early.
    """
    if parallel_state.get_pipeline_model_parallel_world_size() > 1:
        raise ValueError("greedy sampling needs the whole model in one process (pipeline parallel size 1)")
    was_training = model.training
    model.eval()
    ids = list(prompt_ids)
    try:
        for _ in range(new_tokens):
            window = ids[-max_length:]
            tokens = torch.tensor([window], dtype=torch.long, device=device)
            positions = torch.arange(len(window), device=device).unsqueeze(0)
            logits = model(tokens, positions, None)
            if parallel_state.get_tensor_model_parallel_world_size() > 1:
                logits = gather_from_tensor_model_parallel_region(logits)
            next_id = int(torch.argmax(logits[0, -1, :vocab_size].float()))
            ids.append(next_id)
            if stop_id is not None and next_id == stop_id:
                break
    finally:
        model.train(was_training)
    return ids[len(prompt_ids) :]
