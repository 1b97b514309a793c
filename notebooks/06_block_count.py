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
# # 06 · Block count (RQ5): how many blocks should the distillation match?
#
# **Question (RQ5 of the paper).** Student and teacher are cut into b blocks and matched at each block
# end. How does b change the student? The paper finds b = 4 best and b = 1 or 2 worse.
#
# A b larger than the student's depth is impossible: each block needs at least one student layer.
# The first cell says which of the profile's `block_counts` are dropped for that reason.

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
print(book.impossible_blocks(b))

# %%
rows = book.study_rows(b, "block_count")

# %% [markdown]
# ## The table
# Ours in percent (test, sampled protocol, mean ± std over seeds), with the average improvement of
# each b against b = 4 (the paper's default). The paper's table has no b column; its finding is in
# its text.

# %%
table = book.main_table(rows, b, reference=book.FULL)
book.formatted(table)

# %%
fig = book.figures.metric_bars(rows, b, "Block count b (RQ5)", note=book.BLOCKS_NOTE)
book.figures.save(fig, b.figure_path("block_count"))

# %%
print(book.findings(book.judge_claims(rows, b, rq="RQ5")))

# %% [markdown]
# ## What we saw
# With b = 1 only the final states are matched and there is no multiple supervision (it needs b >= 2),
# so b = 1 also switches L_ms off; larger b matches more intermediate states. Block ends follow
# `losses.block_pairs` (nearest layer at relative depth i / b). The verdicts are computed as in 02:
# Each verdict rests on a test named beside it: Welch's t-test on per-seed scores (the mean over the
# metrics of the relative change against the other model), with its 95 per cent interval, or, where both models'
# runs kept their per-user ranks, a paired bootstrap over seeds and users; p-values are Holm-adjusted
# over the claims of this notebook, and each claim is judged under the sampled protocol and under full
# ranking where the profile has it. With a single seed a side and no stored ranks there is no spread to
# test against, so such a claim is inconclusive.
