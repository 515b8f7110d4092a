"""The run's K-shot examples as PET predicts them: in file order, with their label indices, dev
and test cut by ``trainer.limit_val_batches`` / ``limit_test_batches`` (as Lightning counts them:
a number of eval batches, or a fraction)."""

from __future__ import annotations

from dataclasses import dataclass

from fewtune.data.tasks import Example, TaskSpec, check_k_shot
from fewtune.run.scored import reached


@dataclass
class KShot:
    train: list[Example]
    dev: list[Example]
    test: list[Example]
    test_split: str
    task: TaskSpec
    test_size: int  # the whole test split, of which ``test`` may be the first batches

    @classmethod
    def read(cls, cfg, task: TaskSpec) -> KShot:
        test_split = cfg.get("test_split", "test")
        data_dir = cfg.paths.data_dir
        folder = task.check_files(data_dir, cfg.k, cfg.data_seed, ("train", "dev", test_split))
        train, dev = (task.read_split(folder, split, data_dir) for split in ("train", "dev"))
        check_k_shot(task, train, cfg.k, "train")
        check_k_shot(task, dev, cfg.k, "dev")
        test = task.read_split(folder, test_split, data_dir)
        # PET runs in one process (pet/model_run.py refuses more)
        dev = reached(dev, cfg.trainer.get("limit_val_batches"), cfg.eval_batch_size)
        cut_test = reached(test, cfg.trainer.get("limit_test_batches"), cfg.eval_batch_size)
        return cls(train, dev, cut_test, test_split, task, len(test))

    def targets(self, split: str) -> list[int]:
        return [self.task.target(ex.label) for ex in getattr(self, split)]
