"""Attacks on a real `diary server` process with auth on, on SQLite and on PostgreSQL (issue 12): each
rule of "a team server you can put on a network" is one test here, with the figures it measured printed
(`pytest -s` shows them; docs/decisions.md records them).

One server per backend serves most tests; the login flood and the small-limit batch test get their own
server, so a rate limit one test provokes never reaches another.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from postgres_service import POSTGRES_URL, require_postgres
from server_harness import LiveServer, start_cli_server
from sqlalchemy import create_engine, text

from diary_integrations import ExperimentStatus, LocalTracker, RemoteTracker

SECRET = "attack-suite-secret-" + "x" * 32
ADMIN_PASSWORD = "attack-suite-admin-password"
MIB = 1024 * 1024


def auth_env(**extra: str) -> dict[str, str]:
    return {"DIARY_ENABLE_AUTH": "true", "DIARY_JWT_SECRET": SECRET, "DIARY_ADMIN_PASSWORD": ADMIN_PASSWORD,
            **extra}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def login(url: str, username: str, password: str) -> httpx.Response:
    return httpx.post(f"{url}/auth", json={"username": username, "password": password}, timeout=30)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A factory of fresh database URLs on this backend (a file, or a PostgreSQL schema)."""
    made: list[str] = []
    folder = tmp_path_factory.mktemp(f"attacks-{request.param}")

    def new() -> str:
        name = f"a_{uuid.uuid4().hex[:10]}"
        if request.param == "sqlite":
            return f"sqlite:///{folder / (name + '.db')}"
        require_postgres()
        with create_engine(POSTGRES_URL).begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
        made.append(name)
        return f"{POSTGRES_URL}?options=-csearch_path%3D{name}"

    new.backend = request.param  # type: ignore[attr-defined]
    new.folder = folder  # type: ignore[attr-defined]
    yield new
    if made:
        engine = create_engine(POSTGRES_URL)
        with engine.begin() as conn:
            for name in made:
                conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        engine.dispose()


def start(database, env: dict[str, str], name: str, db_url: str | None = None) -> tuple[LiveServer, str]:
    folder = database.folder / f"{name}-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    url = db_url or database()
    return start_cli_server(folder, url, env=env), url


# Lower than the default 10 so the rate-limit test needs fewer (slow, on purpose) wrong passwords.
PER_USER_LIMIT = 5


@pytest.fixture(scope="module")
def server(database) -> Iterator[tuple[LiveServer, str]]:
    live, url = start(database, auth_env(DIARY_LOGIN_MAX_FAILURES_PER_USER=str(PER_USER_LIMIT)), "shared")
    yield live, url
    live.stop()


@pytest.fixture(scope="module")
def admin(server) -> Iterator[RemoteTracker]:
    tracker = RemoteTracker(server[0].url, username="default", password=ADMIN_PASSWORD)
    yield tracker
    tracker.close()


def test_default_password_refused_at_start_up(database, server):
    """With auth on, `default`/`default` keeps the server from starting; DIARY_ADMIN_PASSWORD sets it."""
    url = database()
    LocalTracker(url).close()  # a database with `default` still on the password `default`
    env = {k: v for k, v in auth_env().items() if k != "DIARY_ADMIN_PASSWORD"}
    done = subprocess.run(
        [sys.executable, "-m", "diary_integrations.cli", "server", "--port", "0", "--db", url],
        capture_output=True, text=True, timeout=120, cwd=database.folder, env={**_base_env(), **env},
    )
    assert done.returncode == 2, done.stderr
    assert "DIARY_ADMIN_PASSWORD" in done.stderr and "listening" not in done.stdout
    # The shared server was started with DIARY_ADMIN_PASSWORD: the default password is gone.
    live = server[0]
    assert login(live.url, "default", "default").status_code == 401
    assert login(live.url, "default", ADMIN_PASSWORD).status_code == 200


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("DIARY_")}


