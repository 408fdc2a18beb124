#!/usr/bin/env python3
"""Fails on import circles between the files of a Rust crate.

Usage: scripts/check-layout.py CRATE_SRC_DIR...   (e.g. pipelines/src signaling/src)

For every .rs file under each directory it reads the paths that name items of
the same crate (`use crate::...`, `use super::...`, `use self::...`, a child
module's name, and `crate::x::y` / `super::x` / `child::x` / `alias::x` paths
in code), resolves each to the file that defines the item (following `use`
re-exports, so `crate::Error` leads to error.rs, not to lib.rs), and builds the
file-level graph. A module folder counts as its files: `leg::LegEvent` leads
to whichever file under leg/ defines LegEvent. `mod x;` declarations are
structure, not imports, and so is a `pub use` that only passes a name on.
Comments, strings and inline `mod tests { ... }` of a file are handled (a test
module's `super::` is its own file; edges from `#[cfg(test)]` code are marked).

Prints every circle (a group of files that reach each other through imports,
with the imports that close it and one shortest loop), exit status 1 if any.
"""

import re
import sys
from collections import deque
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
DEFINITION = r"\b(?:fn|struct|enum|type|trait|const|static|mod|union|macro_rules!)\s+(" + IDENT + ")"
TOKEN = re.compile(r"(?P<id>r#" + IDENT + "|" + IDENT + r")|(?P<p>::|[{}();,*<>=])|(?P<nl>\n)|(?P<other>\S)")


