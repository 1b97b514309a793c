"""RQ2 at the paper's scale: the committed H200 measurements at Llama-2-7B's shape beside
the SmolLM2 timing, read into tables, verdicts, computed sentences, a figure and the report's section.

The files (results/<profile>/, written on a GPU machine; the `gpu` profile holds the committed ones):
- `timing_paper_shape.csv` and `timing_paper_shape_repeat.csv`: two measurements, minutes apart on the
  same machine with the same settings, of `python -m slmrec_lib.timing --profile gpu --dataset beauty
  --scale paper-shape --force` (E4SRec_32 / 8 / 4 and SLMRec_4<-8 with the live teacher and with the
  teacher-state cache, random bf16 weights; inference ms a user at batch 256, train ms a step of 32
  rows, parameter counts, the cache's one-off pass `prepare_s`);
- `paper_profile_7b.csv` and `paper_profile_7b_hours.csv`: `benchmarks/bench_paper_profile.py`, the
  paper profile through the runner at `llama2-7b-shape:0:bf16` for a few optimizer steps of 32 rows x 8
  accumulated (step ms, peak GPU memory), and hour estimates for Amazon 2018 Clothing and Movies;
- `teacher_cache.csv` (`benchmarks/bench_teacher_cache.py`) and `scoring.csv` (`benchmarks/bench_scoring.py`).

Statistics: medians over repeats (the timing module's `summary`); the two paper-shape measurements are
shown apart and pooled (the median over both measurements' repeats), the spread stated as the range of
the two measurements' medians. A verdict at the paper's shape sets the ratio against the paper's figure
as printed (the depths are the paper's 32 -> 4), within `claims.EFFICIENCY_TOLERANCE`. The teacher-cache
target: the student's training speed-up over E4SRec_32 with the cache reaches at least
`CACHE_TARGET` of the per-step layer ratio (E4SRec_32 step / E4SRec_4 step), judged in each measurement.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .. import paths
from ..stats import FAILS, HOLDS
from .claims import EFFICIENCY_CLAIMS, EFFICIENCY_TOLERANCE, judge_efficiency
from .context import Book
from .paper import PAPER_DEPTH, PAPER_MID, PAPER_SMALL, paper
from .tables import markdown_table

MEASUREMENTS = {"first": "timing_paper_shape.csv", "repeat": "timing_paper_shape_repeat.csv"}
PROFILE_RUN, PROFILE_HOURS = "paper_profile_7b.csv", "paper_profile_7b_hours.csv"
TEACHER_CACHE, SCORING = "teacher_cache.csv", "scoring.csv"
TIMING_COMMAND = "python -m slmrec_lib.timing --profile gpu --dataset beauty --scale paper-shape --force"
PROFILE_COMMAND = "python benchmarks/bench_paper_profile.py --scratch /tmp/paper7b"
CACHE_TARGET = 0.9  # the cached student's training speed-up / the per-step layer ratio
DEEP, MID, SMALL = f"E4SRec_{PAPER_DEPTH}", f"E4SRec_{PAPER_MID}", f"E4SRec_{PAPER_SMALL}"
STUDENT = f"SLMRec_{PAPER_SMALL}<-{PAPER_MID}"
# an earlier standalone measurement on an H200 at this shape (a plain script, not the library's classes;
# LoRA r16 on gate/up/down, 95 positions):
# ms per 256 users, ms a train step of 32 rows, inference parameters in billions
REFERENCE = {"inference ms / 256 users": {DEEP: 945.7, MID: 237.9, SMALL: 118.6},
             "train ms / step": {DEEP: 270.5, MID: 67.2, SMALL: 34.2, STUDENT: 66.0},
             "inference params (B)": {DEEP: 6.608, SMALL: 0.942}}
REFERENCE_USERS = 256


class EfficiencyFilesMissing(FileNotFoundError):
    """A measurement file is missing; the message names the file and the command that writes it."""


def folder(profile: str = "gpu", where: Path | None = None) -> Path:
    return paths.results_dir(profile) if where is None else Path(where)


# ------------------------------------------------------------------------------------------ loading
def load_paper_shape(profile: str = "gpu", where: Path | None = None) -> pd.DataFrame:
    """Both paper-shape measurements as one frame with a `measurement` column ("first", "repeat"); a
    missing second measurement is left out, a missing first one raises naming the command."""
    base = folder(profile, where)
    frames = []
    for name, file in MEASUREMENTS.items():
        path = base / file
        if path.exists():
            frames.append(pd.read_csv(path).assign(measurement=name))
        elif name == "first":
            raise EfficiencyFilesMissing(f"no {path}: the paper-shape timing has not been run for profile "
                                         f"{profile!r}. On a GPU machine: {TIMING_COMMAND}")
    return pd.concat(frames, ignore_index=True)


def load_paper_profile(profile: str = "gpu", where: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The bounded paper-profile run (one row a model) and its hour estimates."""
    base = folder(profile, where)
    out = []
    for file in (PROFILE_RUN, PROFILE_HOURS):
        if not (base / file).exists():
            raise EfficiencyFilesMissing(f"no {base / file}: the paper profile's bounded 7B-shape run has not been "
                                         f"run for profile {profile!r}. On a GPU machine: {PROFILE_COMMAND}")
        out.append(pd.read_csv(base / file))
    return out[0], out[1]


