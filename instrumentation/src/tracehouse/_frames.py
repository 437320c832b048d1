"""Tables for the read client: Arrow tables made into pandas or polars DataFrames.

Every answer becomes a pyarrow Table first: the collector's Arrow streams as they arrive, the
JSON answers (runs, one trace, compare) through the schemas below. One conversion then gives
each output the same types:

- times: timestamps in UTC, at the precision stored (pandas ``datetime64[ns, UTC]`` for
  DateTime64(9), ``[s, UTC]`` for DateTime) or sent (``[us, UTC]`` from the JSON answers);
- money (``cost_usd``, ClickHouse ``Decimal``): exact ``decimal.Decimal`` values (pandas ``object``
  column; pyarrow ``decimal128``; polars ``Decimal``);
- counts (tokens, spans, steps): integers; in pandas a nullable ``UInt64``/``Int64`` column when
  some rows are null, numpy integers otherwise;
- maps (attributes, tags, scores): ``dict`` in pandas; lists and structs as lists and dicts;
- a column whose rows mix kinds (a param logged as a number in one run and as text in another;
  compare's run columns) keeps each Python value in pandas (``object``) and is text (strings,
  numbers as JSON) in Arrow and polars, which need one type per column.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pyarrow as pa

Output = Literal["pandas", "polars", "arrow"]
OUTPUTS: tuple[str, ...] = ("pandas", "polars", "arrow")
_EXTRA = {"pandas": "pandas", "polars": "polars", "pyarrow": "pandas"}


class MissingExtraError(ImportError):
    """A DataFrame library the client needs is not installed; the message names the extra."""


def require(module: str, output: str = "pandas") -> Any:
    """Import `module`, or say which extra of `tracehouse` brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRA.get(output, "pandas") if module == "pyarrow" else _EXTRA.get(module, "pandas")
        raise MissingExtraError(
            f"tracehouse.Client needs {module} for {output} results: pip install 'tracehouse[{extra}]'"
        ) from exc


def check_output(output: str) -> Output:
    if output not in OUTPUTS:
        raise ValueError(f"as_: use one of {', '.join(OUTPUTS)}, got {output!r}")
    return output  # type: ignore[return-value]


# -- from the wire --------------------------------------------------------------------------


def read_stream(body: bytes, output: str) -> pa.Table:
    """An Arrow IPC stream (what the collector sends for `format=arrow`) as a Table."""
    pa = require("pyarrow", output)
    return pa.ipc.open_stream(body).read_all()


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


class Columns:
    """Columns collected one at a time, each with a type or inferred from its values; a
    column whose values have no common Arrow type is kept as text (and, for pandas, as the
    Python values themselves)."""

    def __init__(self, output: str) -> None:
        self.pa = require("pyarrow", output)
        self.names: list[str] = []
        self.arrays: list[Any] = []
        self.mixed: dict[int, list[Any]] = {}

    def add(self, name: str, values: Sequence[Any], type_: Any = None) -> None:
        """A column of `values` of Arrow type `type_` (None: inferred); for a timestamp type the
        values are the collector's ISO-8601 UTC text ('...Z')."""
        pa = self.pa
        try:
            if type_ is not None and pa.types.is_timestamp(type_):
                array = pa.array(list(values), pa.string()).cast(type_)
            else:
                array = pa.array(values, type=type_) if type_ is not None else pa.array(values)
            if pa.types.is_null(array.type):  # no value at all: text, so the column still has a type
                array = array.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            self.mixed[len(self.names)] = list(values)
            array = pa.array([_text(v) for v in values], type=pa.string())
        self.names.append(name)
        self.arrays.append(array)

    def table(self) -> pa.Table:
        return self.pa.Table.from_arrays(self.arrays, names=self.names)


# -- to the caller --------------------------------------------------------------------------


def _utc(table: pa.Table, pa: Any) -> pa.Table:
    """Every timestamp column in UTC (ClickHouse names the server's zone, e.g. Etc/UTC)."""
    fields = []
    for field in table.schema:
        if pa.types.is_timestamp(field.type) and field.type.tz != "UTC":  # a time without a zone is UTC
            field = field.with_type(pa.timestamp(field.type.unit, "UTC"))
        fields.append(field)
    schema = pa.schema(fields, metadata=table.schema.metadata)
    return table if schema.equals(table.schema) else table.cast(schema)


def convert(table: pa.Table, output: str, mixed: dict[int, list[Any]] | None = None) -> Any:
    pa = require("pyarrow", output)
    table = _utc(table, pa)
    if output == "arrow":
        return table
    if output == "polars":
        pl = require("polars", "polars")
        return pl.from_arrow(table)
    pd = require("pandas", "pandas")
    frame = table.to_pandas(maps_as_pydicts="strict")
    for i, field in enumerate(table.schema):
        column = table.column(i)
        if pa.types.is_integer(field.type) and column.null_count:
            # pandas would make these floats, and lose integers above 2**53
            frame.isetitem(i, column.to_pandas(types_mapper=pd.ArrowDtype).astype(_nullable(pd, field.type)))
    for i, values in (mixed or {}).items():
        frame.isetitem(i, pd.Series(values, index=frame.index, dtype=object))
    return frame


def _nullable(pd: Any, type_: Any) -> Any:
    return {
        "int8": pd.Int8Dtype(),
        "int16": pd.Int16Dtype(),
        "int32": pd.Int32Dtype(),
        "int64": pd.Int64Dtype(),
        "uint8": pd.UInt8Dtype(),
        "uint16": pd.UInt16Dtype(),
        "uint32": pd.UInt32Dtype(),
        "uint64": pd.UInt64Dtype(),
    }[str(type_)]


def utc_text(value: dt.datetime | str | None) -> str | None:
    """A time for the collector's `since`/`until`: datetimes as ISO-8601, text as given ("1h")."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat()
