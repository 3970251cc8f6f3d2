"""Data sources that are not held in memory: Parquet paths, DuckDB, polars, Dask.

A :class:`DataSource` hands out its rows as pandas chunks of bounded size (DuckDB
record batches, polars slices, Dask partitions) and applies a function to every
chunk, combining the results (on the Dask cluster for a Dask DataFrame). The
design of a Gaussian LMM is then built from cross-products accumulated chunk by
chunk (:mod:`bayesmixed.design.crossprod`); no step holds all the rows.

``as_source(data)`` returns None for in-memory data (pandas, a polars DataFrame, a
dict of columns), which keeps the full-featured in-memory path.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd

from bayesmixed.errors import DesignError

CHUNK_ROWS = 1_000_000
COLLECT_HINT = {
    "parquet": "pd.read_parquet(path)",
    "duckdb": "relation.df()",
    "polars": "lazy_frame.collect().to_pandas()",
    "dask": "dask_frame.compute()",
}


class DataSource:
    """Rows read chunk by chunk; subclasses give ``head``, ``chunks`` and ``columns``.

    Attributes
    ----------
    kind : str
        ``"parquet"``, ``"duckdb"``, ``"polars"`` or ``"dask"``.
    description : str
        What the user passed, for messages.
    chunk_rows : int
        Rows per chunk (DuckDB batches, polars slices; a Dask partition is a chunk).
    """

    kind = "source"

    def __init__(self, description: str, chunk_rows: int = CHUNK_ROWS) -> None:
        self.description = description
        self.chunk_rows = int(chunk_rows)

    @property
    def columns(self) -> list[str]:
        raise NotImplementedError

    def head(self, n: int = 1000) -> pd.DataFrame:
        """The first ``n`` rows as pandas (their dtypes are the chunks' dtypes)."""
        raise NotImplementedError

    def chunks(self, columns: list[str]) -> Iterator[pd.DataFrame]:
        """Every row, in order, as pandas frames of at most ``chunk_rows`` rows of ``columns``."""
        raise NotImplementedError

    def map_reduce(self, columns: list[str], func: Callable[[Any, Any], Any],
                   combine: Callable[[list], Any], prepare: Callable[[pd.DataFrame], Any] | None = None) -> Any:
        """Fold every chunk into one result: ``acc = func(chunk, acc)`` (``acc`` None at first).

        ``func`` adds a chunk into ``acc`` (in place or not) and returns it; ``combine``
        sums a list of such results (used where chunks are folded separately, as the
        partitions of a Dask DataFrame). With ``prepare``, ``acc = func(prepare(chunk), acc)``
        and the next chunk is read and prepared in a worker thread while ``func`` adds the
        current one (they overlap where ``func`` releases the GIL, as compiled kernels do);
        chunks are still added one at a time, in order, so the result is the same.
        """
        acc = None
        for item in (self.chunks(columns) if prepare is None else prefetched(self.chunks(columns), prepare)):
            acc = func(item, acc)
        if acc is None:
            raise DesignError(f"{self.description} has no rows: nothing to fit")
        return acc

    @property
    def collect_hint(self) -> str:
        """How to bring the rows into memory as a pandas DataFrame."""
        return COLLECT_HINT.get(self.kind, "pd.DataFrame(...)")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description})"


