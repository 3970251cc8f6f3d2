"""Pictures of predictions, comparisons and slopes (the marginaleffects vocabulary).

Each function draws a DataFrame as ``fit.predictions(...)``, ``fit.comparisons(...)``
and ``fit.slopes(...)`` return it: the grid or ``by`` columns, then ``estimate``,
``std_error``, ``conf_low``, ``conf_high`` (and ``term`` / ``contrast`` for
comparisons and slopes). They take the frame, not the fit, so any frame with those
columns can be drawn, and they compute nothing beyond picking columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesmixed.errors import DesignError
from bayesmixed.plots._style import legend_outside, new_ax

# columns of a frame that are numbers about the estimate, not the row's description
STAT_COLUMNS = ("estimate", "std_error", "statistic", "p_value", "s_value", "conf_low", "conf_high")
NEEDED = ("estimate", "conf_low", "conf_high")

__all__ = ["plot_predictions_frame", "plot_comparisons", "plot_slopes"]


def _check(frame, *columns) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise DesignError(f"expected the DataFrame of fit.predictions() / comparisons() / slopes(), "
                          f"got {type(frame).__name__}")
    missing = [c for c in (*NEEDED, *columns) if c is not None and c not in frame.columns]
    if missing:
        raise DesignError(f"the frame has no column(s) {missing}; its columns are {list(frame.columns)}")
    if frame.empty:
        raise DesignError("the frame has no rows to draw")
    return frame.reset_index(drop=True)


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _groups(frame: pd.DataFrame, by):
    """(label, sub-frame) per value of ``by`` (one unlabelled group without ``by``)."""
    if by is None:
        return [(None, frame)]
    return [(f"{by} = {k}", g) for k, g in frame.groupby(by, sort=False, observed=True)]


def _row_label(row: pd.Series, columns) -> str:
    return ", ".join(f"{c} = {row[c]}" if c not in ("term", "contrast") else str(row[c]) for c in columns)


def _row_labels(frame: pd.DataFrame, heads, head) -> list[str]:
    """One y-axis label per row: ``head(row)``, then the row's describing columns in brackets."""
    describe = [c for c in frame.columns if c not in STAT_COLUMNS and c not in heads]
    return [head(row) + (f" ({_row_label(row, describe)})" if describe else "") for _, row in frame.iterrows()]


def _intervals(ax, frame: pd.DataFrame, labels):
    """Points with horizontal interval bars, one row per row of ``frame``, labelled on the y axis."""
    est = frame["estimate"].to_numpy(dtype=float)
    err = [est - frame["conf_low"].to_numpy(dtype=float), frame["conf_high"].to_numpy(dtype=float) - est]
    pos = np.arange(len(frame))
    ax.errorbar(est, pos, xerr=err, fmt="o", color="C0", ms=5, capsize=3, gid="estimate")
    ax.set_yticks(pos, labels)
    return pos


def plot_predictions_frame(frame: pd.DataFrame, x: str, by: str | None = None, *, ax=None,
                           ylabel: str = "prediction"):
    """Draw predictions along ``x``: a line with its interval band (numeric ``x``) or points with bars.

    Parameters
    ----------
    frame : DataFrame
        As ``fit.predictions(newdata=datagrid(...))`` returns it: a column ``x``,
        optionally ``by``, and ``estimate``, ``conf_low``, ``conf_high``.
    x : str
        Column along the horizontal axis.
    by : str, optional
        One line (or one dodged set of points) per value of this column.
    ax : Axes, optional
    ylabel : str

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import pandas as pd
    >>> fr = pd.DataFrame({"Days": [0, 5, 9], "estimate": [251.4, 303.7, 345.6],
    ...                    "std_error": [6.8, 9.0, 15.1], "conf_low": [238.0, 286.0, 316.0],
    ...                    "conf_high": [264.8, 321.4, 375.2]})
    >>> ax = plot_predictions_frame(fr, "Days")
    >>> ax.get_xlabel(), len(ax.get_lines())
    ('Days', 1)
    """
    frame = _check(frame, x, by)
    ax = new_ax(ax)
    groups = _groups(frame, by)
    if _is_numeric(frame[x]):
        for i, (label, g) in enumerate(groups):
            g = g.sort_values(x, kind="stable")
            xs = g[x].to_numpy(dtype=float)
            ax.fill_between(xs, g["conf_low"].to_numpy(dtype=float), g["conf_high"].to_numpy(dtype=float),
                            color=f"C{i}", alpha=0.2, lw=0, gid="band")
            ax.plot(xs, g["estimate"].to_numpy(dtype=float), color=f"C{i}", lw=2, label=label, gid="estimate")
    else:
        cats = list(pd.unique(frame[x]))
        width = 0.6 / max(1, len(groups))
        for i, (label, g) in enumerate(groups):
            shift = (i - (len(groups) - 1) / 2) * width
            pos = np.array([cats.index(v) for v in g[x]]) + shift
            est = g["estimate"].to_numpy(dtype=float)
            err = [est - g["conf_low"].to_numpy(dtype=float), g["conf_high"].to_numpy(dtype=float) - est]
            ax.errorbar(pos, est, yerr=err, fmt="o", color=f"C{i}", ms=5, capsize=3, label=label, gid="estimate")
        ax.set_xticks(np.arange(len(cats)), [str(c) for c in cats])
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    if by is not None:
        legend_outside(ax)
    return ax


