"""The notebooks' helpers: checked parameters, tables beside the paper's, and verdicts from the data.

Each notebook of the book (notebooks/NN_*.py) starts with `book.start(profile, dataset)`, asks
`experiment.run_all` for its study's rows, and turns them into one table and one figure with the
functions here, so that the notebooks stay a page of calls.

Conventions:
- the paper's tables are in percent; ours are fractions in the result rows and are shown in percent
  beside the paper's;
- tables use the test stage under the sampled protocol (1 positive + n negatives, the paper's), and
  mean and standard deviation over seeds;
- the average improvement is the paper's: the mean over metrics (and datasets) of the relative change
  against E4SRec* (our deepest E4SRec), in percent; `average_improvement` reproduces every value of the
  paper's column from its own table (tests/test_book.py);
- a claim "A scores above B" is judged on per-seed scores (the mean over metrics of the relative
  change against B's mean, in percent): it holds if the difference of means exceeds `K_SE` standard
  errors of that difference, does not hold if it is below minus that, and is otherwise inconclusive
  given the seed spread; with one seed a side there is no spread, so it is always inconclusive;
- an efficiency claim (a speed-up, a parameter share) is set against what the paper's figure means at
  our depths (scaled by the depth ratio: the paper's student has 1/8 of E4SRec*'s 32 layers) and holds
  within a relative tolerance `EFFICIENCY_TOLERANCE`.
"""

from __future__ import annotations

import math
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import paths, studies
from .profiles import Profile, get_profile

MAIN_METRICS = ("HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR")  # the paper's main-table metrics
SCAN_METRICS = ("HR@10", "NDCG@10", "MRR")  # the layer-scan figure's metrics
HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive given the seed spread"
NOT_MEASURED = "not measured"  # an efficiency claim without a timing benchmark where clocks are no measure
K_SE = 2.0  # standard errors a difference of means must exceed to decide a claim
EFFICIENCY_TOLERANCE = 0.2  # relative slack around the paper's efficiency figures (scaled to our depths)
PAPER_DEPTH, PAPER_SMALL = 32, 4  # the paper's E4SRec* and student depths


class BookError(ValueError):
    """A notebook parameter is wrong; the message names the known values."""


# ------------------------------------------------------------------------------------------ start
@dataclass(frozen=True)
class Book:
    """What a notebook runs on: the profile and dataset, and where its outputs go."""

    profile: Profile
    dataset: str

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def backbone(self) -> str:
        return self.profile.backbone

    @property
    def slug(self) -> str:
        """The dataset as a file-name part."""
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(self.dataset).name)

    def caption(self, what: str) -> str:
        """A figure title that says what produced it."""
        return f"{what}\nprofile {self.name}, dataset {self.dataset}, backbone {self.backbone}"

    def figure_path(self, name: str) -> Path:
        folder = paths.figures_dir(self.name)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{name}-{self.slug}.png"

    def results_path(self, name: str) -> Path:
        folder = paths.results_dir(self.name)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def label(self, template: str) -> str:
        """A study label with the profile's depths, e.g. "SLMRec_{small}<-{mid}" -> "SLMRec_4<-8"."""
        p = self.profile
        return template.format(depth=p.depth, mid=p.mid, small=p.small)


def known_datasets() -> list[str]:
    from .data import known_datasets as data_known

    return [d for d in data_known() if not d.startswith("<")]