def load_optional(file: str, profile: str = "gpu", where: Path | None = None) -> pd.DataFrame | None:
    """teacher_cache.csv or scoring.csv, or None where the benchmark was not run."""
    path = folder(profile, where) / file
    return pd.read_csv(path) if path.exists() else None


def missing_text(book: Book) -> str:
    """What a notebook prints where its profile has no paper-shape measurement (e.g. cpu)."""
    return (f"No paper-shape measurement for profile {book.name!r} ({folder(book.name) / MEASUREMENTS['first']} is "
            f"missing): it needs a GPU. Run `{TIMING_COMMAND}` (twice, the second "
            f"time saved as {MEASUREMENTS['repeat']}) and `{PROFILE_COMMAND}` on a GPU machine; the committed H200 "
            f"results are under results/gpu (profile gpu).")


def for_book(book: Book, where: Path | None = None) -> pd.DataFrame | None:
    """The paper-shape rows of the book's profile, or None where there are none."""
    try:
        return load_paper_shape(book.name, where)
    except EfficiencyFilesMissing:
        return None


# ------------------------------------------------------------------------------------------ tables
def _key(frame: pd.DataFrame) -> pd.Series:
    """A model's name with its teacher mode: "SLMRec_4<-8 (live teacher)", "... (teacher cache)"."""
    def name(model, cache):
        if pd.isna(cache) or cache == "":
            return model
        return f"{model} ({'teacher cache' if str(cache) == 'True' else 'live teacher'})"

    return pd.Series([name(m, c) for m, c in zip(frame.model, frame.teacher_cache)], index=frame.index)


def medians(frame: pd.DataFrame) -> pd.DataFrame:
    """Median ms per (model with its teacher mode, measure) for each measurement and pooled (columns:
    first, repeat, pooled), and the parameter counts, one row a model in the files' order."""
    f = frame.assign(key=_key(frame))
    order = list(dict.fromkeys(f.key))
    per = f.groupby(["key", "measure", "measurement"]).ms.median().unstack("measurement")
    per["pooled"] = f.groupby(["key", "measure"]).ms.median()
    per = per.reindex(columns=[m for m in MEASUREMENTS if m in per.columns] + ["pooled"])
    per.columns.name = None
    return per.reindex(pd.MultiIndex.from_product([order, sorted(f.measure.unique())], names=["key", "measure"]))


def _get(med: pd.DataFrame, key: str, measure: str, col: str = "pooled") -> float:
    return float(med.loc[(key, measure), col])


def ratios(frame: pd.DataFrame) -> pd.DataFrame:
    """One row a measurement and one pooled: the student's inference speed-up over E4SRec_32, its
    training speed-up with the live teacher and with the cache, the per-step layer ratio (E4SRec_32 /
    E4SRec_4 train step), the cache's share of that ratio and whether it meets `CACHE_TARGET`, and the
    inference-parameter share."""
    med = medians(frame)
    live, cache = f"{STUDENT} (live teacher)", f"{STUDENT} (teacher cache)"
    params = frame.drop_duplicates("model").set_index("model").inference_params
    out = []
    for col in med.columns:
        t = lambda key: _get(med, key, "train_ms_per_step", col)  # noqa: E731
        i = lambda key: _get(med, key, "inference_ms_per_user", col)  # noqa: E731
        layer = t(DEEP) / t(SMALL)
        cached = t(DEEP) / t(cache)
        out.append(dict(measurement=col, inference_speedup=i(DEEP) / i(live), train_speedup_live=t(DEEP) / t(live),
                        train_speedup_cache=cached, layer_ratio=layer, cache_share=cached / layer,
                        cache_target_met=bool(cached >= CACHE_TARGET * layer),
                        params_share=float(params[STUDENT] / params[DEEP])))
    return pd.DataFrame(out).set_index("measurement")


