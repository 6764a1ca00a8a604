"""Layer 5, experiments: one module or package per figure (fig2 ... fig5), parameter sweeps, cache verification."""
