"""The `diary` command.

    diary ls [EXPERIMENT_ID] [--uri URI] [--json]          projects and experiments with ids; an experiment's iterations
    diary search EXPERIMENT_IDS --filter F --order-by O    iterations matching a filter (MLflow's grammar), as a table,
                 [--columns a,b] [--csv|--json]          CSV or JSON
    diary show ITERATION_ID [--uri URI] [--json]           one iteration: status, error, parameters, last metrics
    diary tree EXPERIMENT_ID [--uri URI] [--metrics a,b]   the iteration tree with statuses and metrics
    diary reap [--older-than 5m] [--experiment ID]         mark RUNNING iterations with a stale heartbeat KILLED
    diary ui [DATABASE] [--host H] [--port 9001]           the read-only web dashboard
    diary server [--host H] [--port P] [--uri URL]         run the tracking server (settings: DIARY_* and .env)
    diary sync [--uri URL] [--dry-run]                     send the local journal of writes a server missed
    diary user list|add|passwd|remove|grant ...            accounts and project permissions (administrators)
    diary models [--project P] [--json]                    registered models: versions, stages, aliases
    diary promote MODEL VERSION STAGE [--project P]        move a model version to a stage
    diary db current|upgrade [--uri URI]                   the database's schema revision; migrate it
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence

from ..tracker.errors import DiaryError
from ..tracker.lifecycle import DEFAULT_LEASE_SECONDS, heartbeat_lease

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# The lease: three missed heartbeats before a run counts as dead, so a busy but live process is never
# reaped. `diary reap` uses $DIARY_HEARTBEAT_LEASE (90 s by default), as the runs it judges do.
MIN_REAP_SECONDS = DEFAULT_LEASE_SECONDS


def parse_duration(text: str) -> float:
    """`90`, `90s`, `5m`, `2h`, `1d` -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 90s, 5m, 2h)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]


def _add_uri(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--uri", default=None,
        help="database path, SQLAlchemy URL or http(s) server (default: $DIARY_TRACKING_URI or ./deardiary.db)",
    )
    parser.add_argument("--username", default=os.environ.get("DIARY_USERNAME"),
                        help="for a server with auth on (default: $DIARY_USERNAME)")
    parser.add_argument("--password", default=os.environ.get("DIARY_PASSWORD"),
                        help="(default: $DIARY_PASSWORD, which keeps it out of the process list)")


def _add_search_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--filter", default=None,
                        help="MLflow's grammar, e.g. \"params.opt = 'adam' and metrics.loss < 0.3\"")
    parser.add_argument("--order-by", action="append", default=None, metavar="KEY [ASC|DESC]",
                        help="e.g. 'metrics.loss' or 'params.lr DESC' (repeat for more; then by id)")


class CommandError(Exception):
    """A problem to report in one line, without a traceback."""