def paper_shape_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The paper-shape table: per model, median inference ms a user and ms per 256 users, train ms a step
    (each measurement and pooled), the speed-ups over E4SRec_32 (pooled), parameter counts."""
    med = medians(frame)
    counts = frame.assign(key=_key(frame)).drop_duplicates("key").set_index("key")
    deep_i, deep_t = _get(med, DEEP, "inference_ms_per_user"), _get(med, DEEP, "train_ms_per_step")
    parts = [c for c in med.columns if c != "pooled"]
    rows = []
    for key in dict.fromkeys(med.index.get_level_values(0)):
        inf, train = med.loc[(key, "inference_ms_per_user")], med.loc[(key, "train_ms_per_step")]
        row = dict(model=key, layers=int(counts.loc[key, "layers"]))
        row |= {f"inference ms / user ({c})": inf[c] for c in parts}
        row |= {"inference ms / user": inf["pooled"], "inference ms / 256 users": REFERENCE_USERS * inf["pooled"]}
        row |= {f"train ms / step ({c})": train[c] for c in parts}
        row |= {"train ms / step": train["pooled"], "inference speed-up": deep_i / inf["pooled"],
                "train speed-up": deep_t / train["pooled"],
                "inference params (B)": counts.loc[key, "inference_params"] / 1e9,
                "trainable params (M)": counts.loc[key, "trainable_params"] / 1e6}
        rows.append(row)
    return pd.DataFrame(rows)


def formatted_paper_shape(table: pd.DataFrame) -> pd.DataFrame:
    """The paper-shape table as text: ms a user "first / repeat (pooled)", the rest rounded."""
    parts = [c[len("train ms / step ("):-1] for c in table.columns if c.startswith("train ms / step (")]

    def both(row, what, fmt):
        each = " / ".join(format(row[f"{what} ({c})"], fmt) for c in parts)
        return f"{each} ({format(row[what], fmt)})" if len(parts) > 1 else format(row[what], fmt)

    out = pd.DataFrame({
        "model": table.model, "layers": table.layers,
        "inference ms / user (" + " / ".join(parts) + " (pooled))": [both(r, "inference ms / user", ".3f")
                                                                     for _, r in table.iterrows()],
        "ms / 256 users": table["inference ms / 256 users"].map(lambda v: f"{v:.1f}"),
        "train ms / step (" + " / ".join(parts) + " (pooled))": [both(r, "train ms / step", ".1f")
                                                                 for _, r in table.iterrows()],
        "inference speed-up": table["inference speed-up"].map(lambda v: f"{v:.2f}x"),
        "train speed-up": table["train speed-up"].map(lambda v: f"{v:.2f}x"),
        "inference params": table["inference params (B)"].map(lambda v: f"{v:.3f} B"),
        "trainable params": table["trainable params (M)"].map(lambda v: f"{v:.2f} M")})
    return out


def smollm2_table(timed: pd.DataFrame) -> pd.DataFrame:
    """The SmolLM2 timing (timing.csv) as the paper-shape table's twin: median ms and speed-ups."""
    from ..timing import summary

    s = summary(timed)
    return pd.DataFrame({"model": s.model, "layers": s.layers,
                         "inference ms / user": s.inference_ms_per_user.map(lambda v: f"{v:.3f}"),
                         "train ms / step": s.train_ms_per_step.map(lambda v: f"{v:.1f}"),
                         "inference speed-up": s.inference_speedup.map(lambda v: f"{v:.2f}x"),
                         "train speed-up": s.train_speedup.map(lambda v: f"{v:.2f}x")})


# ------------------------------------------------------------------------------------------ verdicts
def _verdict(measure: str, value: float, paper_value: float) -> str:
    if measure == "params":
        return HOLDS if value <= paper_value * (1 + EFFICIENCY_TOLERANCE) else FAILS
    return HOLDS if value >= paper_value * (1 - EFFICIENCY_TOLERANCE) else FAILS


def _shown(measure: str, values: pd.Series) -> str:
    """"7.85x (first 7.86x, repeat 7.85x)" from a column of `ratios`."""
    fmt = (lambda v: f"{100 * v:.1f}%") if measure == "params" else (lambda v: f"{v:.2f}x")
    each = ", ".join(f"{m} {fmt(v)}" for m, v in values.items() if m != "pooled")
    return f"{fmt(values['pooled'])} ({each})" if each else fmt(values["pooled"])


def judge_paper_shape(frame: pd.DataFrame) -> pd.DataFrame:
    """The three efficiency claims at Llama-2-7B's shape (depths 32 -> 4, as the paper's), the training
    claim twice (live teacher, teacher cache); the pooled ratio decides, each measurement's is shown."""
    r = ratios(frame)
    column = {"inference": [("", "inference_speedup")], "params": [("", "params_share")],
              "train": [(" (live teacher)", "train_speedup_live"), (" (teacher-state cache)", "train_speedup_cache")]}
    out = []
    for c in EFFICIENCY_CLAIMS:
        for suffix, col in column[c.measure]:
            values = r[col]
            verdict = _verdict(c.measure, float(values["pooled"]), c.paper_value)
            paper_shown = f"{c.paper_value:.0%}" if c.measure == "params" else f"{c.paper_value:g}x"
            out.append(dict(rq=c.rq, scale="Llama-2-7B shape", claim=c.text + suffix, ours=_shown(c.measure, values),
                            paper=paper_shown, verdict=verdict,
                            test=f"pooled median ratio within {EFFICIENCY_TOLERANCE:.0%} of the paper's (same depths)",
                            detail=f"tolerance {EFFICIENCY_TOLERANCE:.0%}; depths {PAPER_DEPTH} -> {PAPER_SMALL}; "
                                   "random bf16 weights, H200"))
    return pd.DataFrame(out)


