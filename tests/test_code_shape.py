"""The code's shape (issue 30): layers import downwards only and without a cycle, the task is
chosen by its object (no module outside jobs/tasks/ compares task names), and no function grows
past 60 lines. Read from the source with ast: nothing is imported or run."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("jobs", "pipeline", "models", "kernels")
TASK_NAMES = {"asr", "generation"}
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules `name` imports, at module level or inside functions."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycle_from(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_walk_sees_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycle_from(graph) == ["a", "b", "c", "a"]
    assert cycle_from({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    assert cycle_from(import_graph()) is None


def test_layers_import_downwards():
    """pipeline, models and kernels never import jobs; engines never import a command."""
    graph = import_graph()
    upward = [(m, t) for m, targets in graph.items() for t in targets
              if (not m.startswith("jobs") and t.startswith("jobs"))
              or (t.startswith("jobs.commands") and not m.startswith(("jobs.commands", "jobs.cli")))]
    assert upward == []


def branches_on_task_name(tree: ast.AST) -> list[int]:
    """Lines that compare with a task name, or map task names to behaviour (a dict literal keyed
    by task names only; a summary with a "generation" entry among others is data)."""
    def is_task_name(node) -> bool:
        return isinstance(node, ast.Constant) and node.value in TASK_NAMES

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(map(is_task_name, [node.left, *node.comparators])):
            lines.append(node.lineno)
        elif isinstance(node, ast.Dict) and node.keys and all(map(is_task_name, node.keys)):
            lines.append(node.lineno)
    return lines


def test_the_task_branch_check_sees_a_branch():
    assert branches_on_task_name(ast.parse("if cfg.task == 'asr':\n    pass")) == [1]
    assert branches_on_task_name(ast.parse("x = {'asr': A, 'generation': G}")) == [1]
    assert branches_on_task_name(ast.parse("summary = {'models': {}, 'generation': {}}")) == []
    assert branches_on_task_name(ast.parse("task = task_named(cfg.task)")) == []


def test_only_jobs_tasks_branches_on_a_task_name():
    found = {str(p.relative_to(ROOT)): lines for name, p in project_modules().items()
             if not name.startswith("jobs.tasks")
             and (lines := branches_on_task_name(ast.parse(p.read_text())))}
    assert found == {}


def long_functions(tree: ast.AST) -> list[tuple[str, int]]:
    return [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]


def test_no_function_over_60_lines():
    found = {str(p.relative_to(ROOT)): long for p in project_modules().values()
             if (long := long_functions(ast.parse(p.read_text())))}
    assert found == {}


def test_the_readme_layer_map_names_every_part_of_jobs():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    parts = sorted(f"jobs/{p.name}/" if p.is_dir() else f"jobs/{p.name}"
                   for p in (ROOT / "jobs").iterdir()
                   if (p.is_dir() and (p / "__init__.py").exists())
                   or (p.suffix == ".py" and p.name != "__init__.py"))
    assert [p for p in parts if p not in layout] == []
