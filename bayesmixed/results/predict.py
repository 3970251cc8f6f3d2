"""One prediction core for every fit: the linear predictor over a (draws, q) array of b.

A point fit is one draw: ``beta`` is (1, p) and ``b`` is (1, q); a posterior fit
passes all its draws. Random effects are laid out as the design's ``b_slices``
(term by term, level-major).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from bayesmixed.design.newdata import new_matrices
from bayesmixed.errors import DesignError

# (term, (m_new,) labels of the rows with unseen levels) -> (index of each row into the unique new
# labels, (draws, n_unique_new, k) effects)
NewLevelDraws = Callable[[object, np.ndarray], tuple[np.ndarray, np.ndarray]]


def check_type(type: str) -> None:
    """Refuse a prediction ``type`` other than ``"link"`` or ``"response"``.

    Examples
    --------
    >>> check_type("link")
    >>> check_type("probability")
    Traceback (most recent call last):
    ...
    bayesmixed.errors.DesignError: type must be 'link' or 'response', got 'probability'
    """
    if type not in ("link", "response"):
        raise DesignError(f"type must be 'link' or 'response', got {type!r}")


def eta_draws(design, beta: np.ndarray, b: np.ndarray, newdata=None, *, include_random: bool = True,
              allow_new_levels: bool = False, new_level_draws: NewLevelDraws | None = None):
    """(draws, m) linear predictor and the row index, on the data or on ``newdata``.

    Parameters
    ----------
    design : MixedDesign
    beta : (S, p) array
    b : (S, q) array
    newdata : DataFrame, optional
    include_random : bool
        False: fixed part and offset only (lme4's ``re.form=NA``).
    allow_new_levels : bool
        Accept levels not seen in the fit; their effect is zero unless ``new_level_draws``
        gives draws for them.
    new_level_draws : callable, optional
        ``(term, labels of the rows with new levels)`` -> ``(inverse index of each such row
        into the unique new labels, (S, n_unique, k) effects)``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> beta, b = fit.fixef.to_numpy()[None], fit.b[None]
    >>> eta, index = eta_draws(fit.design, beta, b, pd.DataFrame({"Days": [0.0], "Subject": ["308"]}))
    >>> eta.shape, round(float(eta[0, 0]), 2)
    ((1, 1), 253.66)
    """
    d = design
    beta = np.atleast_2d(beta)
    b = np.atleast_2d(b)
    if newdata is None:
        eta = (d.X @ beta.T).T + d.offset
        if include_random and d.reterms:
            eta = eta + (d.Z @ b.T).T
        return eta, d.index
    nd = new_matrices(d, newdata, include_random=include_random, allow_new_levels=allow_new_levels)
    eta = (nd.X @ beta.T).T + nd.offset
    if include_random:
        for i, (t, s, codes, Xi) in enumerate(zip(d.reterms, d.b_slices, nd.codes, nd.Xis)):
            bt = b[:, s].reshape(b.shape[0], t.n_levels, t.n_cols)         # (S, L, k)
            new = codes < 0
            codes = codes.copy()
            if new.any():
                if new_level_draws is None:
                    extra = np.zeros((b.shape[0], 1, t.n_cols))
                    codes[new] = t.n_levels
                else:
                    labels = np.asarray(nd.labels[i], dtype=object)[new].astype(str)
                    inv, extra = new_level_draws(t, labels)
                    codes[new] = t.n_levels + inv
                bt = np.concatenate([bt, extra], axis=1)
            eta = eta + np.einsum("snk,nk->sn", bt[:, codes, :], Xi)
    return eta, nd.index
