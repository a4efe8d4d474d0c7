"""Text-level normalisation of answers, shared by the response and the gold side.

Pure string functions, no sympy: they run in the parent for every response (extraction, cache keys),
so they must be cheap. Each rule fixes a class of notation that the LaTeX parser misreads:

- :func:`normalize_unicode` — typographic characters models and datasets use (non-ASCII spaces, ``−``,
  ``×``, ``√``, ``π``, ``²``, ``½``, fullwidth digits) become ASCII / LaTeX;
- :func:`python_to_latex` — SymPy/Python syntax (``x**6``, ``7*sin(pi*x/5)+1``) becomes LaTeX, so that
  ``sin`` is not read as s·i·n nor ``**`` as a product; :func:`code_span` finds such an expression inside
  a sentence ("the area is 2*sqrt(3) square units"), so that it is read whole, never as its last number;
- :func:`percent_body` — a percentage written as ``12.5%``, ``12.5\\%``, "12.5 percent", "per cent" or
  "pct" becomes ``12.5\\%``, one spelling for the percentage policy of :mod:`gvmlit.verifiers.equivalence`;
- :func:`mixed_numbers` — ``4 4/9``, ``2\\frac{1}{3}``, ``2~\\tfrac13`` become the fractions they are
  (``\\frac{40}{9}``; only with a proper fraction: ``2\\frac{4}{3}`` is a product); :func:`juxtaposed_numbers`
  finds two numbers side by side (``4 4``: 44? 16? math-verify reads 8), which state no value;
- :func:`named_quantity` — an answer that names its quantity (``I_{\\max} = …``, ``\\Delta p \\approx …``,
  ``x_1 = 3``): the name and the value, so that a side without the name can be compared with the value;
- :func:`normalize_math` — numbers written with separators (``1,234``, ``1\\,000``, ``56,\\!017``),
  e-notation (``6.5e-2``), base subscripts (``1010_2`` is 10; ``4343_0`` is no number at all),
  ``\\sqrt(2)``, escaped commands (``\\\\le``) and a parenthesised matrix.
"""

from __future__ import annotations

import re

# -- unicode ----------------------------------------------------------------------------------------

_SUPERSCRIPTS = {"⁰": "0", "¹": "1", "²": "2", "³": "3", "⁴": "4", "⁵": "5", "⁶": "6", "⁷": "7", "⁸": "8", "⁹": "9", "⁻": "-", "⁺": "+"}
_SUBSCRIPTS = {"₀": "0", "₁": "1", "₂": "2", "₃": "3", "₄": "4", "₅": "5", "₆": "6", "₇": "7", "₈": "8", "₉": "9"}
_VULGAR = {"½": (1, 2), "⅓": (1, 3), "⅔": (2, 3), "¼": (1, 4), "¾": (3, 4), "⅕": (1, 5), "⅖": (2, 5), "⅗": (3, 5), "⅘": (4, 5), "⅙": (1, 6), "⅚": (5, 6), "⅛": (1, 8), "⅜": (3, 8), "⅝": (5, 8), "⅞": (7, 8)}
_CHARACTERS = {
    # spaces of every width become a space; zero-width characters disappear
    **{chr(c): " " for c in (0x00A0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000)},
    **{chr(c): "" for c in (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD)},
    "−": "-", "–": "-", "‒": "-", "﹣": "-", "－": "-",
    "×": r"\times ", "÷": r"\div ", "·": r"\cdot ", "⋅": r"\cdot ", "∙": r"\cdot ",
    "√": r"\sqrt", "∛": r"\sqrt[3]", "π": r"\pi ", "∞": r"\infty ", "°": r"^\circ",
    "≤": r"\le ", "⩽": r"\le ", "≥": r"\ge ", "⩾": r"\ge ", "≠": r"\ne ", "≈": r"\approx ", "≅": r"\approx ",
    "±": r"\pm ", "∓": r"\mp ", "∈": r"\in ", "∪": r"\cup ", "∩": r"\cap ", "∅": r"\emptyset ", "ℝ": r"\mathbb{R}",
    "α": r"\alpha ", "β": r"\beta ", "γ": r"\gamma ", "δ": r"\delta ", "θ": r"\theta ", "λ": r"\lambda ",
    "μ": r"\mu ", "σ": r"\sigma ", "φ": r"\phi ", "ω": r"\omega ",
    "。": ". ", "，": ", ", "：": ": ", "；": "; ", "（": "(", "）": ")",
    "“": '"', "”": '"', "‘": "'", "’": "'", "′": "'", "″": "''",
}
_TRANSLATION = str.maketrans(_CHARACTERS)
_FULLWIDTH = re.compile(r"[\uFF01-\uFF5E]")
_SUPERSCRIPT_RUN = re.compile(f"[{''.join(_SUPERSCRIPTS)}]+")
_SUBSCRIPT_RUN = re.compile(f"[{''.join(_SUBSCRIPTS)}]+")
_VULGAR_CHAR = re.compile(f"[{''.join(_VULGAR)}]")
_NON_ASCII = re.compile(r"[^\x00-\x7F]")


