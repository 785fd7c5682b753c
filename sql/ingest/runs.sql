-- One row per run of a month: what it read and what it kept out.
create table if not exists ingest.runs (
    run_id          varchar primary key,
    period          varchar not null,
    flow_run_id     varchar,
    started_at      timestamp not null,
    finished_at     timestamp,
    inbox           varchar,
    files           integer,
    files_rejected  integer,
    rows_read       integer,
    rows_rejected   integer,
    status          varchar
);

alter table ingest.runs add column if not exists key_id varchar;
alter table ingest.runs add column if not exists files_reused integer;
alter table ingest.runs add column if not exists validated_with varchar;
alter table ingest.runs add column if not exists read_with varchar;
alter table ingest.runs add column if not exists rolled_with varchar;
alter table ingest.runs add column if not exists units_rerolled integer;
