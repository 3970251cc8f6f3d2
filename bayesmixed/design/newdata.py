"""Model matrices for new data, with the training design's columns and levels."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayesmixed.design.columns import as_pandas, close_matches, numbers_from_objects, row_labels
from bayesmixed.design.fixed import evaluate_expression, formula_context, formulaic_materializer
from bayesmixed.design.random import _label
from bayesmixed.design.spec import MixedDesign
from bayesmixed.errors import DesignError

_WRAPPED = re.compile(r"^\s*C\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*[,)]")   # C(x) / C(x, ...)


@dataclass
class NewDataMatrices:
    X: np.ndarray                      # (m, p); rows with a missing predictor are NaN
    codes: list[np.ndarray]            # per term (m,), -1 for a level not seen in training
    Xis: list[np.ndarray]              # per term (m, n_cols)
    offset_values: np.ndarray | None   # (m,); None when the offset cannot be known for new rows
    index: pd.Index
    offset_error: str = ""
    labels: list[np.ndarray] = field(default_factory=list)  # per term (m,) level labels ("" if NA)

    @property
    def offset(self) -> np.ndarray:
        """(m,) offset on the new rows; raises when the model's offset was a bare array."""
        if self.offset_values is None:
            raise DesignError(self.offset_error)
        return self.offset_values


def _term_Xi(t, frame: pd.DataFrame) -> np.ndarray:
    if t.Xi_spec is not None:
        frame = _check_encoders(t.Xi_spec, frame, f"random-effects term ({t.expr} | {t.group})")
        mm = _model_matrix(t.Xi_spec, frame, f"the random-effects matrix of ({t.expr} | {t.group})")
        return _float_matrix(mm)
    cols = []
    for c in t.cnames:
        cols.append(np.ones(len(frame)) if c == "Intercept" else _numeric(frame, c))
    return np.column_stack(cols)


def _float_matrix(df: pd.DataFrame) -> np.ndarray:
    """float64 matrix of a model-matrix frame; missing markers (pd.NA in object columns) -> NaN."""
    try:
        return df.to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError):
        cols = [pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                for c in df.columns]
        return np.column_stack(cols) if cols else np.zeros((len(df), 0))


def _numeric(frame: pd.DataFrame, col: str) -> np.ndarray:
    """A numeric predictor column of newdata as float, NaN for missing values."""
    s = frame[col]
    if not (pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype)):
        raise DesignError(f"newdata column {col!r} must be numeric as in the fitted data but has dtype "
                          f"{s.dtype} (values such as {s.dropna().unique()[:3].tolist()}); convert it "
                          "with pd.to_numeric(...)")
    return s.to_numpy(dtype=float, na_value=np.nan)


def _encoder_column(key: str, frame: pd.DataFrame) -> str | None:
    """The newdata column behind a formulaic factor ``key`` (``x`` or ``C(x, ...)``)."""
    if key in frame.columns:
        return key
    m = _WRAPPED.match(key)
    return m.group(1) if m and m.group(1) in frame.columns else None


