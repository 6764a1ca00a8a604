"""Layer 4, statistics: significance tests and corrections, block summaries, condition comparisons."""
