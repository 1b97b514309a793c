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

# %%
# the names defined before the parameters: book.start checks what the parameters cells added
from IPython.display import Markdown, display

from slmrec_lib import book
_before = set(globals())

# %% tags=["parameters"]
profile = "smoke"  # smoke | cpu | gpu | paper (see slmrec_lib/profiles.py)
dataset = None  # None: the profile's first dataset; else a name of slmrec_lib.data.known_datasets() or a file
with_p5 = True  # as in 02_main_table

# %%
b = book.start(profile, dataset, names=set(globals()) - _before)
book.figures.setup()

# %%
rows = book.run_studies(b, book.STUDY_NAMES + book.EXTRA_STUDIES, with_p5=with_p5)  # + 08's ladder, 09's controls
timed = book.timing_rows(b)  # the benchmark of 03_efficiency (empty if it was not run)

# %% [markdown]
# ## Ours beside the paper's, for every row that maps
# Percent, test stage, sampled protocol, mean over seeds; the paper's Cloth / Movie beside.

# %%
comparison = book.comparison_table(rows, b)
book.formatted(comparison)

# %%
fig = book.figures.report(comparison, b, rows)
book.figures.save(fig, b.figure_path("report"))

# %% [markdown]
# ## The claims
# Accuracy claims, each under every protocol of the profile side by side: the test is named in each
# row (Welch's t on per-seed scores, or the paired bootstrap over seeds and users where the runs kept
# their per-user ranks), with a 95% interval of the relative difference and the p-value Holm-adjusted
# over all the claims of the report (`book.claims` says how a verdict follows). The paper's claim "the
# LLM recommender beats SASRec" is judged against every rung of 08's SASRec ladder, and 09's depth
# controls each add their claims (the order control: one run on plain against shuffled histories; the
# layer-redundancy line is descriptive); a claim whose runs this machine lacks is "not run". Efficiency claims:
# against the paper's figure scaled to our depths, within `book.EFFICIENCY_TOLERANCE` (the timing
# benchmark of 03 where saved, else the runs' own clocks). Then Kendall's tau between the models'
# orderings under the two protocols.

# %%
claims = book.judge_all(rows, b, timed)
book.side_by_side(claims[claims.protocol != ""])

# %%
agreement = book.protocol_agreement(rows)
agreement

# %%
csv_path, md_path = book.write_report(b, comparison, claims, rows.attrs.get("missing"), rows, agreement)
print(book.findings(claims))
display(Markdown(md_path.read_text()))

# %% [markdown]
# ## The authors' code at the same scale
# Is a verdict above the paper's or the reimplementation's? benchmarks/authors_code trains the authors'
# own code (WujiangXu/SLMRec at 0555b8d, with the run patches its README lists) and the book's side by
# side on the same split, backbone and item table, and scores both with the book's evaluator (fixed
# candidates, ties against the positive, fp32). The table: mean ± sd over seeds (NDCG@10 points),
# authors minus book with its Welch 95% interval and p (Holm over the models), the exactness check and
# their own redrawn-negatives test. Its training seconds are no speed comparison (a shared GPU; theirs
# include their validations) and are left out. Only the gpu profile has this benchmark.

# %%
authors = book.authors_code.for_book(b)  # None: not run for this profile (the line below says how to run it)
if authors is None:
    print(book.authors_code.not_run_text(b))
else:
    authors_table = book.authors_code.summary(authors)
    display(book.authors_code.formatted(authors_table))
    fig = book.authors_code.figure(authors, book.authors_code.test_users(b), b.dataset)
    book.figures.save(fig, book.authors_code.figure_path(b))
    print(book.authors_code.finding(authors_table))

# %% [markdown]
# ## What we saw
# The verdicts and both tables above are computed from this profile's results, and written to
# `results/<profile>/report.csv` and `report.md` (which the README includes). A claim judged
# inconclusive is neither confirmed nor refuted: more seeds or more data would decide it. The smoke
# profile's verdicts only show that every step of the book runs. Where the authors' code was run beside
# the book's, the computed sentence above says whether their code, at the same scale, shows what the
# paper reports, and how far its rows lie from the book's.
