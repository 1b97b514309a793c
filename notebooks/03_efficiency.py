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
# of E4SRec at the profile's depths and of the student with its teacher, under equal conditions.

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

# %%
claims = book.judge_efficiency(rows, b, timed)
print(book.findings(claims))

# %% [markdown]
# ## What we saw
# The paper's ratios come from a 32 -> 4 layer cut; ours are set against them scaled to the profile's
# depths (the "expected at our depths" figure) and judged within `book.EFFICIENCY_TOLERANCE`. Two
# things keep our ratios below the depth ratio: the token embedding and the fixed prompt cost, which
# do not shrink with depth (on a 135M-parameter model the embedding is a large share), and, for
# training, the frozen teacher's forward pass inside every student step. Timings on shared CPU cores
# are indicative only: each timing row records the machine's load average.
