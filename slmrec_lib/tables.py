"""Markdown tables of a profile's saved runs for the README (the runs its studies plan, selected by
config, so runs of other settings that share a label are never mixed in): every model, mean ± std over seeds,
the sampled protocol's HR@1 / HR@10 / NDCG@10 / MRR and full ranking's HR@10 / NDCG@10 (test stage,
percent).

    python -m slmrec_lib.tables --profile gpu --dataset beauty sports
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from . import config, experiment, studies

METRICS = (("sampled", "HR@1"), ("sampled", "HR@10"), ("sampled", "NDCG@10"), ("sampled", "MRR"),
           ("full", "HR@10"), ("full", "NDCG@10"))


def planned_runs(profile: str, dataset: str) -> list:
    """The runs of every study of the profile on `dataset` and their dependencies (the item table), in
    the paper's row order: baselines, E4SRec by depth, SLMRec as planned, P5."""
    cfgs = {}
    for name in studies.PAPER_STUDIES:
        for cfg in studies.study(name, profile, dataset):
            for c in [*config.dependencies(cfg), cfg]:
                cfgs.setdefault(c.hash, c)  # a run that is also the item table (cpu profile) is shown as that
    order = ("popularity", "gru4rec", "bert4rec", "sasrec", "e4srec", "slmrec", "p5")
    ranked = sorted(enumerate(cfgs.values()), key=lambda ic: (
        order.index(ic[1].model.kind), ic[1].role != "", ic[1].model.layers or 0 if ic[1].model.kind == "e4srec" else 0,
        ic[0]))
    return [c for _, c in ranked]


def saved_rows(cfgs: list, profile: str) -> pd.DataFrame:
    """The rows of the finished runs among `cfgs` (nothing is trained), each under its config's label."""
    frames = [experiment.run(c, profile) for c in cfgs if experiment.is_done(c, profile)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


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
    for dataset in args.dataset:
        cfgs = planned_runs(args.profile, dataset)
        rows = saved_rows(cfgs, args.profile)
        if rows.empty:
            print(f"error: no saved runs of {dataset!r} in profile {args.profile!r}", file=sys.stderr)
            return 2
        print(f"\n{dataset}\n\n{markdown(rows, list(dict.fromkeys(c.label for c in cfgs)))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
