"""Drawing helpers shared by the plots: new axes, marker sizes, arrows, ellipses, legends, ticks."""

from __future__ import annotations

import numpy as np
from scipy import stats

SIZE_RANGE = (15.0, 160.0)        # marker area (points^2) of the smallest and the largest group


def new_ax(ax, figsize=(6, 5)):
    """``ax``, or the Axes of a new figure of ``figsize``."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def method_label(fit) -> str:
    """How a fit is named in legends and titles (REML, Laplace, NUTS...)."""
    m = getattr(fit, "method", "fit")
    return {"reml": "REML", "ml": "ML", "laplace": "Laplace", "agq": "AGQ", "nuts": "NUTS",
            "map": "MAP"}.get(m, str(m))


def sizes(n, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Marker areas growing linearly with the group size ``n`` (between ``lo`` and ``hi`` sizes)."""
    n = np.asarray(n, dtype=float)
    lo = float(n.min()) if lo is None else lo
    hi = float(n.max()) if hi is None else hi
    smin, smax = SIZE_RANGE
    if hi == lo:
        return np.full_like(n, 0.5 * (smin + smax))
    return smin + (smax - smin) * (n - lo) / (hi - lo)


def arrow(ax, start, end, color, gid, style="-", alpha=0.8):
    from matplotlib.patches import FancyArrowPatch

    a = FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=8, color=color, lw=0.8,
                        linestyle=style, alpha=alpha, shrinkA=0, shrinkB=2, gid=gid, zorder=2)
    ax.add_patch(a)
    return a


def ellipse(ax, center, cov, level, **kw):
    from matplotlib.patches import Ellipse

    w, V = np.linalg.eigh(cov)
    w = np.clip(w, 0, None)
    r = np.sqrt(stats.chi2.ppf(level, 2))
    angle = np.degrees(np.arctan2(V[1, -1], V[0, -1]))
    e = Ellipse(center, 2 * r * np.sqrt(w[-1]), 2 * r * np.sqrt(w[0]), angle=angle, fill=False, **kw)
    ax.add_patch(e)
    return e


def legend_outside(ax, handles=None, labels=None, sizes_of=None, size_what: str = "", **kw):
    """The legend to the right of the axes, so that it never covers data (gid ``"legend"``).

    ``sizes_of`` (group sizes, when marker area encodes them) adds entries saying which
    size a marker area means: the smallest, a middle and the largest, as
    ``"<n> <size_what>"`` (only when the sizes differ).
    """
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    h, lab = size_entries(sizes_of, size_what) if sizes_of is not None else ([], [])
    leg = ax.legend(list(handles) + h, list(labels) + lab, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                    borderaxespad=0.0, fontsize="small", labelspacing=0.9 if h else 0.5, **kw)
    leg.set_gid("legend")
    return leg


def size_entries(n, what: str):
    """Legend handles and labels for marker areas: smallest, middle and largest group size."""
    from matplotlib.lines import Line2D

    n = np.asarray(n, dtype=float)
    if n.size == 0 or n.min() == n.max():
        return [], []
    shown = sorted({int(n.min()), int(round(float(np.median(n)))), int(n.max())})
    areas = sizes(np.array(shown, dtype=float), n.min(), n.max())
    handles = [Line2D([], [], ls="none", marker="o", markersize=np.sqrt(a), markerfacecolor="0.8",
                      markeredgecolor="0.35", gid="size-key") for a in areas]
    return handles, [f"{v:g} {_singular(what) if v == 1 else what}" for v in shown]


def _singular(what: str) -> str:
    """"rows per county" -> "row per county" (for a group of size 1)."""
    first, _, rest = what.partition(" ")
    return (first[:-1] if first.endswith("s") else first) + (" " + rest if rest else "")


def level_ticks(ax, positions, names, max_labels: int = 60, axis: str = "y", fontsize=7):
    """Level names as tick labels; with more than ``max_labels`` levels, every k-th one."""
    positions = np.asarray(positions)
    names = [str(v) for v in names]
    step = max(1, int(np.ceil(len(names) / max_labels)))
    order = np.argsort(positions, kind="stable")[::step]
    setter = ax.set_yticks if axis == "y" else ax.set_xticks
    setter(positions[order], [names[i] for i in order], fontsize=fontsize)
    return step
