#!/usr/bin/env python3
"""The shape of `src/`, from the source alone: the files over 600 lines, the
functions over 100 lines, and the import circles between modules (read from
`use crate::` lines and `crate::a::b` paths in code; doc links do not count).

    python3 scripts/house.py [--edges]

A module is a top-level folder or file of `src/` (`coordinator/`, `error.rs`),
the grain at which layers are drawn; `ffi/` and its files are one module.
Prints the strongly connected components of more than one module (each is an
import circle) and, with `--edges`, every module's imports.
"""

import re
import sys
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
FILE_LIMIT = 600
FUNCTION_LIMIT = 100


def module_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".rs")


def code_lines(text: str):
    """The lines of `text` outside comments (line comments and doc comments);
    string contents are kept, which is good enough for paths."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("//"):
            yield ""
        else:
            yield line.split(" // ")[0]


def imports(text: str) -> set:
    found = set()
    for line in code_lines(text):
        for match in re.finditer(r"\bcrate::(\w+)", line):
            found.add(match.group(1))
        use = re.match(r"\s*(?:pub(?:\([^)]*\))?\s+)?use crate::\{([^;]*)", line)
        if use:
            found.update(re.findall(r"(?:^|[{,]\s*)(\w+)", use.group(1)))
    # Multi-line `use crate::{` groups: the first word of each line inside.
    for group in re.finditer(r"use crate::\{(.*?)\};", text, re.S):
        found.update(re.findall(r"(?:^|[{,\n]\s*)(\w+)(?=::|[,}\s])", group.group(1)))
    return found


def long_functions(path: Path, text: str):
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"(\s*)(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:unsafe\s+)?(?:extern \"C\"\s+)?fn (\w+)", line)
        if not match or line.rstrip().endswith(";"):
            continue
        indent = match.group(1)
        for j in range(i, len(lines)):
            if lines[j] == indent + "}":
                if j - i + 1 > FUNCTION_LIMIT:
                    yield (j - i + 1, f"{path.relative_to(SRC.parent)}:{i + 1} {match.group(2)}")
                break


def circles(edges: dict) -> list:
    """Tarjan's strongly connected components of more than one module."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def main():
    files = sorted(SRC.rglob("*.rs"))
    modules = {module_of(f) for f in files}
    edges = defaultdict(set)
    big, long = [], []
    for f in files:
        text = f.read_text()
        lines = text.count("\n") + 1
        if lines > FILE_LIMIT:
            big.append((lines, str(f.relative_to(SRC.parent))))
        long.extend(long_functions(f, text))
        here = module_of(f)
        for target in imports(text) & modules:
            if target != here:
                edges[here].add(target)
    print(f"files over {FILE_LIMIT} lines: {len(big)}")
    for lines, name in sorted(big, reverse=True):
        print(f"  {lines:5}  {name}")
    print(f"functions over {FUNCTION_LIMIT} lines: {len(long)}")
    for lines, name in sorted(long, reverse=True):
        print(f"  {lines:5}  {name}")
    found = circles(edges)
    print(f"import circles: {len(found)}")
    for component in found:
        print(f"  {len(component)} modules: {' '.join(component)}")
    if "--edges" in sys.argv:
        for module in sorted(edges):
            print(f"{module} -> {' '.join(sorted(edges[module]))}")


if __name__ == "__main__":
    main()
