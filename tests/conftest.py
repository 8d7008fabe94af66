"""Shared fixtures. Trackers are real: a SQLite file in tmp_path, and the PostgreSQL server on
127.0.0.1:5432 (a fresh schema per test). In CI a missing PostgreSQL is an error, not a skip."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from postgres_service import IN_CI, POSTGRES_URL, postgres_problem, require_postgres  # noqa: F401 - re-exported
from server_harness import LiveServer, start_swappable_server
from sqlalchemy import create_engine, text

from diary_integrations import ExperimentStatus, LocalTracker


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked `slow` (training, multi-process, Ray) run first, the quick ones after them: a
    parallel run hands out tests in this order as workers come free, so the quick ones fill the gaps at the
    end instead of one long test keeping a worker busy after the others have finished."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose search_path is a schema made for this test and dropped after it."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(autouse=True)
def _system_metrics_only_where_asked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """System metrics (issue 29) are on by default in every integration, and their readings arrive on a
    clock of their own: a test that counts a run's training points exactly would count them too. So the
    suite runs with the operator's switch off ($DIARY_SYSTEM_METRICS, inherited by every process a test
    starts), except in the tests marked `system_metrics`, which are about them and see the default."""
    if request.node.get_closest_marker("system_metrics") is None:
        monkeypatch.setenv("DIARY_SYSTEM_METRICS", "off")
    else:
        monkeypatch.delenv("DIARY_SYSTEM_METRICS", raising=False)


@pytest.fixture(autouse=True)
def _journal_spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test journals into its own directory: a journal left by one test (the session server's URL
    is shared) must never be replayed into another test's database, nor land in the user's cache."""
    spool = tmp_path / "journal-spool"
    monkeypatch.setenv("DIARY_SPOOL_DIR", str(spool))
    return spool


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'diary.db'}"


TRACKER_KINDS = ["sqlite", "postgres", "server-sqlite", "server-postgres", "sidecar-sqlite"]


@pytest.fixture(params=TRACKER_KINDS)
def tracker_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def tracker(tracker_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """Every tracker kind the contract suite runs against. Kinds that need more than a database
    (a tracking server) register a factory in `TRACKER_FACTORIES`."""
    factory = TRACKER_FACTORIES[tracker_kind]
    yield from factory(request, tmp_path)


def _local_sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalTracker]:
    tracker = LocalTracker(tmp_path / "diary.db", artifact_root=None)
    yield tracker
    tracker.close()


def _sidecar_sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """The LocalTracker in a sidecar process, as DiaryLogger uses it: every call crosses the pipe."""
    from diary_integrations.sidecar import SidecarTracker

    tracker = SidecarTracker(tmp_path / "diary.db")
    yield tracker
    tracker.close(wait=True)


def _local_postgres(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalTracker]:
    url = request.getfixturevalue("postgres_url")
    tracker = LocalTracker(url)
    yield tracker
    tracker.close()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real tracking-server process (uvicorn on a free loopback port) for the whole session."""
    server = start_swappable_server(tmp_path_factory.mktemp("live-server"))
    yield server
    server.stop()


@pytest.fixture
def server_url(live_server: LiveServer, tmp_path: Path) -> str:
    """The http URL of a live tracking server backed by a fresh SQLite file, auth off."""
    live_server.use_database(f"sqlite:///{tmp_path / 'server.db'}")
    return live_server.url


@pytest.fixture(scope="session")
def server_postgres_url() -> Iterator[str]:
    """One PostgreSQL schema for the server kind, emptied before each test (migrating a fresh schema
    per test would double the suite's time)."""
    require_postgres()
    schema = f"t_srv_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _remote(request: pytest.FixtureRequest, database_url: str, *, reset: bool = False) -> Iterator[object]:
    from diary_integrations.client import RemoteTracker

    live: LiveServer = request.getfixturevalue("live_server")
    live.use_database(database_url, reset=reset)
    tracker = RemoteTracker(live.url)
    yield tracker
    tracker.close()


def _server_sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    yield from _remote(request, f"sqlite:///{tmp_path / 'server.db'}")


def _server_postgres(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    yield from _remote(request, request.getfixturevalue("server_postgres_url"), reset=True)


TRACKER_FACTORIES: dict[str, Callable[[pytest.FixtureRequest, Path], Iterator[object]]] = {
    "sqlite": _local_sqlite,
    "postgres": _local_postgres,
    "server-sqlite": _server_sqlite,
    "server-postgres": _server_postgres,
    "sidecar-sqlite": _sidecar_sqlite,
}



@pytest.fixture
def tracker_factories() -> dict[str, Callable[[pytest.FixtureRequest, Path], Iterator[object]]]:
    """`TRACKER_FACTORIES` for a test that opens trackers of several kinds itself. A fixture, because
    `from conftest import ...` finds whichever conftest.py pytest imported last (tests/ray has its own)."""
    return TRACKER_FACTORIES


@pytest.fixture
def experiment_id(tracker) -> int:  # type: ignore[no-untyped-def]
    project_id, _ = tracker.create_project("Fraud detection")
    exp_id, _ = tracker.create_experiment(project_id, ExperimentStatus.IN_PROGRESS, "Decision-tree sweep")
    return exp_id