def cache_smollm2_verdict(cache: pd.DataFrame | None) -> pd.DataFrame:
    """The SmolLM2-scale training claim with the teacher-state cache, from teacher_cache.csv (its student
    with the cache against its E4SRec reference, on SmolLM2's shape), the paper's figure scaled to the
    benchmark's depths; empty where the benchmark has no such rows."""
    if cache is None:
        return pd.DataFrame()
    part = cache[cache.backbone.str.startswith("smollm2")]
    student = part[(part.teacher_cache.astype(str) == "True")]
    ref = part[part.teacher_layers.isna()]
    if student.empty or ref.empty:
        return pd.DataFrame()
    s, e = student.iloc[0], ref.iloc[0]
    claim = next(c for c in EFFICIENCY_CLAIMS if c.measure == "train")
    expected = claim.paper_value * (e.student_layers / s.student_layers) / (PAPER_DEPTH / PAPER_SMALL)
    value = e.step_ms / s.step_ms
    return pd.DataFrame([dict(
        rq=claim.rq, scale="SmolLM2", claim=claim.text + " (teacher-state cache)",
        ours=f"{value:.2f}x ({s.model} {s.step_ms:.1f} ms vs {e.model} {e.step_ms:.1f} ms a step of {int(s.rows)} rows; "
             f"expected at these depths: {expected:.2f}x); per run of {int(s.steps)} steps with the cache's "
             f"{s.prepare_s:.1f} s pass: {s.run_speedup_vs_reference:.2f}x",
        paper=f"{claim.paper_value:g}x", verdict=_verdict(claim.measure, value, expected),
        test=f"ratio within {EFFICIENCY_TOLERANCE:.0%} of the paper's, scaled to the benchmark's depths",
        detail=f"{TEACHER_CACHE} (bench_teacher_cache.py); depths {int(e.student_layers)} -> {int(s.student_layers)}, "
               f"teacher {int(s.teacher_layers)}")])


def _scale_name(backbone: str) -> str:
    return "SmolLM2" if backbone.startswith("smollm2") else backbone


