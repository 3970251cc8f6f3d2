"""REML / ML fits of out-of-memory data: per-row outputs recomputed chunk by chunk.

A :class:`~bayesmixed.design.streamed.StreamedDesign` holds no rows, so everything a
:class:`LikelihoodFit` computes from the cross-products (fixed effects, vcov, theta,
sigma, random effects and their conditional variances, the criterion, Satterthwaite
df) is unchanged; what needs the rows reads the source again, one chunk at a time:

- ``fit.iter_fitted()`` / ``fit.iter_residuals(type)``: generators of pandas Series,
  one per chunk, indexed by the rows' positions in the source (never all rows at once);
- ``fit.fitted()``, ``fit.residuals()``, ``fit.predict()``: the same Series
  concatenated (one float per row in memory; the rows themselves are not held);
- ``fit.r2()`` and ``summary()``'s scaled residuals: one pass over the chunks.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from bayesmixed.design.streamed import iter_predictions
from bayesmixed.errors import DesignError
from bayesmixed.results.likelihood import LikelihoodFit

RESIDUAL_TYPES = ("response", "pearson", "deviance", "working")


class StreamedLikelihoodFit(LikelihoodFit):
    """A :class:`LikelihoodFit` of a :class:`StreamedDesign` (Parquet, DuckDB, polars, Dask data).

    Examples
    --------
    >>> import duckdb, bayesmixed as bm
    >>> rel = duckdb.from_df(bm.load_dataset("sleepstudy"))
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", rel).fit()
    >>> type(fit).__name__, round(fit.reml_criterion, 2)
    ('StreamedLikelihoodFit', 1743.63)
    >>> next(fit.iter_residuals()).head(2).round(2).tolist()
    [-4.1, -14.63]
    """

    def _chunks(self, include_random: bool = True) -> Iterator[pd.DataFrame]:
        b = self._b_vector() if include_random else np.zeros(self.design.q)
        return iter_predictions(self.design, self.fixef.to_numpy(), b)

    def iter_fitted(self, *, include_random: bool = True) -> Iterator[pd.Series]:
        """Fitted values chunk by chunk (a generator of Series indexed by row position in the source)."""
        for frame in self._chunks(include_random):
            yield frame["fitted"].rename("fitted")

    def iter_residuals(self, type: str = "response") -> Iterator[pd.Series]:
        """Residuals chunk by chunk: ``"response"`` (y - fitted), ``"pearson"``/``"deviance"``
        (times sqrt(weights)) or ``"working"`` (as ``"response"`` for the identity link)."""
        if type not in RESIDUAL_TYPES:
            raise DesignError(f"type must be 'deviance', 'pearson', 'response' or 'working', got {type!r}")
        for frame in self._chunks():
            r = frame["y"] - frame["fitted"]
            if type in ("pearson", "deviance"):
                r = r * np.sqrt(frame["weights"])
            yield r.rename("residuals")

    def _linear_predictor(self, newdata=None, include_random: bool = True,
                          allow_new_levels: bool = False) -> pd.Series:
        if newdata is not None:
            return super()._linear_predictor(newdata, include_random, allow_new_levels)
        return _concat(list(self.iter_fitted(include_random=include_random)))

    def _need_newdata(self, newdata, what: str) -> None:
        if newdata is None:
            raise DesignError(f"fit.{what}() without newdata= works on every row of the data, which an "
                              f"out-of-memory fit ({self.design.source.description}) does not hold: pass "
                              f"newdata= (a pandas DataFrame: a grid, or a sample of the rows such as "
                              f"{self.design.source.collect_hint} on a subset)")

    def predictions(self, newdata=None, **kwargs) -> pd.DataFrame:
        """:meth:`LikelihoodFit.predictions` on ``newdata`` (required for out-of-memory data)."""
        self._need_newdata(newdata, "predictions")
        return super().predictions(newdata, **kwargs)

    def comparisons(self, variable: str, newdata=None, **kwargs) -> pd.DataFrame:
        """:meth:`LikelihoodFit.comparisons` on ``newdata`` (required for out-of-memory data)."""
        self._need_newdata(newdata, "comparisons")
        return super().comparisons(variable, newdata, **kwargs)

    def slopes(self, variable: str, newdata=None, **kwargs) -> pd.DataFrame:
        """:meth:`LikelihoodFit.slopes` on ``newdata`` (required for out-of-memory data)."""
        self._need_newdata(newdata, "slopes")
        return super().slopes(variable, newdata, **kwargs)

    def residuals(self, type: str | None = None) -> pd.Series:
        """All residuals as one Series (one float per row); see :meth:`iter_residuals`."""
        return _concat(list(self.iter_residuals("response" if type is None else type)))

    def r2(self) -> dict[str, float]:
        """Nakagawa & Schielzeth's R² as :meth:`LikelihoodFit.r2`, in one pass over the chunks."""
        d = self.design
        s = s2 = var_r = 0.0
        n = 0
        for frame in self._chunks(include_random=False):
            f = frame["fixed"].to_numpy()
            s, s2, n = s + f.sum(), s2 + (f * f).sum(), n + f.size
        var_f = (s2 - s * s / n) / (n - 1)
        for i, (t, C) in enumerate(zip(d.reterms, self.covariances())):
            var_r += float(C[0, 0]) if t.cnames == ("Intercept",) else self._mean_quadratic(i, C)
        var_e = self._r2_residual_variance(var_r)
        tot = var_f + var_r + var_e
        return {"marginal": var_f / tot, "conditional": (var_f + var_r) / tot}

    def _mean_quadratic(self, i: int, C: np.ndarray) -> float:
        """Mean over rows of Xi C Xi' for term ``i`` (one pass)."""
        d = self.design
        coder = d.coder
        total, n = 0.0, 0
        for chunk in d.source.chunks(coder.columns):
            mask, _ = coder.complete(chunk)
            if mask.any():
                Xi = coder.rows(chunk[mask])["Xis"][i]
                total += float(np.einsum("ij,jk,ik->", Xi, C, Xi))
                n += Xi.shape[0]
        return total / n


def _concat(parts: list[pd.Series]) -> pd.Series:
    return pd.concat(parts) if parts else pd.Series(dtype=float)
