"""slmrec_lib: the library behind the SLMRec reproducibility book.

Data, models, losses, training, evaluation and the experiment runner for reproducing
"SLMRec: Distilling Large Language Models into Small for Sequential Recommendation"
(Xu et al., ICLR 2025). docs/architecture.md says how the modules fit together.
"""

__version__ = "0.1.0"