def normalize_unicode(text: str) -> str:
    """Typographic unicode → ASCII/LaTeX (see module docstring); ASCII text is returned unchanged."""
    if not _NON_ASCII.search(text):
        return text
    text = _FULLWIDTH.sub(lambda m: chr(ord(m.group()) - 0xFEE0), text)
    text = _SUPERSCRIPT_RUN.sub(lambda m: "^{" + "".join(_SUPERSCRIPTS[c] for c in m.group()) + "}", text)
    text = _SUBSCRIPT_RUN.sub(lambda m: "_{" + "".join(_SUBSCRIPTS[c] for c in m.group()) + "}", text)
    text = _VULGAR_CHAR.sub(lambda m: r"\frac{%d}{%d}" % _VULGAR[m.group()], text)
    return text.translate(_TRANSLATION)


# -- SymPy / Python syntax --------------------------------------------------------------------------

_PYTHON_MARKERS = re.compile(
    r"\*\*|\b(?:np|numpy|math|sympy|sp)\.|\b(?:pi|oo)\b|"
    r"\b(?:sqrt|cbrt|exp|log|ln|sin|cos|tan|cot|sec|csc|asin|acos|atan|arcsin|arccos|arctan|sinh|cosh|tanh|"
    r"Abs|abs|Rational|binomial|factorial|floor|ceiling)\s*\("
)


def looks_like_python(text: str) -> bool:
    """Whether ``text`` is written in SymPy/Python syntax rather than LaTeX (safe to convert: no
    backslash, no ``$``, and a Python-only marker such as ``**``, ``sqrt(``, ``pi`` or ``np.``)."""
    return "\\" not in text and "$" not in text and "{" not in text and bool(_PYTHON_MARKERS.search(text))


#: what a LaTeX answer never uses but code does: ``*``, ``^(``, or a Python-only marker
_CODE_MARKERS = re.compile(rf"\*|\^\s*\(|{_PYTHON_MARKERS.pattern}")


def looks_like_code(text: str) -> bool:
    """Whether ``text`` is an answer in programming-language syntax: no backslash, ``$`` or brace, and
    ``*``, ``**``, ``^(`` or a Python-only marker (``sqrt(``, ``pi``). Wider than
    :func:`looks_like_python`: ``6*r^2 - 4*r - 24`` is code too."""
    return "\\" not in text and "$" not in text and "{" not in text and bool(_CODE_MARKERS.search(text))


_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|([A-Za-z_][A-Za-z_0-9]*(?:\.[A-Za-z_][A-Za-z_0-9]*)*)|(\*\*|[-+*/^(),\[\]!]))")
_MODULE_PREFIX = re.compile(r"^(?:np|numpy|math|sympy|sp|mp|mpmath)\.")
_CONSTANTS = {"pi": r"\pi", "E": "e", "I": "i", "oo": r"\infty", "inf": r"\infty", "infinity": r"\infty", "nan": r"\text{nan}"}
_GREEK = {"hbar", "alpha", "beta", "gamma", "delta", "epsilon", "theta", "lambda", "mu", "sigma", "phi", "omega", "tau", "rho", "psi", "eta", "xi", "zeta", "kappa", "nu", "chi"}
_TRIG = {"sin", "cos", "tan", "cot", "sec", "csc", "sinh", "cosh", "tanh", "arcsin", "arccos", "arctan"}
_ALIASES = {"asin": "arcsin", "acos": "arccos", "atan": "arctan", "ceil": "ceiling", "abs": "Abs", "log10": "log10"}


