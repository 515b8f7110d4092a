"""Which differences in a table column are significant: a paired test for every pair of rows
that stored predictions (``predictions/test.parquet``) on the same test examples.

The test: a two-level paired bootstrap of the difference in the mean metric over seeds.

- Level 1, the seeds: LM-BFF's seed draws the K-shot training split and the training
  randomness; it is the main source of spread (std 1-5 points in its Table 3), and both rows
  share it: resampling the shared seeds with replacement keeps each seed's pair together.
- Level 2, the test examples: within each drawn seed the test set is resampled with
  replacement, the same draw for both rows (paired), and both metrics are recomputed on it (so
  MCC, F1, Pearson and Spearman are covered, not only accuracy).

Why not one of the simpler tests: a bootstrap over test examples alone answers "is this model
better than that one on this test set", ignoring that another split and seed give another model:
with 872 SST-2 examples it would call a 2-point gap between two 5-point-wide spreads significant.
A t-test over the seeds' scores alone ignores the test sample, and with 5 seeds rests on
normality with 4 degrees of freedom. The two-level bootstrap (the hierarchical bootstrap, e.g.
Saravanan et al. 2020) carries both sources of variance. Its p-value is two-sided, from the
bootstrap distribution shifted to the null (Efron and Tibshirani 1993, section 16.4):
p = (1 + #{|d* - d| >= |d|}) / (1 + resamples). With S seeds, resampling S values
underestimates their variance by (S-1)/S, so significance.csv also gives the paired t-test over
the seeds (scipy) for comparison. A column's p-values are Holm-adjusted over its pairs; the
table marks a pair at adjusted p < 0.05.

A row that trains nothing and draws nothing (zero-shot: ``seed_free``) is one run that pairs
with every seed of the other row.
"""

from __future__ import annotations

import csv
import io
import string
from dataclasses import dataclass, field

import numpy as np

from fewtune.predictions.rescore import metric_value
from fewtune.predictions.store import Predictions, has_predictions, prefix_of, read_run

ALPHA = 0.05
RESAMPLES = 10_000
CHUNK = 500  # resamples drawn at a time: memory stays at CHUNK x test examples


@dataclass
class RowSeeds:
    """One table row's predictions in one column, by seed."""

    row: int  # index into table.rows
    by_seed: dict[int, Predictions]
    seed_free: bool

    def seeds(self, all_seeds: set[int]) -> set[int]:
        return set(all_seeds) if self.seed_free and len(self.by_seed) == 1 else set(self.by_seed)

    def at(self, seed: int) -> Predictions:
        return (
            next(iter(self.by_seed.values()))
            if self.seed_free and len(self.by_seed) == 1
            else self.by_seed[seed]
        )


@dataclass
class PairResult:
    task: str
    metric: str
    a: int  # row indices; the difference is a - b
    b: int
    seeds: list[int]
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    p_bootstrap: float
    p_ttest_seeds: float | None
    p_holm: float = 1.0

    @property
    def significant(self) -> bool:
        return self.p_holm < ALPHA


@dataclass
class Significance:
    """Every tested pair, and what the tables show of them."""

    pairs: list[PairResult]
    rows: list  # table.rows
    resamples: int
    letters: dict[int, str] = field(default_factory=dict)

    def __post_init__(self):
        # letters for the rows a mark names (beaten somewhere); significance.csv names the others too
        beaten = sorted(
            {p.b if p.diff > 0 else p.a for p in self.pairs if p.significant and p.diff != 0}
        )
        others = sorted(({p.a for p in self.pairs} | {p.b for p in self.pairs}) - set(beaten))
        self.letters = {row: _letter(n) for n, row in enumerate(beaten + others)}
        self.shown = set(beaten)

    def marks(self) -> dict[tuple[int, str], str]:
        """(row, task) -> the letters of the rows it is significantly better than in that column."""
        out: dict[tuple[int, str], str] = {}
        for pair in self.pairs:
            if pair.significant and pair.diff != 0:
                winner, loser = (pair.a, pair.b) if pair.diff > 0 else (pair.b, pair.a)
                out[(winner, pair.task)] = out.get((winner, pair.task), "") + self.letters[loser]
        return {key: "".join(sorted(value)) for key, value in out.items()}

    def marked_rows(
        self, text_rows: list[list[str]], tasks: list[str], style: str
    ) -> list[list[str]]:
        """The table's text rows with each tested row's letter and each cell's marks (markdown or latex)."""
        marks = self.marks()
        wrap = (lambda m: f"<sup>{m}</sup>") if style == "markdown" else (lambda m: f"$^{{{m}}}$")
        out = []
        for i, row in enumerate(text_rows):
            row = list(row)
            if i in self.shown:
                row[0] = f"({self.letters[i]}) {row[0]}"
            for j, task in enumerate(tasks):
                if (i, task) in marks:
                    row[3 + j] += wrap(marks[(i, task)])
            out.append(row)
        return out

    def caption(self) -> str:
        test = (
            f"paired two-level bootstrap over the shared seeds and the test examples, {self.resamples} resamples, "
            f"two-sided, Holm-adjusted over the column's pairs, p < {ALPHA}"
        )
        if not self.shown:
            return f"No two rows differ significantly in any column ({test}); every pair in significance.csv."
        return (
            f"A letter after a number: significantly better in that column than the row with that letter ({test}); "
            "every pair in significance.csv."
        )

    def csv(self) -> str:
        buf = io.StringIO()
        columns = ["task", "metric", "row_a", "method_a", "model_a", "k_a", "row_b", "method_b", "model_b", "k_b",
                   "seeds", "mean_a", "mean_b", "diff", "ci_low", "ci_high", "p_bootstrap", "p_holm",
                   "p_ttest_seeds", "significant"]  # fmt: skip
        writer = csv.writer(buf)
        writer.writerow(columns)
        for p in self.pairs:
            a, b = self.rows[p.a], self.rows[p.b]
            writer.writerow([
                p.task, p.metric, self.letters[p.a], a.method, a.model, a.k, self.letters[p.b], b.method, b.model, b.k,
                " ".join(map(str, p.seeds)), *(f"{v:.6g}" for v in (p.mean_a, p.mean_b, p.diff, p.ci_low, p.ci_high)),
                f"{p.p_bootstrap:.4g}", f"{p.p_holm:.4g}", "" if p.p_ttest_seeds is None else f"{p.p_ttest_seeds:.4g}",
                "yes" if p.significant else "no",
            ])  # fmt: skip
        return buf.getvalue()


