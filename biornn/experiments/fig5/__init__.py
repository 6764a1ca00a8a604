"""Layer 5, experiments: Figure 5, condition comparisons of the Fig 4 networks, twin recovery, joint estimators."""