def verdicts(rows: pd.DataFrame | None, book: Book, timed: pd.DataFrame | None,
             where: Path | None = None) -> pd.DataFrame:
    """The efficiency verdicts at both scales: the SmolLM2 benchmark's (`claims.judge_efficiency`, plus
    the teacher-cache row where teacher_cache.csv has one) and, where measured, the paper shape's."""
    parts = []
    if rows is not None and len(rows):
        parts.append(judge_efficiency(rows, book, timed).assign(scale=_scale_name(book.backbone)))
    parts.append(cache_smollm2_verdict(load_optional(TEACHER_CACHE, book.name, where)))
    frame = for_book(book, where)
    if frame is not None:
        parts.append(judge_paper_shape(frame))
    parts = [p for p in parts if len(p)]
    cols = ["rq", "scale", "claim", "ours", "paper", "verdict", "test", "detail"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def findings(verdicts_frame: pd.DataFrame) -> str:
    """`claims.findings` of `verdicts`' rows, each claim prefixed by its scale."""
    from .claims import findings as claim_findings

    return claim_findings(verdicts_frame.assign(claim=verdicts_frame.scale + ": " + verdicts_frame.claim))


def cache_target_text(frame: pd.DataFrame) -> str:
    """Whether the teacher-cache target is met, in each measurement and pooled, from the rows."""
    r = ratios(frame)
    each = "; ".join(f"{m}: {v.train_speedup_cache:.2f}x of a {v.layer_ratio:.2f}x layer ratio = "
                     f"{100 * v.cache_share:.0f}% ({'met' if v.cache_target_met else 'not met'})"
                     for m, v in r.iterrows())
    met = r.drop(index="pooled").cache_target_met
    summary = ("met in every measurement" if met.all() else "not met in any measurement" if not met.any()
               else f"met in {int(met.sum())} of {len(met)} measurements")
    med = medians(frame)
    small, cached = _get(med, SMALL, "train_ms_per_step"), _get(med, f"{STUDENT} (teacher cache)", "train_ms_per_step")
    return (f"Teacher-cache target (the student's training speed-up over {DEEP} with the cache >= "
            f"{CACHE_TARGET:.0%} of the per-step layer ratio {DEEP} / {SMALL}): {summary} ({each}). The cached "
            f"student step ({cached:.1f} ms, pooled) stays above {SMALL}'s ({small:.1f} ms): it still runs the "
            f"distillation losses and the L_ms heads, and the E4SRec step times vary by up to "
            f"{_spread_pct(frame):.0f}% between repeats.")


def _spread_pct(frame: pd.DataFrame) -> float:
    """The largest (max - min) / median of an E4SRec train step over its repeats, in percent."""
    t = frame[(frame.measure == "train_ms_per_step") & (frame.kind == "e4srec")]
    g = t.groupby(["measurement", "model"]).ms
    return float(100 * ((g.max() - g.min()) / g.median()).max())


# ------------------------------------------------------------------------------------------ reference
def reference_comparison(frame: pd.DataFrame) -> pd.DataFrame:
    """The book's pooled medians beside the earlier standalone measurement's numbers (book / reference)."""
    table = paper_shape_table(frame).set_index("model")
    ours = {"inference ms / 256 users": table["inference ms / 256 users"], "train ms / step": table["train ms / step"],
            "inference params (B)": table["inference params (B)"]}
    rows = []
    for quantity, ref in REFERENCE.items():
        for model, value in ref.items():
            key = f"{model} (live teacher)" if model == STUDENT else model
            book_value = float(ours[quantity][key])
            rows.append(dict(quantity=quantity, model=model, book=book_value, reference=value,
                             ratio=book_value / value))
    return pd.DataFrame(rows)


def reference_text(frame: pd.DataFrame) -> str:
    """The gap to the standalone reference, explained from the rows and the model's code."""
    from ..models.llmrec import LLMRecConfig

    cmp = reference_comparison(frame).set_index(["quantity", "model"]).ratio
    r = ratios(frame).loc["pooled"]
    inf = cmp["inference ms / 256 users"]
    ref_inf = REFERENCE["inference ms / 256 users"]
    train = cmp["train ms / step"]
    counts = frame.drop_duplicates("model").set_index("model")
    bare = {m: (counts.loc[m, "inference_params"] - counts.loc[m, "trainable_params"]) / 1e9 for m in (DEEP, SMALL)}
    shared = LLMRecConfig().share_prefix
    why = ("The book's E4SRec shares the instruction prefix's key/value cache (`LLMRecConfig.share_prefix`, on by "
           "default): at inference the instruction is computed once per set of weights, not once per user, and in "
           "training once per forward, so the book's forward covers fewer positions than the reference's 95. "
           if shared else "The book's E4SRec recomputes the instruction for every row (share_prefix off). ")
    return (f"Against the standalone reference (quoted numbers of a plain script outside this repository, not rerun "
            f"here): inference {inf.min():.2f}-{inf.max():.2f}x of its time per "
            f"{REFERENCE_USERS} users at every depth, with the same depth ratio ({DEEP} / {SMALL}: "
            f"{r.inference_speedup:.2f}x here, {ref_inf[DEEP] / ref_inf[SMALL]:.2f}x there); training steps "
            f"{train.min():.2f}-{train.max():.2f}x of its times (the student with the live teacher "
            f"{train[STUDENT]:.2f}x; its speed-up {r.train_speedup_live:.2f}x against the reference's "
            f"{REFERENCE['train ms / step'][DEEP] / REFERENCE['train ms / step'][STUDENT]:.2f}x). {why}"
            f"Parameters: the book counts the trainable LoRA and projection weights in its inference parameters; "
            f"without them {DEEP} has {bare[DEEP]:.3f} B and {SMALL} {bare[SMALL]:.3f} B, against the reference's "
            f"{REFERENCE['inference params (B)'][DEEP]:.3f} / {REFERENCE['inference params (B)'][SMALL]:.3f} B.")


# ------------------------------------------------------------------------------------------ per-run
def run_estimates(frame: pd.DataFrame, epochs: dict[str, int] | None = None,
                  datasets: dict[str, int] | None = None) -> pd.DataFrame:
    """Per-run training hours from the pooled paper-shape step times: epochs x ceil(rows / 32) steps (one
    training row a user) plus, for the cached student, the cache's one-off pass (the pooled median of
    `prepare_s` per cached row, times the rows); at the paper profile's epochs (E4SRec / student) and at
    equal epochs (the student's). `datasets`: rows by name (default the paper's Clothing and Movies users,
    ../shared/paper/datasets.csv). The timed step runs AdamW on every 32 rows; with 8 accumulated forwards
    a step it runs once per 256, so these are upper bounds by the optimizer's share."""
    from ..profiles import get_profile

    if epochs is None:
        prof = get_profile("paper")
        epochs = {"e4srec": prof.teacher_train.epochs, "slmrec": prof.student_train.epochs}
    if datasets is None:
        t = paper("datasets").set_index("dataset")
        datasets = {"Clothing": int(t.loc["Cloth", "users"]), "Movies": int(t.loc["Movie", "users"])}
    med = medians(frame)
    f = frame.assign(key=_key(frame))
    batch = int(f.train_batch_size.iloc[0])
    cached = f[f.prepare_s.notna()].drop_duplicates(["measurement", "key"])
    per_row = float((cached.prepare_s / cached.cache_rows).median()) if len(cached) else 0.0
    out = []
    for key, kind in f.drop_duplicates("key")[["key", "kind"]].itertuples(index=False):
        if kind == "e4srec" and key not in (DEEP, SMALL):
            continue
        step_s = _get(med, key, "train_ms_per_step") / 1e3
        prepare_row = per_row if key in set(cached.key) else 0.0
        for name, rows in datasets.items():
            steps = math.ceil(rows / batch)
            own, equal = epochs[kind], epochs["slmrec"]
            out.append(dict(dataset=name, rows=rows, model=key, epochs=own, steps=own * steps,
                            prepare_hours=prepare_row * rows / 3600,
                            hours=(own * steps * step_s + prepare_row * rows) / 3600,
                            hours_equal_epochs=(equal * steps * step_s + prepare_row * rows) / 3600))
    est = pd.DataFrame(out)
    for col, speed in (("hours", "run speed-up"), ("hours_equal_epochs", "run speed-up, equal epochs")):
        deep = est[est.model == DEEP].set_index("dataset")[col]
        est[speed] = est.dataset.map(deep) / est[col]
    return est


def formatted_run_estimates(est: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"dataset": est.dataset, "training rows": est.rows.map(lambda v: f"{v:,}"), "model": est.model,
                         "epochs": est.epochs, "cache pass h": est.prepare_hours.map(lambda v: f"{v:.2f}" if v else ""),
                         "training h": est.hours.map(lambda v: f"{v:.2f}"),
                         "speed-up over E4SRec_32's run": est["run speed-up"].map(lambda v: f"{v:.2f}x"),
                         "at equal epochs": est["run speed-up, equal epochs"].map(lambda v: f"{v:.2f}x")})


