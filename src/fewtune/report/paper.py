"""LM-BFF's Table 3, the numbers ``python -m fewtune.table --paper`` puts beside ours.

From ../shared/GUIDE.md: RoBERTa-large, K=16 per class, mean (std) over LM-BFF's 5 splits, in
percent; cells the guide leaves empty (not confirmed from a source) are absent here.
"""

from __future__ import annotations

CITATION = (
    'Gao, Fisch and Chen, ACL 2021, "Making Pre-trained Language Models Better Few-shot Learners", '
    "Table 3 (RoBERTa-large, K=16, mean (std) over 5 splits)"
)
MODEL = "roberta-large"
# The paper's row for a method not run here: full-data fine-tuning, an upper bound.
FULL_DATA = "full"
TITLES = {FULL_DATA: "Full-data FT"}

# The metric of each task's column; a cell is shown only where our runs report the same metric.
METRICS = {"cola": "mcc", "mrpc": "f1", "qqp": "f1"}

# method -> task -> (mean, std or None), in percent.
TABLE3: dict[str, dict[str, tuple[float, float | None]]] = {
    "zeroshot": {
        "sst2": (83.6, None),
        "cola": (2.0, None),
        "mnli": (50.8, None),
        "qnli": (50.8, None),
        "rte": (51.3, None),
        "mrpc": (61.9, None),
        "qqp": (49.7, None),
    },
    "finetune": {
        "sst2": (81.4, 3.8),
        "cola": (33.9, 14.3),
        "mnli": (45.8, 6.4),
        "qnli": (60.2, 6.5),
        "rte": (54.4, 3.9),
        "mrpc": (76.6, 2.5),
        "qqp": (60.7, 4.3),
    },
    "prompt": {
        "sst2": (92.7, 0.9),
        "sst5": (47.4, 2.5),
        "mr": (87.0, 1.2),
        "cr": (90.3, 1.0),
        "mpqa": (84.7, 2.2),
        "subj": (91.2, 1.1),
        "trec": (84.8, 5.1),
        "cola": (9.3, 7.3),
        "mnli": (68.3, 2.3),
        "qnli": (64.5, 4.2),
        "rte": (69.1, 3.6),
        "mrpc": (74.5, 5.3),
        "qqp": (65.5, 5.3),
    },
    FULL_DATA: {
        "sst2": (95.0, None),
        "sst5": (58.7, None),
        "mr": (90.8, None),
        "cr": (89.4, None),
        "mpqa": (87.8, None),
        "subj": (97.0, None),
        "trec": (97.4, None),
        "cola": (62.6, None),
        "mnli": (89.8, None),
        "qnli": (93.3, None),
        "rte": (80.9, None),
        "mrpc": (91.4, None),
        "qqp": (81.7, None),
    },
}


def paper_number(method: str, task: str, metric: str) -> tuple[float, float | None] | None:
    """(mean, std) in percent of the paper's cell, or None where it has none in this metric."""
    if METRICS.get(task, "acc") != metric:
        return None
    return TABLE3.get(method, {}).get(task)
