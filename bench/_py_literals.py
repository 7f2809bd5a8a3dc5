"""Evaluating the literal parts of a peer's Python test file without running it: module-level string constants and
the expressions test tables are written with (`'...'.format(X)`, `%`, `+`, f-strings of constants,
`textwrap.dedent`, tuples and lists). Anything else evaluates to `Unknown`, and the caller skips it."""

from __future__ import annotations

import ast
import textwrap


class Unknown(Exception):
    """The expression needs more than constants to evaluate."""


def evaluate(node: ast.AST, names: dict[str, object]):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        return [evaluate(element, names) for element in node.elts]
    if isinstance(node, ast.Name):
        if node.id in names:
            return names[node.id]
        raise Unknown(node.id)
    if isinstance(node, ast.BinOp):
        left, right = evaluate(node.left, names), evaluate(node.right, names)
        if isinstance(node.op, ast.Add) and isinstance(left, str) and isinstance(right, str):
            return left + right
        if isinstance(node.op, ast.Mod) and isinstance(left, str):
            return left % (tuple(right) if isinstance(right, list) else right)
        if isinstance(node.op, ast.Mult) and isinstance(left, str) and isinstance(right, int) and right < 10_000:
            return left * right
        raise Unknown("operator")
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue) and value.format_spec is None and value.conversion == -1:
                parts.append(str(evaluate(value.value, names)))
            else:
                raise Unknown("f-string")
        return "".join(parts)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        owner = node.func.value
        if node.func.attr == "format" and not node.keywords:
            template = evaluate(owner, names)
            if isinstance(template, str):
                return template.format(*[evaluate(arg, names) for arg in node.args])
        if node.func.attr == "dedent" and isinstance(owner, ast.Name) and owner.id == "textwrap" and node.args:
            return textwrap.dedent(evaluate(node.args[0], names))
        if node.func.attr == "join" and len(node.args) == 1:
            separator, items = evaluate(owner, names), evaluate(node.args[0], names)
            if isinstance(separator, str) and isinstance(items, list):
                return separator.join(items)
        if node.func.attr in ("strip", "lstrip", "rstrip") and not node.args:
            value = evaluate(owner, names)
            if isinstance(value, str):
                return getattr(value, node.func.attr)()
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = evaluate(node.operand, names)
        if isinstance(value, (int, float)):
            return -value
    raise Unknown(type(node).__name__)


def module_constants(tree: ast.Module) -> dict[str, object]:
    """Module-level `NAME = <constant expression>` assignments, in order (later ones may use earlier ones)."""
    names: dict[str, object] = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and \
                isinstance(statement.targets[0], ast.Name):
            try:
                names[statement.targets[0].id] = evaluate(statement.value, names)
            except (Unknown, TypeError, ValueError, IndexError, KeyError):
                continue
    return names


def parametrize_tables(tree: ast.Module, names: dict[str, object]):
    """(function name, [parameter names], [rows]) for every `pytest.mark.parametrize(names, rows)` decorator whose
    rows evaluate; rows that do not evaluate are left out."""
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for decorator in node.decorator_list:
            if not (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
                    and decorator.func.attr == "parametrize" and len(decorator.args) >= 2):
                continue
            try:
                params = evaluate(decorator.args[0], names)
            except Unknown:
                continue
            params = [p.strip() for p in params.split(",")] if isinstance(params, str) else list(params)
            rows_node = decorator.args[1]
            rows = []
            elements = rows_node.elts if isinstance(rows_node, (ast.List, ast.Tuple)) else []
            for element in elements:
                try:
                    value = evaluate(element, names)
                except (Unknown, TypeError, ValueError, IndexError, KeyError):
                    continue
                rows.append(value if isinstance(value, list) and len(params) > 1 else [value])
            yield node.name, params, rows
