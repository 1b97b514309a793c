"""The notebooks' one import: checked parameters, the runs of a study, tables beside the paper's,
verdicts with their statistics, the report and the figures.

    from slmrec_lib import book
    b = book.start(profile, dataset, names=set(globals()) - _before)
    rows = book.study_rows(b, "main_table")
    table = book.main_table(rows, b)
    fig = book.figures.main_table(rows, table, b)

Parts (each imports only those above it, never this package):
    context   Book, start, the parameter check
    paper     the paper's tables and which paper row a model plays (`paper_row`, from tidy columns)
    runs      the runs of a study (through the Book's Profile), groups of seeds, `Side`s naming models
    tables    ours beside the paper's, the layer scan, costs, datasets, markdown
    claims    the claims and their verdicts (Welch, Fieller, paired bootstrap, Wilcoxon, Holm, Kendall)
    authors_code  the authors' code beside the book's (benchmarks/authors_code): summary, finding, figure
    efficiency    RQ2 at Llama-2-7B's shape (the committed H200 timing, paper-profile run, hours): tables, verdicts
    report    results/<profile>/report.md and .csv
    ladder    the baseline ladder (08) and the depth controls (09): tables, calibration, layer distances
    figures   the figures
"""

from . import figures
from .claims import (ALPHA, CLAIMS, EFFICIENCY_CLAIMS, EFFICIENCY_TOLERANCE, FAILS, HOLDS, INCONCLUSIVE, NO_RANKS,
                     NOT_MEASURED, Claim, EfficiencyClaim, efficiency_measures, findings, judge_all, judge_claims,
                     judge_efficiency, protocol_agreement, seed_scores, side_by_side)
from .context import PARAMETERS, Book, BookError, check_parameters, known_datasets, start
from .paper import (MAIN_METRICS, PAPER_DEPTH, PAPER_MID, PAPER_SMALL, REFERENCE, SCAN_METRICS, average_improvement,
                    check_one_to_one, paper, paper_dataset_checks, paper_long, paper_row)
from .report import write_report
from .runs import (BLOCKS_1, BLOCKS_2, BLOCKS_NOTE, DEEP, E4_MID, E4_SMALL, FULL, FULL_ONLINE, OFF, ON, P5, SASREC, STUDENT,
                   STUDENT_MS, STUDENT_NORM, STUDY_NAMES, Side, groups, normalized, protocols, rows_of, run_studies,
                   sampled_protocol, select, study_configs, study_rows, timing_rows, timing_summary)
from .tables import (comparison_table, dataset_findings, dataset_table, efficiency_table, formatted,
                     impossible_blocks, layer_scan_table, main_table, markdown_table, mean_std, scan_findings,
                     sequence_lengths)
from . import ladder
from . import authors_code
from . import efficiency
from .claims import LADDER_CLAIMS, NOT_RUN, OrderClaim, all_claims, control_claims, control_sides
from .runs import EXTRA_STUDIES, RUNG_NAMES, rung_of
