#!/usr/bin/env python3
"""Checks that the modules of every crate in the workspace depend on each other one way.

The rule: among the children of any module, the dependencies form no cycle. A child may use
its parent's own items (a parent owns its children, Rust's usual shape), and a parent its
children; what is checked is that no two sibling subtrees need each other, directly or around
a longer loop. A use of a name a module re-exports (`pub use`) counts as a use of the module
that defines it. Test code (`#[cfg(test)]` modules, `*_tests.rs`) is left out.

    scripts/check-imports.py            # every crate; exits 1 and prints the cycles found
    scripts/check-imports.py --graph    # also prints each crate's edges between siblings
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRATES = ["common", "proto", "ngx-module", "batcher", "tools/tfs-sim", "tools/tfgate-load",
          "tools/jwt-testkit", "tests"]

USE_RE = re.compile(r"\b(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", re.S)
PATH_RE = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")


def strip_comments_and_tests(text):
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    # Inline test modules: from `#[cfg(test)]` before a `mod` to the end of the file (where the
    # project keeps them).
    match = re.search(r"#\[cfg\(test\)\]\s*(?:#\[path[^\]]*\]\s*)?(?:pub(?:\([^)]*\))?\s+)?mod\s", text)
    if match:
        text = text[:match.start()]
    # String literals may hold `crate::` in messages.
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def expand_use_tree(tree):
    """`a::{b, c::{d, e as f}}` -> [a::b, a::c::d, a::c::e] (with each alias)."""
    # Whitespace matters only around `as`.
    tree = re.sub(r"\s+", " ", tree.strip())
    tree = re.sub(r"\s*([{},:])\s*", r"\1", tree)

    def split_top(s):
        parts, depth, start = [], 0, 0
        for i, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(s[start:i])
                start = i + 1
        parts.append(s[start:])
        return [p for p in parts if p]

    def go(prefix, s):
        brace = s.find("{")
        if brace == -1:
            path, _, alias = s.partition(" as ")
            full = prefix + path
            name = alias or full.split("::")[-1]
            return [(full, name)]
        head = s[:brace]
        inner = s[brace + 1:s.rfind("}")]
        out = []
        for part in split_top(inner):
            if part == "self":
                full = (prefix + head).rstrip(":")
                out.append((full, full.split("::")[-1]))
            else:
                out.extend(go(prefix + head, part))
        return out

    return go("", tree)


class Module:
    def __init__(self, path, file):
        self.path = path  # tuple of names from the crate root
        self.file = file
        self.children = {}
        self.reexports = {}  # name -> absolute path (tuple)
        self.uses = []  # absolute paths (tuples) this module refers to


def module_files(src):
    """(module path, file) for each non-test source file under src."""
    for file in sorted(src.rglob("*.rs")):
        rel = file.relative_to(src)
        if file.name.endswith("_tests.rs") or file.name.startswith("tests_") or file.name == "tests.rs":
            continue
        if "bin" in rel.parts[:-1] or "benches" in rel.parts:
            continue
        parts = list(rel.with_suffix("").parts)
        if parts == ["lib"] or parts == ["main"]:
            parts = []
        elif parts[-1] == "mod":
            parts = parts[:-1]
        yield tuple(parts), file


def absolute(current, segments):
    """A path written in module `current` as absolute segments from the crate root."""
    if not segments:
        return None
    head, rest = segments[0], segments[1:]
    if head == "crate":
        return tuple(rest)
    if head == "self":
        return current + tuple(rest)
    if head == "super":
        base = list(current)
        while segments and segments[0] == "super":
            if not base:
                return None
            base.pop()
            segments = segments[1:]
        return tuple(base) + tuple(segments)
    return None  # an external crate or a local name


def load_crate(crate_dir):
    src = crate_dir / "src"
    if not src.exists():
        return {}
    modules = {}
    for path, file in module_files(src):
        modules[path] = Module(path, file)
    if () not in modules:
        return {}
    for path, module in modules.items():
        if path:
            parent = modules.get(path[:-1])
            if parent is not None:
                parent.children[path[-1]] = module
    for module in modules.values():
        text = strip_comments_and_tests(module.file.read_text())
        for match in USE_RE.finditer(text):
            statement = match.group(0)
            for full, name in expand_use_tree(match.group(1)):
                target = absolute(module.path, full.split("::"))
                if target is None:
                    continue
                if statement.lstrip().startswith("pub"):
                    module.reexports[name] = target
                module.uses.append(target)
        text_without_uses = USE_RE.sub("", text)
        for match in PATH_RE.finditer(text_without_uses):
            segments = [match.group(1)] + match.group(2).strip(":").split("::")
            target = absolute(module.path, segments)
            if target is not None:
                module.uses.append(target)
    return modules


def resolve(modules, path, depth=0):
    """The module that defines what `path` names (through re-exports)."""
    module = modules[()]
    for i, segment in enumerate(path):
        child = module.children.get(segment)
        if child is not None:
            module = child
            continue
        target = module.reexports.get(segment)
        if target is not None and depth < 16 and target != path:
            return resolve(modules, target + tuple(path[i + 1:]), depth + 1)
        return module.path
    return module.path


def sibling_edges(modules):
    """{parent: {(child a, child b)}}: child subtree a uses something in child subtree b."""
    edges = {}
    for module in modules.values():
        for use in module.uses:
            target = resolve(modules, use)
            source = module.path
            common = 0
            while common < min(len(source), len(target)) and source[common] == target[common]:
                common += 1
            if common == len(source) or common == len(target):
                continue  # an ancestor and its descendant: the parent owns the child
            parent = source[:common]
            edges.setdefault(parent, set()).add((source[common], target[common]))
    return edges


def cycles(nodes_edges):
    """Strongly connected components of more than one node (Tarjan)."""
    graph = {}
    for a, b in nodes_edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main():
    show_graph = "--graph" in sys.argv
    failed = False
    for crate in CRATES:
        modules = load_crate(ROOT / crate)
        if not modules:
            continue
        edges = sibling_edges(modules)
        for parent in sorted(edges):
            where = crate + ("/" + "/".join(parent) if parent else "")
            if show_graph:
                for a, b in sorted(edges[parent]):
                    print(f"{where}: {a} -> {b}")
            for component in cycles(edges[parent]):
                failed = True
                loop = [(a, b) for a, b in sorted(edges[parent]) if a in component and b in component]
                print(f"cycle in {where}: {' <-> '.join(component)}")
                for a, b in loop:
                    print(f"    {a} uses {b}")
    if failed:
        sys.exit(1)
    print("no import cycles between sibling modules")


if __name__ == "__main__":
    main()