class DuckDBSource(DataSource):
    """A DuckDB relation (or Parquet files read through DuckDB), read as Arrow record batches."""

    kind = "duckdb"

    def __init__(self, relation, description: str, *, kind: str = "duckdb", keep=None,
                 chunk_rows: int = CHUNK_ROWS) -> None:
        super().__init__(description, chunk_rows)
        self.relation = relation
        self.kind = kind
        self._keep = keep                       # the connection that owns the relation

    @property
    def columns(self) -> list[str]:
        return list(self.relation.columns)

    def _select(self, columns: list[str]):
        return self.relation.project(", ".join(_quote(c) for c in columns))

    def head(self, n: int = 1000) -> pd.DataFrame:
        return self.relation.limit(n).to_arrow_table().to_pandas()

    def chunks(self, columns: list[str]) -> Iterator[pd.DataFrame]:
        rel = self._select(columns)
        reader = (rel.to_arrow_reader(self.chunk_rows) if hasattr(rel, "to_arrow_reader")
                  else rel.fetch_record_batch(self.chunk_rows))
        for batch in reader:
            if batch.num_rows:
                yield batch.to_pandas()


    def scan(self, na_columns: list[str], sets: list[tuple[str, ...]]) -> dict:
        """Row counts, missing values per column and the distinct rows of each column set, in SQL.

        A row is missing a value where a column is NULL (or NaN, for floating-point
        columns: pandas' ``isna``); the distinct values are taken over the complete rows.
        """
        types = dict(zip(self.relation.columns, (str(t) for t in self.relation.types)))

        def missing(c: str) -> str:
            q = _quote(c)
            return f"({q} IS NULL OR isnan({q}))" if types.get(c) in ("DOUBLE", "FLOAT", "REAL") else f"({q} IS NULL)"

        complete = " AND ".join(f"NOT {missing(c)}" for c in na_columns) or "TRUE"
        counts = "".join(f", count(*) FILTER (WHERE {missing(c)})" for c in na_columns)
        row = self.relation.query("bm_source", f"SELECT count(*), count(*) FILTER (WHERE {complete}){counts} "
                                  "FROM bm_source").fetchall()[0]
        na = {c: int(k) for c, k in zip(na_columns, row[2:]) if k}
        distinct = {}
        for cols in sets:
            sel = ", ".join(_quote(c) for c in cols)
            distinct[cols] = self.relation.query(
                "bm_source", f"SELECT DISTINCT {sel} FROM bm_source WHERE {complete}").to_arrow_table().to_pandas()
        return {"rows": int(row[0]), "kept": int(row[1]), "na": na, "distinct": distinct}


class PolarsSource(DataSource):
    """A polars LazyFrame (or DataFrame), collected in slices of ``chunk_rows`` rows."""

    kind = "polars"

    def __init__(self, frame, description: str, chunk_rows: int = CHUNK_ROWS) -> None:
        super().__init__(description, chunk_rows)
        self.frame = frame

    @property
    def columns(self) -> list[str]:
        if hasattr(self.frame, "collect_schema"):
            return list(self.frame.collect_schema().names())
        return list(self.frame.columns)

    def head(self, n: int = 1000) -> pd.DataFrame:
        h = self.frame.head(n)
        return (h.collect() if hasattr(h, "collect") else h).to_pandas()

    def chunks(self, columns: list[str]) -> Iterator[pd.DataFrame]:
        import polars as pl

        frame = self.frame.select([pl.col(c) for c in columns])
        if not hasattr(frame, "collect"):                 # an eager DataFrame: zero-copy slices
            for part in frame.iter_slices(self.chunk_rows):
                yield part.to_pandas()
            return
        start = 0
        while True:
            part = frame.slice(start, self.chunk_rows).collect()
            if part.height:
                yield part.to_pandas()
            if part.height < self.chunk_rows:
                return
            start += self.chunk_rows


class DaskSource(DataSource):
    """A Dask DataFrame: a partition is a chunk; ``map_reduce`` runs on the cluster.

    With a ``dask.distributed`` client active (``distributed.get_client()``) the
    per-partition results are computed on its workers and combined there in a tree;
    otherwise with Dask's default scheduler.
    """

    kind = "dask"

    def __init__(self, frame, description: str) -> None:
        super().__init__(description)
        self.frame = frame

    @property
    def columns(self) -> list[str]:
        return list(self.frame.columns)

    def head(self, n: int = 1000) -> pd.DataFrame:
        return self.frame.head(n, npartitions=-1)

    def chunks(self, columns: list[str]) -> Iterator[pd.DataFrame]:
        sub = self.frame[columns]
        for i in range(sub.npartitions):
            part = sub.get_partition(i).compute()
            if len(part):
                yield part

    def map_reduce(self, columns, func, combine, prepare=None):
        import dask

        parts = self.frame[columns].to_delayed()
        if not parts:
            raise DesignError(f"{self.description} has no partitions: nothing to fit")
        f, c = dask.delayed(func, pure=True), dask.delayed(combine, pure=True)
        if prepare is not None:
            parts = [dask.delayed(prepare, pure=True)(p) for p in parts]
        level = [f(p, None) for p in parts]
        while len(level) > 1:                             # tree reduction, 4 at a time
            level = [c(level[i:i + 4]) if len(level[i:i + 4]) > 1 else level[i]
                     for i in range(0, len(level), 4)]
        client = _active_client()
        if client is not None:
            return client.compute(level[0]).result()
        return level[0].compute()


