"""The README's commands against the real parsers, so that the docs cannot drift from the code.

Nothing is run: each `steergan ...` line of the README's shell blocks is parsed by the
`steergan` argparse parser (the studio's, without a subcommand), options spelt out in full,
its training config and architecture names are looked up, and the repository files it reads
must exist; each `python -m MODULE` of this repository must name a module that runs as a
program and whose source defines every `--flag` the line gives, and its main() runs only as
far as its ArgumentParser, which takes the line's arguments and stops it (the modules of the
shell blocks parse their arguments before any work). Inline commands in the prose
(`steergan train --resume ...`, `relay start --from RUN`) get the lighter checks: the
subcommand, its flags, the config and architecture names.

Placeholders are left alone: a word with a capital letter (STATE, CKPT, RUN.safetensors,
RELAY_SAVE_...), a shell variable ($OUT, a loop's $c after the loop is expanded) or `...`."""
from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import io
import re
import shlex
import sys
from pathlib import Path

import pytest

from app import cli, studio
from models.config import ARCHITECTURES
from models.training.configs import TRAINING_CONFIGS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SHELL_LANGUAGES = {"bash", "sh", "shell", "console", "zsh"}
OWN_PACKAGES = ("app", "models", "kernels")
# Options whose value is a file the command reads (not one it writes).
INPUT_OPTIONS = {"--checkpoint", "--session", "--warm-start", "--resume", "--from", "--probe"}
REPO_FOLDERS = ("checkpoints/", "assets/", "models/", "kernels/", "app/", "tests/")


# -- extracting the commands -------------------------------------------------------------

def fenced_shell_lines(text: str) -> list[tuple[int, str]]:
    """(line number, logical line) of each fenced shell block: comments dropped, continuations
    and the lines of a `for ...; do` loop joined, heredoc bodies dropped."""
    out: list[tuple[int, str]] = []
    fence: str | None = None
    shell = False
    pending: tuple[int, str] | None = None
    heredoc_end: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        opening = re.match(r"^\s*(```+|~~~+)\s*([\w+-]*)", line)
        if fence is None:
            if opening:
                fence, shell = opening.group(1), opening.group(2).lower() in SHELL_LANGUAGES
            continue
        if line.strip().startswith(fence):
            if pending:
                out.append(pending)
            fence, pending, heredoc_end = None, None, None
            continue
        if not shell:
            continue
        if heredoc_end is not None:
            if line.strip() == heredoc_end:
                heredoc_end = None
            continue
        code = re.sub(r"(^|\s)#.*$", "", line).strip()
        start, joined = pending if pending else (number, "")
        joined = f"{joined} {code}".strip()
        if joined.endswith("\\"):
            pending = (start, joined[:-1].rstrip())
            continue
        if open_loop(joined):  # `for ...; do` with its body on the next lines: a newline is a `;`
            pending = (start, f"{joined} ;")
            continue
        pending = None
        heredoc = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", joined)
        if heredoc:
            heredoc_end = heredoc.group(1)
        if joined:
            out.append((start, joined))
    return out


def open_loop(line: str) -> bool:
    words = re.findall(r"[^\s;&|]+", line)
    return words.count("do") > words.count("done")


def inline_code_spans(text: str) -> list[tuple[int, str]]:
    """(line number, text) of each `code span` outside the fenced blocks, a span that runs
    over a line break joined into one line."""
    lines = text.splitlines()
    prose: list[str] = []
    fence: str | None = None
    for line in lines:
        opening = re.match(r"^\s*(```+|~~~+)", line)
        if fence is None and opening:
            fence = opening.group(1)
            prose.append("")
        elif fence is not None:
            if line.strip().startswith(fence):
                fence = None
            prose.append("")
        else:
            prose.append(line)
    body = "\n".join(prose)
    spans = []
    for m in re.finditer(r"(?<!`)`([^`]+)`(?!`)", body):
        spans.append((body.count("\n", 0, m.start()) + 1, " ".join(m.group(1).split())))
    return spans


def expand_for_loops(line: str) -> str:
    """`for v in a b; do CMD $v & done` -> `CMD a & ; CMD b & ;`, so the loop's words are checked."""
    def expand(m: re.Match) -> str:
        var, words, body = m.group(1), m.group(2).split(), m.group(3)
        return " ; ".join(re.sub(rf"\$(\{{{var}\}}|{var}\b)", word, body) for word in words) + " ;"

    return re.sub(r"\bfor\s+(\w+)\s+in\s+([^;]*);\s*do\s+(.*?)\bdone\b", expand, line)