def start(profile: str, dataset: str | None = None, quiet: bool = False) -> Book:
    """Check a notebook's parameters and say what it runs on; raise naming the known values if wrong."""
    if not isinstance(profile, str):
        raise BookError(f"profile must be a name (str), got {profile!r}")
    prof = get_profile(profile)  # ProfileError names the known profiles
    dataset = dataset or prof.datasets[0]
    if not isinstance(dataset, str):
        raise BookError(f"dataset must be a name or a file path (str), got {dataset!r}")
    is_file = Path(dataset).expanduser().is_file()
    if dataset not in prof.datasets and dataset not in known_datasets() and not is_file:
        raise BookError(
            f"unknown dataset {dataset!r}. Profile {prof.name!r} runs {', '.join(prof.datasets)}; other known "
            f"datasets: {', '.join(known_datasets())}; or give the path of an existing file."
        )
    book = Book(prof, dataset)
    # a deprecation notice transformers prints for every LoRA model built; says nothing about the runs
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    if not quiet:
        from .experiment import device_name, git_sha

        print(f"profile : {prof.description}\ndataset : {dataset}\nbackbone: {prof.backbone}\n"
              f"device  : {device_name()} (python {platform.python_version()}, git {git_sha()})\n"
              f"results : {paths.results_dir(prof.name)}\nfigures : {paths.figures_dir(prof.name)}")
    return book


# ------------------------------------------------------------------------------------------ paper
def paper(name: str) -> pd.DataFrame:
    """One of the paper's tables (paper/<name>.csv): main_table, efficiency, datasets, layer_scan_cloth."""
    path = paths.paper_dir() / f"{name}.csv"
    if not path.exists():
        known = sorted(p.stem for p in paths.paper_dir().glob("*.csv"))
        raise BookError(f"no paper table {name!r}; known: {', '.join(known)}")
    return pd.read_csv(path)


def paper_long() -> pd.DataFrame:
    """The paper's main table as rows (method, dataset, metric, value in percent)."""
    t = paper("main_table")
    return t.melt(id_vars=["method", "dataset"], value_vars=list(MAIN_METRICS), var_name="metric").dropna()


def paper_dataset_checks() -> pd.DataFrame:
    """The paper's dataset table with what its own counts imply: a 5-core set has >= 5 ratings a user
    and an item, and the printed density should be ratings / (users x items) up to rounding."""
    t = paper("datasets")
    ratings, users, items = t["ratings"], t["users"], t["items"]
    t["ratings_per_user"] = ratings / users
    t["ratings_per_item"] = ratings / items
    t["density_pct_recomputed"] = 100 * ratings / (users * items)
    density_ok = (t.density_pct_recomputed - t.density_pct).abs() <= 0.0005 + 0.05 * t.density_pct
    t["consistent"] = (t.ratings_per_user >= 5) & (t.ratings_per_item >= 5) & density_ok
    return t


# ------------------------------------------------------------------------------------------ our rows
def sampled_protocol(rows: pd.DataFrame) -> str:
    """The name of the sampled protocol in the rows (the paper's protocol)."""
    names = sorted(p for p in rows.protocol.unique() if str(p).startswith("sampled"))
    if not names:
        raise BookError(f"no sampled-protocol rows; protocols present: {sorted(rows.protocol.unique())}")
    return names[0]


def select(rows: pd.DataFrame, metrics=MAIN_METRICS, stage: str = "test", protocol: str | None = None) -> pd.DataFrame:
    """Rows of one stage and protocol (default: the sampled one) and the given metrics."""
    protocol = protocol or sampled_protocol(rows)
    return rows[(rows.stage == stage) & (rows.protocol == protocol) & rows.metric.isin(metrics)]


def order(rows: pd.DataFrame) -> list[str]:
    """Model labels in the order they first appear (the study's order)."""
    return list(dict.fromkeys(rows.model))


def mean_std(rows: pd.DataFrame, metrics=MAIN_METRICS, scale: float = 100.0, **kw) -> pd.DataFrame:
    """Per model: mean and std over seeds of each metric (x scale), and the number of seeds.

    Columns are a MultiIndex (statistic, metric) with statistic in mean / std; plus ("seeds", "") and
    ("users", ""), the most test users a seed of the model was evaluated on (a profile may score a slow
    model, P5, on a seeded user subset).
    """
    r = select(rows, metrics, **kw)
    g = r.groupby(["model", "metric"])["value"]
    stats = pd.DataFrame({"mean": g.mean() * scale, "std": g.std() * scale}).unstack("metric")
    stats = stats.reindex(columns=pd.MultiIndex.from_product([["mean", "std"], list(metrics)], names=[None, "metric"]))
    stats[("seeds", "")] = r.groupby("model")["seed"].nunique()
    stats[("users", "")] = r.groupby("model")["n_users"].max()
    return stats.reindex([m for m in order(rows) if m in stats.index])