class _PythonSyntax:
    """Recursive-descent translation of one Python/SymPy expression into LaTeX (None when it is not one)."""

    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        position = 0
        text = text.strip()
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise ValueError(f"not Python syntax at {text[position:position + 10]!r}")
            number, name, op = match.groups()
            self.tokens.append(("num", number) if number else ("name", name) if name else ("op", op))
            position = match.end()
            while position < len(text) and text[position].isspace():
                position += 1
        self.at = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, op: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (op is not None and token != ("op", op)):
            raise ValueError(f"expected {op!r}")
        self.at += 1
        return token

    def expression(self) -> str:
        out = self.term()
        while (token := self.peek()) in (("op", "+"), ("op", "-")):
            self.take()
            out = f"{out} {token[1]} {self.term()}"
        return out

    def term(self) -> str:
        out = self.unary()
        while True:
            token = self.peek()
            if token == ("op", "*"):
                self.take()
                out = rf"{out} \cdot {self.unary()}"
            elif token == ("op", "/"):
                self.take()
                out = rf"\frac{{{out}}}{{{self.unary()}}}"
            elif token is not None and (token[0] in ("num", "name") or token == ("op", "(")):
                out = f"{out} {self.unary()}"  # implicit product, as SymPy's parser allows
            else:
                return out

    def unary(self) -> str:
        token = self.peek()
        if token in (("op", "-"), ("op", "+")):
            self.take()
            operand = self.unary()
            return f"-{operand}" if token[1] == "-" else operand
        return self.power()

    def power(self) -> str:
        base = self.postfix()
        if self.peek() in (("op", "**"), ("op", "^")):
            self.take()
            exponent = self.unary()
            return f"{{{base}}}^{{{exponent}}}"
        return base

    def postfix(self) -> str:
        out = self.atom()
        while self.peek() == ("op", "!"):
            self.take()
            out = f"{out}!"
        return out

    def arguments(self) -> list[str]:
        self.take("(")
        args = [self.expression()]
        while self.peek() == ("op", ","):
            self.take()
            args.append(self.expression())
        self.take(")")
        return args

    def atom(self) -> str:
        kind, value = self.take()
        if kind == "num":
            mantissa, _, exponent = value.lower().partition("e")
            return rf"{mantissa}\times 10^{{{int(exponent)}}}" if exponent else value
        if kind == "op" and value in ("(", "["):  # a group, or a tuple / list: (3, pi/2)
            items = [self.expression()]
            while self.peek() == ("op", ","):
                self.take()
                items.append(self.expression())
            self.take(")" if value == "(" else "]")
            return rf"\left({', '.join(items)}\right)"
        if kind != "name":
            raise ValueError(f"unexpected {value!r}")
        name = _MODULE_PREFIX.sub("", value)
        if self.peek() == ("op", "("):
            return self.function(_ALIASES.get(name, name), self.arguments())
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        if name in _GREEK:
            return "\\" + name
        if (indexed := re.fullmatch(r"([A-Za-z]+)_([A-Za-z0-9]{1,5})", name)) is not None:  # I_max, q_0, x_1
            base, index = indexed.groups()
            if len(base) == 1 or base in _GREEK:
                return ("\\" + base if base in _GREEK else base) + "_{" + index + "}"
        if "." in name or (len(name) > 1 and not name.isalpha()):
            raise ValueError(f"unknown name {name!r}")
        return name

    @staticmethod
    def function(name: str, args: list[str]) -> str:
        one = len(args) == 1
        if name == "sqrt" and one:
            return rf"\sqrt{{{args[0]}}}"
        if name == "cbrt" and one:
            return rf"\sqrt[3]{{{args[0]}}}"
        if name == "root" and len(args) == 2:
            return rf"\sqrt[{args[1]}]{{{args[0]}}}"
        if name == "exp" and one:
            return rf"e^{{{args[0]}}}"
        if name in ("log", "ln") and one:
            return rf"\ln\left({args[0]}\right)"
        if name == "log" and len(args) == 2:
            return rf"\log_{{{args[1]}}}\left({args[0]}\right)"
        if name == "log10" and one:
            return rf"\log_{{10}}\left({args[0]}\right)"
        if name in _TRIG and one:
            return rf"\{name}\left({args[0]}\right)"
        if name == "Abs" and one:
            return rf"\left|{args[0]}\right|"
        if name == "factorial" and one:
            return rf"\left({args[0]}\right)!"
        if name == "binomial" and len(args) == 2:
            return rf"\binom{{{args[0]}}}{{{args[1]}}}"
        if name == "Rational" and len(args) == 2:
            return rf"\frac{{{args[0]}}}{{{args[1]}}}"
        if name == "floor" and one:
            return rf"\lfloor {args[0]} \rfloor"
        if name == "ceiling" and one:
            return rf"\lceil {args[0]} \rceil"
        if name in ("S", "Integer", "Float", "sympify", "nsimplify", "N") and one:
            return args[0]
        raise ValueError(f"unknown function {name!r}")