def simple_commands(line: str) -> list[list[str]]:
    """The words of each simple command of a logical shell line; comments, environment
    assignments, `nice`/`timeout`/`sudo` prefixes and the `[...]` of optional arguments dropped."""
    line = expand_for_loops(line)
    try:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
        lexer.whitespace_split = True
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote in prose: not a command
        return []
    commands: list[list[str]] = [[]]
    for token in tokens:
        if token and set(token) <= set(";&|<>"):
            commands.append([])
        else:
            commands[-1].append(token)
    cleaned = []
    for words in commands:
        while words and (re.fullmatch(r"[A-Za-z_]\w*=\S*", words[0]) or words[0] in ("do", "then", "sudo")):
            words = words[1:]
        if words and words[0] in ("nice", "timeout"):
            words = words[1:]
            while words and (words[0].startswith("-") or words[0].isdigit()):
                words = words[1:]
        words = [w.strip("[]") for w in words if w.strip("[]")]
        if words:
            cleaned.append(words)
    return cleaned


def is_placeholder(word: str) -> bool:
    return bool(re.search(r"[A-Z$]|\.\.\.", word))


def command_target(words: list[str]) -> tuple[str, list[str]] | None:
    """('steergan', argv) or ('MODULE', argv) for the commands this file checks, else None."""
    if Path(words[0]).name == "steergan":
        return "steergan", words[1:]
    if Path(words[0]).name in ("python", "python3", "torchrun") and "-m" in words:
        at = words.index("-m")
        if at + 1 < len(words):
            module = words[at + 1]
            if module == "app.cli":
                return "steergan", words[at + 2:]
            if module.split(".")[0] in OWN_PACKAGES:
                return module, words[at + 2:]
    return None


# -- checking them ------------------------------------------------------------------------

def subparsers_of(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every option of the parser and of its subparsers (relay start/status/finish)."""
    names = {s for action in parser._actions for s in action.option_strings}
    for child in subparsers_of(parser).values():
        names |= option_strings(child)
    return names


def parse_or_problem(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.Namespace | None, str]:
    errors: list[str] = []

    def error(message: str):
        errors.append(message)
        raise SystemExit(2)

    parsers = [parser, *subparsers_of(parser).values()]
    for p in list(parsers):
        parsers += subparsers_of(p).values()
    saved = [(p, p.error) for p in parsers]
    for p in parsers:
        p.error = error  # type: ignore[method-assign]
        p.allow_abbrev = False  # the README spells each option out: `--over` would break with a new `--overlay`
    try:
        return parser.parse_args(argv), ""
    except SystemExit:
        return None, errors[0] if errors else "exited (--help or --version)"
    finally:
        for p, original in saved:
            p.error = original  # type: ignore[method-assign]


def value_problems(argv: list[str], sub: str | None) -> list[str]:
    """Names that must exist: training configs, architectures, the repository files read."""
    problems = []
    if sub == "train" and len(argv) > 1 and not argv[1].startswith("-"):
        config = argv[1]
        if not is_placeholder(config) and not config.endswith(".json") and config not in TRAINING_CONFIGS:
            problems.append(f"no training config {config!r}")
    for option, value in zip(argv, argv[1:]):
        if option == "--arch" and not is_placeholder(value) and value not in ARCHITECTURES:
            problems.append(f"no architecture {value!r}")
    reads = [v for o, v in zip(argv, argv[1:]) if o in INPUT_OPTIONS]
    if sub in ("info", "eval") and len(argv) > 1:
        reads.append(argv[1])
    if sub is None and argv and not argv[0].startswith("-"):
        reads.append(argv[0])
    for path in reads:
        for part in path.split(","):
            if part.startswith(REPO_FOLDERS) and not is_placeholder(part) and not (ROOT / part).exists():
                problems.append(f"no file {part}")
    return problems


def steergan_problems(argv: list[str], parse: bool) -> list[str]:
    """parse: the whole line through argparse (the fenced blocks); else (prose) only the
    subcommand, its flags and the names."""
    sub = argv[0] if argv and argv[0] in cli.SUBCOMMANDS else None
    if argv and sub is None and cli.looks_like_subcommand(argv[0]) and not is_placeholder(argv[0]):
        if "/" in argv[0] or not parse:
            return []  # prose's `steergan render/bench/info`, `steergan train`'s names
        return [f"no subcommand {argv[0]!r}"]
    parser = subparsers_of(cli.build_parser())[sub] if sub else studio.build_parser()
    rest = argv[1:] if sub else argv
    problems = value_problems(argv, sub)
    if parse:
        namespace, problem = parse_or_problem(parser, rest)
        if namespace is None:
            problems.append(problem)
    else:
        known = option_strings(parser)
        for word in rest:
            flag = word.split("=", 1)[0]
            if re.fullmatch(r"--?[a-z][\w-]*", flag) and flag not in known:
                problems.append(f"no option {flag} for `steergan {sub or ''}`")
    return problems


class _Parsed(Exception):
    """Raised in place of a module's work once its parser has taken the arguments."""


def module_source(module: str) -> Path | None:
    base = ROOT / module.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__main__.py"):
        if path.exists():
            return path
    return None


def module_parse_problem(module: str, argv: list[str]) -> str:
    """Runs the module's main() up to its ArgumentParser.parse_args, which parses argv and then
    stops it: '' when the module takes the arguments, else its parser's complaint."""
    main = getattr(importlib.import_module(module), "main", None)
    if main is None:
        return ""
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        self.allow_abbrev = False
        original(self, args, namespace)
        raise _Parsed

    saved_argv, err = sys.argv, io.StringIO()
    argparse.ArgumentParser.parse_args = parse_then_stop  # type: ignore[method-assign]
    sys.argv = [module, *argv]
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            main(argv) if inspect.signature(main).parameters else main()
    except _Parsed:
        return ""
    except SystemExit:
        return (err.getvalue().strip().splitlines() or ["exited"])[-1]
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]
        sys.argv = saved_argv
    return "main() returned without parsing its arguments"


