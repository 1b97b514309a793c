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
# # 00 · The data: what the experiments run on
#
# **Question.** Which interaction data does each profile train and evaluate on, how large is it, and how
# does it compare with the paper's datasets (its Table of dataset statistics: Amazon 2018 Cloth, Movie,
# Music, Sport)? Sequence lengths matter here: the LLM models read at most the last `max_len` items.
#
# Every table and figure of the book says which profile, dataset and backbone produced it.

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
# ## Our datasets, as the profile uses them
# One row a dataset (`data.dataset_stats`); where the profile keeps a seeded user subset, the full set
# is shown below it for reference. Items keep their ids in a subset, so `items` is the whole catalogue.

# %%
ours = book.dataset_table(b)
ours

# %% [markdown]
# ## The paper's datasets, with what their own counts imply
# A 5-core dataset has at least 5 ratings a user and an item, and density should equal
# ratings / (users x items) up to the printed rounding. `consistent` checks both.

# %%
book.paper_dataset_checks()

# %%
fig = book.figures.length_hist(book.sequence_lengths(b), b)
book.figures.save(fig, b.figure_path("sequence_lengths"))

# %%
print(book.dataset_findings(b))

# %% [markdown]
# ## What we saw
# The lines above are computed from the data and from the paper's table. The paper's Sport row cannot
# describe a 5-core dataset (fewer ratings than users), so the book does not compare against it. Our
# datasets are not the paper's Amazon 2018 categories (those are supported by name, `amazon2018:<Category>`,
# but are large); levels of accuracy are therefore not comparable across the two, only the
# relations between models are. The smoke profile's synthetic data exists to exercise the pipeline.