def python_to_latex(text: str) -> str | None:
    """LaTeX for an expression (or comma-separated expressions) in SymPy/Python syntax; None if it is not
    one. ``7*sin(pi*x/5)+1`` → ``7 \\cdot \\sin\\left(\\frac{\\pi \\cdot x}{5}\\right) + 1``."""
    try:
        parser = _PythonSyntax(text)
        parts = [parser.expression()]
        while parser.peek() == ("op", ","):
            parser.take()
            parts.append(parser.expression())
        if parser.peek() is not None:
            return None
    except ValueError:
        return None
    return ", ".join(parts)


#: names an expression in code may use: functions, constants, one-letter variables
_CODE_FUNCTIONS = {"sqrt", "cbrt", "exp", "log", "ln", "log10", "sin", "cos", "tan", "cot", "sec", "csc", "asin", "acos",
                   "atan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "abs", "Abs", "floor", "ceil", "ceiling",
                   "factorial", "binomial", "Rational", "root"}
_CODE_CONSTANTS = {"pi", "oo", "inf"}
#: a variable's name in code besides a single letter: indexed (``q_0``, ``I_max``) or Greek (``omega_L``, ``hbar``)
CODE_NAME = re.compile(rf"(?:[A-Za-z]|{'|'.join(sorted(_GREEK))})(?:_[A-Za-z0-9]{{1,5}})?")
#: longest expression in code syntax read from a sentence
MAX_CODE_CHARS = 200
_CODE_PIECE = re.compile(r"\s*(?:(\d+(?:\.\d+)?|\.\d+)|((?:np\.|math\.|sympy\.|sp\.)?[A-Za-z_][A-Za-z_0-9]*)|(\*\*|[-+*/^()]))")


def code_span(text: str, start: int) -> int | None:
    """End of the expression in programming-language syntax that starts at ``text[start]`` (``2*sqrt(3)``,
    ``(1 + sqrt(5))/2``, ``18 + 2*pi``), or None when what starts there is not one: it must use code
    (``*``, ``**``, ``^(``, a call such as ``sqrt(``, ``pi``) and its names must be functions, constants
    or single letters, so that a sentence's words end it."""
    return scan_code(text, start)[0]


def scan_code(text: str, start: int) -> tuple[int | None, int]:
    """:func:`code_span`'s end (None: no code expression starts there), and where the next start may
    be: past what was read when it held no code at all (a later start inside it would find none)."""
    position, depth, last_good, expect_operand, used_code, code_at_last_good = start, 0, None, True, False, False
    limit = start + MAX_CODE_CHARS  # a sentence's answer is short; a long run of digits must not cost more
    while position < limit and (match := _CODE_PIECE.match(text, position)) is not None:
        number, name, op = match.groups()
        if number or name:
            bare = name.split(".")[-1] if name else None
            if name and not (bare in _CODE_FUNCTIONS or bare in _CODE_CONSTANTS or len(name) == 1 or CODE_NAME.fullmatch(name)):
                break
            if not expect_operand and not (name and bare in _CODE_FUNCTIONS):
                break  # "2 x" in prose is two words, not a product
            used_code |= bool(name) and (bare in _CODE_CONSTANTS or "." in name)
            if name and bare in _CODE_FUNCTIONS:
                following = _CODE_PIECE.match(text, match.end())
                if following is None or following.group(3) != "(":
                    break
                used_code = True
                position, expect_operand = match.end(), True
                continue
            position, expect_operand = match.end(), False
        elif op == "(":
            depth += 1
            position, expect_operand = match.end(), True
        elif op == ")":
            if depth == 0 or expect_operand:
                break
            depth -= 1
            position = match.end()
        else:
            if expect_operand and op not in "-+":
                break
            used_code |= op in ("*", "**") or (op == "^" and text[match.end():].lstrip().startswith("("))
            position, expect_operand = match.end(), True
            continue
        if depth == 0 and not expect_operand:
            last_good, code_at_last_good = position, used_code
    if position >= limit and _CODE_PIECE.match(text, position) is not None:
        return None, start  # longer than any answer: never cut to a prefix that may be another value
    if last_good is None or not code_at_last_good:
        return None, start if used_code else position  # no code read: none starts inside what was read
    return last_good, position


