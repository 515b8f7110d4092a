"""Label words of several tokens: each word's score is the sum or mean of its tokens'
log-probabilities (``LabelWords.multi_token``).

- causal LMs, teacher forcing: every input is repeated once per word with the word's tokens
  appended after the prompt; token j of the word is read at the position before it;
- masked LMs (PET): the input has as many masks as the longest word has tokens, from the slot
  on; token j of a word is read at mask j, and a shorter word leaves the last masks unread.

Only the positions that score a token go through the LM head; the full vocabulary is needed
there, for the log-softmax.
"""

from __future__ import annotations

import torch

from fewtune.data.verbalizers import LabelWords


def token_matrix(words: LabelWords, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """([words, most tokens] token ids, padded with 0; [words, most tokens] True where real)."""
    width = words.max_tokens
    ids = torch.zeros(len(words.words), width, dtype=torch.long)
    valid = torch.zeros(len(words.words), width, dtype=torch.bool)
    for w, tokens in enumerate(words.words):
        ids[w, : len(tokens)] = torch.tensor(tokens)
        valid[w, : len(tokens)] = True
    return ids.to(device), valid.to(device)


def _reduce_tokens(log_probs: torch.Tensor, valid: torch.Tensor, how: str) -> torch.Tensor:
    """[batch, words, tokens] -> [batch, words], over each word's real tokens."""
    total = log_probs.masked_fill(~valid, 0).sum(-1)
    return total if how == "sum" else total / valid.sum(-1)


def word_scores(body, head, batch: dict, words: LabelWords) -> torch.Tensor:
    """[batch, words]: each label word's log-probability score (class after class)."""
    score = _causal if words.causal else _masked
    return score(body, head, batch, words)


def _head_log_probs(head, hidden: torch.Tensor) -> torch.Tensor:
    for module in head:
        hidden = module(hidden)
    return hidden.float().log_softmax(-1)


def _masked(body, head, batch: dict, words: LabelWords) -> torch.Tensor:
    tokens, valid = token_matrix(words, batch["input_ids"].device)
    hidden = body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
    steps = torch.arange(tokens.size(1), device=hidden.device)
    rows = torch.arange(hidden.size(0), device=hidden.device)[:, None]
    log_probs = _head_log_probs(
        head, hidden[rows, batch["slot"][:, None] + steps]
    )  # [batch, masks, vocab]
    per_token = log_probs[:, steps.expand_as(tokens), tokens]  # [batch, words, tokens]
    return _reduce_tokens(per_token, valid, words.multi_token)


def _causal(body, head, batch: dict, words: LabelWords) -> torch.Tensor:
    ids, slot = batch["input_ids"], batch["slot"]
    tokens, valid = token_matrix(words, ids.device)
    n_words, n_tokens = tokens.shape
    lengths = slot + 1  # a causal prompt ends at its slot (right padding after it)
    width = int(lengths.max()) + n_tokens
    pos = torch.arange(width, device=ids.device)
    prompt = torch.zeros(len(ids), width, dtype=ids.dtype, device=ids.device)
    keep = min(ids.size(1), width)
    prompt[:, :keep] = ids[:, :keep]
    in_prompt = (pos < lengths[:, None])[:, None]  # [batch, 1, width]
    step = (pos - lengths[:, None])[:, None].expand(-1, n_words, -1)  # [batch, words, width]
    word_len = valid.sum(-1)[None, :, None]  # [1, words, 1]
    in_word = (step >= 0) & (step < word_len)
    appended = tokens[
        torch.arange(n_words, device=ids.device)[None, :, None], step.clamp(0, n_tokens - 1)
    ]
    seq = torch.where(
        in_prompt, prompt[:, None], torch.where(in_word, appended, torch.zeros_like(appended))
    )
    mask = (in_prompt | in_word).long()
    hidden = body(input_ids=seq.flatten(0, 1), attention_mask=mask.flatten(0, 1))[
        0
    ]  # [batch * words, width, hidden]
    # token j of a word is predicted at the position before it: the slot, then the word's own tokens
    read = (slot[:, None] + torch.arange(n_tokens, device=ids.device)).repeat_interleave(n_words, 0)
    rows = torch.arange(hidden.size(0), device=hidden.device)[:, None]
    log_probs = _head_log_probs(head, hidden[rows, read])  # [batch * words, tokens, vocab]
    targets = tokens.repeat(len(ids), 1)[..., None]  # [batch * words, tokens, 1]
    per_token = log_probs.gather(-1, targets).view(len(ids), n_words, n_tokens)
    return _reduce_tokens(per_token, valid, words.multi_token)
