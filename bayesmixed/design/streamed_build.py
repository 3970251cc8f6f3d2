"""``build_design`` for out-of-memory sources: the level pass, the coding, the cross-product pass."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd

from bayesmixed.design.columns import check_columns, check_dtypes
from bayesmixed.design.crossprod import Layout, combine, select_columns, shift_response
from bayesmixed.design.fixed import aliased_from_gram, check_scale_sd, fixed_matrix, formula_context, warn_aliased
from bayesmixed.design.random import group_codes
from bayesmixed.design.reterms import _warn_split_factor, check_levels, order_terms, term_matrix
from bayesmixed.design.sources import DataSource
from bayesmixed.design.streamed import ChunkCoder, LevelLookup, StreamedDesign, not_supported
from bayesmixed.errors import DesignError, MissingDataWarning
from bayesmixed.families import Family
from bayesmixed.formula.terms import ParsedFormula


def _scan_chunk(chunk: pd.DataFrame, acc: dict | None, na_columns: list[str],
                sets: list[tuple[str, ...]]) -> dict:
    """``acc`` plus a chunk's row and missing-value counts and the distinct values of each column set."""
    mask = np.ones(len(chunk), dtype=bool)
    na = {}
    for c in na_columns:
        isna = np.asarray(pd.isna(chunk[c].array))
        k = int(isna.sum())
        if k:
            na[c] = k
            mask &= ~isna
    kept = chunk[mask] if not mask.all() else chunk
    distinct = {s: kept[list(s)].drop_duplicates() for s in sets}
    part = {"rows": len(chunk), "kept": int(mask.sum()), "na": na, "distinct": distinct}
    return part if acc is None else _scan_combine([acc, part])


def _scan_combine(parts: list[dict]) -> dict:
    out = {"rows": 0, "kept": 0, "na": {}, "distinct": {}}
    for p in parts:
        out["rows"] += p["rows"]
        out["kept"] += p["kept"]
        for c, k in p["na"].items():
            out["na"][c] = out["na"].get(c, 0) + k
    for s in parts[0]["distinct"]:
        frames = [p["distinct"][s] for p in parts]
        out["distinct"][s] = pd.concat(frames, ignore_index=True).drop_duplicates(ignore_index=True)
    return out


def _is_factor(dtype) -> bool:
    return not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)


def _columns_arg(value, head: pd.DataFrame, what: str, source: DataSource) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise DesignError(f"{what}= must be a column name for out-of-memory data ({source.description}), "
                          f"not {type(value).__name__}: add the values as a column of the source")
    check_columns([value], head, what=f"{what}=")
    return value


def _na_message(scan: dict, na_action: str, source: DataSource) -> None:
    dropped = scan["rows"] - scan["kept"]
    if not dropped:
        return
    cols = ", ".join(f"{c} ({k})" for c, k in scan["na"].items())
    if na_action == "raise":
        raise DesignError(f"missing values in {cols} (count per column) in {source.description}; drop or "
                          "impute them, or use na_action='omit' to drop those rows")
    if not scan["kept"]:
        raise DesignError(f"every row of {source.description} has a missing value in: {cols}: no row is "
                          "left to fit")
    warnings.warn(
        f"dropped {dropped} of {scan['rows']} rows with missing values in: {cols} (rows kept: "
        f"{scan['kept']}); per-row outputs (fit.iter_fitted(), fit.iter_residuals()) are indexed by "
        "the kept rows' positions in the source. Pass na_action='raise' to refuse instead",
        MissingDataWarning, stacklevel=4,
    )


def _first_frame(source: DataSource, coder: ChunkCoder) -> pd.DataFrame:
    for chunk in source.chunks(coder.columns):
        mask, _ = coder.complete(chunk)
        if mask.any():
            return chunk[mask]
    raise DesignError(f"{source.description} has no complete row: nothing to fit")


def _stateless(spec, what: str, source: DataSource) -> None:
    state = getattr(spec, "transform_state", None)
    if state:
        raise DesignError(f"{what} uses {', '.join(map(repr, state))}, a transform whose value depends on "
                          "every row (scale, center, poly, splines): not supported for out-of-memory data "
                          f"({source.description}); compute the transformed column in the source first")