# -- percentages ------------------------------------------------------------------------------------

_PERCENT_SUFFIX = re.compile(
    r"^(.*?\S)\s*(?:\\?%|\\text\{\s*(?:\\?%|percent|per\s*cent)\s*\}|(?<![A-Za-z])percent(?:age)?|(?<![A-Za-z])per\s*cent|(?<![A-Za-z])pct)\.?$", re.IGNORECASE | re.DOTALL
)


def percent_body(text: str) -> str | None:
    """The number of percent of an answer that is a percentage (``12.5%``, ``12.5\\%``, "12.5 percent",
    "12.5 per cent", "12.5 pct", ``12.5\\text{ percent}``), else None."""
    if "%" not in text and "pe" not in text.lower() and "pct" not in text.lower():
        return None
    match = _PERCENT_SUFFIX.match(text.strip())
    if match is None or "%" in match.group(1):
        return None
    return match.group(1).strip()


# -- mixed numbers ----------------------------------------------------------------------------------

#: an integer and a fraction side by side: ``4 4/9``, ``2~\frac{1}{3}``, ``3\,\tfrac12`` (not after a digit,
#: a decimal point, a letter, a brace or an exponent: ``2.5\frac13``, ``x2\frac13``, ``^2\frac13`` are products)
_MIXED = re.compile(
    r"(?<![\w.\\}^_'])(-?)(\d+)"
    r"(?:[ \t]*(?:~|\\[,;: ]|\\q?quad)?[ \t]*\\[dt]?frac(?:\{\s*(\d+)\s*\}\s*\{\s*(\d+)\s*\}|(\d)(\d))"
    r"|[ \t]+(\d+)[ \t]*/[ \t]*(\d+)(?![\d.]|\s*[/^(*_]|\s*\\(?!%)))"
)
#: two numbers side by side with nothing between them but space: ``4 4``, ``12 34``, ``2 4/3``
_JUXTAPOSED = re.compile(r"(?<![\w.\\^_{}])(\d+(?:\.\d+)?)(?:[ \t]|~|\\[,;: ]|\\q?quad)+(?=\d)")
_THOUSANDS_RUN = re.compile(r"[1-9]\d{0,2}(?:[ \t]\d{3})+(?![\d/])")


def mixed_numbers(text: str) -> str:
    """Mixed numbers as the fractions they are: ``2 1/3``, ``2\\frac{1}{3}``, ``2~\\frac13`` and
    ``-2\\frac13`` are ``\\frac{7}{3}`` and ``-\\frac{7}{3}`` (in parentheses inside a longer expression,
    so that ``2\\frac{1}{3}x`` is 7x/3, as ``x \\cdot 2\\frac{1}{3}`` is). Only a proper fraction makes a
    mixed number: ``2\\frac{4}{3}`` is the product 2·4/3, and ``2 4/3`` is left as it is (two numbers
    side by side: :func:`juxtaposed_numbers`)."""
    if "/" not in text and "frac" not in text:
        return text
    whole = _MIXED.fullmatch(text.strip()) is not None

    def fraction(match: re.Match) -> str:
        sign, integer = match.group(1), int(match.group(2))
        parts = [g for g in match.groups()[2:] if g is not None]
        numerator, denominator = int(parts[0]), int(parts[1])
        if not 0 < numerator < denominator:
            if match.group(3) is None and match.group(5) is None:
                return match.group()  # "2 4/3": no mixed number, and no product either
            return rf"{sign}{integer} \cdot \frac{{{numerator}}}{{{denominator}}}"
        value = rf"\frac{{{integer * denominator + numerator}}}{{{denominator}}}"
        return f"{sign}{value}" if whole else rf"{sign}\left({value}\right)"

    return _MIXED.sub(fraction, text)