def plot_comparisons(frame: pd.DataFrame, *, ax=None, xlabel: str = "difference"):
    """Draw contrasts: one row per contrast (and grid row), its estimate and interval, a line at 0.

    Parameters
    ----------
    frame : DataFrame
        As ``fit.comparisons(...)`` returns it: ``contrast`` (and ``term``), the grid
        or ``by`` columns, ``estimate``, ``conf_low``, ``conf_high``.
    ax : Axes, optional
    xlabel : str

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import pandas as pd
    >>> fr = pd.DataFrame({"term": "period", "contrast": ["2 - 1", "3 - 1", "4 - 1"],
    ...                    "estimate": [-0.99, -1.13, -1.58], "conf_low": [-1.6, -1.8, -2.5],
    ...                    "conf_high": [-0.4, -0.5, -0.7]})
    >>> ax = plot_comparisons(fr)
    >>> [t.get_text() for t in ax.get_yticklabels()]
    ['period: 2 - 1', 'period: 3 - 1', 'period: 4 - 1']
    """
    frame = _check(frame, "contrast")
    labels = _row_labels(frame, ("term", "contrast"),
                         lambda row: f"{row['term']}: {row['contrast']}" if "term" in frame.columns
                         else str(row["contrast"]))
    return _rows_plot(frame, labels, ax, xlabel)


def _rows_plot(frame: pd.DataFrame, labels, ax, xlabel: str):
    ax = new_ax(ax, figsize=(6, 1.2 + 0.4 * len(frame)))
    _intervals(ax, frame, labels)
    ax.axvline(0.0, color="0.5", lw=1, ls="--", gid="zero")
    ax.invert_yaxis()                        # first row on top, as the frame reads
    ax.set_xlabel(xlabel)
    return ax


def plot_slopes(frame: pd.DataFrame, x: str | None = None, by: str | None = None, *, ax=None,
                ylabel: str | None = None):
    """Draw slopes: along ``x`` as a line with its band, or one row per slope with its interval.

    Parameters
    ----------
    frame : DataFrame
        As ``fit.slopes(...)`` returns it: ``term``, the grid or ``by`` columns,
        ``estimate``, ``conf_low``, ``conf_high``.
    x : str, optional
        A grid column: the slope as it changes along ``x`` (as
        :func:`plot_predictions_frame` draws predictions). Without it, one row per slope.
    by : str, optional
        With ``x``: one line per value of this column.
    ax : Axes, optional
    ylabel : str, optional
        Default ``"slope of <term>"``.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import pandas as pd
    >>> fr = pd.DataFrame({"term": "Days", "estimate": [10.47], "conf_low": [7.44], "conf_high": [13.50]})
    >>> ax = plot_slopes(fr)
    >>> [t.get_text() for t in ax.get_yticklabels()], ax.get_xlabel()
    (['Days'], 'slope of Days')
    """
    frame = _check(frame)
    term = ", ".join(map(str, pd.unique(frame["term"]))) if "term" in frame.columns else "the prediction"
    label = ylabel or f"slope of {term}"
    if x is not None:
        ax = plot_predictions_frame(frame, x, by, ax=ax, ylabel=label)
        ax.axhline(0.0, color="0.5", lw=1, ls="--", gid="zero")
        return ax
    labels = _row_labels(frame, ("term",), lambda row: str(row["term"]) if "term" in frame.columns else "slope")
    return _rows_plot(frame, labels, ax, label)
