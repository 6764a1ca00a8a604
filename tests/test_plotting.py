"""The one figure helper: PNG and PDF, atomic, and quick-mode figures marked as such."""

import matplotlib.pyplot as plt

from biornn.plotting import METHOD_STYLE, save_figure


def test_save_figure_writes_png_and_pdf(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], **{k: v for k, v in METHOD_STYLE["dales"].items() if k != "label"})
    paths = save_figure(fig, "demo", folder=tmp_path, mode="quick")
    assert [p.name for p in paths] == ["demo.png", "demo.pdf"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.pdf", "demo.png"]  # no temporaries left
    assert any("quick mode" in t.get_text() for t in fig.texts)
    plt.close(fig)


def test_paper_mode_figures_are_unmarked(tmp_path):
    fig, _ = plt.subplots()
    save_figure(fig, "demo", folder=tmp_path, mode="paper")
    assert not fig.texts
    plt.close(fig)


def test_save_figure_reads_no_environment(tmp_path, monkeypatch):
    """The folder and the mode are arguments: ``BIORNN_FIGURES`` / ``BIORNN_MODE`` do not reach the library."""
    monkeypatch.setenv("BIORNN_FIGURES", str(tmp_path / "ignored"))
    monkeypatch.setenv("BIORNN_MODE", "paper")
    fig, _ = plt.subplots()
    save_figure(fig, "demo", folder=tmp_path)
    assert not (tmp_path / "ignored").exists() and (tmp_path / "demo.png").exists()
    assert any("quick mode" in t.get_text() for t in fig.texts)  # the documented default mode is quick
    plt.close(fig)


def test_paper_colours():
    assert METHOD_STYLE["conventional"]["color"] == "k"
    assert METHOD_STYLE["dales"]["color"] == "cornflowerblue" and METHOD_STYLE["dales"]["marker"] == "^"
    assert METHOD_STYLE["rectified-published"]["color"] == "salmon"


def test_condition_fits_plot_draws_each_windows_reference_predictors():
    import pandas as pd

    from biornn.plotting import plot_condition_fits

    rows = [{"condition": c, "window": w, "seed": s, "median_r": 0.9 + 0.01 * s,
             "time_mean_r": 0.95 if w == "full" else 0.92, "linear_history_r": 0.98 if w == "full" else 0.97}
            for c in ("FC", "FN") for w in ("full", "half") for s in range(3)]
    fig = plot_condition_fits(pd.DataFrame(rows))
    ax = fig.axes[0]
    oracle = [ln for ln in ax.get_lines() if ln.get_color() == "tab:orange"]
    assert len(oracle) == 4  # 2 conditions x 2 windows
    assert sorted({float(ln.get_ydata()[0]) for ln in oracle}) == [0.92, 0.95]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "held-out average trace (oracle) (full)" in labels and "held-out average trace (oracle) (half)" in labels
    linear = [ln for ln in ax.get_lines() if ln.get_color() == "tab:green"]
    assert sorted({float(ln.get_ydata()[0]) for ln in linear}) == [0.97, 0.98] and len(linear) == 4
    assert not any("training average" in t for t in labels)  # a column the table lacks is not drawn
    plt.close(fig)