# ------------------------------------------------------------------------------------------ paper profile
def paper_profile_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The bounded paper-profile run: per LLM model its steps, rows a step (forward x accumulated), median
    step ms, peak GPU memory and parameter counts."""
    llm = runs[runs.kind != "sasrec"]
    return pd.DataFrame({
        "model": llm.model, "optimizer steps": llm.steps.astype(int),
        "rows a step": [f"{int(f)} x {int(a)} = {int(r)}" for f, a, r in zip(llm.forward_rows, llm.grad_accum,
                                                                             llm.rows_per_step)],
        "step ms (median)": llm.step_ms_median.map(lambda v: f"{v:.0f}"),
        "peak GPU GB": llm.peak_gpu_gb.map(lambda v: f"{v:.1f}"),
        "gradient checkpointing": llm.gradient_checkpointing.map(lambda v: "on" if v else "off"),
        "trainable params": llm.train_params.map(lambda v: f"{v / 1e6:.2f} M"),
        "inference params": llm.inference_params.map(lambda v: f"{v / 1e9:.3f} B")}).reset_index(drop=True)


def hours_table(hours: pd.DataFrame) -> pd.DataFrame:
    """The hour estimates on one GPU: training, one test pass, and the profile's validations, apart."""
    return pd.DataFrame({
        "dataset": hours.dataset.str.removeprefix("amazon2018:"), "users": hours.users.map(lambda v: f"{v:,}"),
        "model": hours.model, "epochs": hours.epochs, "optimizer steps": hours.optimizer_steps.map(lambda v: f"{v:,}"),
        "training h": hours.train_hours.map(lambda v: f"{v:.2f}"),
        "test pass h": hours.test_eval_hours.map(lambda v: f"{v:.2f}"),
        "training + test h": hours.train_and_test_hours.map(lambda v: f"{v:.2f}"),
        "validations h (every 100 steps, all users)": hours.validation_hours.map(lambda v: f"{v:.1f}")})


