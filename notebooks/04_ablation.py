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
# # 04 · Ablation (RQ3): what does each distillation term add?
#
# **Question (RQ3 of the paper).** The student SLMRec_{4<-8} learns from its teacher with the feature
# direction loss D_cos; the paper adds the feature-norm loss D_norm and multiple supervision L_ms
# (extra prediction heads on the student's intermediate blocks). Does each help, and do both together
# help most? E4SRec at the student's and at the teacher's depth, trained directly, frame the range.

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
rows = book.study_rows(b, "ablation")

# %% [markdown]
# ## The table
# Ours in percent (test, sampled protocol, mean ± std over seeds); the average improvement is taken
# against the teacher-depth E4SRec here (the paper's numbers against its E4SRec_8*, recomputed from
# its main table).

# %%
table = book.main_table(rows, b, reference=book.E4_MID)
print("average improvement against", table.attrs["reference"])
book.formatted(table)

# %%
fig = book.figures.metric_bars(rows, b, "Ablation (RQ3): D_cos alone, + D_norm, + L_ms, + both")
book.figures.save(fig, b.figure_path("ablation"))

# %%
print(book.findings(book.judge_claims(rows, b, rq="RQ3")))

# %% [markdown]
# ## What we saw
# Each verdict compares a variant with D_cos alone.
# Each verdict rests on a test named beside it: Welch's t-test on per-seed scores (the mean over the
# metrics of the relative change against the other model), with its 95 per cent interval, or, where both models'
# runs kept their per-user ranks, a paired bootstrap over seeds and users; p-values are Holm-adjusted
# over the claims of this notebook, and each claim is judged under the sampled protocol and under full
# ranking where the profile has it. With a single seed a side and no stored ranks there is no spread to
# test against, so such a claim is inconclusive. In the paper each
# term adds a little and both together most; differences of that size (tenths of a percent to a few
# percent) need several seeds to be told from noise, which is why single-seed profiles report them as
# inconclusive. The loss weights follow the authors' code (D_norm unsquared with a small fixed weight,
# L_ms with weight one; `models/slmrec.py` says so in its header).