def test_deleted_users_token_refused_after_id_reuse(server, admin):
    """carol logs in, is deleted; a new admin dave must not get her id, and her token is dead."""
    live = server[0]
    carol_id, _ = admin.create_user("carol", "carol-pw")
    token = login(live.url, "carol", "carol-pw").json()["access_token"]
    assert httpx.get(f"{live.url}/auth/me", headers=bearer(token)).json()["username"] == "carol"
    admin.delete_user(carol_id)
    dave_id, _ = admin.create_user("dave", "dave-pw", is_admin=True)
    assert dave_id != carol_id  # ids are never reused
    for path in ("/auth/me", "/user/"):
        answer = httpx.get(f"{live.url}{path}", headers=bearer(token))
        assert answer.status_code == 401 and answer.json()["code"] == "USER_NOT_FOUND", answer.text
    assert httpx.post(f"{live.url}/auth/refresh", headers=bearer(token)).status_code == 401


def test_iteration_ids_are_never_reused(server, admin):
    """A stale process holding a deleted iteration's id cannot write into a newer iteration."""
    project, _ = admin.create_project(f"ids-{uuid.uuid4().hex[:6]}")
    experiment, _ = admin.create_experiment(project, ExperimentStatus.IN_PROGRESS, "E")
    first, _ = admin.create_iteration(experiment, snapshot=False)
    admin.delete_iteration(first)
    second, _ = admin.create_iteration(experiment, snapshot=False)
    assert second > first
    answer = httpx.post(f"{server[0].url}/metric/iteration/{first}/batch", json={"points": [["loss", 1.0, 0]]},
                        headers=bearer(admin.token))
    assert answer.status_code in (404, 422) and admin.get_metrics(second) == []


def test_token_refused_after_password_change_and_logout_all(server, admin):
    live = server[0]
    erin_id, _ = admin.create_user("erin", "erin-pw")
    old = login(live.url, "erin", "erin-pw").json()["access_token"]
    admin.update_user(erin_id, password="erin-pw-2")
    for call in (lambda: httpx.get(f"{live.url}/auth/me", headers=bearer(old)),
                 lambda: httpx.post(f"{live.url}/auth/refresh", headers=bearer(old))):
        answer = call()
        assert answer.status_code == 401 and answer.json()["code"] == "TOKEN_REVOKED", answer.text
    assert login(live.url, "erin", "erin-pw").status_code == 401
    new = login(live.url, "erin", "erin-pw-2").json()["access_token"]
    refreshed = httpx.post(f"{live.url}/auth/refresh", headers=bearer(new)).json()["access_token"]
    assert httpx.post(f"{live.url}/auth/logout-all", headers=bearer(new)).status_code == 200
    for token in (new, refreshed):
        assert httpx.get(f"{live.url}/auth/me", headers=bearer(token)).json()["code"] == "TOKEN_REVOKED"
    assert login(live.url, "erin", "erin-pw-2").status_code == 200


def test_login_time_does_not_tell_which_users_exist(server, admin):
    live = server[0]
    admin.create_user("frank", "frank-pw")
    known, unknown = [], []
    for n in range(PER_USER_LIMIT - 1):  # failures that stay under the per-user limit
        for name, times in (("frank", known), (f"nobody-{n}", unknown)):
            began = time.perf_counter()
            assert login(live.url, name, "wrong").status_code == 401
            times.append(time.perf_counter() - began)
    k, u = statistics.median(known), statistics.median(unknown)
    print(f"\n[{live.url}] login median: known user {k * 1000:.1f} ms, unknown user {u * 1000:.1f} ms, "
          f"ratio {max(k, u) / min(k, u):.2f}")
    assert max(k, u) / min(k, u) < 2.0


def test_failed_logins_are_rate_limited_per_username(server, admin):
    """PER_USER_LIMIT wrong passwords for one username: the next login, even with the right password, is a
    429 with Retry-After and checks no password; another user logs in as before."""
    live = server[0]
    admin.create_user("ivan", "ivan-pw")
    admin.create_user("judy", "judy-pw")
    for _ in range(PER_USER_LIMIT):
        assert login(live.url, "ivan", "wrong").status_code == 401
    locked = login(live.url, "ivan", "ivan-pw")
    assert locked.status_code == 429 and locked.json()["code"] == "TOO_MANY_LOGINS"
    assert 0 < int(locked.headers["retry-after"]) <= 300
    assert login(live.url, "judy", "judy-pw").status_code == 200