def _code(parsed, coder: ChunkCoder, scan: dict, frame: pd.DataFrame, source: DataSource):
    """Fixed coding, term matrices and levels (lme4's order) from the first complete chunk."""
    framef = coder.with_factors(frame)
    X, names, spec = fixed_matrix(parsed.fixed_rhs, framef)
    _stateless(spec, "the fixed part", source)
    coder.fixed_spec = spec
    coder.fixed_simple = None if spec is not None else list(names[1:])
    built, lookups, specs = [], [], []
    for bar in parsed.bars:
        Xi, cnames, tspec = term_matrix(bar.expr, framef)
        _stateless(tspec, f"random-effects term {bar}", source)
        if Xi.shape[1] == 0:
            raise DesignError(f"random-effects term {bar} has no columns; write (1 | {bar.group}) "
                              "for a random intercept")
        distinct = scan["distinct"][tuple(bar.group_columns)]
        codes, levels = group_codes([distinct[c] for c in bar.group_columns])
        lookups.append(LevelLookup(distinct.reset_index(drop=True), codes))
        specs.append(tspec)
        if bar.split and Xi.shape[1] > 1:
            _warn_split_factor(bar, cnames)
        built.append((bar, np.zeros((0, Xi.shape[1])), cnames, tspec, np.zeros(0, dtype=np.int64), levels))
    terms = order_terms(built)
    coder.order = [next(i for i, b in enumerate(built) if b[4] is t.codes) for t in terms]
    coder.lookups, coder.term_specs = lookups, specs
    coder.layout = Layout(k1=terms[0].n_cols, l1=terms[0].n_levels,
                          rest=tuple((t.n_cols, t.n_levels) for t in terms[1:]), p=X.shape[1])
    r = coder.rows(frame)
    sw = np.sqrt(r["w"])
    coder.shift = (np.linalg.lstsq(r["X"] * sw[:, None], r["y"] * sw, rcond=None)[0] if X.shape[1]
                   else np.zeros(0))
    return terms, names, spec


def build_streamed_design(parsed: ParsedFormula, source: DataSource, *, family: Family, weights=None,
                          offset=None, na_action: str = "omit", ctrl: dict) -> StreamedDesign:
    """The design of a Gaussian LMM on an out-of-memory source, from chunked cross-products.

    Called by :func:`bayesmixed.design.build_design` when ``data`` is a path, a DuckDB
    relation, a polars LazyFrame or a Dask DataFrame (see
    :func:`bayesmixed.design.sources.as_source`).

    Examples
    --------
    >>> import duckdb, bayesmixed as bm
    >>> from bayesmixed.design.sources import as_source
    >>> from bayesmixed.families import GAUSSIAN
    >>> from bayesmixed.formula import parse_formula
    >>> from bayesmixed.design.build import DEFAULT_CONTROL
    >>> rel = duckdb.from_df(bm.load_dataset("sleepstudy"))
    >>> d = build_streamed_design(parse_formula("Reaction ~ Days + (Days | Subject)"), as_source(rel),
    ...                           family=GAUSSIAN, ctrl=DEFAULT_CONTROL)
    >>> d.n, d.fixef_names, d.ngroups
    (180, ('Intercept', 'Days'), {'Subject': 18})
    """
    if not family.is_gaussian_identity:
        raise DesignError(not_supported(source, f"family={family.name!r} (link {family.link.name!r})"))
    if not parsed.bars:
        raise DesignError("the formula has no random-effects terms such as (1 | group); out-of-memory data "
                          "is fitted as a linear mixed model only")
    head = source.head()
    used = [v for v in sorted(parsed.variables) if v not in formula_context()]
    check_columns(used, head)
    wname = _columns_arg(weights, head, "weights", source)
    oname = _columns_arg(offset, head, "offset", source)
    dtypes = {c: head[c].dtype for c in used}
    check_dtypes(dtypes, parsed.group_variables)
    columns = list(dict.fromkeys(used + [c for c in (wname, oname) if c]))
    factor_cols = [c for c in used if c not in parsed.response_variables and _is_factor(dtypes[c])
                   and (c in parsed.fixed_variables or c not in parsed.group_variables)]
    sets = list(dict.fromkeys([tuple(b.group_columns) for b in parsed.bars] + [(c,) for c in factor_cols]))
    if hasattr(source, "scan"):            # DuckDB: counts and DISTINCT in SQL
        scan = source.scan(columns, sets)
    else:
        scan = source.map_reduce(columns, functools.partial(_scan_chunk, na_columns=columns, sets=sets),
                                 _scan_combine)
    _na_message(scan, na_action, source)
    levels = {}
    for c in factor_cols:
        if isinstance(dtypes[c], pd.CategoricalDtype):
            levels[c] = list(dtypes[c].categories)
        else:
            levels[c] = list(np.unique(scan["distinct"][(c,)][c].to_numpy()))
    coder = ChunkCoder(parsed=parsed, family=family, columns=columns, na_columns=columns, wname=wname,
                       oname=oname, factor_levels=levels, fixed_spec=None, fixed_simple=None,
                       term_specs=[], lookups=[], order=[])
    terms, all_names, spec = _code(parsed, coder, scan, _first_frame(source, coder), source)
    cp = source.map_reduce(columns, coder.add_rows, combine, prepare=coder.prepare).merged()
    n = cp.n
    if wname and not cp.info.get("positive_weights"):
        raise DesignError(f"weights column {wname!r} is zero for every row: nothing to fit")
    check_levels(terms, n, ctrl, family)
    return _finish(parsed, source, family, coder, cp, terms, all_names, spec, ctrl, n)


