"""The shape of the code, checked: the layer contract in pyproject.toml (import-linter), no
import cycle between project modules (imports inside functions counted), no hidden imports
inside functions, and one owner for handing mail to a transport."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mailer", "subscribers")
#: The only modules that may hand mail to a transport: the campaign engine's hand-off and the
#: one-off path beside it (test copies, confirmations, welcome emails).
SENDERS = {"mailer/delivery/handoff.py", "mailer/delivery/oneoff.py"}


def project_files() -> list[Path]:
    files = []
    for package in PACKAGES:
        files += [p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]
    return sorted(files)


def test_the_layer_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def strongly_connected(graph, modules) -> list[list[str]]:
    """Tarjan's algorithm over the direct-import graph; components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in graph.find_modules_directly_imported_by(module):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    # The walk recurses once per module on a path; restore the limit afterwards, since other
    # tests (hostile JSON bodies) rely on the interpreter's default.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(10_000, limit))
    try:
        for module in sorted(modules):
            if module not in index:
                visit(module)
    finally:
        sys.setrecursionlimit(limit)
    return found


def test_no_import_cycle_between_project_modules():
    # grimp counts every import, including those inside functions.
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    assert strongly_connected(graph, graph.modules) == []


def function_level_imports(path: Path, root: Path = ROOT) -> list[str]:
    """Project imports inside a function body (each hides a dependency from the top of the
    file) that carry no ``# function-level:`` comment saying why."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    hidden = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            names = ([inner.module or ""] if isinstance(inner, ast.ImportFrom)
                     else [a.name for a in inner.names] if isinstance(inner, ast.Import) else [])
            if any(n.split(".")[0] in PACKAGES for n in names):
                if "# function-level:" not in lines[inner.lineno - 1]:
                    hidden.append(f"{path.relative_to(root)}:{inner.lineno}")
    return hidden


def test_project_imports_sit_at_the_top_of_their_files():
    hidden = [spot for path in project_files() for spot in function_level_imports(path)]
    assert hidden == []


def test_only_the_delivery_package_hands_mail_to_a_transport():
    callers = set()
    for path in project_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "send" and "transport" in ast.unparse(node.func)):
                callers.add(str(path.relative_to(ROOT)))
    assert callers == SENDERS


def test_the_checks_above_can_fail(tmp_path):
    """The detectors see what they are meant to see (a cycle, a hidden import)."""
    package = tmp_path / "cyclepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclepkg import b\n")
    (package / "b.py").write_text("def f():\n    from cyclepkg import a\n")
    sys.path.insert(0, str(tmp_path))
    try:
        graph = grimp.build_graph("cyclepkg")
    finally:
        sys.path.remove(str(tmp_path))
    assert strongly_connected(graph, graph.modules) == [["cyclepkg.a", "cyclepkg.b"]]
    sample = tmp_path / "probe.py"
    sample.write_text("def f():\n    from mailer import errors\n"
                      "def g():\n    from mailer import errors  # function-level: a reason\n")
    assert function_level_imports(sample, tmp_path) == ["probe.py:2"]


def test_campaign_states_change_only_inside_the_campaigns_package():
    """Other packages ask for a named move (start_sending, pause_sending, mark_missed, …);
    only mailer.campaigns picks target states with ``transition``."""
    callers = set()
    for path in project_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "transition"):
                callers.add(path.relative_to(ROOT).parts[:2])
    assert callers == {("mailer", "campaigns")}


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in project_files()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}