def module_problems(module: str, argv: list[str], parse: bool) -> list[str]:
    """The module exists and runs as a program; its source defines each --flag; parse: its own
    parser takes the whole line (the fenced blocks; only where main() parses before its work)."""
    source_file = module_source(module)
    if source_file is None:
        return [f"no module {module}"]
    source = source_file.read_text()
    if source_file.name != "__main__.py" and "__name__ == \"__main__\"" not in source:
        return [f"{module} does not run as a program (no __main__ block)"]
    problems = []
    for word in argv:
        flag = word.split("=", 1)[0]
        if re.fullmatch(r"--[a-z][\w-]*", flag) and f'"{flag}"' not in source and f"'{flag}'" not in source:
            problems.append(f"{module} has no option {flag}")
    if parse and not problems and "parse_args(" in source:
        problem = module_parse_problem(module, argv)
        if problem:
            problems.append(f"{module}: {problem}")
    return problems


def readme_problems(text: str) -> list[str]:
    problems = []
    for number, line in fenced_shell_lines(text):
        for words in simple_commands(line):
            target = command_target(words)
            if target is None:
                continue
            name, argv = target
            found = steergan_problems(argv, True) if name == "steergan" else module_problems(name, argv, True)
            problems += [f"README.md:{number}: {line!r}: {p}" for p in found]
    for number, span in inline_code_spans(text):
        for words in simple_commands(span):
            target = command_target(words)
            if target is None and words[0] in cli.SUBCOMMANDS and len(words) > 1:
                target = "steergan", words  # prose's `relay start --from RUN`, `eval --store`
            if target is None:
                continue
            name, argv = target
            found = steergan_problems(argv, False) if name == "steergan" else module_problems(name, argv, False)
            problems += [f"README.md:{number}: `{span}`: {p}" for p in found]
    return problems


# -- the tests ----------------------------------------------------------------------------

def test_readme_commands_match_the_parsers():
    text = README.read_text()
    assert len(fenced_shell_lines(text)) > 50  # the extraction found the blocks
    problems = readme_problems(text)
    assert not problems, "\n".join(problems)


def test_every_steergan_subcommand_is_shown_in_a_shell_block():
    shown = set()
    for _, line in fenced_shell_lines(README.read_text()):
        for words in simple_commands(line):
            target = command_target(words)
            if target and target[0] == "steergan" and target[1]:
                shown.add(target[1][0])
    assert set(cli.SUBCOMMANDS) <= shown


