# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Efficiency (RQ2): how much cheaper is the student?
#
# **Question (RQ2 of the paper).** What do the models cost to train and to run, and how many parameters
# do they train and use at inference? The paper (Llama-2-7B, 8 GPUs) reports that SLMRec_{4<-8} infers
# 8.0x and trains 6.6x faster than E4SRec* and uses 13% of its parameters.
#
# Two sources: the clocks and parameter counts of the runs themselves (one row a model), and a timing
# benchmark (`slmrec_lib/timing.py`: warm-up, device synchronised around each call, median of repeats)
# of E4SRec at the profile's depths and of the student with its teacher, under equal conditions. Then the
# same benchmark at the paper's scale (Llama-2-7B's shape, random bf16 weights, measured twice on an H200),
# the teacher-state cache and scoring benchmarks, and the paper profile's bounded 7B-shape run with the
# hours it implies (`slmrec_lib/book/efficiency.py` reads the committed CSVs of `results/gpu`).

# %%
# the names defined before the parameters: book.start checks what the parameters cells added
from slmrec_lib import book
_before = set(globals())

# %% tags=["parameters"]
profile = "smoke"  # smoke | cpu | gpu | paper (see slmrec_lib/profiles.py)
dataset = None  # None: the profile's first dataset; else a name of slmrec_lib.data.known_datasets() or a file
with_p5 = True  # as in 02_main_table (the same runs are read back)
force_timing = False  # measure again even if results/<profile>/timing.csv has this dataset at these settings

# %%
b = book.start(profile, dataset, names=set(globals()) - _before)
book.figures.setup()

# %% [markdown]
# ## The runs' own costs
# Training seconds and ms per optimizer step (validation excluded), evaluation ms per user (one stage,
# one protocol), trainable and inference parameters (the student's inference excludes its teacher and
# the L_ms heads), mean over seeds; the paper's RQ2 row beside where one maps (hours, billions).

# %%
rows = book.study_rows(b, "main_table", with_p5=with_p5)
book.efficiency_table(rows, b)

# %% [markdown]
# ## The timing benchmark
# Median ms over repeats and the speed-up against the deepest E4SRec. Written to
# `results/<profile>/timing.csv` and read back on the next run (`force_timing=True` measures again).

# %%
timed = book.timing_rows(b, measure=True, force=force_timing)  # empty where a GPU profile was never timed here
if not timed.empty:
    display(book.timing_summary(timed))

# %%
if not timed.empty:
    fig = book.figures.efficiency(timed, b)
    book.figures.save(fig, b.figure_path("efficiency"))

# %% [markdown]
# ## At the paper's scale: Llama-2-7B's shape
# The same benchmark with the backbone at Llama-2-7B's shape (hidden 4096, MLP 11008, 32 heads, vocab
# 32000; random, seeded, bf16 weights) at the paper's 32 / 8 / 4 layers: 768 test users in batches of 256,
# a training step on the authors' 32 rows, the student with its live 8-layer teacher and with the
# teacher-state cache. Two measurements minutes apart on the same H200 (`first`, `repeat`), each the median
# of its repeats, and pooled (the median over both); speed-ups against E4SRec_32 from the pooled medians.

# %%
paper_shape = book.efficiency.for_book(b)  # None where this profile has no paper-shape measurement
if paper_shape is None:
    print(book.efficiency.missing_text(b))
else:
    display(book.efficiency.formatted_paper_shape(book.efficiency.paper_shape_table(paper_shape)))
    fig = book.efficiency.figure(paper_shape)
    book.figures.save(fig, book.efficiency.figure_path(b))
    display(book.efficiency.reference_comparison(paper_shape))
    print(book.efficiency.reference_text(paper_shape), book.efficiency.cache_target_text(paper_shape), sep="\n\n")

# %% [markdown]
# ### Per run, with the cache's one-off pass
# Training hours from the pooled step times for the paper's Amazon 2018 Clothing and Movies users (one
# row a user), at the paper profile's epochs (E4SRec 3, student 5) and at equal epochs; the cached
# student's run includes the cache's pass over every row (`prepare_s` per row, median of the measurements).

# %%
if paper_shape is not None:
    estimates = book.efficiency.run_estimates(paper_shape)
    display(book.efficiency.formatted_run_estimates(estimates))
    print(book.efficiency.run_text(estimates, paper_shape))

# %% [markdown]
# ## The teacher-state cache and the scoring paths (benchmarks)
# `benchmarks/bench_teacher_cache.py` (a student step with the live teacher and with the cache, the
# cache's pass, a per-run estimate against E4SRec*'s step) and `benchmarks/bench_scoring.py` (us a user of
# the 4-layer student's scoring paths at three batch sizes, and how far each path's ranks move from plain).

# %%
for name in (book.efficiency.TEACHER_CACHE, book.efficiency.SCORING):
    bench = book.efficiency.load_optional(name, b.name)
    print(f"{name}: " + ("not run for this profile" if bench is None else f"{len(bench)} rows"))
    if bench is not None:
        display(bench)

# %% [markdown]
# ## The paper profile's training path at 7B shape (bounded run)
# `benchmarks/bench_paper_profile.py` ran the paper profile through the runner with the random 7B-shape
# backbone on Beauty for a few optimizer steps of 32 rows x 8 accumulated: step time and peak GPU memory
# per model, and the hours they imply for Amazon 2018 Clothing and Movies on one such GPU.

# %%
try:
    profile_runs, profile_hours = book.efficiency.load_paper_profile(b.name)
except book.efficiency.EfficiencyFilesMissing as exc:
    print(exc)
else:
    display(book.efficiency.paper_profile_table(profile_runs))
    display(book.efficiency.hours_table(profile_hours))
    print(book.efficiency.hardware_text(profile_runs, profile_hours))

# %% [markdown]
# ## The verdicts at both scales

# %%
claims = book.efficiency.verdicts(rows, b, timed)
display(claims[["scale", "claim", "ours", "paper", "verdict"]])
print(book.efficiency.findings(claims))
if paper_shape is not None:
    print("\n" + book.efficiency.finding(paper_shape))

# %% [markdown]
# ## What we saw
# The paper's ratios come from a 32 -> 4 layer cut; ours are set against them scaled to the profile's
# depths (the "expected at our depths" figure) and judged within `book.EFFICIENCY_TOLERANCE`. Two
# things keep our ratios below the depth ratio: the token embedding and the fixed prompt cost, which
# do not shrink with depth (on a 135M-parameter model the embedding is a large share), and, for
# training, the frozen teacher's forward pass inside every student step. Timings on shared CPU cores
# are indicative only: each timing row records the machine's load average. At Llama-2-7B's shape the
# embedding is a small share, so the ratios come close to the layer ratio (the computed lines above);
# there the frozen teacher's forward is what the teacher-state cache removes from the student's step.
