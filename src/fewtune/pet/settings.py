"""method=pet's settings (conf/method/pet.yaml), and what PET cannot combine with: checked before
any data or weights load."""

from __future__ import annotations

from dataclasses import dataclass

from fewtune.errors import FewtuneError

ENSEMBLES = ("mean", "weighted")


@dataclass(frozen=True)
class PetSettings:
    ensemble: str = "mean"
    temperature: float = 2.0
    distill: bool = True
    unlabeled: int | None = 300
    unlabeled_file: str | None = None
    generations: int = 0
    factor: float = 5.0

    @classmethod
    def from_config(cls, cfg) -> PetSettings:
        method = cfg.method
        ipet = method.get("ipet") or {}
        settings = cls(
            ensemble=method.get("ensemble", "mean"),
            temperature=method.get("temperature", 2.0),
            distill=bool(method.get("distill", True)),
            unlabeled=method.get("unlabeled", 300),
            unlabeled_file=method.get("unlabeled_file"),
            generations=ipet.get("generations", 0),
            factor=ipet.get("factor", 5.0),
        )
        settings.validate()
        check_combination(cfg)
        return settings

    @property
    def needs_unlabeled(self) -> bool:
        """Distillation and iPET label unlabeled examples; the ensemble alone needs none."""
        return self.distill or self.generations > 0

    def validate(self) -> None:
        if self.ensemble not in ENSEMBLES:
            raise FewtuneError(
                f"method.ensemble='{self.ensemble}' is unknown; use one of {list(ENSEMBLES)}"
            )
        if not _number(self.temperature) or self.temperature <= 0:
            raise FewtuneError(
                f"method.temperature={self.temperature} must be a number > 0 (PET: 2)"
            )
        if self.unlabeled is not None and (not _whole(self.unlabeled) or self.unlabeled < 1):
            raise FewtuneError(
                f"method.unlabeled={self.unlabeled} must be a whole number >= 1, or null for the whole pool"
            )
        if not _whole(self.generations) or self.generations < 0:
            raise FewtuneError(
                f"method.ipet.generations={self.generations} must be a whole number >= 0 (0: PET, no iPET)"
            )
        if not _number(self.factor) or self.factor <= 1:
            raise FewtuneError(f"method.ipet.factor={self.factor} must be a number > 1 (iPET: 5)")


def check_combination(cfg) -> None:
    """Refuse, with one line each, what PET's several models cannot do here."""
    method = cfg.method
    if method.get("demonstrations") is not None:
        raise FewtuneError(
            "method=pet does not take demonstrations; remove method.demonstrations (or use method=prompt-demo)"
        )
    if method.get("calibrate"):
        raise FewtuneError(
            "method=pet trains its patterns, and calibration is for untrained prompts; remove method.calibrate"
        )
    if cfg.task.get("regression"):
        raise FewtuneError(
            f"method=pet needs a classification task: task '{cfg.task.name}' predicts a score, which PET's "
            "soft labels and iPET's labelling do not cover; use method=prompt"
        )
    exit_cfg = cfg.get("exit")
    if exit_cfg is not None and exit_cfg.get("name", "none") != "none":
        raise FewtuneError(
            f"method=pet does not combine with early exit (exit={exit_cfg.name}); use exit=none"
        )


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
