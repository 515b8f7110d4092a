"""method=setfit's settings (conf/method/setfit.yaml), checked before any data or weights load.

The defaults are the setfit library's (1.2.0) where it has one: batch 16, 1 epoch and lr 2e-5
for the body's contrastive phase with 10% warm-up and weight decay 0.01; the differentiable
head's 16 epochs at batch 2 and lr 1e-2, its body frozen unless end_to_end. The pairs: 20
iterations (pairs = 20 x examples x 2), the count the SetFit paper and the library's examples use
(the library's own default, num_iterations=None, is ``sampling=oversampling``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from fewtune.errors import FewtuneError

HEAD_TYPES = ("logistic", "differentiable")
SAMPLINGS = ("oversampling", "undersampling", "unique")  # the library's sampling_strategy
PEFT_METHODS = (
    "none",
    "lora",
    "ia3",
    "bitfit",
    "head_only",
)  # those that act on the encoder's own layers


@dataclass(frozen=True)
class SetFitSettings:
    head_type: str = "logistic"
    pooling: str = "auto"
    normalize: bool | None = None
    num_iterations: int | None = 20
    sampling: str = "oversampling"
    body_epochs: int = 1
    body_batch_size: int = 16
    body_lr: float = 2e-5
    warmup_proportion: float = 0.1
    weight_decay: float = 0.01
    logistic_c: float = 1.0
    logistic_max_iter: int = 100
    head_epochs: int = 16
    head_batch_size: int = 2
    head_lr: float = 1e-2
    end_to_end: bool = False
    head_body_lr: float = 1e-5

    @classmethod
    def from_config(cls, method) -> SetFitSettings:
        given = {f.name: method.get(f.name) for f in fields(cls) if f.name in method}
        settings = cls(**given)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.head_type not in HEAD_TYPES:
            raise FewtuneError(
                f"method.head_type='{self.head_type}' is unknown; use one of {list(HEAD_TYPES)}"
            )
        if self.num_iterations is None:
            if self.sampling not in SAMPLINGS:
                raise FewtuneError(
                    f"method.sampling='{self.sampling}' is unknown; use one of {list(SAMPLINGS)}"
                )
        elif not _whole(self.num_iterations) or self.num_iterations < 1:
            raise FewtuneError(
                f"method.num_iterations={self.num_iterations} must be a whole number >= 1 (pairs = iterations x "
                "examples x 2), or null to let method.sampling decide"
            )
        for name in (
            "body_epochs",
            "body_batch_size",
            "head_epochs",
            "head_batch_size",
            "logistic_max_iter",
        ):
            value = getattr(self, name)
            if not _whole(value) or value < 1:
                raise FewtuneError(f"method.{name}={value} must be a whole number >= 1")
        for name in ("body_lr", "head_lr", "head_body_lr", "logistic_c"):
            value = getattr(self, name)
            if not _number(value) or value <= 0:
                raise FewtuneError(f"method.{name}={value} must be a number > 0")
        if not _number(self.weight_decay) or self.weight_decay < 0:
            raise FewtuneError(f"method.weight_decay={self.weight_decay} must be a number >= 0")
        if not _number(self.warmup_proportion) or not 0 <= self.warmup_proportion < 1:
            raise FewtuneError(
                f"method.warmup_proportion={self.warmup_proportion} must be in [0, 1)"
            )
        if self.normalize is not None and not isinstance(self.normalize, bool):
            raise FewtuneError(
                f"method.normalize={self.normalize} must be true, false or null (as the model declares)"
            )


def check_combination(cfg, regression: bool) -> None:
    """Refuse, with one line each, what SetFit cannot combine with."""
    method = cfg.method
    if regression:
        raise FewtuneError(
            f"method={method.name} needs a classification task: task '{cfg.task.name}' predicts a score; "
            "use method=finetune or prompt"
        )
    if cfg.peft.name not in PEFT_METHODS:
        raise FewtuneError(
            f"method={method.name} tunes the encoder's own layers: peft={cfg.peft.name} adds tokens before the "
            f"input, which the pairs' embeddings do not take; use one of {list(PEFT_METHODS)}"
        )
    exit_cfg = cfg.get("exit")
    if exit_cfg is not None and exit_cfg.get("name", "none") != "none":
        raise FewtuneError(
            f"method={method.name} does not combine with early exit (exit={exit_cfg.name}); use exit=none"
        )
    if method.get("demonstrations") is not None or method.get("calibrate"):
        raise FewtuneError(
            f"method={method.name} takes no demonstrations or calibration (prompt methods' settings)"
        )


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
