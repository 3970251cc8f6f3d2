"""One result face for every fitting method (lme4's mkMerMod + its accessors)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayesmixed.design.newdata import new_matrices
from bayesmixed.design.spec import MixedDesign


def varcorr_frame(design: MixedDesign, covs: list[np.ndarray], sigma: float | None) -> pd.DataFrame:
    """R's ``as.data.frame(VarCorr(fit))`` from per-term covariance matrices.

    Examples
    --------
    >>> import numpy as np
    >>> import bayesmixed as bm
    >>> d = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).design
    >>> varcorr_frame(d, [np.array([[4.0, 1.0], [1.0, 1.0]])], sigma=3.0)
            grp       var1  var2  vcov  sdcor
    0   Subject  Intercept   NaN   4.0    2.0
    1   Subject       Days   NaN   1.0    1.0
    2   Subject  Intercept  Days   1.0    0.5
    3  Residual        NaN   NaN   9.0    3.0
    """
    rows = []
    for t, C in zip(design.reterms, covs):
        sd = np.sqrt(np.clip(np.diag(C), 0, None))
        for i, c in enumerate(t.cnames):
            rows.append({"grp": t.name, "var1": c, "var2": None, "vcov": C[i, i], "sdcor": sd[i]})
        if t.correlated:
            for i in range(t.n_cols):
                for j in range(i + 1, t.n_cols):
                    denom = sd[i] * sd[j]
                    rows.append({"grp": t.name, "var1": t.cnames[i], "var2": t.cnames[j],
                                 "vcov": C[i, j], "sdcor": C[i, j] / denom if denom > 0 else np.nan})
    if sigma is not None:
        rows.append({"grp": "Residual", "var1": None, "var2": None, "vcov": sigma**2, "sdcor": sigma})
    return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])


class MixedFit:
    """Shared face of every fit: ``fixef``, ``ranef``, ``coef``, ``varcorr``, ``predict``...

    Subclasses provide ``fixef``, ``fixef_se``, ``vcov``, ``varcorr`` and the
    random effects as one vector ``_b`` (term by term, level-major) or override
    ``ranef``.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> from bayesmixed.results.base import MixedFit
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> isinstance(fit, MixedFit), fit.nobs, fit.ngroups
    (True, 180, {'Subject': 18})
    """

    design: MixedDesign
    method: str

    # ---- random effects ---------------------------------------------------------------
    def _b_vector(self) -> np.ndarray:
        raise NotImplementedError

    def _ranef_from_b(self, b: np.ndarray) -> dict[str, pd.DataFrame]:
        out: dict[str, pd.DataFrame] = {}
        for t, s in zip(self.design.reterms, self.design.b_slices):
            block = pd.DataFrame(b[s].reshape(t.n_levels, t.n_cols), index=pd.Index(t.levels, name=t.group),
                                 columns=list(t.cnames))
            if t.group in out:
                prev = out[t.group]
                dup = [c for c in block.columns if c in prev.columns]
                block = block.rename(columns={c: f"{c}.{t.name.rsplit('.', 1)[-1]}" for c in dup})
                out[t.group] = prev.join(block, how="outer")
            else:
                out[t.group] = block
        return out

    @property
    def ranef(self) -> dict[str, pd.DataFrame]:
        """Random effects per grouping factor: rows are levels, columns are terms.

        Conditional modes for likelihood fits, posterior means for posterior fits
        (lme4's ``ranef(fit)``).

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.ranef["Subject"].loc["309"].round(2).to_dict()
        {'Intercept': -40.4, 'Days': -8.62}
        """
        return self._ranef_from_b(self._b_vector())

    @property
    def coef(self) -> dict[str, pd.DataFrame]:
        """Fixed plus random effects per level, like lme4's ``coef()``.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.coef["Subject"].loc["309"].round(2).to_dict()
        {'Intercept': 211.01, 'Days': 1.85}
        """
        fe = self.fixef
        out = {}
        for g, re in self.ranef.items():
            frame = pd.DataFrame(np.tile(fe.to_numpy(), (len(re), 1)), index=re.index, columns=fe.index)
            for c in re.columns:
                if c in frame.columns:
                    frame[c] = frame[c] + re[c]
                else:
                    frame[c] = re[c]
            out[g] = frame
        return out

    @property
    def nobs(self) -> int:
        """Number of observations used (rows with missing values dropped)."""
        return self.design.n

    @property
    def ngroups(self) -> dict[str, int]:
        """Number of levels of each grouping factor (lme4's ``ngrps(fit)``)."""
        return self.design.ngroups

    # ---- predictions ------------------------------------------------------------------
    def _linear_predictor(self, newdata=None, include_random: bool = True,
                          allow_new_levels: bool = False) -> pd.Series:
        d = self.design
        beta = self.fixef.to_numpy()
        b = self._b_vector()
        if newdata is None:
            eta = d.X @ beta + d.offset
            if include_random and d.reterms:
                eta = eta + d.Z @ b
            return pd.Series(eta, index=d.index)
        nd = new_matrices(d, newdata, include_random=include_random, allow_new_levels=allow_new_levels)
        eta = nd.X @ beta + nd.offset
        if include_random:
            for t, s, codes, Xi in zip(d.reterms, d.b_slices, nd.codes, nd.Xis):
                bt = b[s].reshape(t.n_levels, t.n_cols)
                known = codes >= 0
                contrib = np.zeros(len(codes))
                contrib[known] = np.einsum("ij,ij->i", Xi[known], bt[codes[known]])
                eta = eta + contrib
        return pd.Series(eta, index=nd.index)

    def predict(self, newdata=None, *, include_random: bool = True, allow_new_levels: bool = False,
                type: str = "response") -> pd.Series:
        """Predictions on the data or ``newdata`` (``type="link"`` or ``"response"``).

        ``include_random=False`` gives population-level predictions (lme4's
        ``re.form=NA``); new levels get a zero random effect when
        ``allow_new_levels=True``.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> import pandas as pd
        >>> new = pd.DataFrame({"Days": [0.0, 5.0], "Subject": ["308", "new"]})
        >>> fit.predict(new, allow_new_levels=True).round(2).tolist()
        [253.66, 303.74]
        >>> fit.predict(new, include_random=False).round(2).tolist()
        [251.41, 303.74]
        """
        if type not in ("link", "response"):
            from bayesmixed.errors import DesignError

            raise DesignError(f"type must be 'link' or 'response', got {type!r}")
        eta = self._linear_predictor(newdata, include_random, allow_new_levels)
        if type == "link":
            return eta
        return pd.Series(self.design.family.link.linkinv(eta.to_numpy()), index=eta.index)

    def fitted(self) -> pd.Series:
        """Fitted values on the response scale, indexed like the rows used.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.fitted().head(2).round(2).tolist()
        [253.66, 273.33]
        """
        return self.predict()

    def residuals(self) -> pd.Series:
        """Response residuals y - fitted, indexed like the rows used.

        Examples
        --------
        >>> import bayesmixed as bm
        >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
        >>> fit.residuals().head(2).round(2).tolist()
        [-4.1, -14.63]
        """
        return pd.Series(self.design.y - self.fitted().to_numpy(), index=self.design.index)

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()

    def __repr__(self) -> str:
        return str(self.summary())
