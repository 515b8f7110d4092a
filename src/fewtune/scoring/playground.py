"""One task and one backbone for trying templates by hand (notebooks/prompts.ipynb).

    pg = Playground("sst2", "smollm2-135m")
    pg.tokens("{sentence} It was {mask}", pg.dev[0])      # the tokens and the answer slot
    pg.probs("{sentence} It was {mask}", pg.dev[:3])       # label-word probabilities at the slot
    pg.compare(["{sentence} It was {mask}", ...])          # zero-shot dev accuracy, calibrated or not

The config is composed as ``python -m fewtune.train method=zeroshot task=... model=...`` would,
and the backbone and K-shot split are loaded as a run loads them; no training happens.
"""

from __future__ import annotations

from collections.abc import Sequence

from fewtune.data.encoding import PromptEncoder
from fewtune.data.prompts import Template
from fewtune.data.tasks import Example
from fewtune.data.verbalizers import Verbalizer
from fewtune.errors import FewtuneError
from fewtune.scoring.calibration import calibrate, content_free_probs
from fewtune.scoring.probs import label_probs


def compose_config(task: str, model: str, overrides: Sequence[str] = ()):
    """The run config of a zero-shot run of ``task`` with ``model`` (plus ``overrides``)."""
    from hydra import compose, initialize_config_dir

    from fewtune.config import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(
            "train", overrides=["method=zeroshot", f"task={task}", f"model={model}", *overrides]
        )


class Playground:
    def __init__(self, task: str, model: str, overrides: Sequence[str] = ()):
        from fewtune.run.build import build

        self.cfg = compose_config(task, model, overrides)
        if self.cfg.task.get("regression"):
            raise FewtuneError(
                f"task '{task}' is a regression task; the playground compares label predictions"
            )
        datamodule, self.module = build(self.cfg)
        self.task = datamodule.task
        self.tokenizer = datamodule.encoder.tokenizer
        self.causal = datamodule.encoder.causal
        self.default_template = datamodule.encoder.template.text
        self.dev: list[Example] = self.task.read_split(
            datamodule.folder, "dev", self.cfg.paths.data_dir
        )

    @property
    def label_words(self) -> list[str]:
        return [
            "/".join(word.strip() for word in words)
            for words in Verbalizer.of_task(self.task).choices
        ]

    def examples(self, n: int) -> list[Example]:
        """The first ``n`` dev examples taking the labels in turn, so that every label is shown."""
        by_label: dict[str, list[Example]] = {}
        for example in self.dev:
            by_label.setdefault(example.label, []).append(example)
        queues = list(by_label.values())
        picked = [
            q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)
        ]
        return picked[:n]

    def encoder(self, template: str) -> PromptEncoder:
        """The encoder of ``template``; a template unfit for this task or family is a FewtuneError."""
        parsed = Template(template)
        parsed.check(self.task.text_fields, causal=self.causal, task=self.task.name)
        return PromptEncoder(
            self.tokenizer, parsed, Verbalizer.of_task(self.task), self.task.max_length, self.causal
        )

    def tokens(self, template: str, example: Example) -> dict:
        """The rendered prompt: its text, tokens, and the slot's position and token.

        For a masked LM the slot is the mask token; for a causal LM it is the last token of the
        prompt, whose next-token logits score the label words.
        """
        encoded = self.encoder(template).encode(example, 0)
        tokens = self.tokenizer.convert_ids_to_tokens(encoded.input_ids)
        return {
            "text": Template(template).render(
                example.fields, "{mask}" if self.causal else self.tokenizer.mask_token
            ),
            "ids": encoded.input_ids,
            "tokens": tokens,
            "slot": encoded.slot,
            "slot_token": tokens[encoded.slot],
        }

    def probs(self, template: str, examples: Sequence[Example], calibrated: bool = False):
        """[examples, labels]: label-word probabilities at the slot, contextually calibrated or not."""
        encoder = self.encoder(template)
        probs = label_probs(self.module, encoder, examples)
        return calibrate(probs, self.content_free(template)) if calibrated else probs

    def probs_table(self, template: str, examples: Sequence[Example]):
        """A DataFrame: per example, its gold label word and each label word's probability at the slot,
        without and with contextual calibration (p_cf from the same template)."""
        import pandas as pd

        probs = self.probs(template, examples)
        calibrated = calibrate(probs, self.content_free(template))
        frame = pd.DataFrame(
            {"text": [" | ".join(ex.fields[f] for f in self.task.text_fields) for ex in examples]}
        )
        frame["gold"] = [
            self.label_words[self.task.label_index(ex.label)].strip() for ex in examples
        ]
        for i, word in enumerate(self.label_words):
            frame[f"p({word.strip()})"] = probs[:, i].tolist()
        for i, word in enumerate(self.label_words):
            frame[f"calibrated p({word.strip()})"] = calibrated[:, i].tolist()
        return frame

    def content_free(self, template: str):
        """p_cf of ``template``: the label-word probabilities on content-free inputs."""
        return content_free_probs(self.module, self.encoder(template), self.task.text_fields)

    def accuracy(
        self, template: str, examples: Sequence[Example] | None = None, calibrated: bool = False
    ) -> float:
        """Zero-shot accuracy (a fraction) on ``examples``, by default the dev split."""
        examples = self.dev if examples is None else examples
        return self._accuracy(self.probs(template, examples, calibrated), examples)

    def _accuracy(self, probs, examples: Sequence[Example]) -> float:
        gold = [self.task.label_index(ex.label) for ex in examples]
        return sum(int(p) == g for p, g in zip(probs.argmax(-1), gold)) / len(gold)

    def compare(self, templates: Sequence[str], examples: Sequence[Example] | None = None):
        """A DataFrame: per template, zero-shot accuracy in % without and with calibration, and p_cf."""
        import pandas as pd

        examples = self.dev if examples is None else examples
        records = []
        for template in templates:
            probs, p_cf = self.probs(template, examples), self.content_free(template)
            records.append(
                {
                    "template": template,
                    "accuracy": 100 * self._accuracy(probs, examples),
                    "calibrated": 100 * self._accuracy(calibrate(probs, p_cf), examples),
                    "p_cf": " / ".join(
                        f"{w.strip()} {p:.2f}" for w, p in zip(self.label_words, p_cf.tolist())
                    ),
                }
            )
        return pd.DataFrame.from_records(
            records, columns=["template", "accuracy", "calibrated", "p_cf"]
        )
