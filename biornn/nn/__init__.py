"""Layer 1, science: E/I constraints, RNN models, tasks, connectivity tables, training and the run cache."""
