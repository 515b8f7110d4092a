"""LM-BFF's automatic label-word search, zero-shot:

    python -m fewtune.search_words task=sst2 k=16 seed=42 search.top_k=10

For each class, the ``top_k`` one-token words with the highest probability at the slot,
averaged over that class's training examples (the untrained model); then every assignment of
one candidate per class (the first ``top_n`` of each, LM-BFF's pruning) is scored by zero-shot
dev accuracy, and the best is written to ``<out>/metrics.json`` as ``verbalizer``. The other
arguments are the run's overrides, as for ``fewtune.train``.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import torch

from fewtune.errors import FewtuneError

DEFAULTS = {"top_k": 10, "top_n": 10, "out": "outputs/search-words"}


@torch.no_grad()
def slot_log_probs(module, encoder, examples, batch_size: int = 32) -> torch.Tensor:
    """[examples, vocabulary]: the LM head's log-probabilities at the slot (the whole vocabulary)."""
    from fewtune.data.datamodule import Collator
    from fewtune.models.prompt_head import split_lm

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


def candidates(log_probs: torch.Tensor, classes: list[int], allowed: torch.Tensor, top_k: int) -> list[list[int]]:
    """Per class, the top_k allowed token ids by mean probability over the class's examples."""
    labels = torch.tensor(classes)
    out = []
    for c in range(int(labels.max()) + 1):
        mean = log_probs[labels == c].exp().mean(0).masked_fill(~allowed, -1)
        out.append(mean.topk(top_k).indices.tolist())
    return out


def best_assignment(log_probs: torch.Tensor, gold: list[int], per_class: list[list[int]], top_n: int):
    """(token ids, one per class, accuracy): the best zero-shot dev accuracy over the assignments."""
    gold_t, best = torch.tensor(gold), (None, -1.0)
    for ids in itertools.product(*(c[:top_n] for c in per_class)):
        if len(set(ids)) < len(ids):
            continue  # two classes cannot share a word
        acc = float((log_probs[:, list(ids)].argmax(-1) == gold_t).float().mean())
        if acc > best[1]:
            best = (list(ids), acc)
    if best[0] is None:
        raise FewtuneError("the label-word search found no two classes with different candidates; raise search.top_n")
    return best


def search(overrides: list[str], top_k: int, top_n: int) -> dict:
    from fewtune.train import build

    cfg = compose_config_from(overrides)
    datamodule, module = build(cfg)
    task, encoder = datamodule.task, datamodule.encoder
    if task.regression:
        raise FewtuneError(f"task '{task.name}' is a regression task; the label-word search needs classes")
    train, dev = datamodule.read("train"), datamodule.read("dev")
    allowed = word_like(encoder.tokenizer, encoder.spaces and encoder.template.slot.space)
    classes = [task.label_index(e.label) for e in train]
    per_class = candidates(slot_log_probs(module, encoder, train), classes, allowed, top_k)
    gold = [task.label_index(e.label) for e in dev]
    ids, acc = best_assignment(slot_log_probs(module, encoder, dev), gold, per_class, top_n)
    word = lambda i: encoder.tokenizer.decode([i]).strip()  # noqa: E731
    return {
        "task": task.name,
        "model": cfg.model.name,
        "k": cfg.k,
        "seed": cfg.seed,
        "verbalizer": {label: word(i) for label, i in zip(task.labels, ids)},
        "dev_acc": acc,
        "candidates": {label: [word(i) for i in c] for label, c in zip(task.labels, per_class)},
    }


def compose_config_from(overrides: list[str]):
    from fewtune.playground import compose_config

    task = next((o.split("=", 1)[1] for o in overrides if o.startswith("task=")), "sst2")
    model = next((o.split("=", 1)[1] for o in overrides if o.startswith("model=")), "smollm2-135m")
    rest = [o for o in overrides if not o.startswith(("task=", "model="))]
    return compose_config(task, model, ["logger=none", *rest])


def main(argv: list[str]) -> None:
    settings, overrides = dict(DEFAULTS), []
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.startswith("search."):
            name = key.removeprefix("search.")
            if name not in DEFAULTS:
                raise SystemExit(f"error: unknown setting {key}; the settings are {['search.' + k for k in DEFAULTS]}")
            settings[name] = value if name == "out" else int(value)
        else:
            overrides.append(arg)
    try:
        results = search(overrides, settings["top_k"], settings["top_n"])
    except FewtuneError as err:
        raise SystemExit(f"error: {err}") from None
    out = Path(settings["out"]) / f"{results['task']}-{results['k']}-{results['seed']}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