def test_project_by_name_does_not_tell_which_projects_exist(server, admin):
    live = server[0]
    admin.create_project(f"hidden-{uuid.uuid4().hex[:6]}")
    admin.create_user("gina", "gina-pw")
    token = login(live.url, "gina", "gina-pw").json()["access_token"]
    hidden = admin.get_projects()[-1].name
    answers = [httpx.get(f"{live.url}/project/by-name", params={"name": name}, headers=bearer(token))
               for name in (hidden, "no-such-project")]
    assert [a.status_code for a in answers] == [404, 404]
    assert answers[0].json() == answers[1].json()


def test_tags_are_read_through_their_projects(server, admin):
    live = server[0]
    mine, _ = admin.create_project(f"tagged-mine-{uuid.uuid4().hex[:6]}")
    theirs, _ = admin.create_project(f"tagged-theirs-{uuid.uuid4().hex[:6]}")
    admin.add_tag("project", mine, "visible-tag")
    admin.add_tag("project", theirs, "secret-tag")
    hana_id, _ = admin.create_user("hana", "hana-pw")
    admin.create_user_permission(hana_id, mine)
    token = login(live.url, "hana", "hana-pw").json()["access_token"]
    values = {t["value"] for t in httpx.get(f"{live.url}/tag/", headers=bearer(token)).json()["data"]}
    assert "visible-tag" in values and "secret-tag" not in values
    assert httpx.get(f"{live.url}/tag/by-value", params={"value": "secret-tag"},
                     headers=bearer(token)).status_code == 404
    secret_id = admin.get_tag("secret-tag").id
    assert httpx.get(f"{live.url}/tag/{secret_id}", headers=bearer(token)).status_code == 404
    # Creating a bare tag would answer 409 for a value used elsewhere: it is an administrator's call.
    assert httpx.post(f"{live.url}/tag/", json={"value": "secret-tag"}, headers=bearer(token)).status_code == 403
    assert httpx.post(f"{live.url}/tag/project/{mine}", json={"value": "mine-too"},
                      headers=bearer(token)).status_code == 403  # read permission only


def test_cross_origin_preflight_refused_by_default(server):
    answer = httpx.options(f"{server[0].url}/project/1", headers={
        "origin": "https://evil.example", "access-control-request-method": "DELETE",
        "access-control-request-headers": "authorization"})
    assert "access-control-allow-origin" not in answer.headers
    assert answer.status_code >= 400


def test_server_errors_carry_no_paths():
    """A 500's message names no file or directory of the server (the log has the details). Checked on
    the server's own error handlers, since a real server has no route known to fail."""
    import fastapi
    from fastapi.testclient import TestClient

    from diary_integrations.server.errors import install_error_handlers

    app = fastapi.FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        open("/nonexistent/secret/dir/file.txt")  # noqa: SIM115 - raises FileNotFoundError with the path

    answer = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert answer.status_code == 500 and answer.json()["code"] == "SERVER_ERROR"
    assert "/nonexistent" not in answer.text and "secret" not in answer.text