def juxtaposed_numbers(text: str) -> bool:
    """Whether an answer writes two numbers side by side with only space between them (``4 4``, ``12 34``,
    ``2 4/3``): neither 44 nor 16 nor 8 can be told from it, so it states no value. A space-grouped
    number (``1 000 000``) is not two numbers."""
    if not any(c.isdigit() for c in text):
        return False
    grouped_until = -1
    for match in _JUXTAPOSED.finditer(text):
        if match.end() < grouped_until:
            continue  # the next group of "1 000 000"
        run = _THOUSANDS_RUN.match(text, match.start())
        if run is None or run.end() <= match.end():
            return True
        grouped_until = run.end()
    return False


# -- named quantities -------------------------------------------------------------------------------

_GREEK_NAMES = (
    "alpha|beta|gamma|delta|epsilon|varepsilon|zeta|eta|theta|vartheta|iota|kappa|lambda|mu|nu|xi|rho|varrho|sigma|"
    "tau|upsilon|phi|varphi|chi|psi|omega|Gamma|Delta|Theta|Lambda|Xi|Sigma|Upsilon|Phi|Psi|Omega"
)  # not \pi: a constant
_SUBSCRIPT = r"_(?:\{(?:[^{}=<>]|\{[^{}=<>]*\}){1,30}\}|\\(?:text|mathrm|rm)\s*\{[^{}=<>]{1,20}\}|[A-Za-z]{1,5}(?![A-Za-z])|\d{1,3}(?!\d)|\\[A-Za-z]+)"
_PRIME = r"(?:'{1,3}|\^\{?(?:\\prime\s*){1,3}\}?|\^\{?\*\}?)"
#: what names a quantity: a letter or a Greek letter with its subscript and primes (``x_1``, ``I_{\max}``,
#: ``v_0'``, ``\omega_L``), ``\Delta p``, ``\vec{F}``, ``\text{Area}``, a segment or angle (``AB``,
#: ``\angle ABC``), a function at its argument (``f(2)``, ``P(A)``)
NAME = (
    r"(?:m?\\angle\s*[A-Z](?:\s*[A-Z](?:_\{?\d\}?)?){0,2}(?![A-Za-z])"  # \angle ABC, \angle B E A_{1}
    r"|(?:(?:\\Delta|\\delta)\s*(?![A-Za-z]{2}))?"
    r"(?:\\(?:vec|bar|hat|tilde|overline|dot|ddot|mathbf|boldsymbol)\s*\{[A-Za-z]{1,3}\}|\\(?:vec|bar|hat|tilde|dot)\s+[A-Za-z]"
    rf"|\\(?:text|mathrm|operatorname)\s*\{{\s*[A-Za-z][A-Za-z ]{{0,19}}\}}|\\(?:{_GREEK_NAMES})(?![A-Za-z])|[A-Z]{{2,3}}(?![A-Za-z])|[A-Za-z](?![A-Za-z])))"
    rf"(?:\s*{_SUBSCRIPT})?(?:\s*{_PRIME})?(?:\s*\((?:[^()=<>]{{1,30}})\))?"
)
_NAMED = re.compile(rf"\s*({NAME})\s*(=|\\approx|\\simeq|\\thickapprox|\\doteq)\s*(\S.*?)\s*", re.DOTALL)
#: a relation anywhere: then the value is no single value
_RELATION = re.compile(r"=|<|>|\\(?:le|ge|leq|geq|lt|gt|ne|neq|approx|simeq|sim|in|equiv|doteq|thickapprox|propto)(?![A-Za-z])")


def named_quantity(text: str) -> tuple[str, str] | None:
    """(name, value) of an answer that names its quantity: ``I_{\\max} = \\frac{q_0}{\\sqrt{2LC}}``,
    ``\\Delta p \\approx -\\frac{\\hbar\\omega}{c}``, ``x_1 = 3``, ``f(2) = 5``; None for anything else
    (``2x = 6``, ``x = 1, y = 2``, ``x \\le 3``, a value with a relation of its own)."""
    if "=" not in text and "approx" not in text and "eq" not in text:
        return None
    match = _NAMED.fullmatch(text)
    if match is None or _RELATION.search(match.group(3)):
        return None
    return match.group(1), match.group(3)


def name_key(name: str) -> str:
    """A name as compared with another: ``I_{\\max}`` = ``I_{max}`` = ``I_\\text{max}``, ``x_{1}`` = ``x_1``."""
    name = re.sub(r"\\(?:text|mathrm|operatorname|mathit)\s*", "", name)
    name = re.sub(r"\\(max|min)(?![A-Za-z])", r"\1", name)
    return re.sub(r"[\s{}]", "", name)


