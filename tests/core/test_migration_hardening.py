"""Migration 0004 on a database made at revision 0002 with rows in it: every row, id and foreign key
kept, ids never reused afterwards, and the tables AUTOINCREMENT on SQLite."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text

from diary_integrations import ExperimentStatus, LocalTracker
from diary_integrations.tracker.database import create_tracker_engine
from diary_integrations.tracker.migrate import alembic_config, head_revision, upgrade_to_head

ROWS = [
    "insert into \"user\" (username,password_hash,first_name,last_name,is_admin,created_date)"
    " values ('carol','x','','',false,'2026-01-01')",
    "insert into \"user\" (username,password_hash,first_name,last_name,is_admin,created_date)"
    " values ('dave','x','','',false,'2026-01-01')",
    "insert into project (name,description,created_date) values ('p','','2026-01-01')",
    "insert into experiment (project_id,status,name,description,created_date) values (1,1,'e','','2026-01-01')",
    "insert into iteration (experiment_id,status,notes,error_message,traceback,created_date,heartbeat_date)"
    " values (1,1,'','','','2026-01-01','2026-01-01')",
    "insert into iteration (experiment_id,parent_iteration_id,status,notes,error_message,traceback,created_date,"
    "heartbeat_date) values (1,1,1,'','','','2026-01-01','2026-01-01')",
    "insert into iteration (experiment_id,status,notes,error_message,traceback,created_date,heartbeat_date)"
    " values (1,1,'','','','2026-01-01','2026-01-01')",
    "insert into metric (iteration_id,key,value,step,recorded_at) values (2,'loss',1.0,0,1.0)",
    "insert into parameter (iteration_id,key,value) values (2,'lr','0.1')",
    "insert into user_permission (user_id,project_id,create_permission,read_permission,update_permission,"
    "delete_permission) values (1,1,false,true,false,false)",
    "insert into tag (value) values ('t')",
    "insert into iteration_tag (iteration_id,tag_id) values (2,1)",
    "delete from iteration where id = 3",  # the highest id deleted before the upgrade
]
COUNTS = {"user": 2, "project": 1, "experiment": 1, "iteration": 2, "metric": 1, "parameter": 1,
          "user_permission": 1, "tag": 1, "iteration_tag": 1}


@pytest.fixture(params=["sqlite", "postgres"])
def old_database(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    return request.getfixturevalue("postgres_url")


def test_upgrade_from_0002_keeps_rows_and_never_reuses_ids(old_database: str):
    engine = create_tracker_engine(old_database)
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
    with engine.begin() as conn:
        for statement in ROWS:
            conn.execute(text(statement))
    upgrade_to_head(engine)
    with engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar_one() == head_revision()
        for table, count in COUNTS.items():
            assert conn.execute(text(f'select count(*) from "{table}"')).scalar_one() == count, table
        assert conn.execute(text("select parent_iteration_id from iteration where id = 2")).scalar_one() == 1
        assert conn.execute(text('select token_generation from "user" where id = 1')).scalar_one() == 0
        if engine.dialect.name == "sqlite":
            assert conn.execute(text("pragma foreign_keys")).scalar_one() == 1  # switched back on
            sql = conn.execute(text("select sql from sqlite_master where name = 'experiment'")).scalar_one()
            assert "AUTOINCREMENT" in sql and "ck_experiment_status" in sql
    engine.dispose()

    tracker = LocalTracker(old_database)
    try:
        experiment, _ = tracker.create_experiment(1, ExperimentStatus.IN_PROGRESS, "after")
        newest, _ = tracker.create_iteration(experiment, snapshot=False)
        tracker.delete_iteration(newest)
        again, _ = tracker.create_iteration(experiment, snapshot=False)
        assert again > newest  # a deleted id is never handed out again
        user, _ = tracker.create_user("erin", "pw")
        tracker.delete_user(user)
        assert tracker.create_user("frank", "pw").id > user
        assert tracker.get_metrics(2)[0].value == 1.0 and tracker.get_parameters(2)[0].value == "0.1"
    finally:
        tracker.close()