def average_improvement(long: pd.DataFrame, reference: str, model_col: str = "model") -> pd.Series:
    """The paper's average improvement (percent) of every model over `reference`.

    `long`: rows with columns model_col, metric, value (and optionally dataset). For each (dataset,
    metric) the relative change against the reference's value there; averaged over all of them.
    """
    keys = ["dataset", "metric"] if "dataset" in long.columns else ["metric"]
    ref = long[long[model_col] == reference].set_index(keys)["value"]
    if ref.empty:
        raise BookError(f"reference {reference!r} is not among the models: {sorted(long[model_col].unique())}")
    joined = long.join(ref.rename("ref"), on=keys)
    rel = 100 * (joined["value"] / joined["ref"] - 1)
    return rel.groupby(joined[model_col], sort=False).mean()


def paper_values(book: Book, labels: list[str], metrics=MAIN_METRICS) -> pd.DataFrame:
    """The paper's numbers of our labels' rows: index label, columns (f"paper {dataset}", metric)."""
    pl = paper_long()
    mapping = {lab: studies.paper_row(lab, book.name) for lab in labels}
    frames = {}
    for ds, part in pl.groupby("dataset", sort=False):
        wide = part.pivot(index="method", columns="metric", values="value").reindex(columns=list(metrics))
        frames[f"paper {ds}"] = wide.reindex([mapping[lab] for lab in labels]).set_axis(labels)
    return pd.concat(frames, axis=1)


# ------------------------------------------------------------------------------------------ tables
def main_table(rows: pd.DataFrame, book: Book, reference: str = "E4SRec_{depth}") -> pd.DataFrame:
    """Our mean and std (percent) of each metric, the average improvement over `reference` (a label
    template resolved by `find_label`; the paper's is E4SRec*), the paper's row each label plays, and
    the paper's numbers and average improvement (over the paper's row of `reference`) beside.
    `table.attrs["reference"]` names the reference."""
    ours = mean_std(rows)
    ref = find_label(book.label(reference), set(ours.index)) or book.label(reference)
    means = ours["mean"].stack().rename("value").reset_index()  # columns model, metric, value
    ours[("avg improvement %", "")] = average_improvement(means, ref)
    labels = list(ours.index)
    rows_paper = [studies.paper_row(lab, book.name) for lab in labels]
    ref_paper = studies.paper_row(ref, book.name)
    paper_avg = average_improvement(paper_long(), ref_paper, "method") if ref_paper else pd.Series(dtype=float)
    ours[("paper row", "")] = rows_paper
    ours[("paper avg improvement %", "")] = [paper_avg.get(r, np.nan) if r else np.nan for r in rows_paper]
    table = pd.concat([ours, paper_values(book, labels)], axis=1).reindex(labels).rename_axis("model")
    table.attrs["reference"] = f"{ref} (paper: {ref_paper or 'no row'})"
    return table