def hardware_text(runs: pd.DataFrame, hours: pd.DataFrame) -> str:
    """What the paper profile needs, from the bounded run and its hour estimates (and the paper's own
    training hours beside, from ../shared/paper/efficiency.csv)."""
    llm = runs[runs.kind != "sasrec"]
    top = llm.loc[llm.peak_gpu_gb.idxmax()]
    per, worst = [], 0.0
    for dataset, part in hours.groupby("dataset", sort=False):
        models = " + ".join(part.model)
        per.append(f"{dataset.removeprefix('amazon2018:')} {part.train_and_test_hours.sum():.1f} h of training and "
                   f"one test pass ({models}; the largest, {part.loc[part.train_hours.idxmax(), 'model']}, "
                   f"{part.train_and_test_hours.max():.1f} h) and {part.validation_hours.sum():.0f} h more for the "
                   f"validations")
        worst = max(worst, float((part.validation_hours / part.train_hours).max()))
    student = llm[llm.kind == "slmrec"]
    fed = int(student.steps.iloc[0] * student.rows_per_step.iloc[0]) if len(student) else 0
    eff = paper("efficiency").set_index("method").train_time_h
    return (f"The paper profile at Llama-2-7B's shape ran through the runner on one {top.device} (bf16 weights, "
            f"{int(top.forward_rows)} rows a forward x {int(top.grad_accum)} accumulated = the authors' "
            f"{int(top.rows_per_step)} a step, no gradient checkpointing). The largest peak was "
            f"{top.peak_gpu_gb:.1f} GB ({top.model}), so a single GPU with that much memory and some headroom "
            f"trains every model of the profile, one run at a time; several GPUs only shorten the hours "
            f"(data-parallel through accelerate). At the measured step rates one such GPU needs: "
            f"{'; '.join(per)}. As the profile is written (a validation on all users every 100 optimizer steps), "
            f"the validations dominate, up to {worst:.0f}x a run's training time: on one GPU, validate on a subset "
            f"(`valid_users`) or less often (`eval_every`), and the training itself takes hours, not days. (The "
            f"paper reports {eff['E4SRec*']:g} h / {eff['SLMRec_4<-8']:g} h of training for E4SRec* / SLMRec_4<-8 "
            f"on its 8 GPUs.) The bounded student run fed {fed:,} rows; `fit` keeps the teacher live for a run that "
            f"feeds no more than one pass over its rows, so its step is the live teacher's, and a full run, which "
            f"uses the teacher-state cache, is faster than its estimate here.")


def run_text(est: pd.DataFrame, frame: pd.DataFrame) -> str:
    """The per-run estimate in a sentence: the cached student's run speed-up (its cache pass included)
    against the per-step layer ratio, at the paper profile's epochs and at equal epochs."""
    layer = ratios(frame).loc["pooled", "layer_ratio"]
    one = est[est.dataset == est.dataset.iloc[0]].set_index("model")
    cached, live = one.loc[f"{STUDENT} (teacher cache)"], one.loc[f"{STUDENT} (live teacher)"]
    prep = frame[frame.prepare_s.notna()].drop_duplicates("measurement")
    pass_s = " and ".join(f"{s:.2f} s ({m})" for m, s in zip(prep.measurement, prep.prepare_s))
    return (f"Per run ({est.dataset.iloc[0]}, {int(cached.rows):,} rows; {DEEP} {int(one.loc[DEEP, 'epochs'])} epochs, "
            f"the student {int(cached.epochs)}, as the paper profile): the cache's one-off pass over "
            f"{int(prep.cache_rows.iloc[0])} rows took {pass_s}, {cached.prepare_hours:.2f} h for all rows at the "
            f"median rate; the cached student's run is {cached['run speed-up']:.2f}x faster than {DEEP}'s "
            f"({cached['run speed-up, equal epochs']:.2f}x at equal epochs, "
            f"{100 * cached['run speed-up, equal epochs'] / layer:.0f}% of the {layer:.2f}x layer ratio), the live "
            f"teacher's {live['run speed-up']:.2f}x ({live['run speed-up, equal epochs']:.2f}x).")


