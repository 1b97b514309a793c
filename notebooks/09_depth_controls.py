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
# # 09 · Why depth does not pay here: controls for the backbone, the data and the model
#
# **Question.** Every E4SRec_k from 2 to 30 layers scores within a fraction of a point of the others,
# so the paper's premise (depth helps; distillation recovers it) cannot be tested as is. Five controls
# ask why: (1) a backbone of the same shape with random weights; (2) every prefix of a training
# sequence a row (E4SRec's recipe) against one row a user; (3) test histories with their items
# shuffled (how much each model uses order); (4) the angular distance between the layers' last-token
# states (Gromov et al. 2024); (5) the item table trainable instead of frozen. All control runs score
# in fp32 and read the profile's item table: compare them with each other, not with 02's bf16 rows.

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
# Every control on each of the profile's seeds (depths: the profile's `control_depths`), each run scored
# under the profile's protocols and again on shuffled histories. Missing runs of a GPU profile are listed.

# %%
rows = book.ladder.control_rows(b)
book.ladder.missing_table(rows)

# %% [markdown]
# ## The controls
# NDCG@10 (test, percent) under every protocol, plain and shuffled histories, and the drop from plain
# to shuffled (the order a model uses): means over seeds, the std over seeds in the "sd" columns (a
# seed's drop is taken within its run, then averaged).

# %%
table = book.ladder.control_table(rows, b)
table

# %%
fig = book.figures.depth_controls(table, b, rows)
book.figures.save(fig, b.figure_path("depth_controls"))

# %% [markdown]
# ## How redundant are the layers?
# For the deepest E4SRec, pretrained and with random weights: the mean angular distance between the
# last-token states of layer l and layer l + n over test users, computed inside each run and averaged
# over the seeds.

# %%
distances = book.ladder.layer_distances(rows, b)
book.ladder.redundancy(distances, book.ladder.prune_shift(b))

# %%
if len(distances):
    fig = book.figures.layer_distances(distances, b)
    book.figures.save(fig, b.figure_path("layer_distances"))
else:
    print("no saved layer distances: the deepest control runs are missing on this machine")

# %% [markdown]
# ## Each control as a claim
# What it tests, the verdict and the 95% interval (paired bootstrap over seeds x users where the runs
# kept their ranks; Holm over the claims of this notebook); the layer line is descriptive.

# %%
claims = book.judge_claims(rows, b, claims=book.control_claims(b))
book.side_by_side(claims)

# %%
book.ladder.layer_claims(rows, b)

# %%
print(book.ladder.control_findings(rows, b, claims))

# %% [markdown]
# ## What we saw
# The lines printed above are computed from this run's rows: random against pretrained weights at each
# depth, how much each model loses when its histories are shuffled, what a trainable item table and
# every prefix as a row change, and how far each block turns the last-token state. The gpu profile runs
# every control with 3 seeds; the cpu and smoke profiles with one, where the claims rest on the paired
# test over users alone. On the smoke profile the backbone is random and the data synthetic: the
# notebook checks the pipeline only.