def strip_comments_and_strings(text):
    """Blanks out comments and string/char literals, keeping line breaks."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c in "rb" and re.match(r"(br|r)#*\"", text[i:i + 40]) and not (i and re.match(r"\w", text[i - 1])):
            m = re.match(r"(br|r)(#*)\"", text[i:])
            close = '"' + m.group(2)
            j = text.find(close, i + m.end())
            j = n if j < 0 else j + len(close)
            out.append(' ""' + "\n" * text.count("\n", i, j))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(' ""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'":
            m = re.match(r"'(\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'\n])'", text[i:])
            if m:  # a char literal; otherwise a lifetime
                out.append(" ' ")
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def tokenize(text):
    line = 1
    tokens = []
    for m in TOKEN.finditer(strip_comments_and_strings(text)):
        if m.group("nl"):
            line += 1
        else:
            tokens.append((m.group(0), line))
    return tokens


def under_cfg_test(tokens, i):
    """Whether the item starting at tokens[i] (`mod`) carries `#[cfg(test)]`."""
    j = i - 1
    if is_public(tokens, i):  # skip pub, pub(crate), pub(in path)
        while tokens[j][0] != "pub":
            j -= 1
        j -= 1
    return [t for t, _ in tokens[max(0, j - 6):j + 1]] == ["#", "[", "cfg", "(", "test", ")", "]"]


def is_public(tokens, i):
    """Whether the item starting at tokens[i] is `pub`, `pub(crate)`, ..."""
    j = i - 1
    if j >= 0 and tokens[j][0] == ")":
        while j >= 0 and tokens[j][0] != "(":
            j -= 1
        j -= 1
    return j >= 0 and tokens[j][0] == "pub"


def parse_use_tree(tokens, i, prefix, out):
    """Parses one use tree from tokens[i]; appends (binding, path, glob) to out; returns the next index."""
    path = list(prefix)
    while i < len(tokens):
        tok = tokens[i][0]
        if tok == "{":
            i += 1
            while i < len(tokens) and tokens[i][0] != "}":
                i = parse_use_tree(tokens, i, path, out)
                if i < len(tokens) and tokens[i][0] == ",":
                    i += 1
            return i + 1
        if tok == "*":
            out.append((None, path, True))
            return i + 1
        if tok == "::":
            i += 1
            continue
        if re.fullmatch(IDENT, tok):
            if tok == "self" and path:  # `a::{self, B}` binds `a`
                binding, target = path[-1], list(path)
            else:
                path = path + [tok]
                binding, target = tok, path
            i += 1
            if i < len(tokens) and tokens[i][0] == "::":
                continue
            if i + 1 < len(tokens) and tokens[i][0] == "as":
                binding = tokens[i + 1][0]
                i += 2
            if binding != "_":
                out.append((binding, target, False))
            return i
        return i + 1  # something unexpected: skip it
    return i


class Use:
    """One path naming an item of the crate: in a `use` (`kind` "use", or
    "reexport" for `pub use`) or in code (`kind` "path"; `path` is None when
    it starts with a `use` alias, resolved once the whole file is read)."""

    def __init__(self, path, segments, line, kind, binding=None, glob=False, in_test=False):
        self.path, self.segments, self.line, self.kind = path, segments, line, kind
        self.binding, self.glob, self.in_test = binding, glob, in_test


class File:
    def __init__(self, path, module):
        self.path = path
        self.module = module  # module path inside the crate, e.g. ("leg", "rtp")
        self.bindings = {}  # file-level use bindings: name -> (absolute path, line)
        self.globs = []  # absolute module paths glob-imported at file level
        self.uses = []  # Use
        self.code_idents = set()  # identifiers outside `use` declarations
        self.local_bindings = {}  # every use binding in the file, any scope
        self.defined = set()  # names of the items the file defines


def module_of(rel):
    parts = list(rel.with_suffix("").parts)
    if parts[-1] in ("lib", "main") and len(parts) == 1:
        return ()
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


class Crate:
    def __init__(self, root):
        self.root = Path(root)
        self.files = {}  # module path -> File
        for p in sorted(self.root.rglob("*.rs")):
            rel = p.relative_to(self.root)
            if len(rel.parts) > 1 and rel.parts[0] == "bin":
                continue
            module = module_of(rel)
            if module in self.files and module == ():
                continue  # lib.rs wins over main.rs as the root
            self.files[module] = File(rel, module)
        for f in self.files.values():
            self.read(f)

    def absolute(self, segments, scope):
        """The absolute path of `segments` written in module `scope`, or None if it leaves the crate."""
        first = segments[0]
        if first == "crate":
            return list(segments[1:])
        if first in ("self", "super"):
            here = list(scope)
            rest = list(segments)
            while rest and rest[0] in ("self", "super"):
                if rest.pop(0) == "super":
                    if not here:
                        return None
                    here.pop()
            return here + rest
        if tuple(scope) + (first,) in self.files:  # a child module named directly (2018 paths)
            return list(scope) + list(segments)
        return None

    def read(self, f):
        text = (self.root / f.path).read_text()
        f.defined = set(re.findall(DEFINITION, strip_comments_and_strings(text)))
        tokens = tokenize(text)
        inline = []  # stack of (name, brace depth at opening, inside #[cfg(test)])
        depth = 0
        i = 0
        while i < len(tokens):
            tok, line = tokens[i]
            scope = f.module + tuple(name for name, _, _ in inline)
            in_test = any(test for _, _, test in inline)
            if tok == "{":
                depth += 1
            elif tok == "}":
                depth -= 1
                if inline and inline[-1][1] == depth:
                    inline.pop()
            elif tok == "mod" and i + 2 < len(tokens) and tokens[i + 2][0] == "{":
                inline.append((tokens[i + 1][0], depth, under_cfg_test(tokens, i)))
                depth += 1
                i += 3
                continue
            elif tok == "use":
                kind = "reexport" if is_public(tokens, i) else "use"
                trees = []
                j = parse_use_tree(tokens, i + 1, [], trees)
                for binding, segments, glob in trees:
                    if not segments:
                        continue
                    path = self.absolute(segments, scope)
                    if path is None:
                        continue
                    if glob:
                        if not inline:
                            f.globs.append(path)
                    else:
                        f.local_bindings[binding] = path
                        if not inline:
                            f.bindings[binding] = (path, line)
                    f.uses.append(Use(path, segments, line, kind, binding, glob, in_test))
                i = j
                continue
            elif re.fullmatch(IDENT, tok) and i + 2 < len(tokens) and tokens[i + 1][0] == "::" \
                    and (i == 0 or tokens[i - 1][0] != "::"):
                segments = [tok]
                j = i + 1
                while j + 1 < len(tokens) and tokens[j][0] == "::" and re.fullmatch(IDENT, tokens[j + 1][0]):
                    segments.append(tokens[j + 1][0])
                    j += 2
                f.code_idents.update(segments)
                path = self.absolute(segments, scope)  # crate::, self::, super:: or a child module
                if path is not None or tok not in ("crate", "self", "super", "Self"):
                    f.uses.append(Use(path, segments, line, "path", in_test=in_test))
                i = j
                continue
            elif re.fullmatch(IDENT, tok):
                f.code_idents.add(tok)
            i += 1

    def definer(self, path, seen=None):
        """The file that defines the item at absolute `path` (a module: its own file)."""
        seen = seen or set()
        key = tuple(path)
        if key in seen:
            return None
        seen.add(key)
        k = len(path)
        while k > 0 and tuple(path[:k]) not in self.files:
            k -= 1
        f = self.files.get(tuple(path[:k]))
        if f is None:
            return None
        rest = path[k:]
        if not rest:
            return f
        if rest[0] in f.bindings:
            target = self.definer(f.bindings[rest[0]][0] + rest[1:], seen)
            if target is not None:
                return target
        for glob in f.globs:  # `pub use x::*`: look there too
            candidate = self.definer(glob + rest, seen)
            if candidate is not None and candidate is not f and defines(candidate, rest[0]):
                return candidate
        return f

    def graph(self):
        edges = {}  # (from module, to module) -> (line, text, in tests only)
        for f in self.files.values():
            for use in f.uses:
                if use.kind == "reexport" and (use.glob or use.binding not in f.code_idents):
                    continue  # only passed on (`pub use`), an alias the resolver sees through
                path = use.path
                if path is None:
                    bound = f.local_bindings.get(use.segments[0])
                    if bound is None:
                        continue
                    path = bound + use.segments[1:]
                target = self.definer(path)
                if target is None or target is f:
                    continue
                key = (f.module, target.module)
                where = (use.line, "::".join(use.segments), use.in_test)
                if key not in edges or (edges[key][2] and not use.in_test):  # report non-test code first
                    edges[key] = where
        return edges


def defines(f, name):
    return name in f.bindings or name in f.defined


def strongly_connected(nodes, adjacency):
    index, low, on_stack, stack, groups = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in adjacency.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(10000)
    for v in nodes:
        if v not in index:
            visit(v)
    return groups


def shortest_loop(start, group, adjacency):
    members = set(group)
    parent = {start: None}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(adjacency.get(v, ())):
            if w == start:
                loop = [v]
                while parent[loop[-1]] is not None:
                    loop.append(parent[loop[-1]])
                return list(reversed(loop)) + [start]
            if w in members and w not in parent:
                parent[w] = v
                queue.append(w)
    return [start]


def check(root):
    crate = Crate(root)
    edges = crate.graph()
    adjacency = {}
    for a, b in edges:
        adjacency.setdefault(a, set()).add(b)
    name = {m: str(Path(root) / f.path) for m, f in crate.files.items()}
    groups = strongly_connected(sorted(crate.files), adjacency)
    for group in groups:
        print(f"circle in {root}: {', '.join(name[m] for m in group)}")
        loop = shortest_loop(group[0], group, adjacency)
        print("  shortest loop: " + " -> ".join(name[m] for m in loop))
        for a in group:
            for b in sorted(adjacency.get(a, ())):
                if b in group:
                    line, text, in_test = edges[(a, b)]
                    note = ", in tests only" if in_test else ""
                    print(f"  {name[a]}:{line} uses {text} ({name[b]}{note})")
    return len(groups)


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    circles = sum(check(root) for root in argv[1:])
    if circles:
        sys.stdout.flush()
        print(f"{circles} import circle(s): move the shared vocabulary into its own file", file=sys.stderr)
        return 1
    print(f"no import circles in {' '.join(argv[1:])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