def _check_encoders(spec, frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """Refuse, by column and level, categorical values the fit never saw; numeric columns as text.

    Returns ``frame``, or a new frame whose categorical columns lost their unused categories
    (formulaic would otherwise recode through categories the fit never had).
    """
    trimmed = {}
    for key, (kind, state) in getattr(spec, "encoder_state", {}).items():
        col = _encoder_column(str(key), frame)
        if col is None:
            continue
        s = frame[col]
        if getattr(kind, "value", kind) == "categorical":
            cats = state.get("categories")
            if cats is None:
                continue
            vals = s[s.notna()]
            unseen = pd.unique(vals[~vals.isin(cats)].astype(object))
            if len(unseen):
                shown = ", ".join(map(repr, unseen[:10].tolist())) + (" ..." if len(unseen) > 10 else "")
                raise DesignError(
                    f"newdata column {col!r} (in the {where}) has level(s) not seen in the fitted "
                    f"data: {shown}; the fit knows {', '.join(map(repr, list(cats)[:20]))}. A fixed "
                    "effect cannot be predicted for a new category: drop those rows or recode them"
                )
            if isinstance(s.dtype, pd.CategoricalDtype) and not s.cat.categories.isin(cats).all():
                trimmed[col] = s.cat.remove_unused_categories()
        elif getattr(kind, "value", kind) == "numerical" and key == col:
            _numeric(frame, col)
    return frame.assign(**trimmed) if trimmed else frame


def _model_matrix(spec, frame: pd.DataFrame, what: str) -> pd.DataFrame:
    formulaic_materializer()     # registers the materializer the fit's specs name
    with warnings.catch_warnings():
        # unseen categories are checked above; formulaic's own warning would only repeat it
        warnings.filterwarnings("ignore", message=".*categories outside of the nominated levels.*")
        try:
            return pd.DataFrame(spec.get_model_matrix(frame, output="pandas", na_action="ignore"))
        except Exception as exc:
            raise DesignError(f"could not build {what} on newdata: {exc}") from exc


def new_matrices(design: MixedDesign, newdata, *, include_random: bool = True,
                 allow_new_levels: bool = False) -> NewDataMatrices:
    """Evaluate the fixed and random parts of ``design`` on ``newdata``.

    Unseen levels (or missing values) of a grouping factor are refused by name
    unless ``allow_new_levels=True``, in which case their code is -1 (lme4's
    ``allow.new.levels``). Categories of fixed-effect factors that the fit never
    saw are refused by column and level. Rows with a missing predictor get NaN
    (lme4's ``na.pass``).

    Examples
    --------
    >>> import bayesmixed as bm
    >>> m = bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy"))
    >>> import pandas as pd
    >>> nd = new_matrices(m.design, pd.DataFrame({"Days": [0.0, 1.0], "Subject": ["308", "new"]}),
    ...                   allow_new_levels=True)
    >>> nd.X.tolist(), nd.codes[0].tolist()
    ([[1.0, 0.0], [1.0, 1.0]], [0, -1])
    """
    frame = as_pandas(newdata, what="newdata")
    parsed = design.parsed
    needed = _needed_columns(design, frame, include_random)
    frame = numbers_from_objects(frame, needed)
    # rows with a missing predictor predict NaN (lme4's na.pass); grouping factors apart
    pred_cols = [v for v in needed if v not in parsed.group_variables or v in parsed.fixed_variables]
    na_rows = np.zeros(len(frame), dtype=bool)
    for v in pred_cols:
        na_rows |= frame[v].isna().to_numpy()
    X = _new_X(design, frame)
    if na_rows.any():
        X = X.copy()
        X[na_rows] = np.nan           # categorical NaN would otherwise read as the reference level
    off, off_error = _new_offset(design, frame)
    codes, Xis, all_labels = [], [], []
    if include_random:
        for t in design.reterms:
            Xis.append(_term_Xi(t, frame))
            c, labels = _new_codes(t, frame, allow_new_levels)
            codes.append(c)
            all_labels.append(labels)
    return NewDataMatrices(X=X, codes=codes, Xis=Xis, offset_values=None if off_error else off,
                           index=frame.index, offset_error=off_error, labels=all_labels)


def _needed_columns(design: MixedDesign, frame: pd.DataFrame, include_random: bool) -> list[str]:
    """Columns of newdata the prediction reads (the response's are not needed); refuses missing ones."""
    parsed = design.parsed
    needed = sorted(v for v in parsed.variables - parsed.response_variables
                    if v not in formula_context())
    group_vars = parsed.group_variables
    if not include_random:
        needed = [v for v in needed if v not in group_vars or v in parsed.fixed_variables]
    missing = [v for v in needed if v not in frame.columns]
    if missing:
        hints = "; ".join(f"{v!r}{close_matches(v, frame.columns)}" for v in missing)
        extra = (" (grouping factors are not needed with include_random=False)"
                 if include_random and set(missing) <= group_vars else "")
        raise DesignError(f"newdata lacks column(s) the model uses: {hints}. newdata has columns: "
                          f"{', '.join(map(str, frame.columns))}; add them{extra}")
    return needed


def _new_X(design: MixedDesign, frame: pd.DataFrame) -> np.ndarray:
    """Fixed-effects matrix on newdata, with the fit's columns (aliased ones dropped)."""
    if design.fixed_spec is not None:
        frame_fixed = _check_encoders(design.fixed_spec, frame, "fixed effects")
        Xfull = _model_matrix(design.fixed_spec, frame_fixed, "the fixed-effects matrix")
        return _float_matrix(Xfull[list(design.fixef_names)])
    cols = [np.ones(len(frame)) if c == "Intercept" else _numeric(frame, c)
            for c in design.fixef_names]
    return np.column_stack(cols) if cols else np.zeros((len(frame), 0))


def _new_offset(design: MixedDesign, frame: pd.DataFrame) -> tuple[np.ndarray, str]:
    """(offset on newdata, error text when it cannot be known: the fit's offset was an array)."""
    off = np.zeros(len(frame))
    arg = getattr(design, "offset_arg", None)
    off_error = ""
    if arg == "array":   # raised only when a caller needs the offset (random-effect columns do not)
        off_error = ("the model's offset was given as an array (offset=...), which has no values "
                     "for new rows: put it in a column and pass offset='column', or write "
                     "offset(column) in the formula, then refit")
    elif arg is not None:
        if arg not in frame.columns:
            raise DesignError(f"newdata lacks the offset column {arg!r} (the model was built with "
                              f"offset={arg!r}); add it")
        off = off + _numeric(frame, arg)
    for expr in design.parsed.offsets:
        off = off + np.asarray(evaluate_expression(expr, frame), dtype=float)
    return off, off_error


def _new_codes(t, frame: pd.DataFrame, allow_new_levels: bool) -> tuple[np.ndarray, np.ndarray]:
    """(level codes, labels) of term ``t``'s grouping factor on newdata; -1 for new levels."""
    labels, na = _labels(frame, t.group.split(":"))
    c = pd.Index(t.levels).get_indexer(labels).astype(np.int64)
    c[na] = -1
    if not allow_new_levels and na.any():
        raise DesignError(
            f"newdata has missing values in grouping factor {t.group!r} at row(s) "
            f"{row_labels(frame.index, na)}; drop those rows, or pass allow_new_levels=True "
            "to predict them at the population level (as lme4)"
        )
    if (c < 0).any() and not allow_new_levels:
        new = sorted(set(np.asarray(labels, dtype=object)[c < 0].tolist()))
        raise DesignError(
            f"newdata has level(s) of {t.group!r} not seen in the fit: "
            f"{', '.join(map(repr, new[:10]))}{' ...' if len(new) > 10 else ''}; pass "
            "allow_new_levels=True to predict them from the population (random effect 0 "
            "for point fits, a fresh draw for posterior fits)"
        )
    return c, labels


def _labels(frame: pd.DataFrame, cols) -> tuple[np.ndarray, np.ndarray]:
    """Level labels of each row as the fit wrote them (``a:b`` for interactions) and an NA mask."""
    out, na = None, np.zeros(len(frame), dtype=bool)
    for c in cols:
        s = frame[c.strip()]
        codes, uniques = pd.factorize(s, use_na_sentinel=True)       # vectorised; NA -> -1
        if isinstance(s.dtype, pd.CategoricalDtype):
            labs = np.array([str(u) for u in uniques] + [""], dtype=object)
        else:
            labs = np.array([_label(u) for u in uniques] + [""], dtype=object)
        part = labs[codes]                                             # -1 picks the "" slot
        na |= codes < 0
        out = part if out is None else out + ":" + part
    return out, na
