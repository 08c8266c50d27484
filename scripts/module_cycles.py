#!/usr/bin/env python3
"""Fails when modules of the crate import each other in a cycle.

    python3 scripts/module_cycles.py [--depth N] [SRC]     (default: --depth 2 src)

A module is a file's path under SRC cut to N parts (`pipeline::stages` at depth 2). Its
imports are the `crate::…` and `super::…` paths in the file (text, not rustc; unit-test
modules are skipped: tests may reach anywhere). Prints each cycle with the files and names
that make it, and exits 1 when there is one. The binary's `cli/` is a crate of its own
(its `crate::` means `src/main.rs`), so it is read as such.
"""
import argparse
import os
import re
import sys
from collections import defaultdict

PATH = re.compile(r"\b(crate|super)((?:::[a-z_][a-z0-9_]*)+)")
GROUP = re.compile(r"\buse (crate|super)::\{([^;]*)\};", re.S)
TESTS = re.compile(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", re.S)


def file_module(src, path):
    parts = os.path.relpath(path, src)[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def imports(text):
    """(root, [segments]) for every path the file names."""
    text = TESTS.sub("", text)
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
    for root, body in GROUP.findall(text):
        for part in re.split(r"[,\s{}]+", body):
            segments = [s for s in part.split("::") if s and re.match(r"[a-z_]", s)]
            if segments:
                yield root, segments
    for root, rest in PATH.findall(text):
        yield root, rest.strip(":").split("::")


def module_graph(src, depth):
    modules, edges, why = set(), defaultdict(set), defaultdict(list)
    files = [os.path.join(r, f) for r, _, fs in os.walk(src) for f in fs if f.endswith(".rs")]
    for path in files:
        modules.add("::".join(file_module(src, path)[:depth]) or "crate")
    for path in files:
        here = file_module(src, path)
        me = "::".join(here[:depth]) or "crate"
        text = open(path, encoding="utf-8", errors="replace").read()
        for root, segments in imports(text):
            if root == "super":
                # super:: is the parent of this file's module (a mod.rs is its folder).
                base = here[:-1]
                while segments and segments[0] == "super":
                    base, segments = base[:-1], segments[1:]
                target = base + segments
            else:
                target = segments
            for k in range(min(len(target), depth), 0, -1):
                name = "::".join(target[:k])
                if name in modules:
                    if name != me:
                        edges[me].add(name)
                        why[(me, name)].append(f"{os.path.relpath(path, src)}: {'::'.join(target)}")
                    break
    return modules, edges, why


def cycles(modules, edges):
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(modules):
        if v not in index:
            visit(v)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", nargs="?", default="src")
    parser.add_argument("--depth", type=int, default=2)
    args = parser.parse_args()
    library = [p for p in [args.src] if os.path.isdir(p)]
    if not library:
        print(f"module_cycles: {args.src} is not a folder", file=sys.stderr)
        return 2
    found = 0
    modules, edges, why = module_graph(args.src, args.depth)
    # The binary's command line is its own crate: crate:: there means src/main.rs.
    cli = os.path.join(args.src, "cli")
    library_modules = {m for m in modules if not m.startswith("cli")}
    lib_edges = {m: {t for t in ts if t in library_modules} for m, ts in edges.items() if m in library_modules}
    groups = [("library", library_modules, lib_edges)]
    if os.path.isdir(cli):
        cli_modules, cli_edges, cli_why = module_graph(cli, args.depth)
        why.update(cli_why)
        groups.append(("cli", cli_modules, cli_edges))
    total = 0
    for name, mods, eds in groups:
        total += len(mods)
        for component in cycles(mods, eds):
            found += 1
            print(f"cycle ({name}): {' <-> '.join(component)}")
            for a in component:
                for b in component:
                    for reason in why.get((a, b), [])[:3]:
                        print(f"    {a} -> {b}   {reason}")
    print(f"{found} cycles among {total} modules (depth {args.depth})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