# -- numbers and LaTeX slips ------------------------------------------------------------------------

_LATEX_GROUPING = re.compile(r"(?<=\d)(?:,\\!(?=\d)|(?:\{,\}|\\,|\\!|\\ |~)(?=\d{3}(?!\d)))")
_COMMA_THOUSANDS = re.compile(r"(?<![\d.,])([1-9]\d{0,2})((?:,\d{3})+)(?!\d|,\d)")
_SPACE_THOUSANDS = re.compile(r"-?[1-9]\d{0,2}(?: \d{3})+(?:\.\d+)?")
_E_NOTATION = re.compile(r"(?<![\w.\\])(\d+(?:\.\d+)?|\.\d+)[eE]([-+]?\d+)(?![\w.])")
_BASE_SUBSCRIPT = re.compile(r"(?<![\w\\.^_{])(\d[0-9A-Za-z]*)_(?:\{\s*(\d+)\s*\}|(\d+))")
_SQRT_PARENS = re.compile(r"\\sqrt\s*\(")
_ESCAPED_COMMAND = re.compile(r"\\\\(?=(?:le|ge|leq|geq|lt|gt|ne|neq|in|cup|cap|frac|dfrac|sqrt|pi|infty|cdot|times|text|mathrm|left|right)\b)")
_ROW_BEFORE_END = re.compile(r"\\\\\s*(\\end\{)")
_PARENTHESISED_MATRIX = re.compile(r"^\(\s*(\\begin\{([pbBvV]?matrix)\}.*\\end\{\2\})\s*\)$", re.DOTALL)


def _balanced_parens(text: str, start: int) -> int | None:
    """Index of the parenthesis closing the one at ``text[start]``."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return None


def _fix_sqrt_parens(text: str) -> str:
    r"""``\sqrt(2)`` (not LaTeX; the parser reads it as nothing) → ``\sqrt{2}``."""
    while (match := _SQRT_PARENS.search(text)) is not None:
        close = _balanced_parens(text, match.end() - 1)
        if close is None:
            break
        text = text[: match.start()] + r"\sqrt{" + text[match.end() : close] + "}" + text[close + 1 :]
    return text


def _base_number(match: re.Match) -> str:
    """``1010_2`` → ``10``; a subscript that is not a valid base (``4343_0``, ``19_8``) makes the answer no
    number at all (an opaque token), so it can never equal ``4343``."""
    digits, base = match.group(1), int(match.group(2) or match.group(3))
    if 2 <= base <= 36:
        try:
            return str(int(digits, base))
        except ValueError:
            pass
    return rf"\text{{{digits}base{base}}}"


def normalize_numbers(text: str) -> str:
    """Separators, e-notation and base subscripts of the numbers in an answer (see module docstring)."""
    text = _LATEX_GROUPING.sub("", text)
    if _SPACE_THOUSANDS.fullmatch(text.strip()):
        text = text.replace(" ", "")
    if "," in text:
        text = _COMMA_THOUSANDS.sub(_drop_commas, text)
    if "e" in text or "E" in text:
        text = _E_NOTATION.sub(lambda m: rf"{m.group(1)}\times 10^{{{int(m.group(2))}}}", text)
    if "_" in text:
        text = _BASE_SUBSCRIPT.sub(_base_number, text)
    return text


def _drop_commas(match: re.Match) -> str:
    """``1,234`` → ``1234``, unless the number is the whole content of a bracket pair: ``(1,234]`` is
    an interval and ``[1,100]`` a pair, not a thousand-something."""
    before = match.string[match.start() - 1 : match.start()]
    after = match.string[match.end() : match.end() + 1]
    if before in "([{" and before and after in ")]}" and after:
        return match.group()
    return match.group(1) + match.group(2).replace(",", "")


def normalize_math(text: str) -> str:
    """All the string-level repairs of a LaTeX answer (numbers, ``\\sqrt(``, ``\\\\le``, ``(matrix)``)."""
    text = normalize_numbers(text)
    if "\\sqrt" in text:
        text = _fix_sqrt_parens(text)
    if "\\\\" in text:
        if "\\begin" in text:
            text = _ROW_BEFORE_END.sub(r"\1", text)
        else:
            text = _ESCAPED_COMMAND.sub(r"\\", text)
    if text.startswith("(") and "matrix" in text:
        text = _PARENTHESISED_MATRIX.sub(r"\1", text.strip())
    return text
