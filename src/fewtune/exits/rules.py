"""The exit settings (conf/exit/) and the rules that decide, per example, when to stop.

- patience (PABEE, Zhou et al., 2020): a counter per example counts how many exits in a row
  gave the same argmax as the exit before; the example exits once it reaches ``patience``
  (PABEE's code: patience t means t unchanged predictions, i.e. t + 1 agreeing exits);
- confidence (DeeBERT, Xin et al., 2020): the example exits once the entropy (nats) of its
  label distribution at an exit is below ``entropy``.

The last layer is always an exit: whatever is left there exits with the final head.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from fewtune.errors import FewtuneError

RULES = ("none", "patience", "confidence")
LOSS_WEIGHTS = ("index", "uniform")
# peft methods that put virtual tokens before the body: the layers cannot be run one at a time.
VIRTUAL_TOKEN_PEFT = ("prompt_tuning", "prefix_tuning", "p_tuning")


@dataclass(frozen=True)
class ExitSettings:
    every: int = 1
    layers: tuple[int, ...] | None = None
    loss_weights: str = "index"
    rule: str = "none"
    patience: int = 3
    entropy: float = 0.3

    def exit_layers(self, num_layers: int) -> list[int]:
        """The layers (1-based) after which a head reads the hidden states; the last is the final head."""
        if self.layers is not None:
            beyond = [layer for layer in self.layers if layer > num_layers]
            if beyond:
                raise FewtuneError(
                    f"exit.layers: layer {beyond[0]} is beyond the model's {num_layers} layers; use layers 1-{num_layers}"
                )
            chosen = set(self.layers)
        else:
            if self.every >= num_layers:
                raise FewtuneError(
                    f"exit.every={self.every} leaves no exit before the last of the model's {num_layers} layers; "
                    f"use exit.every < {num_layers}"
                )
            chosen = set(range(self.every, num_layers + 1, self.every))
        return sorted(chosen | {num_layers})

    def weights(self, layers: list[int]) -> list[float]:
        """Each exit's weight in the training loss: its layer number (PABEE), or 1 each."""
        return [float(layer) if self.loss_weights == "index" else 1.0 for layer in layers]

    def with_rule(self, rule: str, value: float | None = None) -> ExitSettings:
        """The same exits with another rule (and its threshold): what fewtune.exits sweeps."""
        _check_rule(rule)
        if rule == "patience":
            return replace(self, rule=rule, patience=_patience(value))
        if rule == "confidence":
            return replace(self, rule=rule, entropy=_entropy(value))
        return replace(self, rule=rule)


def from_run(cfg: Mapping[str, Any], regression: bool) -> ExitSettings | None:
    """A run config's exit settings (None for exit=none or a run made before conf/exit/)."""
    demonstrations = cfg["method"].get("demonstrations") is not None
    return settings(cfg.get("exit"), regression, cfg["peft"]["name"], demonstrations)


def settings(
    exit_cfg: Mapping[str, Any] | None,
    regression: bool = False,
    peft_name: str = "none",
    demonstrations: bool = False,
) -> ExitSettings | None:
    """The exit settings, None for exit=none; checked before any weights load."""
    if not exit_cfg or exit_cfg.get("name", "none") == "none":
        return None
    if demonstrations:
        raise FewtuneError(
            "exit: early exit does not support methods with demonstrations yet; use exit=none"
        )
    if regression:
        raise FewtuneError(
            "exit: early exit is for classification tasks; a regression task (STS-B) needs exit=none"
        )
    if peft_name in VIRTUAL_TOKEN_PEFT:
        raise FewtuneError(
            f"exit with peft={peft_name}: its virtual tokens go in front of the body, which early exit runs "
            "layer by layer itself; use peft=lora, ia3, bitfit or head_only, or exit=none"
        )
    every = exit_cfg.get("every", 1)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise FewtuneError(
            f"exit.every={every} must be a whole number >= 1 (an exit after every n-th layer)"
        )
    layers = exit_cfg.get("layers")
    if layers is not None:
        layers = tuple(layers) if not isinstance(layers, int) else (layers,)
        if not layers or any(
            isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in layers
        ):
            raise FewtuneError(
                f"exit.layers={list(layers)} must be layer numbers >= 1, e.g. exit.layers=[2,4]"
            )
    weights = exit_cfg.get("loss_weights", "index")
    if weights not in LOSS_WEIGHTS:
        raise FewtuneError(
            f"exit.loss_weights='{weights}' is unknown; use one of {list(LOSS_WEIGHTS)}"
        )
    rule = exit_cfg.get("rule", "none")
    _check_rule(rule)
    return ExitSettings(
        every=every,
        layers=layers,
        loss_weights=weights,
        rule=rule,
        patience=_patience(exit_cfg.get("patience", 3)),
        entropy=_entropy(exit_cfg.get("entropy", 0.3)),
    )


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise FewtuneError(f"exit.rule='{rule}' is unknown; use one of {list(RULES)}")


def _patience(value) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FewtuneError(
            f"exit.patience={value} must be a whole number >= 1 (unchanged predictions in a row)"
        )
    return value


def _entropy(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise FewtuneError(
            f"exit.entropy={value} must be a number >= 0 (nats; log(num_labels) is the maximum)"
        )
    return float(value)


class Patience:
    def __init__(self, patience: int):
        self.patience = patience
        self.previous: torch.Tensor | None = None
        self.count: torch.Tensor | None = None

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """Which rows exit at this exit."""
        prediction = logits.argmax(-1)
        if self.previous is None:
            self.count = torch.zeros_like(prediction)
        else:
            self.count = torch.where(prediction == self.previous, self.count + 1, 0)
        self.previous = prediction
        return self.count >= self.patience

    def keep(self, rows: torch.Tensor) -> None:
        self.previous, self.count = self.previous[rows], self.count[rows]


class Confidence:
    def __init__(self, entropy: float):
        self.entropy = entropy

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        probs = logits.float().softmax(-1)
        return torch.special.entr(probs).sum(-1) < self.entropy

    def keep(self, rows: torch.Tensor) -> None:
        pass


class Never:
    """rule=none through the layer-by-layer path: every example runs every layer."""

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(logits), dtype=torch.bool, device=logits.device)

    def keep(self, rows: torch.Tensor) -> None:
        pass


def make_rule(exit_settings: ExitSettings):
    if exit_settings.rule == "patience":
        return Patience(exit_settings.patience)
    if exit_settings.rule == "confidence":
        return Confidence(exit_settings.entropy)
    return Never()


def replay(
    exit_settings: ExitSettings, per_exit: dict[int, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """What ``early_exit`` returns (label logits, exit layer per example), decided from every exit's
    logits of a batch that ran through all layers: a rule looks only at an example's own exits up
    to its exit, so the decision is the same, and no layer has to run again per setting."""
    layers = sorted(per_exit)
    last = layers[-1]
    rule = make_rule(exit_settings)
    logits = per_exit[last].clone()
    exited_at = torch.full((len(logits),), last, device=logits.device)
    going = torch.ones(len(logits), dtype=torch.bool, device=logits.device)
    for layer in layers[:-1]:
        done = rule(per_exit[layer]) & going
        logits[done], exited_at[done] = per_exit[layer][done], layer
        going &= ~done
    return logits, exited_at