def _letter(n: int) -> str:
    letters = string.ascii_lowercase
    return (
        letters[n]
        if n < len(letters)
        else letters[n // len(letters) - 1] + letters[n % len(letters)]
    )


def compare(table, chosen: dict, resamples: int = RESAMPLES, seed: int = 0) -> Significance | None:
    """Every pair of rows in every column of ``table`` (a fewtune.table.Table) whose chosen runs
    (``best_runs``: (method, model, k, task, seed) -> run) stored test predictions; None if no pair."""
    rng = np.random.default_rng(seed)
    pairs = []
    for task in table.tasks:
        column = _column(table, chosen, task)
        if len(column) >= 2:
            pairs += _holm(_column_pairs(task, column, resamples, rng))
    return Significance(pairs, table.rows, resamples) if pairs else None


def _column(table, chosen: dict, task: str) -> list[RowSeeds]:
    column = []
    for i, row in enumerate(table.rows):
        if row.paper:
            continue
        runs = {
            key[-1]: run
            for key, run in chosen.items()
            if key[:4] == (row.method, row.model, int(row.k), task)
        }
        by_seed = {seed: read_run(run.path, "test", prefix_of(run)) for seed, run in sorted(runs.items())
                   if has_predictions(run.path, "test", prefix_of(run))}  # fmt: skip
        if by_seed:
            column.append(RowSeeds(i, by_seed, all(run.seed_free for run in runs.values())))
    return column


def _column_pairs(task: str, column: list[RowSeeds], resamples: int, rng) -> list[PairResult]:
    all_seeds = {s for rs in column for s in rs.by_seed if not rs.seed_free}
    # Per seed, one resampling of the test examples, shared by every row: the pairs are paired.
    seeds = sorted(all_seeds or {s for rs in column for s in rs.by_seed})
    boot: dict[tuple[int, int], np.ndarray] = {}
    observed: dict[tuple[int, int], float] = {}
    for s in seeds:
        members = [rs for rs in column if s in rs.seeds(all_seeds)]
        reference = members[0].at(s)
        members = [rs for rs in members if _same_examples(rs.at(s), reference)]
        values = _bootstrap_metric([rs.at(s) for rs in members], resamples, rng)
        for rs, v in zip(members, values):
            boot[(rs.row, s)] = v
            observed[(rs.row, s)] = metric_value(rs.at(s))
    out = []
    for x in range(len(column)):
        for y in range(x + 1, len(column)):
            a, b = column[x].row, column[y].row
            shared = [s for s in seeds if (a, s) in boot and (b, s) in boot]
            if shared:
                metric = column[x].at(shared[0]).metric
                out.append(_pair_test(task, metric, a, b, shared, boot, observed, resamples, rng))
    return out


def _same_examples(p: Predictions, q: Predictions) -> bool:
    return (len(p.frame) == len(q.frame) and np.array_equal(p.frame["index"].to_numpy(), q.frame["index"].to_numpy())
            and np.array_equal(p.frame["gold"].to_numpy(), q.frame["gold"].to_numpy()))  # fmt: skip


def _pair_test(task, metric, a, b, seeds, boot, observed, resamples, rng) -> PairResult:
    from scipy import stats

    diffs = np.array([observed[(a, s)] - observed[(b, s)] for s in seeds])
    d = float(diffs.mean())
    per_seed = np.stack([boot[(a, s)] - boot[(b, s)] for s in seeds])  # [seeds, resamples]
    drawn = rng.integers(0, len(seeds), size=(resamples, len(seeds)))  # level 1: the seeds
    slots = np.stack(
        [rng.permutation(resamples) for _ in seeds], 1
    )  # each slot its own example draw
    star = per_seed[drawn, slots].mean(1)
    p = (1 + np.count_nonzero(np.abs(star - d) >= abs(d))) / (1 + resamples) if d != 0 else 1.0
    t = None
    if len(seeds) >= 2 and np.ptp(diffs) > 0:
        t = float(
            stats.ttest_rel(
                [observed[(a, s)] for s in seeds], [observed[(b, s)] for s in seeds]
            ).pvalue
        )
    return PairResult(
        task, metric, a, b, list(seeds),
        float(np.mean([observed[(a, s)] for s in seeds])), float(np.mean([observed[(b, s)] for s in seeds])), d,
        float(np.quantile(star, 0.025)), float(np.quantile(star, 0.975)), float(p), t,
    )  # fmt: skip


def _holm(pairs: list[PairResult]) -> list[PairResult]:
    """Holm's step-down adjustment of the column's bootstrap p-values."""
    order = sorted(range(len(pairs)), key=lambda i: pairs[i].p_bootstrap)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pairs) - rank) * pairs[i].p_bootstrap))
        pairs[i].p_holm = running
    return pairs