def formatted(table: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """A `main_table` for reading: ours as "mean ± std" per metric, the paper's datasets as "a / b"."""
    papers = [f"paper {d}" for d in paper("main_table").dataset.unique()]
    fmt = lambda v: "" if v != v else f"{v:.{digits}f}"  # noqa: E731 (nan -> "")
    paper_head = "paper " + " / ".join(p[len("paper "):] for p in papers)
    cols = {}
    for m in table["mean"].columns:
        pairs = zip(table[("mean", m)], table[("std", m)])
        cols[(m, "ours")] = [fmt(a) + ("" if b != b else f" ± {fmt(b)}") for a, b in pairs]
        cells = zip(*(table[(p, m)] for p in papers))
        cols[(m, paper_head)] = ["" if all(v != v for v in vs) else " / ".join(map(fmt, vs)) for vs in cells]
    for col in ("seeds", "users", "avg improvement %", "paper row", "paper avg improvement %"):
        cols[(col, "")] = table[(col, "")].map(lambda v: fmt(v) if isinstance(v, float) else v)
    return pd.DataFrame(cols, index=table.index)


def layer_scan_table(rows: pd.DataFrame, book: Book) -> pd.DataFrame:
    """E4SRec_k over k (fractions): ours, SASRec's, and the paper's Cloth scan at the matching depth."""
    r = select(rows, SCAN_METRICS)
    e4 = r[r.model.str.startswith("E4SRec_")]
    ours = e4.groupby(["layers", "metric"])["value"].mean().unstack("metric")[list(SCAN_METRICS)]
    sas = r[r.model == "SASRec"].groupby("metric")["value"].mean()
    for m in SCAN_METRICS:
        ours[f"SASRec {m}"] = sas.get(m, np.nan)
    ours.index = ours.index.astype(int)
    scan = paper("layer_scan_cloth").set_index("layers")
    # the same k where the paper scanned it; our deepest model plays the paper's 32 layers otherwise
    ours["paper layers"] = [k if k in scan.index else PAPER_DEPTH if k == book.profile.depth else np.nan
                            for k in ours.index]
    paper_rows = scan.reindex(ours["paper layers"])
    for m in SCAN_METRICS:
        ours[f"paper Cloth {m}"] = paper_rows[m].to_numpy()
    return ours


def run_studies(book: Book, names=("layer_scan", "main_table", "ablation", "online_kd", "block_count"),
                with_p5: bool = True) -> pd.DataFrame:
    """The rows of several studies (each run once, however many studies share it)."""
    from .experiment import run_all

    cfgs = []
    for name in names:
        cfgs += (studies.main_table(book.name, book.dataset, with_p5=with_p5) if name == "main_table"
                 else studies.study(name, book.name, book.dataset))
    unique = list({(c.hash, c.label): c for c in cfgs}.values())
    return run_all(unique, book.name)


def impossible_blocks(book: Book) -> str:
    """The block counts b of the profile that cannot be used: b blocks need at least b student layers."""
    p = book.profile
    bad = [b for b in p.block_counts if b > p.small]
    if not bad:
        return f"every b in {list(p.block_counts)} fits the {p.small}-layer student."
    return (f"b = {', '.join(map(str, bad))} > {p.small} student layers is impossible: each block needs at least "
            "one student layer (the authors' block ends (N // b) * i would all be the embeddings); not run.")


def dataset_table(book: Book) -> pd.DataFrame:
    """The paper's dataset-table row of each of the profile's datasets (and of the full set where the
    profile keeps a user subset)."""
    from .data import dataset_stats
    from .experiment import DataConfig, get_data

    names = list(dict.fromkeys([book.dataset, *book.profile.datasets]))
    out = []
    for name in names:
        cfg = studies.data(book.profile, name)
        out.append(dict(dataset_stats(get_data(cfg)), used_by_profile="user subset" if cfg.max_users else "all users"))
        if cfg.max_users:
            out.append(dict(dataset_stats(get_data(DataConfig(name))), used_by_profile="full set (for reference)"))
    return pd.DataFrame(out)


def sequence_lengths(book: Book) -> pd.DataFrame:
    """One row a user: dataset and sequence length, for the profile's datasets as used."""
    from .experiment import get_data

    names = list(dict.fromkeys([book.dataset, *book.profile.datasets]))
    parts = [pd.DataFrame({"dataset": n, "length": [len(s) for s in get_data(studies.data(book.profile, n)).sequences]})
             for n in names]
    return pd.concat(parts, ignore_index=True)


def efficiency_table(rows: pd.DataFrame, book: Book) -> pd.DataFrame:
    """Per model, from the result rows (mean over seeds): training seconds and ms per step, evaluation ms
    per user, trainable and inference parameters; the paper's RQ2 row beside where one maps."""
    r = rows.drop_duplicates("config_hash")
    r = r.assign(train_ms_per_step=1000 * r.train_seconds / r.steps.where(r.steps > 0),
                 eval_ms_per_user=1000 * r.eval_seconds_per_user)
    cols = ["train_seconds", "steps", "train_ms_per_step", "eval_ms_per_user", "train_params", "inference_params"]
    out = r.groupby("model", sort=False)[cols].mean()
    out["paper row"] = [studies.paper_row(m, book.name) for m in out.index]
    eff = paper("efficiency").set_index("method").add_prefix("paper ")
    return out.join(eff, on="paper row")


# ------------------------------------------------------------------------------------------ verdicts
@dataclass(frozen=True)
class Verdict:
    result: str  # HOLDS, FAILS or INCONCLUSIVE
    diff: float  # mean(a) - mean(b)
    se: float  # standard error of that difference (nan with one seed a side)
    n_a: int
    n_b: int

    def __str__(self) -> str:
        spread = f"+- {self.se:.2f} (s.e.)" if self.se == self.se else "(one seed: no spread)"
        return f"{self.result}: difference {self.diff:+.2f} {spread}, seeds {self.n_a} vs {self.n_b}"


def verdict(a, b, k: float = K_SE) -> Verdict:
    """Does A score above B? Per-seed values of each side; see the module docstring for the rule."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0:
        raise BookError("verdict needs at least one value a side")
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return Verdict(INCONCLUSIVE, diff, float("nan"), len(a), len(b))
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    result = HOLDS if diff > k * se else FAILS if diff < -k * se else INCONCLUSIVE
    return Verdict(result, diff, se, len(a), len(b))


def seed_scores(rows: pd.DataFrame, model: str, reference: str, metrics=MAIN_METRICS) -> np.ndarray:
    """Per seed of `model`: mean over metrics of the relative change (percent) against `reference`'s
    mean over seeds. A metric where the reference scores 0 (a weak model's HR@1 on few users) has no
    relative change and is left out."""
    r = select(rows, metrics)
    ref = r[r.model == reference].groupby("metric")["value"].mean()
    mine = r[r.model == model]
    if mine.empty or ref.empty:
        raise BookError(f"no test rows of {model if mine.empty else reference!r}")
    ref = ref[ref > 0]
    if ref.empty:
        raise BookError(f"{reference!r} scores 0 on every metric: no relative change can be taken against it")
    mine = mine[mine.metric.isin(ref.index)]
    rel = 100 * (mine["value"] / mine["metric"].map(ref) - 1)
    return rel.groupby(mine["seed"]).mean().to_numpy()


@dataclass(frozen=True)
class Claim:
    rq: str  # the paper's research question
    text: str  # the claim, with our labels' roles: "{better}" should score above "{worse}"
    better: str  # label template of the side that should be better, e.g. "SLMRec_{small}<-{mid}"
    worse: str  # label template of the other side
    paper_says: str = ""  # the paper's evidence where its tables hold none (otherwise computed)


@dataclass(frozen=True)
class EfficiencyClaim:
    rq: str
    text: str
    measure: str  # "inference", "train" (speed-ups, higher is better) or "params" (share, lower is better)
    paper_value: float  # 8.0 (x), 6.6 (x), 0.13 (share)


_FULL = "SLMRec_{small}<-{mid} +D_norm +L_ms"
CLAIMS = (
    Claim("RQ1", "the distilled 4-layer student with D_cos + D_norm + L_ms matches or beats E4SRec*", _FULL,
          "E4SRec_{depth}"),
    Claim("RQ1", "depth helps E4SRec: E4SRec* beats E4SRec_4", "E4SRec_{depth}", "E4SRec_{small}"),
    Claim("RQ1", "distillation helps a 4-layer model: SLMRec_4<-8 beats E4SRec_4", "SLMRec_{small}<-{mid}",
          "E4SRec_{small}"),
    Claim("RQ1", "the LLM recommender beats SASRec", "E4SRec_{depth}", "SASRec"),
    Claim("RQ1", "the LLM recommender beats the generative P5 on the same backbone", "E4SRec_{depth}", "P5_{depth}"),
    Claim("RQ3", "D_norm helps: + D_norm beats D_cos alone", "SLMRec_{small}<-{mid} +D_norm", "SLMRec_{small}<-{mid}"),
    Claim("RQ3", "L_ms helps: + L_ms beats D_cos alone", "SLMRec_{small}<-{mid} +L_ms", "SLMRec_{small}<-{mid}"),
    Claim("RQ3", "both terms together beat D_cos alone", _FULL, "SLMRec_{small}<-{mid}"),
    Claim("RQ4", "offline distillation (teacher trained first) beats online", _FULL, _FULL + " mode=online",
          "the paper trains the teacher first and reports that this works"),
    # any SLMRec_{small}<-{mid} variant with that b (b = 1 has no L_ms: its heads need b >= 2)
    Claim("RQ5", "b = 4 blocks beats b = 1", "SLMRec_{small}<-{mid} blocks=4", "SLMRec_{small}<-{mid} blocks=1",
          "b = 4 best, b = 1, 2 worse"),
    Claim("RQ5", "b = 4 blocks beats b = 2", "SLMRec_{small}<-{mid} blocks=4", "SLMRec_{small}<-{mid} blocks=2",
          "b = 4 best, b = 1, 2 worse"),
)
EFFICIENCY_CLAIMS = (
    EfficiencyClaim("RQ2", "the student infers faster than E4SRec* (paper: 8.0x)", "inference", 8.0),
    EfficiencyClaim("RQ2", "the student trains faster than E4SRec* (paper: 6.6x)", "train", 6.6),
    EfficiencyClaim("RQ2", "the student uses a small share of E4SRec*'s parameters (paper: 13%)", "params", 0.13),
)


def find_label(label: str, present) -> str | None:
    """`label` if present; else, for a label with settings ("SLMRec_4<-8 blocks=1"), the one present
    label of the same model with those settings, whatever its loss terms; else None."""
    if label in present:
        return label
    head, *rest = label.split()
    settings = {t for t in rest if "=" in t}
    if not settings:
        return None
    found = [p for p in present if p.split()[0] == head and settings <= set(p.split())]
    return found[0] if len(found) == 1 else None


def _paper_evidence(claim: Claim, book: Book) -> str:
    better = studies.paper_row(book.label(claim.better), book.name)
    worse = studies.paper_row(book.label(claim.worse), book.name)
    if claim.paper_says or not better or not worse:
        return claim.paper_says
    avg = average_improvement(paper_long(), worse, model_col="method")
    return f"{better} vs {worse}: {avg[better]:+.2f}% on average"


def judge_claims(rows: pd.DataFrame, book: Book, rq: str | None = None) -> pd.DataFrame:
    """A verdict for every accuracy claim whose two sides are in `rows` (optionally of one RQ)."""
    present = set(rows.model)
    out = []
    for c in CLAIMS:
        a, b = find_label(book.label(c.better), present), find_label(book.label(c.worse), present)
        if (rq and c.rq != rq) or a is None or b is None:
            continue
        v = verdict(seed_scores(rows, a, b), seed_scores(rows, b, b))
        out.append(dict(rq=c.rq, claim=c.text, ours=f"{a} vs {b}: {v.diff:+.2f}% on average",
                        paper=_paper_evidence(c, book), verdict=v.result, detail=str(v)))
    return pd.DataFrame(out, columns=["rq", "claim", "ours", "paper", "verdict", "detail"])


def _expected(claim: EfficiencyClaim, prof: Profile) -> float:
    """The paper's figure at our depths (the paper's student has PAPER_SMALL of PAPER_DEPTH layers)."""
    scale = (prof.depth / prof.small) / (PAPER_DEPTH / PAPER_SMALL)
    return claim.paper_value / scale if claim.measure == "params" else claim.paper_value * scale


def efficiency_measures(rows: pd.DataFrame, book: Book, timing: pd.DataFrame | None = None) -> dict[str, float]:
    """Our student-vs-E4SRec* ratios: inference and training speed-ups and the inference-parameter share.

    The speed-ups come from the timing benchmark where given. Without it they come from the runs' own
    clocks, except where those are no measure: a profile that trains on a GPU (its runs may have shared
    the device with other runs, `run --workers`; the issue asks for a synchronised benchmark there) or
    rows that record sharing (`runs_per_device` above 1)."""
    from .timing import summary

    deep, student = book.label("E4SRec_{depth}"), book.label("SLMRec_{small}<-{mid}")
    eff = efficiency_table(rows, book) if not rows.empty else pd.DataFrame()
    shared = "runs_per_device" in rows.columns and (rows.runs_per_device.fillna(1) > 1).any()
    out = {}
    if timing is not None and not timing.empty:
        s = summary(timing).set_index("model")
        out["inference"] = s.loc[student, "inference_speedup"]
        out["train"] = s.loc[student, "train_speedup"]
    elif {deep, student} <= set(eff.index) and not book.profile.gpu_required and not shared:
        out["inference"] = eff.loc[deep, "eval_ms_per_user"] / eff.loc[student, "eval_ms_per_user"]
        out["train"] = eff.loc[deep, "train_ms_per_step"] / eff.loc[student, "train_ms_per_step"]
    if {deep, student} <= set(eff.index):
        out["params"] = eff.loc[student, "inference_params"] / eff.loc[deep, "inference_params"]
    return out


def judge_efficiency(rows: pd.DataFrame, book: Book, timing: pd.DataFrame | None = None) -> pd.DataFrame:
    """A verdict for each RQ2 claim: ours against the paper's figure scaled to our depths."""
    ours = efficiency_measures(rows, book, timing)
    out = []
    for c in EFFICIENCY_CLAIMS:
        if c.measure not in ours:
            if c.measure != "params" and "params" in ours:  # the runs exist, the speed was not measured
                out.append(dict(rq=c.rq, claim=c.text, ours="not timed on this dataset (no timing benchmark)",
                                paper=f"{c.paper_value:g}x", verdict=NOT_MEASURED,
                                detail="python -m slmrec_lib.timing measures it"))
            continue
        value, expected = ours[c.measure], _expected(c, book.profile)
        if c.measure == "params":
            ok = value <= expected * (1 + EFFICIENCY_TOLERANCE)
            shown = f"{100 * value:.1f}% (expected at our depths: {100 * expected:.1f}%)"
        else:
            ok = value >= expected * (1 - EFFICIENCY_TOLERANCE)
            shown = f"{value:.2f}x (expected at our depths: {expected:.2f}x)"
        paper_shown = f"{c.paper_value:.0%}" if c.measure == "params" else f"{c.paper_value:g}x"
        depths = f"depths {book.profile.depth} -> {book.profile.small}"
        out.append(dict(rq=c.rq, claim=c.text, ours=shown, paper=paper_shown, verdict=HOLDS if ok else FAILS,
                        detail=f"tolerance {EFFICIENCY_TOLERANCE:.0%}; {depths}"))
    return pd.DataFrame(out, columns=["rq", "claim", "ours", "paper", "verdict", "detail"])


def judge_all(rows: pd.DataFrame, book: Book, timing: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every accuracy and efficiency claim that the rows (and the timing benchmark, if any) can judge."""
    return pd.concat([judge_claims(rows, book), judge_efficiency(rows, book, timing)], ignore_index=True)


def findings(claims: pd.DataFrame) -> str:
    """The verdicts as sentences, for a notebook's closing cell."""
    if claims.empty:
        return "No claim of the paper can be judged from these rows (a side of each comparison is missing)."
    return "\n".join(f"- [{r.rq}] {r.claim}: {r.verdict.upper()} ({r.ours}; paper: {r.paper or 'n/a'})"
                     for r in claims.itertuples())


def scan_findings(table: pd.DataFrame, metric: str = "MRR") -> str:
    """What the layer scan shows: the best depth, the deepest against the shallowest and SASRec."""
    col = table[metric]
    best, deepest, shallowest = int(col.idxmax()), int(col.index.max()), int(col.index.min())
    sas = table[f"SASRec {metric}"].iloc[0]
    lines = [f"- {metric} is highest at {best} layer(s) ({col.max():.4f}); {deepest} layers: {col[deepest]:.4f}, "
             f"{shallowest} layer(s): {col[shallowest]:.4f}; SASRec: {sas:.4f}.",
             f"- the deepest E4SRec is {'above' if col[deepest] > sas else 'not above'} SASRec on {metric}; "
             "one seed, so differences of the size of a seed's spread are not findings."]
    return "\n".join(lines)


def dataset_findings(book: Book) -> str:
    checks = paper_dataset_checks()
    bad = checks[~checks.consistent]
    lines = [f"- the paper's {r.dataset} row is inconsistent: {r.ratings_per_user:.2f} ratings a user, "
             f"{r.ratings_per_item:.1f} an item, density {r.density_pct_recomputed:.4f}% from its counts vs "
             f"{r.density_pct}% printed" for r in bad.itertuples()]
    ours = dataset_table(book).iloc[0]
    lines.append(f"- {ours['dataset']} as used here: {ours['users']} users, {ours['items']} items, "
                 f"{ours['interactions']} interactions, median length {ours['len_p50']:.0f}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ report
def comparison_table(rows: pd.DataFrame, book: Book) -> pd.DataFrame:
    """Every row of ours that plays a row of the paper's main table, in the paper's order, with both
    sets of numbers (percent)."""
    t = main_table(rows, book)
    t = t[t[("paper row", "")].notna()]
    rank = {m: i for i, m in enumerate(paper("main_table").method.drop_duplicates())}
    return t.iloc[np.argsort([rank[r] for r in t[("paper row", "")]], kind="stable")]


def markdown_table(frame: pd.DataFrame, digits: int = 2) -> str:
    """A pipe table of a frame (flattened column names), without extra dependencies."""
    f = frame if isinstance(frame.index, pd.RangeIndex) else frame.reset_index()
    cols = [" ".join(str(x) for x in c if str(x)) if isinstance(c, tuple) else str(c) for c in f.columns]

    def cell(v):
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.{digits}f}"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in f.itertuples(index=False)]
    return "\n".join(lines)


def write_report(book: Book, comparison: pd.DataFrame, claims: pd.DataFrame,
                 missing: list[dict] | None = None) -> tuple[Path, Path]:
    """results/<profile>/report.csv (one row a claim) and report.md (the claims, the comparison and the
    runs of the profile not yet made, `missing` as in `experiment.run_all`'s rows.attrs["missing"]).
    For a dataset other than the profile's first the names carry it: report-<dataset>.csv / .md."""
    from .experiment import atomic_write_text, git_sha

    stem = "report" if book.dataset == book.profile.datasets[0] else f"report-{book.slug}"
    csv_path, md_path = book.results_path(f"{stem}.csv"), book.results_path(f"{stem}.md")
    atomic_write_text(claims.assign(profile=book.name, dataset=book.dataset).to_csv(index=False), csv_path)
    counts = claims.verdict.value_counts()
    md = [f"## Results of the `{book.name}` profile ({book.dataset}, backbone {book.backbone})", "",
          f"{book.profile.description}. Git {git_sha()}. Written by notebooks/07_report.",
          "Ours: test stage, sampled protocol, percent, mean ± std over seeds; the paper's Cloth / Movie beside. " + ", ".join(
              f"{counts.get(v, 0)} {v}" for v in (HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURED)
              if v != NOT_MEASURED or counts.get(v)) + ".", "",
          "### The paper's claims", "", markdown_table(claims.drop(columns=["detail"])), "",
          "### Our numbers beside the paper's", "", markdown_table(formatted(comparison)), ""]
    if missing:
        gone = pd.DataFrame(missing).groupby(["label", "dataset"]).seed.agg(lambda s: ", ".join(map(str, sorted(s))))
        md += [f"### Not run yet ({len(missing)} runs)", "",
               "These runs of the profile have no saved result; the tables and verdicts above leave them out.", "",
               markdown_table(gone.rename("seeds").reset_index()), ""]
    atomic_write_text("\n".join(md), md_path)
    return csv_path, md_path
