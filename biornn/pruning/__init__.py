"""Layer 1, science: top-prob and random pruning (keep probabilities, masks, block-wise masks, spanning trees)."""

from __future__ import annotations

from biornn.pruning.blockwise import blockwise_mask, blockwise_probabilities
from biornn.pruning.masks import mask_stats, prune, random_mask, topprob_mask
from biornn.pruning.probabilities import (
    ELIGIBILITY,
    FLOOR,
    PRUNING_METHODS,
    REDISTRIBUTION,
    keep_budget,
    random_probabilities,
    topprob_probabilities,
)
from biornn.pruning.spanning_tree import (
    empirical_overlap,
    expected_overlap,
    max_spanning_tree_edges,
    overlap_lower_bound,
    reference_lower_bound,
    reference_random_expectation,
)

__all__ = ["ELIGIBILITY", "FLOOR", "PRUNING_METHODS", "REDISTRIBUTION", "blockwise_mask", "blockwise_probabilities",
           "empirical_overlap", "expected_overlap", "keep_budget", "mask_stats", "max_spanning_tree_edges",
           "overlap_lower_bound",           "prune",
           "random_mask", "random_probabilities", "reference_lower_bound", "reference_random_expectation",
           "topprob_mask", "topprob_probabilities"]
