"""How an amount of US dollars is written for people and in JSON: plain digits, never an exponent
(`0.0000001`, not `1E-7`), at most ten decimals (the finest unit the budget stores keep), no trailing
zeros. Table columns use `column_usd`, a fixed six decimals."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

_FINEST = Decimal("1e-10")
_COLUMN = Decimal("0.000001")


def usd(value: Decimal) -> str:
    if not value.is_finite():
        return str(value)
    text = f"{value.quantize(_FINEST, rounding=ROUND_HALF_EVEN).normalize():f}"
    return "0" if text in ("-0", "0E-10") else text


def column_usd(value: Decimal) -> str:
    return f"{value.quantize(_COLUMN, rounding=ROUND_HALF_EVEN):f}"
