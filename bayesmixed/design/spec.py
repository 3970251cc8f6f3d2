"""The model description both engines read: y, X, sparse Z, terms and Lambda(theta)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from bayesmixed.design.random import ReTerm
from bayesmixed.families import Family
from bayesmixed.formula.terms import ParsedFormula


@dataclass(frozen=True, eq=False)
class MixedDesign:
    """Everything a fit needs, with the names every output uses.

    Attributes
    ----------
    y : (n,) response. For binomial responses the proportion of successes,
        with the number of trials folded into ``weights`` (as glm/glmer do).
    X : (n, p) fixed-effects model matrix (aliased columns already dropped).
    fixef_names : names of the columns of X (formulaic's: ``Intercept``, ``period[T.2]``).
    reterms : random-effects terms in lme4's order (decreasing number of levels).
    weights : (n,) prior weights (binomial: trials times user weights).
    offset : (n,) offset on the linear-predictor scale.
    family : the response family.
    index : labels of the rows used (rows with missing values are not in it).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy"))
    >>> m.design.n, m.design.p, m.design.q, m.design.n_theta
    (180, 2, 36, 3)
    """

    parsed: ParsedFormula
    y: np.ndarray = field(repr=False)
    X: np.ndarray = field(repr=False)
    fixef_names: tuple[str, ...]
    reterms: tuple[ReTerm, ...]
    weights: np.ndarray = field(repr=False)
    offset: np.ndarray = field(repr=False)
    family: Family
    index: pd.Index = field(repr=False)
    response_name: str = "y"
    fixed_spec: object = field(default=None, repr=False)   # formulaic ModelSpec of X
    dropped_columns: tuple[str, ...] = ()
    all_fixef_names: tuple[str, ...] = ()                    # before dropping aliased ones
    trials: np.ndarray | None = field(default=None, repr=False)  # binomial: trials per row
    prior_weights: np.ndarray | None = field(default=None, repr=False)  # user's weights
    has_user_weights: bool = False
    offset_arg: object = field(default=None, repr=False)  # offset= as given: column name, array or None
    rows: np.ndarray | None = field(default=None, repr=False)  # positions in data of the rows kept

    # sizes, with the JSS names
    @property
    def n(self) -> int:
        """Number of observations (rows of X)."""
        return self.X.shape[0]

    @property
    def p(self) -> int:
        """Number of fixed effects (columns of X)."""
        return self.X.shape[1]

    @property
    def q(self) -> int:
        """Number of random effects (columns of Z)."""
        return sum(t.q for t in self.reterms)

    @property
    def n_theta(self) -> int:
        """Length of theta, the relative covariance parameters."""
        return sum(t.n_theta for t in self.reterms)

    @cached_property
    def Z(self) -> sp.csc_array:
        """(n, q) sparse random-effects model matrix, terms side by side.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> d = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).design
        >>> d.Z.shape, d.Z[[0], :2].toarray().tolist()
        ((180, 36), [[1.0, 0.0]])
        """
        if not self.reterms:
            return sp.csc_array((self.n, 0))
        return sp.hstack([t.Zi for t in self.reterms], format="csc")

    @cached_property
    def theta_slices(self) -> tuple[slice, ...]:
        """Each term's slice of theta.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> d = bm.Model("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)",
        ...              bm.load_dataset("sleepstudy")).design
        >>> d.theta_slices, d.b_slices
        ((slice(0, 1, None), slice(1, 2, None)), (slice(0, 18, None), slice(18, 36, None)))
        """
        out, start = [], 0
        for t in self.reterms:
            out.append(slice(start, start + t.n_theta))
            start += t.n_theta
        return tuple(out)

    @cached_property
    def b_slices(self) -> tuple[slice, ...]:
        """Each term's slice of the random-effects vector b (and of Z's columns)."""
        out, start = [], 0
        for t in self.reterms:
            out.append(slice(start, start + t.q))
            start += t.q
        return tuple(out)

    @property
    def theta0(self) -> np.ndarray:
        """lme4's starting theta: 1 on the diagonals of the factors, 0 elsewhere.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> d = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).design
        >>> d.theta0.tolist(), d.lower.tolist()
        ([1.0, 0.0, 1.0], [0.0, -inf, 0.0])
        """
        return np.concatenate([t.theta0() for t in self.reterms]) if self.reterms else np.zeros(0)

    @property
    def lower(self) -> np.ndarray:
        """Lower bounds of theta: 0 for diagonal elements, -inf for the others."""
        return np.concatenate([t.lower() for t in self.reterms]) if self.reterms else np.zeros(0)

    @cached_property
    def theta_names(self) -> tuple[str, ...]:
        """Readable labels of theta's elements, e.g. ``Subject:Intercept``.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> d = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).design
        >>> d.theta_names
        ('Subject:Intercept', 'Subject:Days.Intercept', 'Subject:Days')
        """
        names = []
        for t in self.reterms:
            if not t.correlated:
                names += [f"{t.name}:{c}" for c in t.cnames]
            else:
                r, c = t._tril
                names += [
                    f"{t.name}:{t.cnames[i]}" if i == j else f"{t.name}:{t.cnames[i]}.{t.cnames[j]}"
                    for i, j in zip(r, c)
                ]
        return tuple(names)

    def Lambda(self, theta: np.ndarray) -> sp.csc_array:
        """(q, q) block-diagonal relative covariance factor: I_{l_i} (x) T_i per term.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> d = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).design
        >>> L = d.Lambda([1.0, 0.5, 2.0])
        >>> L.shape, L[:2, :2].toarray().tolist()
        ((36, 36), [[1.0, 0.0], [0.5, 2.0]])
        """
        theta = np.asarray(theta, dtype=float)
        blocks = [t.lambda_matrix(theta[s]) for t, s in zip(self.reterms, self.theta_slices)]
        return sp.block_diag(blocks, format="csc") if blocks else sp.csc_array((0, 0))

    def lambda_blocks(self, theta: np.ndarray) -> list[np.ndarray]:
        """Each term's lower-triangular (n_cols, n_cols) factor T_i at ``theta``.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> d = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).design
        >>> d.lambda_blocks([1.0, 0.5, 2.0])[0].tolist()
        [[1.0, 0.0], [0.5, 2.0]]
        """
        return [t.lambda_block(theta[s]) for t, s in zip(self.reterms, self.theta_slices)]

    def lambda_mul(self, theta: np.ndarray, u: np.ndarray, trans: bool = False) -> np.ndarray:
        """``Lambda(theta) u`` (or ``Lambda' u``) for u of shape (q,) or (q, m), term by term.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> d = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).design
        >>> d.lambda_mul([1.0, 0.5, 2.0], np.ones(36))[:2].tolist()
        [1.0, 2.5]
        """
        theta = np.asarray(theta, dtype=float)
        if len(self.reterms) == 1:
            return self.reterms[0].lambda_mul(theta, u, trans)
        parts = [t.lambda_mul(theta[ts], u[bs], trans)
                 for t, ts, bs in zip(self.reterms, self.theta_slices, self.b_slices)]
        return np.concatenate(parts) if parts else np.zeros_like(u)

    def Zb(self, b: np.ndarray) -> np.ndarray:
        """``Z b`` for b of shape (q,), without forming Z.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> d = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).design
        >>> b = np.arange(36.0)
        >>> bool(np.allclose(d.Zb(b), d.Z @ b))
        True
        """
        if len(self.reterms) == 1:
            return self.reterms[0].zb(b)
        out = np.zeros(self.n)
        for t, s in zip(self.reterms, self.b_slices):
            out += t.zb(b[s])
        return out

    def Ztv(self, v: np.ndarray) -> np.ndarray:
        """``Z' v`` for v of shape (n,) or (n, m), without forming Z."""
        if not self.reterms:
            return np.zeros((0,) + v.shape[1:])
        return np.concatenate([t.ztv(v) for t in self.reterms])

    @property
    def groups(self) -> tuple[str, ...]:
        """Distinct grouping factors, in term order.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> d = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).design
        >>> d.groups, d.ngroups
        (('Subject',), {'Subject': 18})
        """
        return tuple(dict.fromkeys(t.group for t in self.reterms))

    @property
    def ngroups(self) -> dict[str, int]:
        """Number of levels of each grouping factor."""
        return {t.group: t.n_levels for t in self.reterms}

    def summary_frame(self) -> pd.DataFrame:
        """One row per random-effects term: group, columns, levels, theta size.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> d = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).design
        >>> d.summary_frame()
              term    group          columns  n_levels  correlated  n_theta
        0  Subject  Subject  Intercept, Days        18        True        3
        """
        return pd.DataFrame(
            [
                {"term": t.name, "group": t.group, "columns": ", ".join(t.cnames),
                 "n_levels": t.n_levels, "correlated": t.correlated, "n_theta": t.n_theta}
                for t in self.reterms
            ]
        )

    def _repr_html_(self) -> str:
        head = (f"<b>MixedDesign</b>: n={self.n}, p={self.p} ({', '.join(self.fixef_names)}), "
                f"q={self.q}, theta size {self.n_theta}, family {self.family.name}"
                f"({self.family.link.name})")
        return head + self.summary_frame().to_html(index=False)
