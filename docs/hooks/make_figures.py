"""Write the figures of the getting-started and workflow pages (docs/img/*.png).

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
    workflow()


def _save(obj, name: str, size=(6.5, 4.5)) -> None:
    fig = obj if hasattr(obj, "savefig") else obj.figure
    fig.set_size_inches(*size)
    fig.tight_layout()
    fig.savefig(OUT / name, dpi=110)
    plt.close(fig)


def workflow() -> None:
    """The figures of docs/workflow.md (the same calls as the page's examples)."""
    model = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
    _save(bm.plot_priors(model), "workflow_priors.png", size=(9, 5.5))
    prior = model.sample_prior_predictive(draws=200, random_seed=1)
    _save(bm.plot_prior_predictive(prior), "workflow_prior_predictive.png")
    post = model.fit(method="nuts", draws=500, tune=500, chains=2, random_seed=1, progressbar=False)
    _save(bm.plot_ppc(post), "workflow_ppc.png")
    pred = post.predictions({"Days": list(range(10))}, include_random=False)
    _save(bm.plot_predictions_frame(pred, "Days"), "workflow_predictions.png")


if __name__ == "__main__":
    main()