def _finish(parsed, source, family, coder, cp, terms, all_names, spec, ctrl, n) -> StreamedDesign:
    """Rank and scale checks, dropped columns, the y shift; the design."""
    rank_rule = ctrl["check_rank_x"]
    keep = aliased_from_gram(cp.gram, n)
    dropped = tuple(all_names[j] for j in range(len(all_names)) if j not in set(keep.tolist()))
    if dropped and rank_rule == "stop.deficient":
        raise DesignError(f"fixed-effect model matrix is rank deficient: {', '.join(dropped)} are linear "
                          "combinations of earlier columns; remove them from the formula")
    if dropped and rank_rule in ("message+drop.cols", "warn+drop.cols"):
        warn_aliased(dropped, n, len(all_names), stacklevel=6)
    if ctrl["check_scale_x"] != "ignore" and n > 1:
        cont = ~cp.is01
        var = (np.diag(cp.gram) - cp.colsum**2 / n) / (n - 1)
        check_scale_sd(np.sqrt(np.clip(var[cont], 0, None)), [a for a, c in zip(all_names, cont) if c],
                       stop=ctrl["check_scale_x"] == "stop", stacklevel=6)
    shift = coder.shift
    if dropped:
        d_idx = np.setdiff1d(np.arange(len(all_names)), keep)
        C = np.linalg.solve(cp.gram[np.ix_(keep, keep)], cp.gram[np.ix_(keep, d_idx)])
        shift = shift[keep] + C @ shift[d_idx]
    cp = select_columns(cp, keep)
    qr, p = cp.layout.q_rest, cp.layout.p
    if p and cp.info.get("chunks", 0) > 1:
        # the chunks' y is less the least-squares fit of the first chunk's rows: correct it to the
        # fit of all rows (with one chunk it is that already, as in the in-memory path)
        xs = slice(qr, qr + p)
        s1 = np.linalg.solve(cp.A22[xs, xs], cp.A22[xs, qr + p])
        cp = shift_response(cp, s1)
        shift = shift + s1
    return StreamedDesign(
        parsed=parsed, y=None, X=None, fixef_names=tuple(all_names[j] for j in keep), reterms=terms,
        weights=None, offset=None, family=family, index=None, response_name=parsed.response,
        fixed_spec=spec, dropped_columns=dropped, all_fixef_names=tuple(all_names), trials=None,
        prior_weights=None, has_user_weights=coder.wname is not None, offset_arg=coder.oname,
        rows=None, source=source, coder=coder, crossproducts=cp, beta_shift=shift, keep_columns=keep,
        n_obs=n,
    )
