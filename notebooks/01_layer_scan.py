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
# # 01 · Layer scan: does an LLM recommender need all its layers?
#
# **Question (the paper's motivation).** SLMRec starts from an observation: an E4SRec-style recommender
# that keeps only its first k decoder layers loses little accuracy as k shrinks, so much of a deep
# LLM's depth looks redundant for sequential recommendation. How do HR@10, NDCG@10 and MRR of E4SRec_k
# change with k here, and where does SASRec (whose item table the LLM models read) stand?

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

# %% [markdown]
# ## Runs
# One E4SRec_k for each k of the profile's `scan_depths` (first seed) and SASRec. Runs already in
# `results/<profile>/runs/` are read back, never trained twice.

# %%
rows = book.study_rows(b, "layer_scan")

# %% [markdown]
# ## Ours beside the paper's scan
# Test stage, sampled protocol, percent. The paper's columns are its Cloth scan (Llama-2-7B, Amazon
# 2018 Cloth), read by eye from the figure in the authors' repository, at the same k (our deepest model
# stands for its 32 layers). Different data and backbone: compare the shape over k, not the levels.

# %%
table = book.layer_scan_table(rows, b)
table.round(4)

# %%
fig = book.figures.layer_scan(table, b, rows)
book.figures.save(fig, b.figure_path("layer_scan"))

# %%
print(book.scan_findings(table))

# %% [markdown]
# ## What we saw
# The printed lines are computed from this run's rows. The paper's scan rises slowly with depth (its
# deepest model is best, but one layer already keeps most of the accuracy), which is the case for a
# shallow student. Read ours the same way: the gap between the shallowest and deepest E4SRec against
# the gap to SASRec. The scan has one seed, so small differences between depths are not evidence; the
# main table (02) has the seed spread. On the smoke profile the backbone is random and the data
# synthetic: the figure checks the pipeline only.
