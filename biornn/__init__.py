"""biornn: biologically constrained RNNs (Dale's backprop, top-prob pruning, cell-type RNNs).

A notebook-first reproduction of Balwani, Wang, Najafi & Choi, Science Advances (2025). Modules, one per concept:
``tasks``, ``models``, ``constraints``, ``train``, ``results``, ``stats``, ``plotting`` (and more as the figures
land). Importing ``biornn`` pulls in no optional heavy dependency (allensdk, seaborn).
"""

__version__ = "0.1.0"
