"""Early exit for both heads (conf/exit/): a head after chosen layers, trained jointly with the
final one, and at inference examples that leave the batch as soon as their exit rule says so.

- classifier head: a new linear classifier per internal exit on the backbone's own pooled
  features (BERT: the shared pooler, as PABEE shares it; Llama: the final norm, then the last
  non-pad token, as the sequence-classification model pools); the final exit is the model's head;
- prompt head: the LM head and verbalizer at the slot of an intermediate layer (after the final
  norm where the body has one, Llama's ``model.norm``; BERT's MLM head has its own LayerNorm).
  No new weights.

Training loss: the weighted mean of the exits' losses, weight = layer number (PABEE: deeper
exits weigh more) or uniform (``exit.loss_weights``). Dev and test use the final head unless
``exit.rule`` is patience or confidence; then ``label_logits`` exits early (exits/rules.py) and
the test results gain ``exit_layers``, the mean number of layers run per example.
"""

from __future__ import annotations

import torch
from torch import nn

from fewtune.exits.layerwise import LayerRunner
from fewtune.exits.rules import ExitSettings, make_rule
from fewtune.models.classifier_head import ClassifierModule
from fewtune.models.label_scores import class_scores
from fewtune.models.prompt_head import PromptModule, word_logits

# What each exit needs of the batch, sliced with the rows that go on.
ROW_KEYS = ("input_ids", "attention_mask", "slot")


