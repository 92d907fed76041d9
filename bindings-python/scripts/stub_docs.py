"""Copies the native module's docstrings (the Rust doc comments, which ``help()`` shows) into
``racefree/_native.pyi`` (which editors show), so the two never differ.

    python scripts/stub_docs.py          # rewrite the stub
    python scripts/stub_docs.py --check  # exit 1 if the stub differs (the test suite runs this)

Needs the built module importable. Dunder methods, ``_private`` names and constants are left alone.
"""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path
from typing import List, Optional, Tuple

STUB = Path(__file__).resolve().parent.parent / "python" / "racefree" / "_native.pyi"


def _runtime_doc(obj: object) -> Optional[str]:
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__  # the function's own docstring, not the wrapper type's
    doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if doc else None


def _docstring(text: str, indent: str) -> List[str]:
    lines = text.splitlines()
    if len(lines) == 1:
        return [f'{indent}"""{text}"""\n']
    return [f'{indent}"""{lines[0]}\n'] + [f"{indent}{line}\n" if line else "\n" for line in lines[1:-1]] + [
        f'{indent}{lines[-1]}"""\n'
    ]


def _targets(tree: ast.Module, native: object) -> List[Tuple[ast.AST, Optional[str], str]]:
    """(stub node, runtime docstring, indent of its body) for every documented public name."""
    found: List[Tuple[ast.AST, Optional[str], str]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            found.append((node, _runtime_doc(getattr(native, node.name)), "    "))
        elif isinstance(node, ast.ClassDef):
            cls = getattr(native, node.name)
            found.append((node, _runtime_doc(cls), "    "))
            for member in node.body:
                if isinstance(member, ast.FunctionDef) and not member.name.startswith("_"):
                    found.append((member, _runtime_doc(inspect.getattr_static(cls, member.name)), "        "))
                elif isinstance(member, ast.FunctionDef) and member.name in ("__enter__", "__exit__"):
                    found.append((member, _runtime_doc(getattr(cls, member.name)), "        "))
    return found


def rewritten(source: str, native: object) -> str:
    """The stub with every docstring taken from the runtime module (missing ones raise)."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    edits = []  # (first line index, last line index exclusive, replacement lines)
    for node, doc, indent in _targets(tree, native):
        name = getattr(node, "name")
        if doc is None:
            raise SystemExit(f"racefree._native.{name} has no docstring: add a doc comment in the Rust source")
        body = getattr(node, "body")
        first = body[0]
        has_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
        new_doc = _docstring(doc, indent)
        if isinstance(node, ast.ClassDef):
            # The docstring, then a blank line before the members (the old one's blank line, if
            # any, is replaced with it).
            members = body[1:] if has_doc else body
            start, end = (first.lineno - 1, first.end_lineno) if has_doc else (node.lineno, node.lineno)
            if has_doc and members and lines[end].strip() == "":
                end += 1
            edits.append((start, end, new_doc + (["\n"] if members else [])))
            continue
        if has_doc:
            edits.append((first.lineno - 1, first.end_lineno, new_doc))
        else:
            # `def f(...) -> T: ...` on its last line: the `...` becomes the docstring.
            last = node.end_lineno - 1
            head = lines[last].rstrip("\n")
            if not head.endswith(": ..."):
                raise SystemExit(f"stub of {name} does not end with ': ...'")
            edits.append((last, last + 1, [head[: -len(" ...")] + "\n"] + new_doc))
    # From the bottom up; at one line, the member's edit before the class docstring inserted above it.
    for start, end, replacement in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        lines[start:end] = replacement
    return "".join(lines)


def main() -> int:
    import racefree._native as native

    current = STUB.read_text()
    wanted = rewritten(current, native)
    if "--check" in sys.argv[1:]:
        if wanted != current:
            print(f"{STUB} differs from the native module's docstrings: run python scripts/stub_docs.py")
            return 1
        return 0
    STUB.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
