"""Arithmetic on an AST whitelist: no eval, bounded sizes.

Every value is bounded (|x| <= 1e300), so every operation is cheap: a big-integer
operation holds the GIL for its whole run, and `round(5, -2 * 10**7)` once froze a room
for 28 s. Function arguments are bounded like results, and round's digits too."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import cast

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., float]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "log": math.log,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
MAX_EXPRESSION = 200
MAX_EXPONENT = 1000
MAX_MAGNITUDE = 1e300
MAX_ROUND_DIGITS = 300


class CalcError(ValueError):
    pass


def evaluate(expression: str) -> float | int:
    if len(expression) > MAX_EXPRESSION:
        raise CalcError(f"expression longer than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError:
        raise CalcError("not an arithmetic expression") from None
    result = _eval(tree.body)
    if isinstance(result, float) and result.is_integer() and abs(result) < 2**53:
        return int(result)
    return result


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return cast(float, node.value)  # int stays int: exact arithmetic where possible
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            if abs(right) > MAX_EXPONENT:
                raise CalcError(f"exponent larger than {MAX_EXPONENT}")
            # an exact integer power past the bound is refused before it is computed
            if isinstance(left, int) and abs(left) > 1 and right * math.log2(abs(left)) > 1000:
                raise CalcError("result too large")
        try:
            value = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise CalcError("division by zero") from None
        except OverflowError:
            raise CalcError("result too large") from None
        return _bounded(value)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        args = [_eval(a) for a in node.args]
        if node.func.id == "round" and len(args) == 2:
            digits = args[1]
            if not isinstance(digits, int) or abs(digits) > MAX_ROUND_DIGITS:
                raise CalcError(f"round: digits must be a whole number within ±{MAX_ROUND_DIGITS}")
        try:
            value = _FUNCTIONS[node.func.id](*args)
        except (ValueError, TypeError, OverflowError) as e:
            raise CalcError(f"{node.func.id}: {e}") from None
        return _bounded(value)
    raise CalcError("only numbers, + - * / // % ** and a few math functions are allowed")


def _bounded(value: object) -> float:
    if isinstance(value, complex) or not isinstance(value, int | float):
        raise CalcError("result is not a real number")
    if abs(value) > MAX_MAGNITUDE:
        raise CalcError("result too large")
    return value
