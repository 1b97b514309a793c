"""Markdown tables of a profile's saved runs for the README: every model, mean ± std over seeds,
the sampled protocol's HR@1 / HR@10 / NDCG@10 / MRR and full ranking's HR@10 / NDCG@10 (test stage,
percent).

    python -m slmrec_lib.tables --profile gpu --dataset beauty sports
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from . import experiment, studies

METRICS = (("sampled", "HR@1"), ("sampled", "HR@10"), ("sampled", "NDCG@10"), ("sampled", "MRR"),
           ("full", "HR@10"), ("full", "NDCG@10"))


def model_order(profile: str, dataset: str) -> list[str]:
    """The labels in the studies' order, the item table after SASRec."""
    by_label = {c.label: c.model for n in studies.STUDIES for c in studies.study(n, profile, dataset)}
    kinds = ("popularity", "gru4rec", "bert4rec", "sasrec", "e4srec", "slmrec", "p5")  # the paper's row order
    labels = sorted(by_label, key=lambda lab: (kinds.index(by_label[lab].kind),  # E4SRec by depth, else as planned
                                               (by_label[lab].layers or 0) if by_label[lab].kind == "e4srec" else 0))
    if "SASRec" in labels:
        labels.insert(labels.index("SASRec") + 1, "SASRec item table")
    return labels


def markdown(rows: pd.DataFrame, order: list[str]) -> str:
    """One line a model of `rows` (one dataset's), in `order` (others after)."""
    from .book import markdown_table

    kind = rows.protocol.str.split("-").str[0]  # "sampled-999-seed0" -> "sampled"
    stats = experiment.summarize(rows.assign(protocol=kind), by=("model",))
    stats["cell"] = [f"{100 * m:.2f}" + ("" if sd != sd else f" ± {100 * sd:.2f}")
                     for m, sd in zip(stats["mean"], stats["std"])]
    wide = stats.pivot(index="model", columns=["protocol", "metric"], values="cell")
    models = [m for m in order if m in set(rows.model)] + sorted(set(rows.model) - set(order))
    table = pd.DataFrame(index=pd.Index(models, name="model"))
    test = rows[rows.stage == "test"].groupby("model")
    table["seeds"], table["users"] = test.seed.nunique(), test.n_users.max()
    for protocol, metric in METRICS:
        column = wide[(protocol, metric)] if (protocol, metric) in wide.columns else pd.Series(dtype=str)
        table[("" if protocol == "sampled" else "full ") + metric] = column.reindex(models).fillna("")
    return markdown_table(table.reset_index())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--dataset", nargs="+", required=True)
    args = parser.parse_args(argv)
    rows = experiment.collect(args.profile)
    if rows.empty:
        print(f"error: no saved runs of profile {args.profile!r}", file=sys.stderr)
        return 2
    for dataset in args.dataset:
        part = rows[rows.dataset == dataset]
        if part.empty:
            print(f"error: no saved runs of {dataset!r} in profile {args.profile!r}", file=sys.stderr)
            return 2
        print(f"\n{dataset}\n\n{markdown(part, model_order(args.profile, dataset))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
