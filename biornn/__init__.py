"""biornn: biologically constrained RNNs (Dale's backprop, top-prob pruning, cell-type RNNs).

A notebook-first reproduction of Balwani, Wang, Najafi & Choi, Science Advances (2025). Importing ``biornn`` pulls in
no optional heavy dependency (allensdk, seaborn).

Layers; imports point down this list only (``tests/test_structure.py`` checks the import graph has no loop):

1. core: ``errors``, ``config`` (the only module that reads environment variables; ``ROOT``), ``conditions``,
   ``progress`` (the one progress bar), ``store`` (run folders, atomic writes, provenance, reference numbers), ``cli``;
2. science: ``constraints``, ``connectivity``, ``models``, ``tasks``, ``pruning``, ``train``;
3. data: ``stimulus``, ``allen``, ``allen_nwb``, ``synthetic``, ``curate`` (package), ``replicates``;
4. the Fig 4 model: ``celltype`` (package; trains on curated datasets);
5. statistics: ``stats`` (every test and correction), ``analysis`` (package: block summaries, comparisons, Fig 5
   inputs);
6. experiments and figures: ``fig2`` (and ``results``, which re-exports ``store`` and ``fig2`` for the notebooks),
   ``fig3`` (package), ``fig4_tables``, ``recovery``, ``plotting`` (package), ``plot_recovery``.

Packages re-export their submodules' public names, so ``biornn.celltype.train_celltype`` or
``biornn.analysis.permutation_test`` work as before; submodules import each other one way, never their own package.
The data modules ``allen``, ``synthetic`` and ``curate`` still answer ``plot_*`` (moved to ``biornn.plotting``) on
first use, for the notebooks.
"""

__version__ = "0.1.0"
