"""SQL expressions (SQLAlchemy Core) that make PostgreSQL write JSON exactly as the API's
Python code would: the compiled read path returns PostgreSQL's text untouched, so every
value must already have its API form.

* objects keep the order of their keys (``json_build_object``, never ``jsonb``);
* date-times are ISO 8601 in UTC the way ``datetime.isoformat()`` writes them
  (microseconds only when not zero, ``+00:00``);
* global ids are ``base64("Type:id")`` (strawberry's ``GlobalID``);
* cursors are graphql_api.relay.encode_cursor's: URL-safe base64, unpadded, of the
  sort key as compact JSON with non-ASCII characters escaped (``json.dumps``'s
  defaults) and date-times as ``str(datetime)``;
* durations are domain.jobs.rules.iso_duration's (``PT4M0S``), rounding the same way.

Nothing here takes a value from a client: constants are inlined, values are bound
parameters made by the caller.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    Integer,
    Text,
    case,
    cast,
    func,
    literal_column,
    null,
    select,
)
from sqlalchemy.sql.elements import ColumnElement

Expr = ColumnElement[Any]
# PostgreSQL functions take at most 100 arguments: 50 key/value pairs per object.
MAX_PAIRS = 50
_KEY = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")


def const(text: str) -> Expr:
    """A constant string inlined as an SQL literal (names, type names: never client input)."""
    return literal_column("'" + text.replace("'", "''") + "'", Text)


def json_key(key: str) -> Expr:
    if not _KEY.match(key):  # GraphQL names and aliases always match; refuse anything else
        raise ValueError(f"not a GraphQL name: {key!r}")
    return literal_column(f"'{key}'", Text)


def json_object(pairs: Sequence[tuple[str, Expr]]) -> Expr:
    """``{"k": v, ...}`` in the given order; values embed as JSON (json/jsonb as is)."""
    if len(pairs) <= MAX_PAIRS:
        args: list[Any] = []
        for key, value in pairs:
            args += [json_key(key), value]
        return func.json_build_object(*args)
    # Past the argument limit: text pieces, each value through to_json.
    pieces: list[Any] = [literal_column("'{'")]
    for i, (key, value) in enumerate(pairs):
        prefix = ("," if i else "") + f'"{json_key(key).text.strip(chr(39))}":'
        pieces += [literal_column(f"'{prefix}'"), cast(func.to_json(value), Text)]
    pieces.append(literal_column("'}'"))
    return cast(func.concat(*pieces), JSONText)


class JSONText(Text):
    """Text that is JSON (a cast target: ``::json``)."""

    __visit_name__ = "JSON"


def empty_list() -> Expr:
    return literal_column("'[]'::json")


def json_list(element: Expr, *, order_by: Sequence[Any] = (), where: Expr | None = None) -> Expr:
    """``json_agg`` of the rows in scope, ``[]`` when there are none."""
    agg: Any = func.json_agg(aggregate_order_by(element, order_by) if order_by else element)
    if where is not None:
        agg = agg.filter(where)
    return func.coalesce(agg, empty_list())


def aggregate_order_by(element: Expr, order_by: Sequence[Any]) -> Any:
    from sqlalchemy.dialects.postgresql import aggregate_order_by as pg_order_by

    return pg_order_by(element, *order_by)


def iso_datetime(value: Expr) -> Expr:
    """``datetime.isoformat()`` of a timestamptz in UTC, null stays null."""
    text = func.to_char(
        func.timezone(const("UTC"), value), const('YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
    )
    return func.replace(text, const(".000000+"), const("+"))


def str_datetime(value: Expr) -> Expr:
    """``str(datetime)`` of a timestamptz in UTC (space between date and time)."""
    text = func.to_char(
        func.timezone(const("UTC"), value), const('YYYY-MM-DD HH24:MI:SS.US"+00:00"')
    )
    return func.replace(text, const(".000000+"), const("+"))


def base64(text: Expr) -> Expr:
    """Standard base64 with padding of a UTF-8 text, on one line."""
    encoded = func.encode(func.convert_to(text, const("UTF8")), const("base64"))
    return func.replace(encoded, literal_column("E'\\n'"), const(""))


def global_id(type_name: str, pk: Expr) -> Expr:
    """``base64("Type:pk")``; NULL when ``pk`` is (``||`` keeps NULL, ``concat`` would not)."""
    return base64(const(f"{type_name}:").op("||")(cast(pk, Text)))


def num(value: int) -> Expr:
    """An integer constant inlined in the SQL (not a parameter)."""
    return literal_column(str(int(value)), Integer)


def idiv(a: Any, b: Any) -> Expr:
    """Integer division as PostgreSQL does it for integers (truncating)."""
    return a.op("/", precedence=8, return_type=BigInteger)(b)  # type: ignore[no-any-return]


def ascii_json_string(value: Expr) -> Expr:
    """A text as ``json.dumps`` writes it by default: quoted, non-ASCII as ``\\uXXXX``
    (astral characters as surrogate pairs). Fast path for the common ASCII text."""
    chars = (
        func.regexp_split_to_table(value, const(""))
        .table_valued("c", with_ordinality="n")
        .render_derived(name="ch")
    )
    char = chars.c.c
    code = func.ascii(char)
    inner = cast(func.to_json(char), Text)  # '"x"': the escaped character, quoted
    astral = code - num(65536)
    escaped = case(
        # to_json escapes what json.dumps escapes below DEL; DEL it escapes too.
        (code < num(127), func.substr(inner, num(2), func.length(inner) - num(2))),
        (
            code < num(65536),
            func.concat(const("\\u"), func.lpad(func.to_hex(code), num(4), const("0"))),
        ),
        else_=func.concat(
            const("\\u"),
            func.to_hex(num(55296) + idiv(astral, num(1024))),
            const("\\u"),
            func.to_hex(num(56320) + astral % num(1024)),
        ),
    )
    joined = (
        select(
            func.array_to_string(
                func.array_agg(aggregate_order_by(escaped, [chars.c.n])), const("")
            )
        )
        .select_from(chars)
        .correlate_except(chars)
        .scalar_subquery()
    )
    return case(
        (value.op("~")(const("^[\\x01-\\x7e]*$")), cast(func.to_json(value), Text)),
        else_=func.concat(const('"'), joined, const('"')),
    )


def cursor(parts: Sequence[tuple[Expr, str]]) -> Expr:
    """relay.encode_cursor of a sort key. ``parts``: (expression, kind) with kind one of
    ``int``, ``text``, ``datetime``."""
    pieces: list[Any] = [const("[")]
    for i, (value, kind) in enumerate(parts):
        if i:
            pieces.append(const(","))
        if kind == "int":
            pieces.append(cast(value, Text))
        elif kind == "datetime":
            pieces += [const('"'), str_datetime(value), const('"')]
        elif kind == "text":
            pieces.append(ascii_json_string(value))
        else:  # pragma: no cover - a programming error
            raise ValueError(kind)
    pieces.append(const("]"))
    encoded = base64(func.concat(*pieces))
    return func.rtrim(func.translate(encoded, const("+/"), const("-_")), const("="))


def seconds_between(start: Expr, end: Expr) -> Expr:
    """domain.jobs.rules.seconds_between: max(end − start, 0) in seconds; null if either is."""
    return case(
        (start.is_(None) | end.is_(None), null()),
        else_=func.greatest(func.extract("epoch", end - start), num(0)),
    )


def iso_duration(seconds: Expr) -> Expr:
    """domain.jobs.rules.iso_duration: ``round(seconds * 1000)`` as a double (half to
    even, like Python), then days, hours and minutes when not zero, seconds always."""
    ms = cast(func.round(cast(seconds, Float) * literal_column("1000.0", Float)), BigInteger)
    days = idiv(ms, num(86_400_000))
    hours = idiv(ms % num(86_400_000), num(3_600_000))
    minutes = idiv(ms % num(3_600_000), num(60_000))
    rest = ms % num(60_000)
    whole = idiv(rest, num(1000))
    frac = rest % num(1000)
    secs = func.concat(
        cast(whole, Text),
        case(
            (frac == num(0), const("")),
            else_=func.concat(
                const("."),
                func.rtrim(func.lpad(cast(frac, Text), num(3), const("0")), const("0")),
            ),
        ),
    )
    return case(
        (seconds.is_(None), null()),
        else_=func.concat(
            const("P"),
            case((days == num(0), const("")), else_=func.concat(cast(days, Text), const("D"))),
            const("T"),
            case((hours == num(0), const("")), else_=func.concat(cast(hours, Text), const("H"))),
            case(
                (minutes == num(0), const("")),
                else_=func.concat(cast(minutes, Text), const("M")),
            ),
            secs,
            const("S"),
        ),
    )


def as_bool(value: Expr) -> Expr:
    return cast(value, Boolean)