def _tracker(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The tracker to read; a database file that does not exist is an error, never created."""
    from ..connection import check_uri, connect, missing_database_file, resolve_uri

    target = check_uri(resolve_uri(args.uri))
    missing = missing_database_file(target)
    if missing is not None:
        raise CommandError(f"no database at {missing} (give one with --uri or $DIARY_TRACKING_URI)")
    return connect(target, username=args.username, password=args.password)


def _tree(args: argparse.Namespace) -> int:
    from .tree import format_tree

    metrics = [m for m in args.metrics.split(",") if m] if args.metrics else None
    tracker = _tracker(args)
    try:
        print(format_tree(tracker, args.experiment_id, metrics=metrics, parameters=not args.no_params))
    except LookupError as exc:
        raise CommandError(f"{exc} in {tracker.url}") from exc
    return 0


def _keys(text: str | None) -> list[str] | None:
    return [k for k in text.split(",") if k] if text else None


def _print_json(data: object) -> None:
    import json

    print(json.dumps(data, indent=2, ensure_ascii=False))


def _ls(args: argparse.Namespace) -> int:
    from . import listing

    if args.experiment_id is None and (args.filter or args.order_by):
        raise CommandError("--filter and --order-by list an experiment's iterations: give its EXPERIMENT_ID")
    tracker = _tracker(args)
    try:
        if args.experiment_id is None:
            data: object = listing.overview(tracker)
            text = listing.format_overview(data, tracker.url)  # type: ignore[arg-type]
        else:
            data = listing.experiment_listing(tracker, args.experiment_id, metrics=_keys(args.metrics),
                                              parameters=_keys(args.params), filter_text=args.filter or "",
                                              order_by=args.order_by or [])
            text = listing.format_experiment_listing(data)  # type: ignore[arg-type]
    except LookupError as exc:
        raise CommandError(f"{exc} in {tracker.url} (diary ls lists the experiments)") from exc
    if args.json:
        _print_json(data)
    else:
        print(text)
    return 0


def _experiment_ids(texts: list[str]) -> list[int]:
    """`1 2`, `1,2` or both, as ids."""
    ids = []
    for part in (p for text in texts for p in text.split(",") if p.strip()):
        if not part.strip().isdigit():
            raise CommandError(f"not an experiment id: {part!r} (diary ls lists the experiments)")
        ids.append(int(part))
    return ids


def _search(args: argparse.Namespace) -> int:
    from . import listing

    tracker = _tracker(args)
    try:
        data = listing.search_listing(
            tracker, _experiment_ids(args.experiment_ids), args.filter or "", args.order_by or [],
            columns=_keys(args.columns), max_results=args.max_results,
        )
    except ValueError as exc:
        if isinstance(exc, DiaryError):
            raise
        raise CommandError(str(exc)) from exc
    if args.json:
        _print_json(data["iterations"])
    elif args.csv:
        sys.stdout.write(listing.search_csv(data))
    else:
        print(listing.format_search_listing(data))
    return 0


def _show(args: argparse.Namespace) -> int:
    from . import listing

    tracker = _tracker(args)
    try:
        detail = listing.iteration_detail(tracker, args.iteration_id)
    except LookupError as exc:
        raise CommandError(f"{exc} in {tracker.url} (diary ls EXPERIMENT_ID lists its iterations)") from exc
    if args.json:
        _print_json(detail)
    else:
        print(listing.format_iteration_detail(detail))
    return 0


def _reap(args: argparse.Namespace) -> int:
    lease = heartbeat_lease()
    if args.older_than < lease and not args.force:
        raise CommandError(
            f"--older-than {args.older_than:g}s would kill live runs: a with_iteration beats every "
            f"{lease / 3:g}s, so use at least the lease, {lease:g}s (or --force)"
        )
    reaped = _tracker(args).reap(older_than=args.older_than, experiment_id=args.experiment)
    print(f"marked {len(reaped)} iteration(s) KILLED" + (f": {', '.join(map(str, reaped))}" if reaped else ""))
    return 0


def _server(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from ..connection import check_uri
    from ..server import ServerSettings, create_app, serve
    from ..tracker.database import normalize_url
    from ..tracker.errors import DiaryError

    db = args.db and normalize_url(check_uri(args.db, database_only=True))
    overrides = {"host": args.host, "port": args.port, "database_url": db, "mlflow_artifact_root": args.artifact_root}
    try:
        settings = ServerSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:
        print(f"diary server: {exc}", file=sys.stderr)
        return 2
    try:
        # With workers, this app is never served: building it checks the settings, migrates the
        # database and sets the administrator's password once, before any worker starts. The database
        # is opened here, before "listening" is printed: one that cannot be reached, or that a newer
        # diary-integrations wrote, is one line naming it, not a traceback after the server "started".
        app = create_app(settings)
        app.state.tracker.engine  # noqa: B018 - connects, migrates and seeds
    except (DiaryError, SQLAlchemyError, OSError) as exc:
        print(f"diary server: cannot use the database {_shown_url(settings.database_url)}: {_one_line(exc)}",
              file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"diary server: {exc}", file=sys.stderr)
        return 2
    if args.workers is None:
        args.workers = default_workers()
    if args.workers > 1:
        app.state.tracker.close()
        # Each worker builds its app from DIARY_*: what the command line said goes there too.
        os.environ["DIARY_DATABASE_URL"] = settings.database_url
        os.environ["DIARY_HOST"], os.environ["DIARY_PORT"] = settings.host, str(settings.port)
        if settings.mlflow_artifact_root is not None:
            os.environ["DIARY_MLFLOW_ARTIFACT_ROOT"] = settings.mlflow_artifact_root
    serve(app, settings.host, settings.port, workers=args.workers)
    return 0


def _shown_url(url: str) -> str:
    """A database URL as it may be printed: without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot parse has no password to hide
        return url


def _one_line(exc: BaseException) -> str:
    """The cause of a failure in one line: a driver's own message when SQLAlchemy wraps one."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


def _db(args: argparse.Namespace) -> int:
    """`diary db current|upgrade`: a database's schema revision against this package's, and migrating it."""
    from ..connection import check_uri, missing_database_file, resolve_uri
    from ..tracker import migrate
    from ..tracker.database import create_tracker_engine, normalize_url

    target = check_uri(resolve_uri(args.uri), database_only=True)
    missing = missing_database_file(target)
    if missing is not None:
        raise CommandError(f"no database at {missing} (give one with --uri or $DIARY_TRACKING_URI)")
    target = normalize_url(target)
    engine = create_tracker_engine(target)
    try:
        before = migrate.current_revision(engine)
        if args.action == "upgrade":
            # Several servers may run this at once: PostgreSQL's advisory lock (SQLite's write lock) lets one
            # migrate while the others wait, then find the head.
            migrate.upgrade_to_head(engine)
            after = migrate.current_revision(engine)
            print(f"schema {after}" + (" (already current)" if after == before else f" (was {before or 'empty'})"))
            return 0
    finally:
        engine.dispose()
    if before is None:
        state = "no diary schema yet: the first use creates it"
    elif before == migrate.HEAD:
        state = "current"
    elif before in migrate.known_revisions():
        state = f"older than this package's {migrate.HEAD}: `diary db upgrade` migrates it (servers do on start)"
    else:
        state = f"newer than this package's {migrate.HEAD}: upgrade diary-integrations"
    print(f"schema {before or '-'} at {_shown_url(target)}: {state}")
    return 0
def default_workers() -> int:
    """One server worker per core this process may run on (at most 64): a worker is one event loop."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(64, cores))


def _worker_count(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"--workers must be a whole number from 1 to 64, got {text!r}")
    return int(text)


def _import(args: argparse.Namespace) -> int:
    """`diary import mlflow`: the logic is in mlflow_import.py."""
    from ..connection import check_uri, connect, resolve_uri
    from .mlflow_import import import_mlflow

    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise CommandError("diary import mlflow needs the mlflow package: pip install mlflow") from None
    target = check_uri(resolve_uri(args.to))
    if target.startswith(("http://", "https://")):
        raise CommandError("--to must be a diary database (a path or SQLAlchemy URL), not a server")
    tracker = connect(target)
    try:
        done = import_mlflow(args.source, tracker, log=print)
    finally:
        tracker.close()
    print(f"imported {done.runs} run(s) ({done.points} metric points) from {done.experiments} experiment(s); "
          f"{done.skipped} copied before were skipped")
    return 0


def _sync(args: argparse.Namespace) -> int:
    """Replay every journal (or one server's): exactly once thanks to the keys; what was delivered is
    removed, what the server refused for good is kept beside it as `.rejected`."""
    from ..client import RemoteTracker, journal

    if args.uri is not None and not args.uri.startswith(("http://", "https://")):
        raise CommandError(f"--uri must be a tracking server (http:// or https://), got {args.uri!r}")
    files = journal.journal_files(args.uri)
    if not files:
        where = f" for {journal.public_url(args.uri)}" if args.uri else ""
        print(f"nothing to send{where} (journals live in {journal.spool_dir()})")
        return 0
    by_url: dict[str, list] = {}
    for path in files:
        url = journal.public_url(args.uri) if args.uri else journal.file_url(path)
        by_url.setdefault(url or "", []).append(path)
    status = 0
    for url, paths in by_url.items():
        if args.dry_run:
            for path in paths:
                print(f"would send {journal.describe(path)} [{path}]")
            continue
        if not url:
            print(f"diary sync: no server named in {', '.join(map(str, paths))}", file=sys.stderr)
            status = 1
            continue
        tracker = RemoteTracker(url, username=args.username, password=args.password, token=args.token,
                                replay_journal=False)
        try:
            for path in paths:
                summary = journal.describe(path)
                report = journal.replay_file(tracker, path, quiet=True)
                if not report.files:
                    print(f"skipped {path}: another process is sending it")
                    continue
                print(f"sent {report.sent} of {report.sent + report.rejected + report.left} writes of {summary}"
                      + (f"; {report.rejected} refused, kept in {path.name}{journal.REJECTED}" if report.rejected
                         else "") + (f"; {report.left} left for later" if report.left else ""))
                for error in report.errors:
                    print(f"  {error}", file=sys.stderr)
                if report.rejected or report.left:
                    status = 1
                if report.left:
                    break  # unreachable: the rest of this server's journals would fail the same way
        finally:
            tracker.close()
    return status


def _ui(args: argparse.Namespace) -> int:
    from ..dashboard.cli import serve_dashboard

    return serve_dashboard(args.database or args.uri, host=args.host, port=args.port,
                           username=args.username, password=args.password)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("diary-integrations")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _new_password(args: argparse.Namespace) -> str:
    """The new password: $DIARY_NEW_PASSWORD, else asked twice on a terminal, else one line of stdin."""
    given = os.environ.get("DIARY_NEW_PASSWORD")
    if given:
        return given
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass(f"new password for {args.username_arg}: ")
        if first != getpass.getpass("again: "):
            raise CommandError("the two passwords differ")
        password = first
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise CommandError("no password given (type it, pipe it in, or set $DIARY_NEW_PASSWORD)")
    return password


def _found_user(tracker, username: str):  # type: ignore[no-untyped-def]
    user = tracker.get_user(username)
    if user is None:
        raise CommandError(f"no user {username!r}")
    return user


def _user(args: argparse.Namespace) -> int:
    tracker = _tracker(args)
    action = args.action
    if action == "list":
        for user in tracker.get_users():
            print(f"{user.id}\t{user.username}\t{'admin' if user.is_admin else '-'}\t"
                  f"{' '.join(p for p in (user.first_name, user.last_name) if p)}")
        return 0
    if action == "add":
        password = _new_password(args)
        new_id, _ = tracker.create_user(args.username_arg, password, first_name=args.first_name,
                                        last_name=args.last_name, is_admin=args.admin)
        print(f"user {args.username_arg!r} created (id {new_id}{', administrator' if args.admin else ''})")
        return 0
    user = _found_user(tracker, args.username_arg)
    if action == "passwd":
        tracker.update_user(user.id, password=_new_password(args))
        print(f"password of {user.username!r} changed; their older tokens and sessions no longer work")
    elif action == "remove":
        tracker.delete_user(user.id)
        print(f"user {user.username!r} removed")
    elif action == "grant":
        project = tracker.get_project(int(args.project)) if args.project.isdigit() else None
        if project is None:
            project = tracker.get_project_by_name(args.project)
        if project is None:
            raise CommandError(f"no project {args.project!r}")
        flags = {"create": args.create, "read": not args.no_read, "update": args.update, "delete": args.delete}
        existing = tracker.get_user_permission(user.id, project.id)
        if existing is None:
            tracker.create_user_permission(user.id, project.id, **flags)
        else:
            tracker.update_user_permission(existing.id, **flags)
        shown = ", ".join(k for k, v in flags.items() if v) or "nothing"
        print(f"{user.username!r} may now {shown} on project {project.id} ({project.name!r})")
    return 0


# -- the model registry (registry.py) ------------------------------------------------------------


def _project_ref(text: str | None) -> int | str | None:
    return int(text) if text is not None and text.isdigit() else text


def _models(args: argparse.Namespace) -> int:
    from .. import registry

    models = registry.models_overview(_tracker(args), _project_ref(args.project))
    if args.json:
        _print_json(models)
    else:
        print(registry.format_models_overview(models))
    return 0


def _promote(args: argparse.Namespace) -> int:
    from .. import registry

    version = registry.promote(_tracker(args), args.model, args.version, args.stage.upper(),
                               project=_project_ref(args.project))
    if args.json:
        _print_json({"model_id": version.model_id, "id": version.id, "version": version.version,
                     "stage": version.stage.name})
    else:
        print(f"{args.model} v{version.version} is now {version.stage.name}")
    return 0


def _add_registry_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    models = commands.add_parser("models", help="registered models with their versions, stages and aliases")
    models.add_argument("--project", default=None, help="only this project (name or id)")
    models.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_uri(models)
    models.set_defaults(run=_models)
    promote = commands.add_parser("promote", help="move a model version to a stage (PRODUCTION archives the others)")
    promote.add_argument("model", help="the model's name")
    promote.add_argument("version", type=int, help="the version's number (diary models lists them)")
    promote.add_argument("stage", help="NO_STAGE, STAGING, PRODUCTION or ARCHIVED")
    promote.add_argument("--project", default=None, help="the model's project (name or id), when several have one")
    promote.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_uri(promote)
    promote.set_defaults(run=_promote)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diary", description="diary-integrations experiment tracker")
    parser.add_argument("--version", action="version", version=f"diary-integrations {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    ls = commands.add_parser("ls", help="list projects and experiments with their ids, or an experiment's iterations")
    ls.add_argument("experiment_id", type=int, nargs="?", default=None, help="list this experiment's iterations")
    ls.add_argument("--metrics", default=None, help="comma-separated metric keys (default: the score and a few more)")
    ls.add_argument("--params", default=None, help="comma-separated parameter keys (default: those that vary)")
    ls.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_search_arguments(ls)
    _add_uri(ls)
    ls.set_defaults(run=_ls)

    search = commands.add_parser("search", help="iterations of some experiments that match a filter, in an order")
    search.add_argument("experiment_ids", nargs="+", metavar="EXPERIMENT_IDS", help="experiment ids (1 2 or 1,2)")
    _add_search_arguments(search)
    search.add_argument("--columns", default=None,
                        help="comma-separated: id,name,experiment,parent,status,created,duration,error, params.KEY, "
                             "metrics.KEY (default: the varying parameters and the metrics the query names)")
    search.add_argument("--max-results", type=int, default=1000, help="at most this many rows (default 1000)")
    shape = search.add_mutually_exclusive_group()
    shape.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    shape.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_uri(search)
    search.set_defaults(run=_search)

    show = commands.add_parser("show", help="one iteration: status, error, parameters and last metrics")
    show.add_argument("iteration_id", type=int, help="the iteration's id (diary ls EXPERIMENT_ID lists them)")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_uri(show)
    show.set_defaults(run=_show)

    tree = commands.add_parser("tree", help="print an experiment's iteration tree")
    tree.add_argument("experiment_id", type=int, help="the experiment's id (diary ls lists them)")
    tree.add_argument("--metrics", default=None, help="comma-separated metric keys to show (default: all)")
    tree.add_argument("--no-params", action="store_true", help="leave parameters out")
    _add_uri(tree)
    tree.set_defaults(run=_tree)

    reap = commands.add_parser("reap", help="mark iterations whose heartbeat stopped as KILLED")
    reap.add_argument("--older-than", type=parse_duration, default=300.0, help="heartbeat age, e.g. 5m (default)")
    reap.add_argument("--experiment", type=int, default=None, help="only this experiment")
    reap.add_argument("--force", action="store_true",
                      help="allow --older-than below the lease ($DIARY_HEARTBEAT_LEASE, 90s)")
    _add_uri(reap)
    reap.set_defaults(run=_reap)

    ui = commands.add_parser("ui", help="serve the read-only web dashboard")
    ui.add_argument("database", nargs="?", default=None,
                    help="database path, SQLAlchemy URL or http(s) server (the same as --uri)")
    ui.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    ui.add_argument("--port", type=int, default=9001, help="port (default 9001; 0 picks a free one)")
    _add_uri(ui)
    ui.set_defaults(run=_ui)

    server = commands.add_parser("server", help="run the tracking server (FastAPI + uvicorn)")
    server.add_argument("--host", default=None, help="interface to listen on (default: $DIARY_HOST or 127.0.0.1)")
    server.add_argument("--port", type=int, default=None, help="port; 0 picks a free one (default: 9000)")
    server.add_argument("--uri", "--db", dest="db", default=None,
                        help="database: SQLite path or SQLAlchemy URL (default: $DIARY_DATABASE_URL); "
                             "--db is the older spelling")
    server.add_argument("--default-artifact-root", dest="artifact_root", default=None,
                        help="where MLflow clients put the artifacts of the experiments they create "
                             "(a URI such as file:///data/mlruns or s3://bucket/path; default: "
                             "$DIARY_MLFLOW_ARTIFACT_ROOT, else through this server into diary's resources)")
    server.add_argument("--workers", type=_worker_count, default=None,
                        help="uvicorn worker processes on the one port (default: the cores this process may use; "
                             "see README, Scaling out)")
    server.set_defaults(run=_server)

    sync = commands.add_parser("sync", help="send the local journal of writes a tracking server could not take")
    sync.add_argument("--dry-run", action="store_true", help="list what would be sent, send nothing")
    _add_uri(sync)
    sync.add_argument("--token", default=os.environ.get("DIARY_TOKEN"), help="bearer token (default: $DIARY_TOKEN)")
    sync.set_defaults(run=_sync)

    imports = commands.add_parser("import", help="copy another tracker's store into a diary database")
    kinds = imports.add_subparsers(dest="kind", required=True)
    from_mlflow = kinds.add_parser("mlflow", help="an MLflow store (file, SQL or server), nested runs as trees")
    from_mlflow.add_argument("--from", dest="source", required=True, help="MLflow tracking URI: file:, sqlite:, ...")
    from_mlflow.add_argument("--to", default=None,
                             help="diary database (default: $DIARY_TRACKING_URI or ./deardiary.db)")
    from_mlflow.set_defaults(run=_import)

    user = commands.add_parser(
        "user", help="manage accounts and project permissions (on a database file, or a server as an admin)",
        description="New passwords come from $DIARY_NEW_PASSWORD, a prompt, or one line of stdin, never "
                    "from the command line. On a database file this works while the server is stopped, e.g. "
                    "`diary user passwd default --uri deardiary.db` before the first start with auth on.",
    )
    actions = user.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every user: id, username, admin flag, name")
    _add_uri(listing)
    add = actions.add_parser("add", help="create a user")
    add.add_argument("username_arg", metavar="USERNAME", help="the new user's login name")
    add.add_argument("--admin", action="store_true", help="an administrator")
    add.add_argument("--first-name", default="", help="shown beside the username")
    add.add_argument("--last-name", default="", help="shown beside the username")
    _add_uri(add)
    passwd = actions.add_parser("passwd", help="set a user's password (ends their tokens and sessions)")
    passwd.add_argument("username_arg", metavar="USERNAME", help="whose password to set")
    _add_uri(passwd)
    remove = actions.add_parser("remove", help="delete a user")
    remove.add_argument("username_arg", metavar="USERNAME", help="the user to delete")
    _add_uri(remove)
    grant = actions.add_parser("grant", help="set a user's permissions on a project (read unless --no-read)")
    grant.add_argument("username_arg", metavar="USERNAME", help="the user whose permissions to set")
    grant.add_argument("project", metavar="PROJECT", help="project id or name")
    for flag in ("create", "update", "delete"):
        grant.add_argument(f"--{flag}", action="store_true", help=f"also {flag}")
    grant.add_argument("--no-read", action="store_true", help="take read permission away")
    _add_uri(grant)
    user.set_defaults(run=_user)
    _add_registry_commands(commands)

    db = commands.add_parser("db", help="a database's schema: which revision it is at, and migrating it")
    db_actions = db.add_subparsers(dest="action", required=True)
    for action, text in (("current", "print the database's schema revision and this package's"),
                         ("upgrade", "migrate the database to this package's schema (one server at a time)")):
        sub = db_actions.add_parser(action, help=text)
        sub.add_argument("--uri", default=None,
                         help="database path or SQLAlchemy URL (default: $DIARY_TRACKING_URI or ./deardiary.db)")
        sub.set_defaults(run=_db)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sqlalchemy.exc import SQLAlchemyError

    try:
        status = args.run(args)
        sys.stdout.flush()  # inside the try: a reader that went away (`| head`) fails here, not at exit
        return status
    except BrokenPipeError:
        return _reader_gone()
    except (CommandError, DiaryError, SQLAlchemyError, ModuleNotFoundError) as exc:
        # Ordinary failures (no such database, server down, wrong password) get one line, not a traceback.
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, ModuleNotFoundError) and "pip install" not in text:
            text += " (the server and dashboard need: pip install 'diary-integrations[server]')"
        print(f"diary {args.command}: {text}", file=sys.stderr)
        return 1


def _reader_gone() -> int:
    """`diary show 7 | head -3`: the reader closed the pipe. Stop quietly, as Unix tools do on SIGPIPE
    (exit status 128 + 13), and point stdout at /dev/null so the interpreter's last flush cannot fail
    with a second BrokenPipeError."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141

