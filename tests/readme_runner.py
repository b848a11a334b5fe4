"""Run the README's walkthrough as written: its ```sh blocks, top to bottom, in one bash.

The convention (stated at the top of the README's walkthrough, for whoever adds to it):

- ```sh blocks run, in order, as one script (`set -euo pipefail`), against a fresh
  `autorenew serve` in a scratch folder holding `.venv` and the repository's files; shell
  variables carry from block to block. Every other fence (```console, ```text, …) is only
  read: commands that start servers, need Docker or PostgreSQL, or run for minutes.
- `localhost:8000` and `127.0.0.1:8000` are replaced by the live server's address.
- A command whose trailing comment starts with an HTTP status (`… # 409 duplicate`) must
  end with a curl answering exactly that status (curls inside it, such as `$(tok …)`,
  must succeed); every other curl must answer below 400.
- Nothing may be written to stderr: a missing tool, a Python traceback or a curl error
  fails the run even inside `$(…)`, where bash's `set -e` does not look.

`curl` is a shell function here that records each answer's status (curl's `-w`), so the
README's commands stay exactly what a reader types.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^```([\w+-]*)\s*$")
STATUS_COMMENT = re.compile(r"^#\s*([1-5]\d\d)\b")
LOCAL_ADDRESS = re.compile(r"\b(localhost|127\.0\.0\.1):8000\b")

PRELUDE = r"""
set -euo pipefail
README_CALLS=$(mktemp)
README_EXPECT_STATUS=
trap 'rm -f "$README_CALLS"' EXIT

curl() {
  local meta rc=0 status
  meta=$(mktemp)
  command curl --write-out '%{stderr}\n__readme_status=%{http_code}\n' "$@" 2>"$meta" || rc=$?
  status=$(sed -n 's/^__readme_status=//p' "$meta" | tail -n 1)
  grep -v -e '^__readme_status=' -e '^$' "$meta" >&2 || true
  rm -f "$meta"
  if [ "$rc" -ne 0 ]; then
    echo "README: curl failed (exit $rc): curl $*" >&2
    return "$rc"
  fi
  echo "$status" >> "$README_CALLS"
  if [ -z "$README_EXPECT_STATUS" ] && [ "$status" -ge 400 ]; then
    echo "README: HTTP $status from: curl $*" >&2
    return 22
  fi
}

__readme_expect() { README_EXPECT_STATUS=$1; : > "$README_CALLS"; }

__readme_check() {
  local expected=$README_EXPECT_STATUS calls=() last
  README_EXPECT_STATUS=
  mapfile -t calls < "$README_CALLS"
  last=${calls[${#calls[@]}-1]:-none}
  if [ "$last" != "$expected" ]; then
    echo "README: expected HTTP $expected, got $last, from line $1" >&2
    exit 1
  fi
  for status in "${calls[@]:0:${#calls[@]}-1}"; do
    if [ "$status" -ge 400 ]; then
      echo "README: HTTP $status before the expected $expected, from line $1" >&2
      exit 1
    fi
  done
}
"""


@dataclass(frozen=True)
class Block:
    line: int  # where the block's first command is, in the README
    text: str


@dataclass(frozen=True)
class Command:
    line: int  # within its block, from 0
    text: str
    comment: str | None  # the trailing comment of its last line, with its `#`


def shell_blocks(markdown: str) -> list[Block]:
    """The ```sh blocks, in order."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        if match[1] == "sh":
            blocks.append(Block(index + 2, "\n".join(lines[index + 1 : end]) + "\n"))
        index = end + 1
    return blocks


def logical_commands(text: str) -> list[Command]:
    """Split shell text into commands that end at a newline outside quotes, `$(…)` and
    line continuations, each with the comment that ends it. Enough shell for a README:
    no heredocs (write files with printf)."""
    commands: list[Command] = []
    contexts: list[str] = []  # "'", '"' or "("
    start = line = start_line = 0
    comment: str | None = None
    index = 0
    while index < len(text):
        char = text[index]
        context = contexts[-1] if contexts else None
        if context == "'":
            if char == "'":
                contexts.pop()
        elif char == "\\":
            index += 1  # the escaped character (a newline: the command goes on)
            line += text[index : index + 1] == "\n"
        elif context == '"':
            if char == '"':
                contexts.pop()
            elif text.startswith("$(", index):
                contexts.append("(")
                index += 1
        elif char == "'" or char == '"':
            contexts.append(char)
        elif text.startswith("$(", index) or char == "(":
            contexts.append("(")
            index += char == "$"
        elif char == ")" and context == "(":
            contexts.pop()
        elif char == "#" and (index == 0 or text[index - 1] in " \t\n;"):
            end = text.find("\n", index)
            end = len(text) if end == -1 else end
            if not contexts:
                comment = text[index:end]
            index = end - 1
        elif char == "\n" and not contexts:
            if text[start:index].strip():
                commands.append(Command(start_line, text[start:index], comment))
            start, start_line, comment = index + 1, line + 1, None
        line += char == "\n"
        index += 1
    if contexts:
        raise ValueError(f"unbalanced quotes or parentheses in:\n{text}")
    if text[start:].strip():
        commands.append(Command(start_line, text[start:], comment))
    return commands


def expected_status(command: Command) -> str | None:
    if command.comment is None:
        return None
    match = STATUS_COMMENT.match(command.comment)
    return match[1] if match else None


def script(markdown: str, base_url: str) -> str:
    """The bash script of the README's ```sh blocks, pointed at `base_url`."""
    address = base_url.removeprefix("http://")
    parts = [PRELUDE]
    for block in shell_blocks(markdown):
        parts.append(f'echo "### README line {block.line}"\n')
        for command in logical_commands(LOCAL_ADDRESS.sub(address, block.text)):
            where = block.line + command.line
            status = expected_status(command)
            if status is None:
                parts.append(command.text + "\n")
            else:
                parts.append(f"__readme_expect {status}\n{command.text}\n__readme_check {where}\n")
    return "".join(parts)


def run(
    markdown: str, base_url: str, *, cwd: Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script(markdown, base_url)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