def prefetched(chunks: Iterable, prepare: Callable[[Any], Any]) -> Iterator[Any]:
    """``prepare(chunk)`` of each chunk, in order, the next one read and prepared in a worker thread.

    Examples
    --------
    >>> list(prefetched(iter([1, 2, 3]), lambda x: 10 * x))
    [10, 20, 30]
    """
    it = iter(chunks)
    done = object()

    def step():
        chunk = next(it, done)
        return done if chunk is done else prepare(chunk)

    with ThreadPoolExecutor(1, thread_name_prefix="bayesmixed-read") as pool:
        future = pool.submit(step)
        while True:
            item = future.result()
            if item is done:
                return
            future = pool.submit(step)
            yield item


def _active_client():
    """The active ``dask.distributed`` client, or None."""
    try:
        from distributed import get_client

        return get_client()
    except (ImportError, ValueError):
        return None


def _quote(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def parquet_files(path: str | os.PathLike) -> list[str]:
    """The Parquet files of a path: a file, a directory (searched recursively) or a glob.

    Examples
    --------
    >>> parquet_files("/no/such/file.parquet")
    Traceback (most recent call last):
    ...
    bayesmixed.errors.DesignError: no Parquet file at '/no/such/file.parquet' ...
    """
    p = os.fspath(path)
    if os.path.isdir(p):
        files = sorted(glob.glob(os.path.join(p, "**", "*.parquet"), recursive=True))
    elif any(ch in p for ch in "*?["):
        files = sorted(glob.glob(p, recursive=True))
    else:
        files = [p] if os.path.isfile(p) else []
    if not files:
        raise DesignError(f"no Parquet file at {p!r} (data given as a path is read as Parquet: a "
                          "file, a directory of .parquet files, or a glob such as 'data/*.parquet')")
    return files


def as_source(data: Any, *, chunk_rows: int = CHUNK_ROWS) -> DataSource | None:
    """A :class:`DataSource` for data that is not in memory; None for in-memory data.

    Parameters
    ----------
    data : str, os.PathLike, duckdb relation, polars LazyFrame, dask DataFrame, ...
        A :class:`DataSource` is returned as is (e.g. one made with a smaller
        ``chunk_rows``). A path (Parquet file, directory or glob, read through DuckDB), a DuckDB
        relation, a polars LazyFrame or a Dask DataFrame give a source. A pandas
        DataFrame, a polars DataFrame or a dict of columns give None: they are in
        memory already and take the in-memory path.
    chunk_rows : int
        Rows per chunk for DuckDB and polars sources.

    Examples
    --------
    >>> import pandas as pd
    >>> as_source(pd.DataFrame({"y": [1.0]})) is None
    True
    >>> import duckdb
    >>> src = as_source(duckdb.sql("SELECT 1.5 AS y, 'a' AS g"))
    >>> src.kind, src.columns, next(src.chunks(["g"]))["g"].tolist()
    ('duckdb', ['y', 'g'], ['a'])
    """
    if isinstance(data, DataSource):
        return data
    if isinstance(data, (pd.DataFrame, dict)):
        return None
    if isinstance(data, (str, os.PathLike)):
        import duckdb

        files = parquet_files(data)
        con = duckdb.connect()
        rel = con.read_parquet(files)
        return DuckDBSource(rel, f"Parquet {os.fspath(data)!r} ({len(files)} file(s))", kind="parquet",
                            keep=con, chunk_rows=chunk_rows)
    mod = type(data).__module__.split(".")[0]
    name = type(data).__name__
    if mod == "duckdb" and hasattr(data, "project"):
        return DuckDBSource(data, f"DuckDB relation {', '.join(map(str, data.columns[:8]))}",
                            chunk_rows=chunk_rows)
    if mod == "polars" and name == "LazyFrame":
        return PolarsSource(data, "polars LazyFrame", chunk_rows=chunk_rows)
    if mod.startswith("dask") and hasattr(data, "npartitions") and hasattr(data, "columns"):
        return DaskSource(data, f"Dask DataFrame ({data.npartitions} partitions)")
    return None
