"""The house is one-way: api/ imports actors/, actors/ imports smsproxy/, never back up."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("smsproxy", "actors", "api")
"""Lowest first: a package may import its own layer and the ones below it."""

FOREIGN_TO_DOMAIN = frozenset(
    {"quart", "quart_trio", "quart_schema", "hypercorn", "werkzeug", "trio"}
)
"""The domain knows nothing of HTTP serving or of the actors' runtime."""


def imported_packages(source: str) -> set[str]:
    """The top-level package of every import in ``source``, function-level ones too."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def forbidden_for(layer: str) -> set[str]:
    above = set(LAYERS[LAYERS.index(layer) + 1:])
    return above | FOREIGN_TO_DOMAIN if layer == "smsproxy" else above


def modules() -> list[tuple[str, Path]]:
    return [
        (layer, path)
        for layer in LAYERS
        for path in sorted((ROOT / layer).rglob("*.py"))
    ]


def _test_id(value: object) -> str:
    return str(value.relative_to(ROOT)) if isinstance(value, Path) else str(value)


@pytest.mark.parametrize(("layer", "path"), modules(), ids=_test_id)
def test_no_module_imports_a_layer_above_its_own(layer: str, path: Path) -> None:
    wrong = imported_packages(path.read_text()) & forbidden_for(layer)
    assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_the_walk_finds_every_layer_and_the_adapters() -> None:
    walked = {path.relative_to(ROOT).as_posix() for _, path in modules()}
    assert {"smsproxy/stores/sqlite/queue.py", "smsproxy/providers/fastsmsing.py",
            "actors/supervisor.py", "api/cli.py"} <= walked


@pytest.mark.parametrize(
    ("layer", "source", "offends"),
    [
        ("smsproxy", "from actors.dispatcher import DispatcherHandle", True),
        ("smsproxy", "def f():\n    import api.app", True),
        ("smsproxy", "import hypercorn.trio", True),
        ("smsproxy", "from quart import request", True),
        ("smsproxy", "import trio", True),
        ("smsproxy", "from smsproxy.models import Message\nimport httpx", False),
        ("actors", "from api import Services", True),
        ("actors", "import trio\nfrom smsproxy.errors import StoreError", False),
        ("api", "from actors.supervisor import running\nimport quart", False),
    ],
)
def test_the_rule_itself(layer: str, source: str, offends: bool) -> None:
    assert bool(imported_packages(source) & forbidden_for(layer)) is offends