def _post_raw(url: str, path: str, headers: dict[str, str], body_bytes: int, chunk: int = MIB) -> tuple[int, str]:
    """POST `body_bytes` of JSON-ish bytes over a raw socket; returns the status and the answer's text.
    With a Content-Length the headers go first and the answer is read before any body is sent."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: {parts.hostname}\r\nContent-Type: application/json\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode())
        if "Transfer-Encoding" in headers:
            sent = 0
            block = b"[" + b"1," * (chunk // 2 - 1) + b"1"
            try:
                while sent < body_bytes:
                    sock.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n")
                    sent += len(block)
                sock.sendall(b"0\r\n\r\n")
            except OSError:
                pass  # the server answered and closed before the body ended
        data = b""
        while b"\r\n\r\n" not in data:
            got = sock.recv(65536)
            if not got:
                break
            data += got
        head_part, _, rest = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head_part.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(rest) < length:
            got = sock.recv(65536)
            if not got:
                break
            rest += got
        status_line = head_part.split(b"\r\n", 1)[0].decode()
        return int(status_line.split()[1]), (head_part + b"\r\n\r\n" + rest).decode("latin-1")


def test_unauthenticated_200mb_body_is_refused_with_413(server, admin):
    live = server[0]
    before = rss_mib(live.process.pid)
    status, answer = _post_raw(live.url, "/project/", {"Content-Length": str(200 * MIB)}, 0)
    assert status == 413 and "33554432 bytes" in answer and "DIARY_MAX_REQUEST_BYTES" in answer
    # Without a length (chunked) and without a token: refused before a byte of the body is read.
    status, answer = _post_raw(live.url, "/project/", {"Transfer-Encoding": "chunked"}, 200 * MIB)
    assert status == 401
    anonymous = rss_mib(live.process.pid) - before
    # With a token but no length: cut off at the limit (32 MiB) while reading, never parsed.
    status, answer = _post_raw(live.url, "/iteration/end", {"Transfer-Encoding": "chunked",
                                                              "Authorization": f"Bearer {_tok(admin)}"},
                               200 * MIB)
    assert status == 413
    authenticated = rss_mib(live.process.pid) - before
    print(f"\n[{live.url}] 200 MB bodies: RSS {before:.0f} MiB before; grew {anonymous:.1f} MiB for the "
          f"anonymous ones, {authenticated:.1f} MiB after an authenticated chunked one")
    assert anonymous < 50
    assert authenticated < 32 + 50
    assert httpx.get(f"{live.url}/health").status_code == 200


def _tok(admin: RemoteTracker) -> str:
    admin.whoami()
    assert admin.token
    return admin.token


@pytest.fixture(scope="module")
def small_server(database) -> Iterator[LiveServer]:
    """A server taking at most 1 MiB per request, whose logins wait at most 1 s for a hash slot; the login
    flood runs last on it, after the batch test."""
    live, _ = start(database, auth_env(DIARY_MAX_REQUEST_BYTES=str(MIB), DIARY_LOGIN_QUEUE_SECONDS="1"), "small")
    yield live
    live.stop()


def test_client_cuts_batches_to_the_servers_limit(small_server):
    """A server that takes at most 1 MiB per request still gets every point of a 1.6 MB batch."""
    live = small_server
    client = RemoteTracker(live.url, username="default", password=ADMIN_PASSWORD)
    project, _ = client.create_project("P")
    experiment, _ = client.create_experiment(project, ExperimentStatus.IN_PROGRESS, "E")
    iteration, _ = client.create_iteration(experiment, snapshot=False)
    points = [("a_rather_long_metric_key_name", 0.123456789, step) for step in range(40_000)]
    assert client.log_metric_points(iteration, points) == len(points)
    assert len(client.get_metric_series([iteration], "a_rather_long_metric_key_name",
                                        max_points=100_000)[iteration]) == len(points)
    raw = httpx.post(f"{live.url}/metric/iteration/{iteration}/batch", headers=bearer(_tok(client)),
                     content=b'{"points": [' + b'["k", 1.0, 0],' * 100_000 + b'["k", 1.0, 0]]}')
    assert raw.status_code == 413 and "1048576 bytes" in raw.json()["message"]
    client.close()


def test_login_flood_keeps_memory_and_health(database, small_server):
    """40 clients posting wrong passwords for 6 s: RSS stays under 300 MiB, /health under 200 ms. (Each
    wrong password costs the server an argon2 verification, so the flood is kept short: it takes both
    cores from the rest of the suite while it lasts.)"""
    live = small_server
    admin = RemoteTracker(live.url, username="default", password=ADMIN_PASSWORD)
    admin.create_user("victim", "victim-pw")
    admin.close()
    stop = time.monotonic() + 6
    statuses: dict[int, int] = {}
    retry_after: list[str] = []
    lock = threading.Lock()

    def attacker(n: int) -> None:
        with httpx.Client(base_url=live.url, timeout=30) as client:
            while time.monotonic() < stop:
                name = "victim" if n % 2 else f"guess-{n}"
                try:
                    answer = client.post("/auth", json={"username": name, "password": f"pw{time.time()}"})
                except httpx.HTTPError:
                    continue
                with lock:
                    statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
                    if answer.status_code == 429 and len(retry_after) < 5:
                        retry_after.append(answer.headers.get("retry-after", ""))

    threads = [threading.Thread(target=attacker, args=(n,), daemon=True) for n in range(40)]
    for thread in threads:
        thread.start()
    peak, health = rss_mib(live.process.pid), []
    with httpx.Client(base_url=live.url, timeout=30) as probe:
        while time.monotonic() < stop:
            began = time.perf_counter()
            assert probe.get("/health").status_code == 200
            health.append(time.perf_counter() - began)
            peak = max(peak, rss_mib(live.process.pid))
            time.sleep(0.2)
    for thread in threads:
        thread.join(timeout=60)
    median = statistics.median(health)
    print(f"\n[{database.backend}] login flood: {statuses}, peak RSS {peak:.0f} MiB, /health median "
          f"{median * 1000:.1f} ms (max {max(health) * 1000:.0f} ms, {len(health)} probes)")
    assert peak < 300
    assert median < 0.2
    assert statuses.get(429, 0) > 0 and all(v.isdigit() and int(v) > 0 for v in retry_after)
    assert statuses.get(500, 0) == 0


def test_dashboard_login_and_per_project_reads_in_chromium(server, admin):
    """Log in on the login page, open a sweep of a readable project; a user without read permission on
    that project is refused the same pages (they look missing) and never sees it in the sidebar."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    from dashboard.seed import seed

    live, db_url = server
    local = LocalTracker(db_url)
    demo = seed(local)
    hidden, _ = local.create_project(f"Other team {uuid.uuid4().hex[:4]}")
    local.close()
    kim_id, _ = admin.create_user("kim", "kim-pw")
    admin.create_user_permission(kim_id, demo.project_id)  # read only
    admin.create_user("lee", "lee-pw")  # no permission at all
    sweep = f"{live.url}/ui/iterations/{demo.sweep_id}/sweep"
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
    artifacts.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            kim = browser.new_context()
            page = kim.new_page()
            page.goto(sweep)
            assert "/ui/login" in page.url
            page.fill("input[name=username]", "kim")
            page.fill("input[name=password]", "kim-pw")
            page.click("button[type=submit]")
            page.wait_for_url(sweep)
            assert page.locator("table.sweep tr.best").get_attribute("data-iteration") == str(demo.best_id)
            sidebar = page.locator(".sidebar").inner_text()
            assert "Fraud detection" in sidebar and "Other team" not in sidebar and "kim" in sidebar
            page.screenshot(path=str(artifacts / "login-sweep.png"), full_page=True)
            cookie = next(c for c in kim.cookies() if c["name"] == "diary_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]  # http here
            assert page.goto(f"{live.url}/ui/").status == 200
            page.click("text=Log out")
            page.wait_for_url(f"{live.url}/ui/login")
            page.goto(sweep)
            assert "/ui/login" in page.url  # the session is gone

            lee = browser.new_context()
            page = lee.new_page()
            page.goto(f"{live.url}/ui/login")
            page.fill("input[name=username]", "lee")
            page.fill("input[name=password]", "wrong")
            page.click("button[type=submit]")
            assert "Wrong username or password" in page.content()
            page.fill("input[name=username]", "lee")
            page.fill("input[name=password]", "lee-pw")
            page.click("button[type=submit]")
            page.wait_for_url(f"{live.url}/ui/")
            assert "Fraud detection" not in page.content()
            for path in (f"/ui/iterations/{demo.sweep_id}/sweep", f"/ui/experiments/{demo.experiment_id}",
                         f"/ui/iterations/{demo.best_id}"):
                answer = page.goto(live.url + path)
                assert answer.status == 404 and "Fraud detection" not in page.content(), path
            series = page.goto(f"{live.url}/ui/api/iterations/{demo.best_id}/series?key=loss")
            assert series.status == 404
            page.screenshot(path=str(artifacts / "login-refused.png"), full_page=True)
        finally:
            browser.close()
    # Without a session cookie the JSON endpoint answers 401, not a page.
    assert httpx.get(f"{live.url}/ui/api/iterations/{demo.best_id}/series?key=loss").status_code == 401
    assert hidden  # made only to be hidden


def test_client_with_the_password_survives_logout_all_but_not_a_password_change(server, admin):
    live = server[0]
    mia_id, _ = admin.create_user("mia", "mia-pw")
    job = RemoteTracker(live.url, username="mia", password="mia-pw")
    assert job.whoami().username == "mia"
    httpx.post(f"{live.url}/auth/logout-all", headers=bearer(job.token))
    assert job.whoami().username == "mia"  # logged in again with the password it holds
    admin.update_user(mia_id, password="mia-pw-2")
    from diary_integrations import AuthError

    with pytest.raises(AuthError):
        job.whoami()
    job.close()