class EarlyExit:
    """Mixed in before a head module; the head implements ``exit_logits(hidden, batch, layer)``."""

    def __init__(self, exit_settings: ExitSettings, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.exit_settings = exit_settings
        self.runner = LayerRunner(self.model.base_model)
        self.exit_layers = exit_settings.exit_layers(self.runner.num_layers)
        self._exited_at: list[torch.Tensor] = []
        self.last_exit_layers: torch.Tensor | None = (
            None  # the last batch's, from an early-exit rule
        )

    def exit_logits(self, hidden: torch.Tensor, batch: dict, layer: int) -> torch.Tensor:
        raise NotImplementedError

    def full_logits(self, batch: dict) -> torch.Tensor:
        """The head's own forward pass through all layers (the model without exits)."""
        return super().label_logits(batch)

    def all_exit_logits(self, batch: dict) -> dict[int, torch.Tensor]:
        """layer -> label logits of that exit, every example through every layer (training)."""
        state = self.runner.start(batch["input_ids"], batch["attention_mask"])
        out = {}
        for index in range(self.runner.num_layers):
            state = self.runner.step(index, state)
            if index + 1 in self.exit_layers:
                out[index + 1] = self.exit_logits(state.hidden, batch, index + 1)
        return out

    def early_exit(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(label logits [B, C], the layer each example exited after [B]). An example that exits
        leaves the batch: later layers never compute it."""
        rows = {key: batch[key] for key in ROW_KEYS if key in batch}
        state = self.runner.start(rows["input_ids"], rows["attention_mask"])
        index = torch.arange(
            len(rows["input_ids"]), device=rows["input_ids"].device
        )  # the rows left
        logits = exited_at = None
        rule, last = make_rule(self.exit_settings), self.exit_layers[-1]
        for i in range(last):
            state = self.runner.step(i, state)
            if i + 1 not in self.exit_layers:
                continue
            now = self.exit_logits(state.hidden, rows, i + 1)
            if logits is None:
                logits = now.new_empty(len(index), now.size(-1))
                exited_at = torch.full((len(index),), last, device=index.device)
            done = (
                rule(now)
                if i + 1 < last
                else torch.ones(len(now), dtype=torch.bool, device=now.device)
            )
            logits[index[done]] = now[done]
            exited_at[index[done]] = i + 1
            going = ~done
            if not going.any():
                break
            index, state = index[going], self.runner.keep(state, going)
            rows = {key: value[going] for key, value in rows.items()}
            rule.keep(going)
        return logits, exited_at

    def label_logits(self, batch: dict, *args, **kwargs) -> torch.Tensor:
        if self.training or self.exit_settings.rule == "none" or args or kwargs:
            return super().label_logits(batch, *args, **kwargs)
        logits, exited_at = self.early_exit(batch)
        self._exited_at.append(exited_at.detach().cpu())
        self.last_exit_layers = self._exited_at[-1]  # per example: the stored predictions record it
        return logits

    def training_step(self, batch, batch_idx):
        labels = batch["labels"]
        per_exit = self.all_exit_logits(batch)
        losses = {layer: self.loss(logits, labels) for layer, logits in per_exit.items()}
        weights = self.exit_settings.weights(self.exit_layers)
        loss = sum(w * losses[layer] for w, layer in zip(weights, self.exit_layers)) / sum(weights)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(labels))
        self.log_dict(
            {f"train/loss_layer{layer}": v for layer, v in losses.items()}, batch_size=len(labels)
        )
        return loss

    def on_validation_epoch_start(self):
        self._exited_at = []

    def on_test_epoch_start(self):
        self._exited_at = []

    def on_test_epoch_end(self):
        super().on_test_epoch_end()
        if self._exited_at:
            mean = float(torch.cat(self._exited_at).float().mean())
            self.test_results["test/exit_layers"] = mean
            self.log("test/exit_layers", mean)


class ExitPromptModule(EarlyExit, PromptModule):
    def exit_logits(self, hidden: torch.Tensor, batch: dict, layer: int) -> torch.Tensor:
        h = hidden[torch.arange(hidden.size(0), device=hidden.device), batch["slot"]]
        if self.runner.final_norm is not None:
            h = self.runner.final_norm(h)
        return class_scores(word_logits(self.model, h, self.label_word_ids), self.label_words)


class ExitClassifierModule(EarlyExit, ClassifierModule):
    def __init__(self, exit_settings: ExitSettings, model: nn.Module, num_labels: int, **kwargs):
        super().__init__(exit_settings, model, num_labels, **kwargs)
        final = self._final_head()
        std = getattr(model.config, "initializer_range", 0.02)
        self.exit_heads = nn.ModuleDict()
        for layer in self.exit_layers[:-1]:
            head = nn.Linear(final.in_features, final.out_features, bias=final.bias is not None)
            nn.init.normal_(head.weight, std=std)
            if head.bias is not None:
                nn.init.zeros_(head.bias)
            self.exit_heads[str(layer)] = head.to(final.weight.dtype)

    def _final_head(self) -> nn.Linear:
        return self.model.classifier if self.runner.kind == "bert" else self.model.score

    def exit_logits(self, hidden: torch.Tensor, batch: dict, layer: int) -> torch.Tensor:
        if self.runner.kind == "bert":
            pooled = self.model.dropout(self.runner.body.pooler(hidden))
        else:
            rows = torch.arange(hidden.size(0), device=hidden.device)
            pooled = self.runner.final_norm(hidden[rows, self._last_token(batch["input_ids"])])
        head = self._final_head() if layer == self.exit_layers[-1] else self.exit_heads[str(layer)]
        return head(pooled)

    def _last_token(self, input_ids: torch.Tensor) -> torch.Tensor:
        # As transformers' sequence classifiers pool: the rightmost token that is not padding.
        pad = self.model.config.pad_token_id
        if pad is None:
            return torch.full((len(input_ids),), input_ids.size(1) - 1, device=input_ids.device)
        positions = torch.arange(input_ids.size(1), device=input_ids.device, dtype=torch.int32)
        return (positions * (input_ids != pad).int()).argmax(-1)


def make_module(head_cls: type, exit_settings: ExitSettings | None, *args, **kwargs):
    """``head_cls(*args, **kwargs)``, or its early-exit version where the run has exits."""
    if exit_settings is None:
        return head_cls(*args, **kwargs)
    with_exits = {PromptModule: ExitPromptModule, ClassifierModule: ExitClassifierModule}[head_cls]
    return with_exits(exit_settings, *args, **kwargs)
