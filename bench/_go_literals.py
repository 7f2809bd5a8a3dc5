"""Reading string values out of Go test and rule files without a Go toolchain: a tokenizer and a small evaluator
for the expressions peers use to write their test cases (string literals, `+`, `fmt.Sprintf("%s", ...)`,
`[]string{...}`, `append(x, ...)`, `strings.Repeat`, local `name := "..."` variables and a few helper calls that
the caller supplies). Used by bench/secrets_corpus.py on fetched repositories; nothing here runs Go code.

An expression evaluates to a list of `Value`s (a test list holds many); each value remembers whether any part of it
was produced by a generator (`generated`), so real-world literals and generated look-alikes stay apart. Whatever
the evaluator does not understand evaluates to None, and the caller skips (and counts) it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_TOKEN = re.compile(r"""
    (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<raw>`[^`]*`)
  | (?P<str>"(?:[^"\\\n]|\\.)*")
  | (?P<rune>'(?:[^'\\\n]|\\.)+')
  | (?P<num>\d[\w.]*)
  | (?P<ident>[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)
  | (?P<op>\.\.\.|:=|[-+*/%&|^<>=!]=?|[(){}\[\],;:.])
  | (?P<space>\s+)
""", re.VERBOSE | re.DOTALL)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b", "f": "\f",
            "v": "\v"}


@dataclass(frozen=True)
class Token:
    kind: str  # str | ident | num | op
    text: str  # for str: the decoded value
    line: int


@dataclass(frozen=True)
class Value:
    text: str
    generated: bool = False


def _decode(body: str) -> str:
    out, index = [], 0
    while index < len(body):
        char = body[index]
        if char != "\\":
            out.append(char)
            index += 1
            continue
        code = body[index + 1]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            index += 2
        elif code == "x":
            out.append(chr(int(body[index + 2:index + 4], 16)))
            index += 4
        elif code == "u":
            out.append(chr(int(body[index + 2:index + 6], 16)))
            index += 6
        elif code == "U":
            out.append(chr(int(body[index + 2:index + 10], 16)))
            index += 10
        elif code.isdigit():
            out.append(chr(int(body[index + 1:index + 4], 8)))
            index += 4
        else:
            out.append(code)
            index += 2
    return "".join(out)


def tokenize(source: str) -> list[Token]:
    tokens, line = [], 1
    for match in _TOKEN.finditer(source):
        kind, text = match.lastgroup, match.group()
        if kind == "raw":
            tokens.append(Token("str", text[1:-1].replace("\r", ""), line))
        elif kind == "str":
            tokens.append(Token("str", _decode(text[1:-1]), line))
        elif kind in ("ident", "num", "op"):
            tokens.append(Token(kind, text, line))
        elif kind == "rune":
            tokens.append(Token("num", text, line))
        line += text.count("\n")
    return tokens


def matching(tokens: list[Token], start: int) -> int:
    """Index of the bracket closing the one at `start`."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    opener, depth = tokens[start].text, 0
    for index in range(start, len(tokens)):
        text = tokens[index].text if tokens[index].kind == "op" else ""
        if text == opener:
            depth += 1
        elif text == pairs[opener]:
            depth -= 1
            if depth == 0:
                return index
    return len(tokens) - 1


def split_top(tokens: list[Token], separator: str = ",") -> list[list[Token]]:
    """Split a token run at `separator`s that are not inside brackets."""
    parts, current, depth = [], [], 0
    for token in tokens:
        if token.kind == "op" and token.text in "([{":
            depth += 1
        elif token.kind == "op" and token.text in ")]}":
            depth -= 1
        if depth == 0 and token.kind == "op" and token.text == separator:
            parts.append(current)
            current = []
        else:
            current.append(token)
    if current:
        parts.append(current)
    return parts


Helper = Callable[[list[list[Value]]], list[Value] | None]


class Evaluator:
    """Evaluates Go expressions of string values; `variables` maps names to values, `helpers` maps called
    function names (`utils.GenerateSampleSecret`) to Python functions of their evaluated arguments."""

    def __init__(self, variables: dict[str, list[Value]] | None = None, helpers: dict[str, Helper] | None = None):
        self.variables = dict(variables or {})
        self.helpers = dict(helpers or {})

    def evaluate(self, tokens: list[Token]) -> list[Value] | None:
        tokens = [t for t in tokens if not (t.kind == "op" and t.text == "...")]
        if not tokens:
            return None
        terms = split_top(tokens, "+")
        if len(terms) > 1:
            result = [Value("")]
            for term in terms:
                values = self._term(term)
                if values is None or len(values) != 1:
                    return None
                result = [Value(a.text + b.text, a.generated or b.generated) for a in result for b in values]
            return result
        return self._term(tokens)

    def _term(self, tokens: list[Token]) -> list[Value] | None:
        if not tokens:
            return None
        first = tokens[0]
        if len(tokens) == 1:
            if first.kind == "str":
                return [Value(first.text)]
            if first.kind == "ident":
                return self.variables.get(first.text)
            if first.kind == "num":
                return [Value(first.text)]
            return None
        if first.kind == "op" and first.text == "(" and matching(tokens, 0) == len(tokens) - 1:
            return self.evaluate(tokens[1:-1])
        # []string{...}
        if first.text == "[" and len(tokens) > 3 and tokens[1].text == "]" and tokens[2].text == "string" \
                and tokens[3].text == "{":
            end = matching(tokens, 3)
            if end != len(tokens) - 1:
                return None
            values = []
            for part in split_top(tokens[4:end]):
                if part:
                    item = self.evaluate(part)
                    if item is not None:
                        values.extend(item)
            return values
        # a call: name(args)
        if first.kind == "ident" and tokens[1].text == "(" and matching(tokens, 1) == len(tokens) - 1:
            args = [self.evaluate(part) for part in split_top(tokens[2:-1])]
            return self._call(first.text, args)
        return None

    def _call(self, name: str, args: list[list[Value] | None]) -> list[Value] | None:
        if name == "append":
            if not args or args[0] is None:
                return None
            values = list(args[0])
            for arg in args[1:]:
                if arg is not None:
                    values.extend(arg)
            return values
        if name == "fmt.Sprintf":
            if not args or any(arg is None or len(arg) != 1 for arg in args):
                return None
            template, rest = args[0][0], [arg[0] for arg in args[1:]]
            pieces = re.split(r"(%[sqdv])", template.text)
            out, used, generated = [], 0, template.generated or any(v.generated for v in rest)
            for piece in pieces:
                if re.fullmatch(r"%[sqdv]", piece):
                    if used >= len(rest):
                        return None
                    out.append(f'"{rest[used].text}"' if piece == "%q" else rest[used].text)
                    used += 1
                else:
                    out.append(piece.replace("%%", "%"))
            return [Value("".join(out), generated)]
        if name == "strings.Repeat":
            if len(args) != 2 or any(arg is None or len(arg) != 1 for arg in args) or not args[1][0].text.isdigit():
                return None
            return [Value(args[0][0].text * int(args[1][0].text), args[0][0].generated)]
        helper = self.helpers.get(name)
        if helper is None or any(arg is None for arg in args):
            return None
        return helper(args)  # type: ignore[arg-type]


def declarations(tokens: list[Token], evaluator: Evaluator) -> None:
    """Record `name = expr` / `name := expr` string declarations (package `var (...)`/`const (...)` blocks and
    function bodies alike) in `evaluator.variables`, in source order, so later expressions can use them."""
    index = 0
    while index < len(tokens) - 2:
        name, op = tokens[index], tokens[index + 1]
        if name.kind == "ident" and op.kind == "op" and op.text in ("=", ":=") and \
                (index == 0 or tokens[index - 1].text in ("(", ";", "{", "}", ",", "var", "const")
                 or tokens[index - 1].line < name.line):
            end = index + 2
            depth = 0
            while end < len(tokens):
                token = tokens[end]
                if token.kind == "op" and token.text in "([{":
                    depth += 1
                elif token.kind == "op" and token.text in ")]}":
                    if depth == 0:
                        break
                    depth -= 1
                if depth == 0 and end > index + 2 and token.line > tokens[end - 1].line and \
                        tokens[end - 1].text not in ("+", ",", "(", "{"):
                    break
                end += 1
            value = evaluator.evaluate(tokens[index + 2:end])
            if value is not None:
                evaluator.variables[name.text] = value
            index = end
        else:
            index += 1


def field_value(tokens: list[Token], name: str) -> list[Token] | None:
    """The tokens of `name: <expr>` inside a struct literal's token run (top level only)."""
    for part in split_top(tokens):
        if len(part) > 2 and part[0].kind == "ident" and part[0].text == name and part[1].text == ":":
            return part[2:]
    return None
