"""What the Markdown docs quote: `python -m fewtune.<command>` lines, `make` targets, links and
result tables, read out of README.md and docs/ the way a reader would copy them into a shell.

Commands are taken from fenced code blocks and inline code spans. Shell syntax is undone:
backslash continuations joined, `$ ` prompts and `# comments` dropped, statements split at
`;`, `&&`, `|` and redirects, variables set earlier in the block (`B=outputs/...`,
`for seed in 13 21 ...`) substituted, `<placeholders>` replaced by a stand-in word.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER = "X"  # what `<run dir>`, `<date>`, ... become
UNKNOWN_VARIABLE = "1"  # a `$name` set nowhere in the block (a loop variable, say)

FENCE = re.compile(r"^([ \t]*)```[^\n]*\n(.*?)^\1```[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`]+)`", re.DOTALL)
MENTION = re.compile(r"python\s+-m\s+fewtune\b")
ANGLE = re.compile(r"<[^<>\n]+>")
VARIABLE = re.compile(r"\$\{?(\w+)\}?")
SEPARATORS = set(";&|<>")


def doc_files() -> list[Path]:
    """README.md and every page of the site."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@dataclass(frozen=True)
class Command:
    """One quoted command: ``module`` is e.g. ``fewtune.train``, ``args`` what follows it."""

    where: str  # file:line, for the failure message
    module: str
    args: tuple[str, ...]
    text: str

    def __str__(self) -> str:
        return f"{self.where}: python -m {self.module} {' '.join(self.args)}"


@dataclass(frozen=True)
class Snippet:
    """Code a reader would copy: a fenced block or an inline span, and where it starts."""

    path: Path
    line: int
    code: str
    fenced: bool
    end: int  # the offset in the file just past it (for the table that follows a block)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def snippets(path: Path) -> list[Snippet]:
    text = path.read_text()
    found, blanked = [], text
    for m in FENCE.finditer(text):
        found.append(Snippet(path, text.count("\n", 0, m.start()) + 2, m.group(2), True, m.end()))
        blanked = blanked[: m.start()] + " " * (m.end() - m.start()) + blanked[m.end() :]
    for m in INLINE.finditer(blanked):
        found.append(Snippet(path, text.count("\n", 0, m.start()) + 1, m.group(1), False, m.end()))
    return found


def mentions(path: Path) -> int:
    """How often the file names a fewtune command anywhere, code or prose."""
    return len(MENTION.findall(path.read_text()))


def statements(code: str) -> list[list[str]]:
    """Shell words of each statement, with variables substituted as the block sets them."""
    env: dict[str, str] = {}
    result = []
    for line in re.sub(r"\\\n", " ", code).splitlines():
        line = re.sub(r"^\s*\$ ", "", line)
        lexer = shlex.shlex(ANGLE.sub(PLACEHOLDER, line), posix=True, punctuation_chars=";&|<>")
        lexer.whitespace_split = True
        try:
            words = list(lexer)
        except ValueError:  # an unbalanced quote: a line of output, not a command
            continue
        statement: list[str] = []
        for word in [*words, ";"]:
            if set(word) <= SEPARATORS:
                if statement:
                    result.append(_expand(statement, env))
                statement = []
            else:
                statement.append(word)
    return [s for s in result if s]


def _expand(words: list[str], env: dict[str, str]) -> list[str]:
    out: list[str] = []
    for word in words:
        value = VARIABLE.sub(lambda m: env.get(m.group(1), UNKNOWN_VARIABLE), word)
        out += shlex.split(value) if "$" in word and " " in value else [value]
    if len(out) == 1 and re.match(r"^[A-Za-z_]\w*=", out[0]):  # NAME=value
        name, _, value = out[0].partition("=")
        env[name] = value
        return []
    if len(out) >= 4 and out[0] == "for" and out[2] == "in":  # for NAME in A B ...: the first value
        env[out[1]] = out[3]
        return []
    return out


def commands(path: Path) -> list[Command]:
    found = []
    for snippet in snippets(path):
        for words in statements(snippet.code):
            for i, word in enumerate(words[:-2]):
                if (
                    word.rsplit("/", 1)[-1] in ("python", "python3")
                    and words[i + 1] == "-m"
                    and re.fullmatch(r"fewtune(\.[a-z_]+)*", words[i + 2])
                ):  # not fewtune.<command>
                    args = tuple(w for w in words[i + 3 :] if w != "...")
                    found.append(Command(snippet.where, words[i + 2], args, snippet.code))
                    break
    return found


def make_targets(path: Path) -> list[tuple[str, str]]:
    """(where, target) of every `make <target>` a snippet runs."""
    found = []
    for snippet in snippets(path):
        for words in statements(snippet.code):
            if words[0] == "make":
                found += [
                    (snippet.where, w) for w in words[1:] if "=" not in w and not w.startswith("-")
                ]
    return found


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def relative_links(path: Path) -> list[str]:
    """Link targets that are files of the checkout (not web addresses, not anchors alone)."""
    targets = [m.group(1) for m in LINK.finditer(path.read_text())]
    return [t.split("#")[0] for t in targets if not re.match(r"^[a-z]+:|^#", t)]


def expand_braces(word: str) -> list[str]:
    """The shell's {a,b} expansion."""
    m = re.search(r"\{([^{}]*,[^{}]*)\}", word)
    if not m:
        return [word]
    return [
        x
        for part in m.group(1).split(",")
        for x in expand_braces(word[: m.start()] + part + word[m.end() :])
    ]


def table_after(path: Path, snippet: Snippet) -> list[str]:
    """The Markdown table that follows a code block, before any other block or heading."""
    rest = path.read_text()[snippet.end :]
    rows = []
    for line in rest.splitlines():
        if line.startswith("|"):
            rows.append(line)
        elif rows or line.startswith(("```", "#")):
            break
    return rows
