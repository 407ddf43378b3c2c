"""The code's shape, checked like its behaviour: no import cycles, short functions, a config that
depends on nothing, and a clean lint."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "voicefake"
MAX_FUNCTION_LINES = 80


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """The voicefake modules `path` imports anywhere (function-level imports count too). `from
    package import name` counts as importing the package unless `name` is one of its modules."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module in known:
            for alias in node.names:
                found.add(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module)
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(path, known) - {name} for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules along it, or None. Package __init__ files that only
    re-export their modules' names are left out: importing them never runs a cycle's code twice."""
    done, path = set(), []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        if (cycle := visit(start)) is not None:
            return cycle
    return None


def reexporting_packages() -> set[str]:
    return {name for name, path in modules().items() if path.name == "__init__.py"}


def test_no_import_cycles():
    packages = reexporting_packages()
    graph = {name: targets - packages for name, targets in import_graph().items() if name not in packages}
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


FRONT_ENDS = {"voicefake.cli", "voicefake.app.ui"}  # on top of everything: they may use the public API


def test_modules_import_where_a_name_is_defined_not_a_package():
    """Below the front ends, code imports from the module that defines a name, not from a package
    __init__ (which would tie the module to everything the package re-exports)."""
    packages = reexporting_packages()
    offenders = {name: sorted(targets & packages) for name, targets in import_graph().items()
                 if name not in packages | FRONT_ENDS and targets & packages}
    assert not offenders, offenders


def test_config_imports_nothing_of_voicefake_but_the_error_type():
    assert import_graph()["voicefake.config"] <= {"voicefake.errors"}
    assert import_graph()["voicefake.errors"] == set()


def long_functions(paths) -> list[tuple[int, str]]:
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append((lines, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)


def test_no_function_is_longer_than_80_lines():
    code = [
        p
        for folder in ("voicefake", "tests", "bench", "recipes")
        for p in (ROOT / folder).rglob("*.py")
        if not any(part.startswith(".") for part in p.relative_to(ROOT).parts)  # bench/.venv-mediapipe
    ]
    assert long_functions([*code, ROOT / "app.py"]) == []


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the dev extras: make install)")
    result = subprocess.run([ruff, "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_public_api_and_the_commands_stay_what_they_were():
    """The layout moved modules, not the surface users call: the same top-level names and commands."""
    import voicefake
    from voicefake.cli import build_parser

    assert set(voicefake.__all__) == {
        "SAMPLE_RATE", "AudioChunk", "DeclaredLicence", "EnrollReport", "LipsyncReport", "Voice", "VoiceInfo",
        "VoicefakeError", "audio", "enroll", "issue_challenge", "lipsync", "list_voices", "load_voice", "read_audio",
        "remove_voice", "require_consent", "speak_video", "text", "write_audio",
    }
    assert all(callable(getattr(voicefake, name)) for name in ("enroll", "lipsync", "load_voice", "speak_video"))
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert set(commands) == {"say", "voices", "detect", "consent-phrase", "enroll", "clone", "export", "remove",
                             "lipsync", "speak-video", "app"}