@pytest.mark.parametrize("drift, expect", [
    ("steergan render --seeed 7 -o out.png", "unrecognized arguments"),
    ("steergan render --offsets maybe -o out.png", "invalid choice"),
    ("steergan render --size big -o out.png", "invalid int value"),
    ("steergan rendr -o out.png", "no subcommand"),
    ("steergan train rooms-cpu-nonesuch --minutes 9", "no training config"),
    ("for c in rooms-cpu rooms-cpu-gone; do steergan train $c --minutes 1 & done; wait", "rooms-cpu-gone"),
    ("steergan render --arch rooms-xl -o x.png", "no architecture"),
    ("steergan info checkpoints/nonesuch.safetensors", "no file"),
    ("OMP_NUM_THREADS=1 nice -n 10 steergan train rooms \\\n    --minutes 9 --out runs/x --resumee runs/x",
     "unrecognized arguments"),
    ("steergan relay start --until 13:40 --modell rooms-cpu", "unrecognized arguments"),
    ("steergan relay finish --override-gates", "unrecognized arguments"),
    ("steergan relay finish --override", "unrecognized arguments"),  # an abbreviation: not in the README
    ("steergan eval checkpoints/rooms-cpu.safetensors --samples 256 [--stores]", "unrecognized arguments"),
    ("python -m models.training.compare_states a=STATE --samplez 1 2 3 --out X", "no option --samplez"),
    ("python3 -m models.training.gpu_nonesuch --budget 540", "no module"),
    ("torchrun --standalone --nproc_per_node 8 -m app.cli train roooms --minutes 60", "no training config"),
    ("steergan --archh figures", "unrecognized arguments"),
])
def test_a_drift_is_caught(drift, expect):
    """The checker itself: each of these lines, put in a fenced block, is reported."""
    problems = readme_problems(f"```bash\n{drift}\n```\n")
    assert any(expect in p for p in problems), problems
    first_line = drift.splitlines()[0].rstrip(" \\")
    inline = readme_problems(f"Run `{first_line}` for that.\n")
    if expect in ("no subcommand", "unrecognized arguments", "invalid choice", "invalid int value"):
        return  # prose is only checked for names and flags
    assert any(expect in p for p in inline), inline


def test_placeholders_and_shell_are_accepted():
    text = """```bash
python3 -m venv .venv && . .venv/bin/activate && python -m pip install -e ".[dev]" && steergan
steergan train CONFIG --warm-start STATE --out runs/x --minutes 40   # a comment --bogus
OMP_NUM_THREADS=2 python -m models.training.compare_states a=STATE b=P1,...,P2 \\
    --samples 256 512 256 --out runs/cmp
python - <<'PY'
steergan nonsense --not-a-flag
PY
steergan eval checkpoints/rooms-cpu.safetensors --samples 256 --json metrics.json [--store]
steergan relay start --until HH:MM --from DIR/rooms-cpu.safetensors
```
prose: `steergan render/bench/info`, `steergan train --precision fp32|bf16|auto`.
"""
    assert readme_problems(text) == []


def layout_rows(text: str) -> dict[str, str]:
    """The README's Layout table: folder -> its row's text."""
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"^\|\s*`([\w/]+/)`\s*\|(.*)\|\s*$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


@pytest.mark.parametrize("folder", ["kernels/", "models/", "app/"])
def test_layout_table_names_the_files_that_exist(folder):
    """Each file the Layout row names exists under its folder, and each module there is named."""
    row = layout_rows(README.read_text())[folder]
    files = [p.relative_to(ROOT / folder) for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".json")]
    files = [p for p in files if "__pycache__" not in p.parts]
    known = {p.name for p in files} | {p.as_posix() for p in files}
    named = set(re.findall(r"[\w/]+\.(?:py|json)\b", row))
    assert sorted(n for n in named if n not in known and not (ROOT / n).is_file()) == []  # or from the root
    mentioned = {n.rsplit("/", 1)[-1] for n in named}
    missing = sorted(p.as_posix() for p in files
                     if p.suffix == ".py" and p.name != "__init__.py" and p.name not in mentioned)
    assert missing == []


def test_repository_paths_in_the_readme_exist():
    """checkpoints/, assets/, models/... paths the README names exist (a glob matches, an
    output prefix such as showcase's `--out assets/rooms-cpu` begins a file's name, a
    module's attribute names the module)."""
    text = README.read_text()
    files = [p.relative_to(ROOT).as_posix() for folder in REPO_FOLDERS for p in (ROOT / folder).rglob("*")]
    missing = []
    for m in re.finditer(r"(?<![\w/.-])((?:checkpoints|assets|models|kernels|app|tests)/[\w./*-]*\w)", text):
        path = m.group(1)
        module_attribute = (ROOT / (path.rsplit(".", 1)[0] + ".py")).is_file()  # models/data/figures.NAME
        if is_placeholder(path) or (ROOT / path).exists() or list(ROOT.glob(path)) or module_attribute:
            continue
        if not any(f.startswith(path) for f in files):
            missing.append(f"README.md:{text.count(chr(10), 0, m.start()) + 1}: {path}")
    assert not missing, "\n".join(missing)
