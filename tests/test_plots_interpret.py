"""Pictures of predictions / comparisons / slopes frames (issue 11), drawn from hand-built frames."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

import bayesmixed as bm  # noqa: E402
from bayesmixed.plots.interpret import plot_comparisons, plot_predictions_frame, plot_slopes  # noqa: E402


def _stats(est, half=1.0):
    est = np.asarray(est, dtype=float)
    return {"estimate": est, "std_error": half / 2, "conf_low": est - half, "conf_high": est + half}


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _estimates(ax):
    return [c for c in ax.containers if c.lines[0].get_gid() == "estimate"]


def test_numeric_x_draws_lines_and_bands_per_group():
    fr = pd.DataFrame({"Days": [0, 3, 6, 9] * 2, "Subject": ["308"] * 4 + ["309"] * 4,
                       **_stats([250, 280, 310, 340, 210, 215, 220, 225], 10)})
    ax = plot_predictions_frame(fr.iloc[::-1], "Days", by="Subject")
    lines = [ln for ln in ax.get_lines() if ln.get_gid() == "estimate"]
    assert len(lines) == 2
    np.testing.assert_array_equal(lines[0].get_xdata(), [0, 3, 6, 9])         # sorted along x
    bands = [c for c in ax.collections if isinstance(c, PolyCollection) and c.get_gid() == "band"]
    assert len(bands) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Subject = 309", "Subject = 308"]
    assert ax.get_xlabel() == "Days" and ax.get_ylabel() == "prediction"


def test_categorical_x_draws_points_with_bars():
    fr = pd.DataFrame({"period": ["1", "2", "3", "4"], **_stats([0.2, 0.08, 0.07, 0.05], 0.04)})
    ax = plot_predictions_frame(fr, "period", ylabel="probability")
    (cont,) = _estimates(ax)
    np.testing.assert_allclose(cont.lines[0].get_ydata(), fr["estimate"])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4"]
    assert ax.get_legend() is None and ax.get_ylabel() == "probability"
    # two groups are dodged around each category
    fr2 = pd.concat([fr.assign(g="a"), fr.assign(g="b")], ignore_index=True)
    ax = plot_predictions_frame(fr2, "period", by="g")
    a, b = _estimates(ax)
    assert np.all(a.lines[0].get_xdata() < b.lines[0].get_xdata())


def test_comparisons_one_row_per_contrast_with_zero_line():
    fr = pd.DataFrame({"term": "period", "contrast": ["2 - 1", "3 - 1", "4 - 1"], "herd": ["1", "1", "2"],
                       **_stats([-1.0, -1.1, -1.6], 0.5), "p_value": 0.01})
    ax = plot_comparisons(fr)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["period: 2 - 1 (herd = 1)", "period: 3 - 1 (herd = 1)", "period: 4 - 1 (herd = 2)"]
    (cont,) = _estimates(ax)
    np.testing.assert_allclose(cont.lines[0].get_xdata(), fr["estimate"])
    assert [ln for ln in ax.get_lines() if ln.get_gid() == "zero"]
    assert ax.yaxis_inverted()


def test_slopes_rows_or_along_x():
    fr = pd.DataFrame({"term": "Days", **_stats([10.47], 3)})
    ax = plot_slopes(fr)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Days"] and ax.get_xlabel() == "slope of Days"
    along = pd.DataFrame({"term": "x", "x": np.linspace(0, 1, 5), **_stats(np.linspace(0.1, 0.3, 5), 0.05)})
    ax = plot_slopes(along, x="x")
    assert len([ln for ln in ax.get_lines() if ln.get_gid() == "estimate"]) == 1
    assert ax.get_ylabel() == "slope of x"


def test_bad_frames_name_what_is_missing():
    with pytest.raises(bm.DesignError, match=r"no column\(s\) \['conf_low', 'conf_high'\]"):
        plot_comparisons(pd.DataFrame({"contrast": ["a"], "estimate": [1.0]}))
    with pytest.raises(bm.DesignError, match=r"no column\(s\) \['Day'\]"):
        plot_predictions_frame(pd.DataFrame(_stats([1.0])), "Day")
    with pytest.raises(bm.DesignError, match=r"no column\(s\) \['g'\]"):
        plot_predictions_frame(pd.DataFrame({"x": [1.0], **_stats([1.0])}), "x", by="g")
    with pytest.raises(bm.DesignError, match="DataFrame"):
        plot_slopes([1, 2])
    with pytest.raises(bm.DesignError, match="no rows"):
        plot_slopes(pd.DataFrame({"term": [], "estimate": [], "conf_low": [], "conf_high": []}))
