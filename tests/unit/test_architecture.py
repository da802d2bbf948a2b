"""The layering rules of ARCHITECTURE.md, checked on the source with `ast` (no imports run).

- Transactions: only the unit of work commits a database session; a use case commits the unit
  of work it opened; repositories, resolvers and dependencies never commit.
- `domain/` is pure: no framework, driver or I/O library, nothing from graph/ or infra/.
- `graph/` reaches `infra/` only from the composition root.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Where a database session or connection may be committed, and why.
COMMITTING_MODULES = {
    "infra/db/uow.py": "the unit of work owns the session and its commit",
    "infra/db/migrate.py": "Alembic DDL runs on its own connection, outside any unit of work",
}
# Use cases (domain/services/, domain/turns/, ...) commit the unit of work they opened:
# `async with uow:` (or `async with new_uow() as uow:`) ... `await uow.commit()`.
USE_CASE_PACKAGE = "domain/services/"

# Nothing the domain may import: frameworks, drivers, I/O clients, and the other layers.
DOMAIN_FORBIDDEN = frozenset(
    {
        "sqlalchemy",
        "strawberry",
        "fastapi",
        "starlette",
        "httpx",
        "redis",
        "asyncpg",
        "aiosqlite",
        "pydantic_settings",
        "alembic",
        "uvicorn",
        "typer",
        "aiodataloader",
        "graph",
        "infra",
        "migrations",
    }
)

# The composition root: the only graph modules that build adapters (engines, units of work,
# settings, the catalog loader) and so may import infra/. Everything else in graph/ receives
# ports through the Runtime in the request context.
COMPOSITION_ROOT = frozenset(
    {
        "graph/app.py",  # the FastAPI app factory, its lifespan and readiness probe
        "graph/startup.py",  # opens the database, migrates, syncs the catalog, demo admin
        "graph/cli.py",  # the `pantheon` command: settings, migrations, operator use cases
    }
)
# Adapter packages graph/ reaches only through infra/ (and so only from the composition root).
GRAPH_INFRA_ONLY = frozenset({"infra", "sqlalchemy", "asyncpg", "aiosqlite", "alembic", "redis"})


@dataclass(frozen=True)
class Import:
    module: str  # absolute dotted name
    line: int

    @property
    def top(self) -> str:
        return self.module.split(".")[0]


def source_files(*packages: str) -> list[Path]:
    files = [path for package in packages for path in sorted((ROOT / package).rglob("*.py"))]
    assert files, f"no Python files under {packages}: is ROOT ({ROOT}) right?"
    return files


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def package_of(path: Path) -> str:
    """The package relative imports start from (for `pkg/__init__.py` that is `pkg` itself)."""
    return ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])


def imports(tree: ast.Module, package: str) -> Iterator[Import]:
    """Every import anywhere in the module (top level, functions, TYPE_CHECKING blocks),
    relative ones resolved, plus `importlib.import_module("x")` / `__import__("x")` literals."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, package)
            if node.module:
                yield Import(base, node.lineno)
            else:  # `from .. import x`: each name is a module of that package
                for alias in node.names:
                    yield Import(f"{base}.{alias.name}", node.lineno)
        elif isinstance(node, ast.Call) and _is_dynamic_import(node):
            argument = node.args[0]
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                yield Import(argument.value, node.lineno)


def _absolute(module: str | None, level: int, package: str) -> str:
    if level == 0:
        return module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _is_dynamic_import(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name in {"import_module", "__import__"} and bool(node.args)


@dataclass(frozen=True)
class Commit:
    line: int
    receiver: str | None  # `uow` in `uow.commit()`
    in_unit_of: frozenset[str]  # names bound by the enclosing `async with` blocks


class _CommitFinder(ast.NodeVisitor):
    def __init__(self) -> None:
        self.bound: list[frozenset[str]] = []
        self.found: list[Commit] = []

    def visit_AsyncWith(self, node: ast.AsyncWith) -> None:
        names = set()
        for item in node.items:
            target = item.optional_vars or item.context_expr
            if isinstance(target, ast.Name):
                names.add(target.id)
        self.bound.append(frozenset(names))
        self.generic_visit(node)
        self.bound.pop()

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Attribute) and node.func.attr == "commit":
            value = node.func.value
            self.found.append(
                Commit(
                    line=node.lineno,
                    receiver=value.id if isinstance(value, ast.Name) else None,
                    in_unit_of=frozenset().union(*self.bound),
                )
            )
        self.generic_visit(node)


