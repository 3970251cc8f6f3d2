"""The design of a Gaussian LMM on data that is not held in memory (lme4's ``lFormula``, out of core).

Two passes over a :class:`~bayesmixed.design.sources.DataSource`, never holding the rows:

1. the levels: rows complete in the used columns are counted (the NA policy of the
   in-memory path) and the distinct values of every grouping factor and every factor
   column are collected; the fixed-effects coding (formulaic's model spec) is built
   once, from the first complete chunk with every factor's full level set, and the
   grouping levels are sorted as the in-memory path sorts them;
2. the cross-products (:mod:`bayesmixed.design.crossprod`), chunk by chunk, summed
   (per partition on the Dask cluster for a Dask DataFrame).

The result is a :class:`StreamedDesign`: a :class:`MixedDesign` without rows. The
likelihood engine factors its cross-products; per-row quantities (fitted values,
residuals) are recomputed chunk by chunk by :func:`iter_predictions`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from collections.abc import Iterator

from bayesmixed.design.columns import check_finite, check_finite_vector
from bayesmixed.design.crossprod import CrossProducts, Layout, chunk_crossproducts, empty_crossproducts
from bayesmixed.design.fixed import evaluate_expression, fixed_matrix, formulaic_materializer
from bayesmixed.design.response import response_values
from bayesmixed.design.reterms import term_matrix
from bayesmixed.design.sources import DataSource
from bayesmixed.design.spec import MixedDesign
from bayesmixed.errors import DesignError
from bayesmixed.families import Family
from bayesmixed.formula.terms import ParsedFormula

_ROW_ATTRS = frozenset({"y", "X", "Z", "weights", "offset", "trials", "prior_weights", "rows", "index"})


class RowsNotInMemoryError(DesignError, AttributeError):
    """A per-row array of a design whose rows stay in their source (out-of-memory data)."""


def not_supported(source: DataSource, what: str) -> str:
    """The message for something an out-of-memory source cannot do, and what to do instead."""
    return (f"{what} is not supported for out-of-memory data ({source.description}): only Gaussian "
            "linear mixed models (identity link) fitted by method='reml' or 'ml' are computed from "
            "chunked cross-products. Collect the rows into a pandas DataFrame first "
            f"(e.g. {source.collect_hint}) and pass that DataFrame")


@dataclass(frozen=True, eq=False)
class StreamedDesign(MixedDesign):
    """A :class:`MixedDesign` whose rows stay in their source: cross-products instead of X, y, Z.

    ``y``, ``X``, ``Z``, ``weights``, ``offset`` and ``index`` raise a
    :class:`RowsNotInMemoryError` that says what to do; ``n`` and ``p`` come from the
    cross-products. Fitted values and residuals are recomputed chunk by chunk with
    :func:`iter_predictions`.
    """

    source: DataSource | None = field(default=None, repr=False)
    coder: object = field(default=None, repr=False)               # ChunkCoder
    crossproducts: object = field(default=None, repr=False)       # CrossProducts (shifted y)
    beta_shift: np.ndarray | None = field(default=None, repr=False)
    keep_columns: np.ndarray | None = field(default=None, repr=False)
    n_obs: int = 0

    def __getattribute__(self, name: str):
        if name in _ROW_ATTRS:
            src = object.__getattribute__(self, "source")
            raise RowsNotInMemoryError(not_supported(src, f"design.{name} (one value per row)") +
                                       "; fitted values and residuals of a fit come chunk by chunk "
                                       "from fit.iter_fitted() / fit.iter_residuals()")
        return object.__getattribute__(self, name)

    @property
    def n(self) -> int:
        """Number of observations used (rows with missing values dropped)."""
        return self.n_obs

    @property
    def p(self) -> int:
        """Number of fixed effects."""
        return len(self.fixef_names)


class LevelLookup:
    """Level codes of a grouping factor (or interaction) from its columns' values."""

    def __init__(self, distinct: pd.DataFrame, codes: np.ndarray) -> None:
        self.columns = list(distinct.columns)
        self.lut = None
        col = distinct.iloc[:, 0]
        if len(self.columns) == 1 and pd.api.types.is_integer_dtype(col.dtype) and len(col):
            lo, hi = int(col.min()), int(col.max())
            if hi - lo < 50_000_000:                   # dense table: one gather per row
                self.lo = lo
                self.lut = np.full(hi - lo + 1, -1, dtype=np.int64)
                self.lut[col.to_numpy(dtype=np.int64) - lo] = codes
        if self.lut is None:
            self.index = (pd.Index(col) if len(self.columns) == 1
                          else pd.MultiIndex.from_frame(distinct))
            self.codes = np.asarray(codes, dtype=np.int64)

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        if self.lut is not None:
            v = frame[self.columns[0]].to_numpy()
            if v.dtype.kind in "iu" or (v.dtype.kind == "f" and np.all(v == np.round(v))):
                i = v.astype(np.int64) - self.lo
                ok = (i >= 0) & (i < self.lut.size)
                out = np.full(v.shape[0], -1, dtype=np.int64)
                out[ok] = self.lut[i[ok]]
                return self._checked(out)
            return self._checked(np.full(v.shape[0], -1, dtype=np.int64))
        if len(self.columns) == 1:
            pos = self.index.get_indexer(frame[self.columns[0]])
        else:
            pos = self.index.get_indexer(pd.MultiIndex.from_frame(frame[self.columns]))
        return self._checked(np.where(pos >= 0, self.codes[np.maximum(pos, 0)], -1))

    def _checked(self, codes: np.ndarray) -> np.ndarray:
        if (codes < 0).any():
            raise DesignError(f"grouping factor {':'.join(self.columns)} has values the first pass did not "
                              "see (the data changed between passes?); refit on a stable source")
        return codes


