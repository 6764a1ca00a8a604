"""biornn: biologically constrained RNNs (Dale's backprop, top-prob pruning, cell-type RNNs).

A notebook-first reproduction of Balwani, Wang, Najafi & Choi, Science Advances (2025). Importing ``biornn`` pulls in
no optional heavy dependency (allensdk, seaborn).

Layers, one folder each; imports point down this list only (``tests/test_structure.py`` checks the import graph):

0. ``core``: ``errors``, ``config`` (environment readers; ``ROOT``), ``conditions``, ``store``, ``progress``;
1. science: ``nn`` (``constraints``, ``connectivity``, ``models``, ``tasks``, ``train``, ``runs``: the run cache) and
   ``pruning``;
2. ``data``: ``allen``, ``allen_nwb``, ``synthetic`` (the digital twin), ``stimulus``, ``replicates``, ``curate``;
3. ``celltype``: the Figure 4 model;
4. ``stats``: ``significance`` (every test and correction), ``blocks``, ``comparisons``;
5. ``experiments``: ``fig2``, ``fig3``, ``fig4``, ``fig5``, ``sweeps``, ``verify``;
6. ``plotting``: ``style`` and one module per figure;

and on top the entry points ``cli`` and ``__main__``. Import from a module's real home (``biornn.nn.train``,
``biornn.experiments.fig5.recovery``); the packages ``celltype``, ``data.curate``, ``experiments.fig3``,
``plotting`` and ``pruning`` also re-export their own submodules' public names.
"""

__version__ = "0.1.0"
