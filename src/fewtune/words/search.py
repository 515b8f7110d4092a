"""LM-BFF's automatic label-word search, zero-shot: for each class the ``top_k`` one-token
words with the highest probability at the slot, averaged over that class's training examples
(the untrained model); then every assignment of one candidate per class (the first ``top_n`` of
each, LM-BFF's pruning) scored by zero-shot dev accuracy.
"""

from __future__ import annotations

import heapq
import itertools

import torch

from fewtune.errors import FewtuneError


@torch.no_grad()
def slot_log_probs(module, encoder, examples, batch_size: int = 32) -> torch.Tensor:
    """[examples, vocabulary]: the LM head's log-probabilities at the slot (the whole vocabulary)."""
    from fewtune.data.datamodule import Collator
    from fewtune.models.backbones import split_lm

    collate, out = Collator(encoder.tokenizer.pad_token_id or 0), []
    module.eval()
    for start in range(0, len(examples), batch_size):
        batch = collate([encoder.encode(ex, 0) for ex in examples[start : start + batch_size]])
        h = module.slot_hidden(batch)
        for head in split_lm(module.model)[1]:
            h = head(h)
        out.append(h.float().log_softmax(-1))
    return torch.cat(out)


def word_like(tokenizer, spaced: bool) -> torch.Tensor:
    """[vocabulary] True for tokens that are a whole alphabetic word as the slot writes it."""
    keep = torch.zeros(len(tokenizer), dtype=torch.bool)
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id])
        token = tokenizer.convert_ids_to_tokens(token_id) or ""
        whole = text.startswith(" ") if spaced else not token.startswith("##")
        keep[token_id] = whole and text.strip().isalpha() and len(text.strip()) > 1
    return keep


def candidates(
    log_probs: torch.Tensor, classes: list[int], allowed: torch.Tensor, top_k: int
) -> list[list[int]]:
    """Per class, the top_k allowed token ids by mean probability over the class's examples."""
    labels = torch.tensor(classes)
    out = []
    for c in range(int(labels.max()) + 1):
        mean = log_probs[labels == c].exp().mean(0).masked_fill(~allowed, -1)
        out.append(mean.topk(top_k).indices.tolist())
    return out


def ranked_assignments(
    log_probs: torch.Tensor, gold: list[int], per_class: list[list[int]], top_n: int, keep: int = 1
):
    """The ``keep`` best (token ids, one per class; accuracy) by zero-shot dev accuracy, best first;
    equal accuracies keep the candidates' order (the more probable words first)."""
    gold_t = torch.tensor(gold)

    def scored():
        for ids in itertools.product(*(c[:top_n] for c in per_class)):
            if len(set(ids)) == len(ids):  # two classes cannot share a word
                yield (
                    list(ids),
                    float((log_probs[:, list(ids)].argmax(-1) == gold_t).float().mean()),
                )

    best = heapq.nlargest(
        keep, scored(), key=lambda s: s[1]
    )  # stable: as sorted(..., reverse=True)
    if not best:
        raise FewtuneError(
            "the label-word search found no two classes with different candidates; raise search.top_n"
        )
    return best


def best_assignment(
    log_probs: torch.Tensor, gold: list[int], per_class: list[list[int]], top_n: int
):
    """(token ids, one per class, accuracy): the best zero-shot dev accuracy over the assignments."""
    return ranked_assignments(log_probs, gold, per_class, top_n)[0]


def search(overrides: list[str], top_k: int, top_n: int, keep: int = 1) -> dict:
    """The zero-shot search; ``assignments`` holds the ``keep`` best, ``verbalizer`` the best."""
    from fewtune.run.build import build

    cfg = compose_config_from([o for o in overrides if not is_method_override(o)])
    datamodule, module = build(cfg)
    task, encoder = datamodule.task, datamodule.encoder
    if task.regression:
        raise FewtuneError(
            f"task '{task.name}' is a regression task; the label-word search needs classes"
        )
    train, dev = datamodule.read("train"), datamodule.read("dev")
    allowed = word_like(encoder.tokenizer, encoder.spaces and encoder.template.slot.space)
    classes = [task.label_index(e.label) for e in train]
    per_class = candidates(slot_log_probs(module, encoder, train), classes, allowed, top_k)
    gold = [task.label_index(e.label) for e in dev]
    ranked = ranked_assignments(slot_log_probs(module, encoder, dev), gold, per_class, top_n, keep)
    word = lambda i: encoder.tokenizer.decode([i]).strip()  # noqa: E731
    assignments = [
        {
            "verbalizer": {label: word(i) for label, i in zip(task.labels, ids)},
            "zeroshot_dev_acc": acc,
        }
        for ids, acc in ranked
    ]
    return {
        "task": task.name,
        "model": cfg.model.name,
        "k": cfg.k,
        "seed": cfg.seed,
        "data_seed": cfg.data_seed,
        "metric": task.metric,
        "verbalizer": assignments[0]["verbalizer"],
        "dev_acc": assignments[0]["zeroshot_dev_acc"],  # zero-shot, of the chosen words
        "chosen_by": "zero-shot dev accuracy",
        "assignments": assignments,
        "candidates": {label: [word(i) for i in c] for label, c in zip(task.labels, per_class)},
    }


def is_method_override(override: str) -> bool:
    """``method=...``, ``method.x=...``, ``+method.x=...``: for the fine-tuning, not the zero-shot search."""
    return override.lstrip("+~").split("=", 1)[0].split(".", 1)[0] == "method"


def compose_config_from(overrides: list[str]):
    from fewtune.scoring.playground import compose_config

    task = next((o.split("=", 1)[1] for o in overrides if o.startswith("task=")), "sst2")
    model = next((o.split("=", 1)[1] for o in overrides if o.startswith("model=")), "smollm2-135m")
    rest = [o for o in overrides if not o.startswith(("task=", "model="))]
    quiet = [] if any(o.lstrip("+~").startswith("logger=") for o in rest) else ["logger=none"]
    return compose_config(task, model, [*quiet, *rest])