# --- the task's metric on resampled test sets -----------------------------------------------------


def _bootstrap_metric(predictions: list[Predictions], resamples: int, rng) -> list[np.ndarray]:
    """Each predictions' metric on the same ``resamples`` resamplings of the examples: [resamples] each."""
    n = len(predictions[0].frame)
    out = [[] for _ in predictions]
    for start in range(0, resamples, CHUNK):
        weights = rng.multinomial(n, np.full(n, 1 / n), size=min(CHUNK, resamples - start)).astype(
            np.float64
        )
        for values, p in zip(out, predictions):
            values.append(weighted_metric(p, weights))
    return [np.concatenate(v) for v in out]


def weighted_metric(p: Predictions, weights: np.ndarray) -> np.ndarray:
    """The metric with each example counted ``weights[r, i]`` times, for every row r of weights."""
    frame = p.frame
    if p.regression:
        x, y = frame["score"].to_numpy(np.float64), frame["gold"].to_numpy(np.float64)
        if p.metric == "spearman":
            x, y = _weighted_ranks(x, weights), _weighted_ranks(y, weights)
        return _weighted_pearson(x, y, weights)
    classes = len(p.labels)
    code = frame["gold"].to_numpy() * classes + frame["pred"].to_numpy()
    confusion = (weights @ np.eye(classes * classes)[code]).reshape(
        -1, classes, classes
    )  # [r, gold, pred]
    return confusion_metric(confusion, p.metric)


def confusion_metric(confusion: np.ndarray, metric: str) -> np.ndarray:
    """acc, mcc (multiclass, as torchmetrics) or f1 of class 1, from [r, gold, pred] counts."""
    total = confusion.sum((1, 2))
    correct = np.trace(confusion, axis1=1, axis2=2)
    if metric == "acc":
        return correct / total
    if metric == "f1":
        tp, predicted, actual = (
            confusion[:, 1, 1],
            confusion[:, :, 1].sum(1),
            confusion[:, 1, :].sum(1),
        )
        return np.divide(
            2 * tp, predicted + actual, out=np.zeros_like(tp), where=predicted + actual > 0
        )
    if metric == "mcc":
        pred_totals, true_totals = confusion.sum(1), confusion.sum(2)
        cov_ytyp = correct * total - (pred_totals * true_totals).sum(1)
        cov_ypyp = total**2 - (pred_totals**2).sum(1)
        cov_ytyt = total**2 - (true_totals**2).sum(1)
        denom = np.sqrt(cov_ytyt * cov_ypyp)
        return np.divide(cov_ytyp, denom, out=np.zeros_like(cov_ytyp), where=denom > 0)
    raise ValueError(f"no bootstrap for metric '{metric}'")


def _weighted_pearson(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """x, y: [n] or [r, n]; the correlation under each row of weights."""
    total = weights.sum(1, keepdims=True)
    mx = (weights * x).sum(1, keepdims=True) / total
    my = (weights * y).sum(1, keepdims=True) / total
    cov = (weights * (x - mx) * (y - my)).sum(1)
    vx, vy = (weights * (x - mx) ** 2).sum(1), (weights * (y - my) ** 2).sum(1)
    denom = np.sqrt(vx * vy)
    return np.divide(cov, denom, out=np.zeros_like(cov), where=denom > 0)


def _weighted_ranks(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[r, n]: each example's average rank (from 1) in the resampled multiset; ties share theirs."""
    values, inverse = np.unique(x, return_inverse=True)
    per_value = weights @ np.eye(len(values))[inverse]  # [r, distinct values]: copies of each
    below = np.cumsum(per_value, 1) - per_value
    return (below + (per_value + 1) / 2)[:, inverse]