# ------------------------------------------------------------------------------------------ figure
def figure(frame: pd.DataFrame):
    """Speed-ups over E4SRec_32 at Llama-2-7B's shape (x, one panel a measure): a bar a model (pooled
    median), a dot a measurement, the paper's figure and the layer ratio as lines."""
    import matplotlib.pyplot as plt

    med = medians(frame)
    keys = list(dict.fromkeys(med.index.get_level_values(0)))
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 0.6 * len(keys) + 2.6), layout="constrained")
    paper_value = {c.measure: c.paper_value for c in EFFICIENCY_CLAIMS}
    for ax, (measure, what, paper_key) in zip(axes, (("inference_ms_per_user", "inference", "inference"),
                                                     ("train_ms_per_step", "training step", "train"))):
        pooled = np.array([_get(med, DEEP, measure) / _get(med, k, measure) for k in keys])
        ax.barh(range(len(keys)), pooled, color="C0", label="pooled median of both measurements")
        right = pooled.copy()
        for col, marker in zip([c for c in med.columns if c != "pooled"], ("o", "s")):
            each = [_get(med, DEEP, measure, col) / _get(med, k, measure, col) for k in keys]
            right = np.maximum(right, each)
            ax.plot(each, range(len(keys)), marker, color="C1" if marker == "o" else "C2", ls="none", ms=5,
                    label=f"{col} measurement")
        ax.axvline(paper_value[paper_key], ls="--", color="black", lw=0.9,
                   label=f"paper (SLMRec_4<-8 vs E4SRec*): {paper_value[paper_key]:g}x")
        ax.axvline(1, color="grey", lw=0.6)
        unit = "ms a user" if measure.startswith("inference") else "ms a step of 32 rows"
        for y, (ratio, key) in enumerate(zip(pooled, keys)):
            ax.text(1.02 * right[y] + 0.2, y, f"{ratio:.2f}x ({_get(med, key, measure):.3g} {unit})", va="center",
                    fontsize=8)
        ax.set_yticks(range(len(keys)), keys, fontsize=8)
        ax.set(xlabel=f"{what} speed-up over {DEEP} (x, median of repeats)", xlim=(0, 1.6 * float(pooled.max())))
        ax.invert_yaxis()
    handles, labels = axes[1].get_legend_handles_labels()
    both = f": {paper_value['inference']:.1f}x (inference) / {paper_value['train']:.1f}x (training)"
    labels = [lab.replace(f": {paper_value['train']:g}x", both) for lab in labels]
    fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize=8)
    device = str(frame.device.iloc[0])
    repeats = int(frame.groupby(["measurement", "model", "teacher_cache", "measure"], dropna=False).size().max())
    n = frame.measurement.nunique()
    fig.suptitle(f"Timing at Llama-2-7B's shape (hidden 4096, 32 / 8 / 4 layers), random bf16 weights, on {device}\n"
                 f"profile gpu, dataset {frame.dataset.iloc[0]}, {int(frame.users.iloc[0])} users a call in batches of "
                 f"{int(frame.batch_size.iloc[0])}, {int(frame.train_batch_size.iloc[0])} rows a training step; "
                 f"{n} measurements x {repeats} repeats", fontsize=10)
    return fig


def figure_path(book: Book) -> Path:
    """figures/<profile>/efficiency_paper_shape.png (the profile's first dataset), else -<dataset>.png."""
    first = book.dataset == book.profile.datasets[0]
    name = "efficiency_paper_shape.png" if first else f"efficiency_paper_shape-{book.slug}.png"
    return book.figure_path("efficiency_paper_shape").with_name(name)


# ------------------------------------------------------------------------------------------ text
def finding(frame: pd.DataFrame) -> str:
    """The paper-shape result in sentences, from the rows."""
    r = ratios(frame)
    p = r.loc["pooled"]
    v = judge_paper_shape(frame).set_index("claim").verdict
    claims = {c.measure: c for c in EFFICIENCY_CLAIMS}
    spread = ", ".join(f"{m} {x.inference_speedup:.2f}x" for m, x in r.drop(index="pooled").iterrows())
    return (f"At Llama-2-7B's shape the student infers {p.inference_speedup:.2f}x faster than {DEEP} "
            f"({spread}; paper {claims['inference'].paper_value:g}x: {v[claims['inference'].text]}). It trains "
            f"{p.train_speedup_live:.2f}x faster a step with the live teacher "
            f"({v[claims['train'].text + ' (live teacher)']}) and {p.train_speedup_cache:.2f}x with the "
            f"teacher-state cache ({v[claims['train'].text + ' (teacher-state cache)']}; paper "
            f"{claims['train'].paper_value:g}x), and uses {100 * p.params_share:.1f}% of {DEEP}'s inference "
            f"parameters (paper {claims['params'].paper_value:.0%}: {v[claims['params'].text]}). The layer ratio "
            f"caps the speed-ups: {p.layer_ratio:.2f}x per training step ({DEEP} / {SMALL}).")


def report_lines(book: Book) -> list[str]:
    """The report's section on the paper's scale: verdicts, the cache target and the reference, or the
    command that measures them."""
    md = ["### Efficiency at Llama-2-7B's shape", ""]
    frame = for_book(book)
    cache_row = cache_smollm2_verdict(load_optional(TEACHER_CACHE, book.name))
    if frame is None:
        md += [missing_text(book), ""]
    else:
        md += [finding(frame), "", cache_target_text(frame), "", reference_text(frame), ""]
    both = [f for f in (cache_row, judge_paper_shape(frame) if frame is not None else pd.DataFrame()) if len(f)]
    if both:
        shown = pd.concat(both, ignore_index=True)[["rq", "scale", "claim", "ours", "paper", "verdict", "detail"]]
        md += [markdown_table(shown), ""]
    return md
