#!/usr/bin/env python3
"""The shape of `src/`, from the source alone: the files over 600 lines, the
functions over 100 lines, and the import circles between modules (read from
`use crate::` lines and `crate::a::b` paths in code; doc links do not count).

    python3 scripts/house.py [--edges]

A module is a top-level folder or file of `src/` (`coordinator/`, `error.rs`),
the grain at which layers are drawn; `ffi/` and its files are one module.
Prints the strongly connected components of more than one module (each is an
import circle), the same at the grain of files (`crate::ffi::exit` is the
file `ffi/exit.rs`), and, with `--edges`, every module's imports.
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


def use_paths(tree: str, prefix: list) -> list:
    """The full paths of a `use` tree (`a::{b, c::{d}}` gives a::b, a::c::d)."""
    paths, depth, start = [], 0, 0
    items = []
    for i, ch in enumerate(tree):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(tree[start:i])
            start = i + 1
    items.append(tree[start:])
    for item in items:
        item = item.strip()
        if not item:
            continue
        if "{" in item:
            head, _, rest = item.partition("{")
            head_parts = [p for p in head.split("::") if p]
            paths.extend(use_paths(rest[: rest.rindex("}")], prefix + head_parts))
        else:
            paths.append(prefix + [p for p in item.split(" as ")[0].split("::") if p])
    return paths


def file_imports(text: str, files: dict) -> set:
    """The files of `src/` that `text` imports: the longest prefix of each
    `crate::` path that is a file (`crate::ffi::exit::f` is `ffi/exit.rs`),
    a folder's `mod.rs` for a folder named alone."""
    code = "\n".join(code_lines(text))
    paths = [m.group(1).split("::") for m in re.finditer(r"\bcrate::((?:\w+::)*\w+)", code)]
    for group in re.finditer(r"use crate::\{(.*?)\};", code, re.S):
        paths.extend(use_paths(group.group(1), []))
    found = set()
    for parts in paths:
        for n in range(len(parts), 0, -1):
            key = "/".join(parts[:n])
            if key in files:
                found.add(files[key])
                break
    return found


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
    by_key = {}
    for f in files:
        rel = f.relative_to(SRC).with_suffix("")
        key = str(rel.parent) if rel.name == "mod" else str(rel)
        by_key[key] = str(f.relative_to(SRC))
    file_edges = defaultdict(set)
    for f in files:
        name = str(f.relative_to(SRC))
        for target in file_imports(f.read_text(), by_key) - {name}:
            file_edges[name].add(target)
    found_files = circles(file_edges)
    print(f"import circles between files: {len(found_files)}")
    for component in found_files:
        print(f"  {len(component)} files: {' '.join(component)}")
    if "--edges" in sys.argv:
        for module in sorted(edges):
            print(f"{module} -> {' '.join(sorted(edges[module]))}")


if __name__ == "__main__":
    main()
