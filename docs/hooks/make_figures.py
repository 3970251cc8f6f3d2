"""Write the figures of the getting-started page (docs/img/*.png).

Run from the repository root after a change to the plots: ``python docs/hooks/make_figures.py``.
The build does not run it (it stays fast and needs no fitting); the figures are committed.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

import bayesmixed as bm  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "img"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    bm.plot_shrinkage(fit, ax=ax)
    fig.tight_layout()
    fig.savefig(OUT / "sleepstudy_shrinkage.png", dpi=110)
    plt.close(fig)
    fig = bm.plot_ranef(fit)                 # a Figure: one panel per random-effect column
    fig.set_size_inches(8, 5)
    fig.tight_layout()
    fig.savefig(OUT / "sleepstudy_ranef.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
