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

# %% tags=["parameters"]
profile = "smoke"  # smoke | cpu | gpu | paper (see slmrec_lib/profiles.py)
dataset = None  # None: the profile's first dataset; else a name of slmrec_lib.data.known_datasets() or a file

# %%
from slmrec_lib import book, experiment, plots, studies

b = book.start(profile, dataset)
plots.setup()

# %%
rows = experiment.run_all(studies.online_kd(b.name, b.dataset), b.name)

# %% [markdown]
# ## The table
# Ours in percent (test, sampled protocol, mean ± std over seeds), with the average improvement of
# each against the offline student. The paper's main table has the offline student only (its row is
# shown); the online comparison is in its text.

# %%
table = book.main_table(rows, b, reference="SLMRec_{small}<-{mid} +D_norm +L_ms")
book.formatted(table)

# %%
fig = plots.metric_bars(rows, b, "Online vs offline distillation (RQ4)")
plots.save(fig, b.figure_path("online_kd"))

# %%
print(book.findings(book.judge_claims(rows, b, rq="RQ4")))

# %% [markdown]
# ## What we saw
# The verdict is computed over seeds. Online, the student learns from a teacher that is itself still
# untrained early on, and the two share a training budget; the paper trains the teacher first. Note
# that online training costs the teacher's backward pass in every step as well (see 03 for costs).
