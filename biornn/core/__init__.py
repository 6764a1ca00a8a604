"""Layer 0, core: errors, configuration and environment readers, conditions, the results store, progress bars."""
