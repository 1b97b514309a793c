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
# # 05 · Online distillation (RQ4): must the teacher be trained first?
#
# **Question (RQ4 of the paper).** SLMRec distils offline: the teacher is trained first and frozen.
# Online, teacher and student train together from scratch (here the teacher learns from its own
# cross-entropy and the distillation terms move the student only). Which gives the better student?

# %%
# the names defined before the parameters: book.start checks what the parameters cells added
from slmrec_lib import book
_before = set(globals())

# %% tags=["parameters"]
profile = "smoke"  # smoke | cpu | gpu | paper (see slmrec_lib/profiles.py)
dataset = None  # None: the profile's first dataset; else a name of slmrec_lib.data.known_datasets() or a file

# %%
b = book.start(profile, dataset, names=set(globals()) - _before)
book.figures.setup()

# %%
rows = book.study_rows(b, "online_kd")

# %% [markdown]
# ## The table
# Ours in percent (test, sampled protocol, mean ± std over seeds), with the average improvement of
# each against the offline student. The paper's main table has the offline student only (its row is
# shown); the online comparison is in its text.

# %%
table = book.main_table(rows, b, reference=book.FULL)
book.formatted(table)

# %%
fig = book.figures.metric_bars(rows, b, "Online vs offline distillation (RQ4)")
book.figures.save(fig, b.figure_path("online_kd"))

# %%
print(book.findings(book.judge_claims(rows, b, rq="RQ4")))

# %% [markdown]
# ## What we saw
# The verdict is computed from the rows.
# Each verdict rests on a test named beside it: Welch's t-test on per-seed scores (the mean over the
# metrics of the relative change against the other model), with its 95 per cent interval, or, where both models'
# runs kept their per-user ranks, a paired bootstrap over seeds and users; p-values are Holm-adjusted
# over the claims of this notebook, and each claim is judged under the sampled protocol and under full
# ranking where the profile has it. With a single seed a side and no stored ranks there is no spread to
# test against, so such a claim is inconclusive.
# Online, the student learns from a teacher that is itself still
# untrained early on, and the two share a training budget; the paper trains the teacher first. Note
# that online training costs the teacher's backward pass in every step as well (see 03 for costs).
