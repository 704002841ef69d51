"""Policy conditions: the seed's expressions (`priority >= 2`, `!labels.includes('breaking-change')`,
`trust_level === 'trusted' && priority >= 2`) compiled once, when the config is loaded, and evaluated for each
message. Pure (no Django), like config.py, which calls `compile_condition` for every condition it reads.

The language is CEL (Common Expression Language, https://github.com/google/cel-spec), run by the
`common-expression-language` package: nothing is ever evaluated as Python. On top of CEL, the seed's
JavaScript spellings are accepted: `===` / `!==` mean `==` / `!=`, and `x.includes(y)` is a member function
(a list holds y, or a string contains y). The names a condition may use are the fixed set `VARIABLES`.

A condition that cannot be used raises ConditionError when compiled: a syntax error, an unknown name or
function, a result that is not true or false, or a type error found by evaluating it against sample messages
(e.g. `priority >= '2'`). At run time an evaluation error (a `requirements.x` the message lacks) is
ConditionFailed, which the policy engine turns into the safe answer (a human decides).
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


def _cel_extension():
    """The `common-expression-language` package's compiled module (`cel.cel`: compile, Context, Program)
    without its `__init__`, which also imports the package's command line (typer, prompt_toolkit, rich: ~0.2 s
    that every CLI command paid, `python -X importtime`). Registered as `cel.cel`, so a later `import cel`
    anywhere reuses it (the extension may be initialised only once per process)."""
    if "cel.cel" in sys.modules:
        return sys.modules["cel.cel"]
    import importlib.machinery
    import importlib.util
    from pathlib import Path

    package = importlib.util.find_spec("cel")
    folder = Path(package.submodule_search_locations[0])
    found = next((p for suffix in importlib.machinery.EXTENSION_SUFFIXES for p in folder.glob(f"cel{suffix}")), None)
    if found is None:  # another build of the package: the ordinary import
        import cel

        return cel
    loader = importlib.machinery.ExtensionFileLoader("cel.cel", str(found))
    spec = importlib.util.spec_from_file_location("cel.cel", found, loader=loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["cel.cel"] = module
    loader.exec_module(module)
    return module


cel = _cel_extension()

# name -> (CEL type, meaning). The documented, fixed set (PROTOCOL.md, "Policy variables").
VARIABLES: dict[str, tuple[str, str]] = {
    "operation": ("string", "create_issue, create_spec, update_issue or delegate"),
    "type": ("string", "issue or spec: the kind of entity asked for"),
    "id": ("string", "the entity an update_issue changes ('' otherwise)"),
    "title": ("string", "the entity's title"),
    "description": ("string", "the entity's description ('' when not given)"),
    "priority": ("int", "0 (most urgent) to 4; 2 when the message gives none"),
    "labels": ("list(string)", "the entity's labels"),
    "status": ("string", "the status an update asks for ('' when not given)"),
    "from": ("string", "the caller's repo identity ('' for an anonymous caller)"),
    "requester": ("string", "who asked, as the message says (metadata.requester)"),
    "trust_level": ("string", "trusted, verified or untrusted: the caller's level now"),
    "from_trusted_repo": ("bool", "trust_level == 'trusted'"),
    "from_verified_repo": ("bool", "trust_level is verified or trusted"),
    "auto_approve": ("bool", "the message asks to be approved without a human (a wish only a rule grants)"),
    "requests_today": ("int", "requests from this caller in the last 24 hours, this one not counted"),
    "requests_this_hour": ("int", "requests from this caller in the last hour, this one not counted"),
    "requirements": ("map", "a delegation's task.requirements ({} otherwise)"),
    "context": ("map", "a delegation's task.context ({} otherwise)"),
    "chain": ("list(string)", "the canonical refs a delegation passed through ([] otherwise)"),
    "hops": ("int", "size(chain)"),
}

# CEL's standard functions and ours; anything else is refused at load (it could only fail at run time).
FUNCTIONS = frozenset(
    {
        "includes", "size", "contains", "startsWith", "endsWith", "matches", "int", "uint", "double", "string",
        "bool", "bytes", "type", "dyn", "has", "duration", "timestamp", "min", "max",
    }
)  # fmt: skip
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_SAMPLES: tuple[dict[str, Any], ...] = (
    {
        "operation": "create_issue", "type": "issue", "id": "", "title": "A title", "description": "",
        "priority": 2, "labels": [], "status": "", "from": "github.com/org/repo", "requester": "agent",
        "trust_level": "verified", "from_trusted_repo": False, "from_verified_repo": True, "auto_approve": False,
        "requests_today": 0, "requests_this_hour": 0, "requirements": {}, "context": {}, "chain": [], "hops": 0,
    },
    {
        "operation": "delegate", "type": "spec", "id": "issue-1", "title": "Deploy", "description": "Text",
        "priority": 0, "labels": ["api", "breaking-change"], "status": "open", "from": "", "requester": "",
        "trust_level": "trusted", "from_trusted_repo": True, "from_verified_repo": True, "auto_approve": True,
        "requests_today": 30, "requests_this_hour": 5, "requirements": {"replicas": 3},
        "context": {"urgency": "high"}, "chain": ["org/a#spec-1"], "hops": 1,
    },
)  # fmt: skip


class ConditionError(ValueError):
    """A condition that cannot be used. `str()` is the reason, with the column (1-based) when one is known."""

    def __init__(self, reason: str, *, column: int | None = None, line: int = 1, then: str = "") -> None:
        self.reason = reason
        self.column = column
        self.line = line
        where = "" if column is None else (f" at column {column}" if line == 1 else f" at line {line}, column {column}")
        super().__init__(f"{reason}{where}{then}")


class ConditionFailed(Exception):
    """Evaluating a condition for one message failed (a missing map key, a type the sample did not have).
    `missing_key` is true when the message lacked a map key the condition reads (`requirements.replicas`)."""

    def __init__(self, message: str, *, missing_key: bool = False) -> None:
        super().__init__(message)
        self.missing_key = missing_key


@dataclass(frozen=True, eq=False)
class Condition:
    """A compiled condition. `source` is what the maintainer wrote; `evaluate` takes a `context()`."""

    source: str
    program: Any  # cel.Program
    names: frozenset[str] = frozenset()  # the VARIABLES it reads (and _CALLS_INCLUDES): what a context needs

    def evaluate(self, ctx: cel.Context) -> bool:
        try:
            result = self.program.execute(ctx)
        except KeyError as exc:
            raise ConditionFailed(f"{self.source!r} reads {exc} which this message lacks", missing_key=True) from None
        except Exception as exc:  # the library raises ValueError, TypeError, KeyError or RuntimeError
            raise ConditionFailed(f"{self.source!r} could not be evaluated: {_short(exc)}") from None
        if not isinstance(result, bool):
            raise ConditionFailed(f"{self.source!r} gives {result!r}, not true or false")
        return result

    def __str__(self) -> str:
        return self.source


def _includes(container: Any, item: Any) -> bool:
    return item in container


_FUNCTIONS = {"includes": _includes}
# Put in a condition's `names` when its program calls `includes` (a name no variable can have).
_CALLS_INCLUDES = "@includes"


def context(variables: Mapping[str, Any], names: frozenset[str] | None = None) -> cel.Context:
    """The evaluation context for one message: `variables` has every name of VARIABLES; `names`, when given,
    the ones the conditions to evaluate read (the union of their `names`): converting a value into CEL costs
    about a microsecond, a string more, so only those are. Build it once per decision and evaluate every rule
    against it."""
    values = {k: variables[k] for k in names if k != _CALLS_INCLUDES} if names is not None else dict(variables)
    if names is not None and _CALLS_INCLUDES not in names:
        return cel.Context(values)  # no rule calls back into Python: wrapping the function would cost 2.5 µs
    return cel.Context(values, _FUNCTIONS)  # given at once: add_function() afterwards costs a rebuild


_compiled: dict[str, Condition] = {}


def compile_condition(source: str) -> Condition:
    """Compile `source` (cached by its text: a config reload recompiles only what changed).
    Raises ConditionError naming the column and what is wrong."""
    found = _compiled.get(source)
    if found is not None:
        return found
    tokens = list(_tokens(source))
    translated = "".join(_translate(tokens))
    try:
        program = cel.compile(translated)
    except ValueError as exc:
        raise _syntax_error(str(exc)) from None
    bound = _macro_variables(tokens)
    for name in program.variables():
        if name not in VARIABLES and name not in bound:
            known = ", ".join(VARIABLES)
            close = difflib.get_close_matches(name, VARIABLES, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConditionError(
                f"unknown name {name!r}", **_where(source, tokens, name), then=f" ({hint}known: {known})"
            )
    for name in program.functions():
        if name[:1] not in "_!@" and name not in FUNCTIONS:
            raise ConditionError(
                f"unknown function {name!r}",
                **_where(source, tokens, name),
                then=f" (known: {', '.join(sorted(FUNCTIONS))})",
            )
    condition = Condition(source, program, _names(program))
    condition = _faster(condition, translated)
    for sample in _SAMPLES:  # type errors CEL would only find at run time: `priority >= '2'`, `size(priority)`
        try:
            condition.evaluate(context(sample))
        except ConditionFailed as exc:
            if exc.missing_key:
                continue  # `requirements.replicas` is fine: a message without it makes the rule fail safe
            reason = str(exc).removeprefix(f"{source!r} ").replace("could not be evaluated", "cannot be evaluated")
            if "No such overload" in reason:
                reason = (
                    "cannot be evaluated: the types do not fit (CEL does not convert between them: compare numbers "
                    "with numbers, strings with strings, e.g. priority >= 2, not priority >= '2')"
                )
            raise ConditionError(reason) from None
    if len(_compiled) > 10_000:
        _compiled.clear()
    _compiled[source] = condition
    return condition


# --- the seed's spellings on top of CEL ------------------------------------------------------------------------

# A lexer, not a parser: it only needs to know what is inside a string literal, so that `===` there is left
# alone and a name's column can be found. CEL's parser does the parsing.
_TOKEN_RE = re.compile(
    r"""
    (?P<string>[rRbB]{0,2}(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<strict>===|!==)
    | (?P<space>\s+|//[^\n]*)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    start: int


def _tokens(source: str) -> Iterator[_Token]:
    for match in _TOKEN_RE.finditer(source):
        yield _Token(match.lastgroup or "other", match.group(), match.start())


def _translate(tokens: list[_Token]) -> Iterator[str]:
    for token in tokens:
        if token.kind == "strict":  # `===` -> `== `: the same width, so CEL's columns stay the maintainer's
            yield token.text[:2] + " "
        else:
            yield token.text


_LISTS = frozenset(name for name, (kind, _) in VARIABLES.items() if kind.startswith("list"))
_STRINGS = frozenset(name for name, (kind, _) in VARIABLES.items() if kind == "string")


def _names(program: Any) -> frozenset[str]:
    names = frozenset(program.variables()) & frozenset(VARIABLES)
    return names | {_CALLS_INCLUDES} if "includes" in program.functions() else names


def _faster(condition: Condition, translated: str) -> Condition:
    """The same condition, with `x.includes(y)` on a variable of ours written in CEL itself: `(y) in x` for a
    list, `x.contains(y)` for a string (a call back into Python costs about a microsecond). Kept only when it
    reads the same variables and gives the same answer on every sample message; otherwise `condition`."""
    text = translated
    for _ in range(20):
        rewritten = _rewrite_includes(list(_tokens(text)))
        if rewritten is None:
            break
        text = rewritten
    else:
        return condition
    if text == translated:
        return condition
    try:
        program = cel.compile(text)
    except ValueError:
        return condition
    if set(program.variables()) != set(condition.program.variables()):
        return condition
    faster = Condition(condition.source, program, _names(program))
    for sample in _SAMPLES:
        try:
            same = faster.evaluate(context(sample)) == condition.evaluate(context(sample))
        except ConditionFailed:
            return condition
        if not same:
            return condition
    return faster


def _rewrite_includes(tokens: list[_Token]) -> str | None:
    """One `NAME.includes(ARG)` rewritten (see _faster), or None when there is none left."""
    words = [i for i, t in enumerate(tokens) if t.kind != "space"]
    for n, i in enumerate(words[:-3]):
        name, dot, method, paren = (tokens[words[n + k]] for k in range(4))
        before = tokens[words[n - 1]].text if n else ""
        if (
            name.kind != "ident"
            or before == "."
            or (dot.text, method.text, paren.text) != (".", "includes", "(")
            or name.text not in _LISTS | _STRINGS
        ):
            continue
        depth, close = 0, None
        for j in range(words[n + 3], len(tokens)):
            depth += {"(": 1, ")": -1}.get(tokens[j].text, 0) if tokens[j].kind == "other" else 0
            if depth == 0:
                close = j
                break
        if close is None:
            return None
        arg = "".join(t.text for t in tokens[words[n + 3] + 1 : close])
        head = "".join(t.text for t in tokens[:i])
        tail = "".join(t.text for t in tokens[close + 1 :])
        if name.text in _LISTS:
            return f"{head}(({arg}) in {name.text}){tail}"
        return f"{head}{name.text}.contains({arg}){tail}"
    return None


def _macro_variables(tokens: list[_Token]) -> set[str]:
    """Names a comprehension binds (`x` in `labels.exists(x, x == 'a')`): not variables of ours."""
    words = [t for t in tokens if t.kind != "space"]
    bound = set()
    for i in range(len(words) - 4):
        dot, macro, paren, name, comma = words[i : i + 5]
        if (dot.text, paren.text, comma.text) == (".", "(", ",") and macro.text in _MACROS and name.kind == "ident":
            bound.add(name.text)
    return bound


def _where(source: str, tokens: list[_Token], name: str) -> dict[str, int]:
    """The line and column (1-based) of the first use of `name`, as ConditionError's keywords."""
    start = next((t.start for t in tokens if t.kind == "ident" and t.text == name), None)
    if start is None:
        return {}
    line = source.count("\n", 0, start) + 1
    return {"line": line, "column": start - (source.rfind("\n", 0, start) + 1) + 1}


_LOCATION_RE = re.compile(r"<input>:(\d+):(\d+): (?:Syntax error: )?(.*?)(?:\n|$)")


def _syntax_error(message: str) -> ConditionError:
    match = _LOCATION_RE.search(message)
    if not match:
        return ConditionError(f"not a valid condition ({_short(message)})")
    line, column, what = int(match[1]), int(match[2]), match[3]
    what = re.sub(r" expecting \{[^}]*\}", "", what).replace("mismatched input '<EOF>'", "the condition ends early")
    what = what.replace("token recognition error at:", "unexpected")
    return ConditionError("syntax error", column=column, line=line, then=f": {what}")


def _short(exc: object) -> str:
    text = str(exc).split(". ")[0]
    return text if len(text) < 200 else text[:200] + "..."
