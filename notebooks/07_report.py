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
# # 07 · Report: our numbers beside the paper's, and a verdict for each claim
#
# **Question.** Taking the book together: which of the paper's claims (RQ1-RQ5 and its efficiency
# figures, listed in paper/README.md) does this profile's data support, contradict, or leave open?
# Every run is read back from the earlier notebooks (missing ones are trained now, except a GPU
# profile's on a machine without a GPU: those are listed at the end of the report).

# %% tags=["parameters"]
profile = "smoke"  # smoke | cpu | gpu | paper (see slmrec_lib/profiles.py)
dataset = None  # None: the profile's first dataset; else a name of slmrec_lib.data.known_datasets() or a file
with_p5 = True  # as in 02_main_table

# %%
from IPython.display import Markdown, display

from slmrec_lib import book, plots, timing

b = book.start(profile, dataset)
plots.setup()

# %%
rows = book.run_studies(b, with_p5=with_p5)
timed = timing.load(b.name, b.dataset)  # the benchmark of 03_efficiency (empty if it was not run)

# %% [markdown]
# ## Ours beside the paper's, for every row that maps
# Percent, test stage, sampled protocol, mean over seeds; the paper's Cloth / Movie beside.

# %%
comparison = book.comparison_table(rows, b)
book.formatted(comparison)

# %%
fig = plots.report(comparison, b)
plots.save(fig, b.figure_path("report"))

# %% [markdown]
# ## The claims
# Accuracy claims: holds / does not hold when the difference of means is beyond twice its standard
# error over seeds (`book.K_SE`), else inconclusive. Efficiency claims: against the paper's figure
# scaled to our depths, within `book.EFFICIENCY_TOLERANCE` (the timing benchmark of 03 where saved,
# else the runs' own clocks).

# %%
claims = book.judge_all(rows, b, timed)
claims

# %%
csv_path, md_path = book.write_report(b, comparison, claims, rows.attrs.get("missing"))
print(book.findings(claims))
display(Markdown(md_path.read_text()))

# %% [markdown]
# ## What we saw
# The verdicts and both tables above are computed from this profile's results, and written to
# `results/<profile>/report.csv` and `report.md` (which the README includes). A claim judged
# inconclusive is neither confirmed nor refuted: more seeds or more data would decide it. The smoke
# profile's verdicts only show that every step of the book runs.