@dataclass
class ChunkCoder:
    """Turns a pandas chunk into the model's rows with the coding fixed by the first pass."""

    parsed: ParsedFormula
    family: Family
    columns: list[str]                  # read from the source
    na_columns: list[str]               # a missing value in one of them drops the row
    wname: str | None
    oname: str | None
    factor_levels: dict                 # column -> categories for formulaic
    fixed_spec: object                  # formulaic ModelSpec, or None with fixed_simple
    fixed_simple: list | None
    term_specs: list                    # per bar (formula order): ModelSpec or None
    lookups: list                       # per bar: LevelLookup
    order: list                         # bar index of each term, in lme4's order
    layout: Layout | None = None
    shift: np.ndarray | None = None     # first estimate of the OLS fit of y on X

    def complete(self, chunk: pd.DataFrame) -> tuple[np.ndarray, dict]:
        """Mask of the rows without a missing used value, and the missing count per column."""
        mask = np.ones(len(chunk), dtype=bool)
        counts = {}
        for c in self.na_columns:
            na = np.asarray(pd.isna(chunk[c].array))
            k = int(na.sum())
            if k:
                counts[c] = k
                mask &= ~na
        return mask, counts

    def with_factors(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Factor columns as categoricals with every level of the data (formulaic codes them so)."""
        conv = {}
        for c, lv in self.factor_levels.items():
            s = frame[c]
            if isinstance(s.dtype, pd.CategoricalDtype):
                if list(s.cat.categories) != lv:
                    conv[c] = s.cat.set_categories(lv)
            else:
                conv[c] = pd.Categorical(s, categories=lv)
        return frame.assign(**conv) if conv else frame

    def fixed_X(self, frame: pd.DataFrame) -> np.ndarray:
        if self.fixed_spec is None:
            return fixed_matrix(self.parsed.fixed_rhs, frame)[0]
        formulaic_materializer()                        # registers the materializer (Dask workers)
        mm = self.fixed_spec.get_model_matrix(frame, output="pandas", na_action="ignore")
        return mm.to_numpy(dtype=float)

    def term_Xi(self, i: int, frame: pd.DataFrame) -> np.ndarray:
        spec = self.term_specs[i]
        if spec is None:
            return term_matrix(self.parsed.bars[i].expr, frame)[0]
        formulaic_materializer()
        return spec.get_model_matrix(frame, output="pandas", na_action="ignore").to_numpy(dtype=float)

    def rows(self, frame: pd.DataFrame) -> dict:
        """y - offset, X (every column), prior weights, codes and Xi per term (lme4's order)."""
        frame = self.with_factors(frame)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)         # formulaic: unseen levels -> NaN
            try:
                X = self.fixed_X(frame)
                Xis = [self.term_Xi(i, frame) for i in self.order]
            except UserWarning as exc:
                raise DesignError(f"the fixed-effects coding fixed from the first chunk does not fit a later "
                                  f"chunk ({exc}); a factor made inside the formula (e.g. C(x) of a number) "
                                  "needs a string or categorical column in the source") from None
        X = np.ascontiguousarray(X)       # row-major as the in-memory engine's [X y]: same rounding
        check_finite(X, range(X.shape[1]), "fixed-effects column")
        y, _, _ = response_values(self.parsed, frame, self.family)
        off = np.zeros(len(frame))
        if self.oname:
            off = off + frame[self.oname].to_numpy(dtype=float)
        for expr in self.parsed.offsets:
            off = off + np.asarray(evaluate_expression(expr, frame), dtype=float)
        check_finite_vector(off, "offset", frame.index)
        w = np.ones(len(frame)) if not self.wname else frame[self.wname].to_numpy(dtype=float)
        if (~np.isfinite(w) | (w < 0)).any():
            raise DesignError(f"weights column {self.wname!r} must be finite and non-negative")
        codes = [self.lookups[i](frame) for i in self.order]
        return {"y": y - off, "off": off, "X": X, "w": w, "codes": codes, "Xis": Xis}

    def crossproducts(self, chunk: pd.DataFrame, acc: CrossProducts | None = None) -> CrossProducts:
        """Add the chunk's cross-products into ``acc`` (the function folded over chunks or partitions)."""
        return self.add_rows(self.prepare(chunk), acc)

    def prepare(self, chunk: pd.DataFrame) -> dict | None:
        """The chunk's complete rows coded for :meth:`add_rows` (``y`` less the first shift); None if none."""
        mask, _ = self.complete(chunk)
        frame = chunk[mask] if not mask.all() else chunk
        if len(frame) == 0:
            return None
        r = self.rows(frame)
        r["y_shifted"] = r["y"] - r["X"] @ self.shift if self.shift.size else r["y"]
        return r

    def add_rows(self, r: dict | None, acc: CrossProducts | None = None) -> CrossProducts:
        """Add rows coded by :meth:`prepare` into ``acc`` (the compiled pass; it releases the GIL)."""
        if r is None:
            return empty_crossproducts(self.layout) if acc is None else acc
        return chunk_crossproducts(self.layout, r["X"], r["y_shifted"], r["w"], r["codes"], r["Xis"],
                                   {"positive_weights": int((r["w"] > 0).sum()), "chunks": 1}, out=acc)


def iter_predictions(design: StreamedDesign, beta: np.ndarray, b: np.ndarray) -> Iterator[pd.DataFrame]:
    """Per chunk of the source: ``y``, ``fitted`` (X beta + offset + Z b), ``fixed`` (X beta) and
    ``weights`` of its kept rows.

    Each frame is indexed by the rows' positions in the source (0-based, counting the
    rows dropped for missing values), so that concatenated frames line up with the
    in-memory fit of the same rows read with a default index.
    """
    coder, keep = design.coder, design.keep_columns
    bts = [b[s].reshape(t.n_levels, t.n_cols) for t, s in zip(design.reterms, design.b_slices)]
    start = 0
    for chunk in design.source.chunks(coder.columns):
        mask, _ = coder.complete(chunk)
        pos = start + np.flatnonzero(mask)
        start += len(chunk)
        if not pos.size:
            continue
        r = coder.rows(chunk[mask] if not mask.all() else chunk)
        fixed = r["X"][:, keep] @ beta
        eta = fixed + r["off"]
        for bt, codes, Xi in zip(bts, r["codes"], r["Xis"]):
            eta += np.einsum("ij,ij->i", Xi, bt[codes])
        yield pd.DataFrame({"y": r["y"] + r["off"], "fitted": eta, "fixed": fixed, "weights": r["w"]},
                           index=pd.Index(pos))