def commits(tree: ast.Module) -> list[Commit]:
    finder = _CommitFinder()
    finder.visit(tree)
    return finder.found


# the checkers work (each rule below would pass vacuously if they did not)


def test_import_finder_sees_nested_relative_and_dynamic_imports() -> None:
    tree = ast.parse(
        "import os.path as p\n"
        "from sqlalchemy.orm import Session\n"
        "def f():\n"
        "    import httpx\n"
        "    from .. import infra\n"
        "    from .sibling import thing\n"
        "if TYPE_CHECKING:\n"
        "    from strawberry import Info\n"
        "importlib.import_module('redis')\n"
    )

    found = {i.module for i in imports(tree, "domain.services")}

    assert {"os.path", "sqlalchemy.orm", "httpx", "strawberry", "redis"} <= found
    assert "domain.infra" in found  # `from .. import infra` inside domain.services
    assert "domain.services.sibling" in found


def test_commit_finder_sees_commits_and_their_unit_of_work() -> None:
    tree = ast.parse(
        "async def use_case(uow):\n"
        "    async with uow:\n"
        "        await uow.commit()\n"
        "async def other(factory):\n"
        "    async with factory() as session:\n"
        "        await session.commit()\n"
        "    await self._session.commit()\n"
    )

    found = commits(tree)

    assert [(c.line, c.receiver, set(c.in_unit_of)) for c in found] == [
        (3, "uow", {"uow"}),
        (6, "session", {"session"}),
        (7, None, set()),
    ]


# transactions


def test_only_the_unit_of_work_commits_in_graph_and_infra() -> None:
    offenders = [
        f"{relative(path)}:{commit.line}"
        for path in source_files("graph", "infra")
        if relative(path) not in COMMITTING_MODULES
        for commit in commits(parse(path))
    ]
    assert offenders == [], (
        "`.commit()` outside the unit of work; stage rows and let the use case commit its "
        f"unit of work (ARCHITECTURE.md, 'Transaction policy'): {offenders}"
    )


def test_domain_commits_only_the_unit_of_work_it_opened() -> None:
    offenders = [
        f"{relative(path)}:{commit.line}"
        for path in source_files("domain")
        for commit in commits(parse(path))
        if commit.receiver is None or commit.receiver not in commit.in_unit_of
    ]
    assert offenders == [], (
        "in domain/, a use case commits only with `await uow.commit()` inside its own "
        f"`async with uow:` block: {offenders}"
    )


def test_use_cases_do_commit() -> None:
    # Guards the rule above against passing on a renamed package.
    assert any(commits(parse(path)) for path in source_files(USE_CASE_PACKAGE))


# layering


def test_domain_imports_no_framework_driver_or_other_layer() -> None:
    offenders = [
        f"{relative(path)}:{found.line} imports {found.module}"
        for path in source_files("domain")
        for found in imports(parse(path), package_of(path))
        if found.top in DOMAIN_FORBIDDEN
    ]
    assert offenders == [], f"domain/ must stay pure Python (ARCHITECTURE.md): {offenders}"


def test_graph_imports_infra_only_in_the_composition_root() -> None:
    offenders = [
        f"{relative(path)}:{found.line} imports {found.module}"
        for path in source_files("graph")
        if relative(path) not in COMPOSITION_ROOT
        for found in imports(parse(path), package_of(path))
        if found.top in GRAPH_INFRA_ONLY
    ]
    assert offenders == [], (
        "graph/ reaches infra/ only from the composition root "
        f"({sorted(COMPOSITION_ROOT)}); pass ports through the Runtime: {offenders}"
    )


@pytest.mark.parametrize("module", sorted(COMPOSITION_ROOT | set(COMMITTING_MODULES)))
def test_every_listed_exception_still_exists(module: str) -> None:
    # A stale allow-list entry would silently allow a new file of that name later.
    assert (ROOT / module).is_file(), f"{module} is allow-listed but gone: update the list"
