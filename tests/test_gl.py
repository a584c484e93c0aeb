"""The OpenGL platform pyrender renders with (vlogger_cli/gl.py), and that every renderer chooses it before
pyrender / PyOpenGL are imported (PyOpenGL binds its platform once, at first import)."""

import ast
from pathlib import Path

import pytest
import torch

from vlogger_cli.gl import ensure_gl_platform

PACKAGE = Path(__file__).resolve().parent.parent / "vlogger_cli"
GL_MODULES = ("pyrender", "OpenGL")


@pytest.mark.parametrize("cuda, expected", [(False, "osmesa"), (True, "egl")])
def test_platform_follows_the_gpu_when_the_user_chose_none(monkeypatch, cuda, expected):
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert ensure_gl_platform() == expected
    import os

    assert os.environ["PYOPENGL_PLATFORM"] == expected  # PyOpenGL reads it at import


@pytest.mark.parametrize("chosen", ["egl", "osmesa"])
@pytest.mark.parametrize("cuda", [False, True])
def test_a_platform_the_user_set_is_honoured(monkeypatch, chosen, cuda):
    monkeypatch.setenv("PYOPENGL_PLATFORM", chosen)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert ensure_gl_platform() == chosen


def test_an_empty_setting_counts_as_unset(monkeypatch):
    monkeypatch.setenv("PYOPENGL_PLATFORM", "")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert ensure_gl_platform() == "osmesa"


def _imports_gl(node: ast.AST) -> bool:
    if isinstance(node, ast.Import):
        return any(a.name.split(".")[0] in GL_MODULES for a in node.names)
    return isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in GL_MODULES


def _calls(node: ast.AST, name: str) -> list[int]:
    """Lines in `node` that call `name(...)` (plain or attribute call)."""
    return [n.lineno for n in ast.walk(node) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def gl_import_violations(tree: ast.Module) -> list[str]:
    """GL imports not preceded by `ensure_gl_platform()`: in their own function, in their class's __init__
    (methods run after it), or — for a module helper — in every function that calls the helper, before the call."""
    problems = [f"line {n.lineno}: module-level GL import" for n in tree.body if _imports_gl(n)]
    functions: dict[str, ast.FunctionDef] = {}
    owner: dict[ast.AST, ast.ClassDef] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                owner[item] = node
        if isinstance(node, ast.FunctionDef):
            functions.setdefault(node.name, node)

    def ensured_before(fn: ast.AST, line: int) -> bool:
        return any(l <= line for l in _calls(fn, "ensure_gl_platform"))

    for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
        for imp in [n for n in ast.walk(fn) if _imports_gl(n)]:
            cls = owner.get(fn)
            init = next((i for i in cls.body if getattr(i, "name", "") == "__init__"), None) if cls else None
            if ensured_before(fn, imp.lineno) or (init is not None and fn is not init and ensured_before(init, 10**9)):
                continue
            callers = [(f, l) for f in functions.values() for l in _calls(f, fn.name) if f is not fn]
            if callers and all(ensured_before(f, l) for f, l in callers):
                continue
            problems.append(f"line {imp.lineno}: {fn.name} imports GL before ensure_gl_platform()")
    return problems


def test_every_renderer_chooses_the_platform_before_importing_pyrender():
    checked, problems = 0, []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        if "pyrender" not in source and "OpenGL" not in source:
            continue
        tree = ast.parse(source)
        if not any(_imports_gl(n) for n in ast.walk(tree)):
            continue
        checked += 1
        problems += [f"{path.relative_to(PACKAGE)} {p}" for p in gl_import_violations(tree)]
    assert checked >= 3  # controls/raster.py, train/video_recipe.py, body/make_correspondence.py at least
    assert not problems, "\n".join(problems)


def test_the_checker_catches_a_renderer_that_forgets():
    bad = ast.parse("def draw():\n    import pyrender\n    from vlogger_cli.gl import ensure_gl_platform\n"
                    "    ensure_gl_platform()\n")
    assert gl_import_violations(bad) == ["line 2: draw imports GL before ensure_gl_platform()"]
    assert gl_import_violations(ast.parse("import pyrender\n")) == ["line 1: module-level GL import"]
    good = ast.parse("class R:\n    def __init__(self):\n        ensure_gl_platform()\n"
                     "    def draw(self):\n        import pyrender\n")
    assert gl_import_violations(good) == []
