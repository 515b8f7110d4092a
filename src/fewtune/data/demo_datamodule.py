"""The data module with demonstrations: every item is a group of renderings of one example.

Training draws a fresh demonstration set each time an example is drawn (LM-BFF resamples at
every step): a group of one. Dev and test render each example with ``eval_sets`` sets, drawn
once in ``setup`` from a generator seeded by (seed, split, example), so that every dev
evaluation and the test see the same demonstrations and a seed gives the same numbers; the
module averages the predictions of a group (models/demo_head.py). With ``fixed``, every dev and
test query gets the same ``eval_sets`` sets, drawn once per seed (GPT-3's and Zhao et al.'s one
prompt). Each row names its set (``Encoded.demos``), so that contextual calibration can give it
the p_cf of that set (fewtune/scoring/calibration.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.data import Dataset

from fewtune.data.datamodule import Collator, FewShotDataModule
from fewtune.data.demo_encoding import DemonstrationEncoder
from fewtune.data.demonstrations import DemoSampler, DemoSettings, demo_class
from fewtune.data.encoding import Encoded, PromptEncoder
from fewtune.data.similarity import Embed, cosine
from fewtune.data.tasks import SPLITS, Example, TaskSpec
from fewtune.errors import FewtuneError


class GroupCollator(Collator):
    """Pads the rows of all groups into one batch; one label per example, ``sets`` rows each.

    ``p_cf`` (set by contextual calibration): each demonstration set's content-free label
    probabilities, by ``Encoded.demos``; every row then brings its set's as ``batch["p_cf"]``.
    """

    def __init__(self, pad_id: int, lengths=None, eval_lengths=None):
        super().__init__(pad_id, lengths, eval_lengths)
        self.p_cf: dict[tuple[int, ...], torch.Tensor] | None = None

    def __call__(
        self, groups: list[list[Encoded]], evaluation: bool = False
    ) -> dict[str, torch.Tensor]:
        rows = [row for group in groups for row in group]
        batch = super().__call__(rows, evaluation)
        sets = len(groups[0])
        batch["labels"] = batch["labels"][::sets]
        batch["index"] = batch["index"][::sets]
        batch["sets"] = sets
        if self.p_cf is not None:
            batch["p_cf"] = torch.stack([self.p_cf[row.demos] for row in rows])
        return batch


class TrainDemos(Dataset):
    """Training examples whose demonstrations are drawn anew at every access."""

    def __init__(self, examples, targets, encoder, sampler, pools, demos, seed: int):
        self.examples, self.targets, self.encoder = examples, targets, encoder
        self.sampler, self.pools, self.demos = sampler, pools, demos
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> list[Encoded]:
        chosen = self.sampler.draw(self.pools[i], self.rng)
        return [
            self.encoder.encode(self.examples[i], self.targets[i], [self.demos[j] for j in chosen])
        ]


class DemoDataModule(FewShotDataModule):
    def __init__(
        self,
        task: TaskSpec,
        encoder: PromptEncoder,
        *args,
        settings: DemoSettings,
        seed: int,
        cache_dir: str | Path | None = None,
        embed: Embed | None = None,
        load_embed: Callable[[str, str | Path | None], Embed] | None = None,
        **kwargs,
    ):
        shown = settings.shown(encoder.num_classes)
        # Room for each demonstration as long as the input, within what the tokenizer says the model takes.
        max_length = settings.max_length or min(
            task.max_length * (1 + shown), encoder.tokenizer.model_max_length
        )
        demo_encoder = DemonstrationEncoder(
            encoder, max_length, settings.query_first(encoder.causal), settings.separator
        )
        super().__init__(task, demo_encoder, *args, **kwargs)
        self.settings = settings
        self.seed = seed
        self.cache_dir = cache_dir
        self.embed = (
            embed  # None: settings.encoder is loaded with load_embed when sampling is similar
        )
        self.load_embed = load_embed  # run/build.py gives models/sentence_encoder.py's load_encoder
        self.collate = GroupCollator(
            self.collate.pad_id, self.collate.lengths, self.collate.eval_lengths
        )
        # eval_batch_size counts rows, and every example brings eval_sets of them.
        self.eval_batch_size = max(1, self.eval_batch_size // settings.eval_sets)

    def _loaded_embed(self) -> Embed:
        if self.load_embed is None:
            raise FewtuneError(
                "demonstrations.sampling=similar needs a sentence encoder: give the datamodule embed= or load_embed="
            )
        return self.load_embed(self.settings.encoder, self.cache_dir)

    def setup(self, stage: str | None = None) -> None:
        if self.encoded:
            return
        examples = {split: self.read(split) for split in SPLITS}
        targets = {
            split: [self.task.target(ex.label) for ex in exs] for split, exs in examples.items()
        }
        classes = [demo_class(t, self.task.regression) for t in targets["train"]]
        sampler = DemoSampler(classes, self.encoder.num_classes, self.settings)
        demos = list(zip(examples["train"], classes))
        # Kept for inspection: the examples and, per query, the pools its demonstrations come from.
        self.examples, self.pools = examples, self._pools(sampler, examples)
        self.encoded["train"] = TrainDemos(
            examples["train"],
            targets["train"],
            self.encoder,
            sampler,
            self.pools["train"],
            demos,
            self.seed,
        )
        fixed = self._fixed_draws(sampler) if self.settings.fixed else None
        for split in ("dev", "test"):
            groups = []
            for i, (example, target) in enumerate(zip(examples[split], targets[split])):
                rng = random.Random(f"{self.seed}/{split}/{i}")
                draws = fixed or [
                    sampler.draw(self.pools[split][i], rng) for _ in range(self.settings.eval_sets)
                ]
                groups.append(
                    [replace(self.encode_with(example, target, d), index=i) for d in draws]
                )
            # Evaluation order does not matter: sorting by length makes padding minimal.
            groups.sort(key=lambda g: max(len(e.input_ids) for e in g))
            self.encoded[split] = groups

    def encode_with(self, example: Example, target, shown: list[int]) -> Encoded:
        """``example`` rendered with the training examples ``shown`` (indices) as its demonstrations."""
        demos = self.encoded["train"].demos
        return replace(
            self.encoder.encode(example, target, [demos[j] for j in shown]), demos=tuple(shown)
        )

    def _fixed_draws(self, sampler: DemoSampler) -> list[list[int]]:
        """fixed=true: the eval_sets sets every dev and test query is shown, drawn once per seed."""
        rng = random.Random(f"{self.seed}/fixed")
        return [sampler.draw(sampler.candidates(), rng) for _ in range(self.settings.eval_sets)]

    def _pools(self, sampler: DemoSampler, examples: dict[str, list[Example]]) -> dict[str, list]:
        """Per split, per query: the pools its demonstrations are drawn from."""
        similarity = dict.fromkeys(SPLITS)
        if self.settings.sampling == "similar":
            embed = self.embed or self._loaded_embed()
            # Embeddings are computed once per run: every draw reuses these similarities.
            vectors = {
                split: embed([self._text(ex) for ex in exs]) for split, exs in examples.items()
            }
            similarity = {
                split: cosine(vectors[split], vectors["train"]).tolist() for split in SPLITS
            }
        return {
            split: [
                sampler.candidates(
                    i if split == "train" else None,
                    None if similarity[split] is None else similarity[split][i],
                )
                for i in range(len(exs))
            ]
            for split, exs in examples.items()
        }

    def _text(self, example: Example) -> str:
        return " ".join(example.fields[f] for f in self.task.text_fields)
