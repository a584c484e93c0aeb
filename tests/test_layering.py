"""The package's layers (docs/ARCHITECTURE.md "Layers"), checked on every import statement with `ast`.

A stage package may import the ground floor and the stages it builds on, never the job store (`jobs/`) that
runs it, never the CLI, and never a stage downstream of it. Imports under `if TYPE_CHECKING:` are for type
annotations only and are not edges at run time, so they are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vlogger_cli"

# Modules every stage may use; they import only each other.
GROUND = {"vlogger_cli", "errors", "types", "paths", "native_logs", "io", "windows", "camera", "gl", "threads",
          "rotations", "media", "frame_store", "image_metrics"}

# What each package may import besides the ground floor and itself.
ALLOWED = {
    "audio": set(),
    "body": set(),
    "motion": {"audio", "body"},
    "controls": {"body"},
    "video": {"body", "controls"},
    "export": set(),
    "edit": {"body", "motion"},
    "eval": {"audio", "body", "export"},
    "train": {"audio", "body", "motion", "controls", "video", "export", "pipeline"},
    "pipeline": {"audio", "body", "motion", "controls", "video", "export", "edit", "manifest"},
    "jobs": {"pipeline", "manifest"},
    "manifest": {"edit"},
    "doctor": {"install_plan"},  # the same nvidia-smi reading and CUDA advice as set-up
    "install_plan": set(),
    "cli": None,  # the commands may import anything
    "__main__": {"cli"},
}
# Checks that render through the whole pipeline (python -m vlogger_cli.video.demo_check / real_check): they live
# next to the model they check but sit above the pipeline and the training data code.
TOOLS = {"video/demo_check.py": {"pipeline", "train"}, "video/real_check.py": {"pipeline", "train"}}


# Single modules with a narrower rule than their package's: the vlogger_cli modules (dotted, below the package)
# each may import. The throughput modules stay small and one-way: render.py imports batching.py, never the
# reverse; compile.py is torch only; the runner's group driver does not reach into video/.
MODULES = {
    "video/batching.py": {"frame_store", "video.outpaint", "video.sampling"},
    "video/compile.py": set(),
    "video/sampling.py": {"video.config"},
    "pipeline/inference.py": {"errors", "paths", "pipeline.base", "video.compile", "video.mouth", "video.render"},
    "jobs/runner.py": {"errors", "io", "jobs.lock", "jobs.store", "manifest", "pipeline", "pipeline.inference"},
}


def _imports(tree: ast.AST):
    """(line, module) of every vlogger_cli import, skipping `if TYPE_CHECKING:` blocks."""
    def visit(node):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (x for child in node.orelse for x in visit(child))
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "vlogger_cli":  # `from vlogger_cli import jobs` imports a package; `__version__` not
                yield from ((node.lineno, f"vlogger_cli.{a.name}" if _is_module(a.name) else "vlogger_cli")
                            for a in node.names)
            elif node.module.startswith("vlogger_cli."):
                yield node.lineno, node.module
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"line {node.lineno}: relative import; use absolute vlogger_cli imports")
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names if a.name.startswith("vlogger_cli"))
        for child in ast.iter_child_nodes(node):
            yield from visit(child)
    yield from visit(tree)


def _is_module(name: str) -> bool:
    return (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()


def _owner(module: str) -> str:
    """The layer a dotted module belongs to: its top-level package or ground-floor module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "vlogger_cli"


def forbidden_edges(package: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        layer = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        layer = "vlogger_cli" if layer == "__init__" else layer
        if layer in GROUND:
            allowed = GROUND
        elif layer in ALLOWED:
            if ALLOWED[layer] is None:
                continue
            allowed = GROUND | ALLOWED[layer] | {layer} | TOOLS.get(rel.as_posix(), set())
        else:
            found.append(f"{rel}: package '{layer}' has no rule in tests/test_layering.py ALLOWED; add one")
            continue
        for line, module in _imports(ast.parse(path.read_text(), str(path))):
            target = _owner(module)
            if target not in allowed:
                found.append(f"{rel}:{line} imports {module} ({layer} -> {target})")
    return found


def test_no_forbidden_imports():
    edges = forbidden_edges()
    assert not edges, "layering broken (docs/ARCHITECTURE.md):\n" + "\n".join(edges)


def module_edges(package: Path = PACKAGE) -> list[str]:
    """Imports of the modules in MODULES outside their own rule."""
    found = []
    for rel, allowed in MODULES.items():
        path = package / rel
        for line, module in _imports(ast.parse(path.read_text(), str(path))):
            name = module.removeprefix("vlogger_cli.")
            if name not in allowed:
                found.append(f"{rel}:{line} imports {module} (allowed: {', '.join(sorted(allowed)) or 'nothing'})")
    return found


def test_module_rules():
    edges = module_edges()
    assert not edges, "module rules broken (tests/test_layering.py MODULES):\n" + "\n".join(edges)


def test_the_named_arrows_are_gone():
    """The arrows issue 11 removed stay removed: stages -> jobs, video -> motion, body <-> controls."""
    for stage in ("audio", "body", "motion", "controls", "video", "export", "edit", "eval", "train", "pipeline"):
        assert "jobs" not in ALLOWED[stage] and "cli" not in ALLOWED[stage]
    assert "motion" not in ALLOWED["video"]
    assert not ({"controls"} & ALLOWED["body"] and {"body"} & ALLOWED["controls"])


@pytest.mark.parametrize("source, expected", [
    ("from vlogger_cli.jobs.store import JobDir\n", ["jobs"]),
    ("import vlogger_cli.motion.outpaint\n", ["motion"]),
    ("from vlogger_cli import jobs\n", ["jobs"]),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from vlogger_cli.jobs.store import JobDir\n", []),
    ("def f():\n    from vlogger_cli.controls.render import ControlRenderer\n", []),
])
def test_the_checker_sees_every_import_form(tmp_path, source, expected):
    """The checker itself can fail: a video module importing these is caught (lazy imports in functions too)."""
    (tmp_path / "video").mkdir()
    (tmp_path / "video" / "x.py").write_text(source)
    got = [edge.split("-> ")[-1].rstrip(")") for edge in forbidden_edges(tmp_path)]
    assert got == expected
