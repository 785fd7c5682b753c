-- Every file found in the month's inbox, read or not.
create table if not exists ingest.files (
    period       varchar not null,
    path         varchar not null,
    sha256       varchar not null,
    size_bytes   bigint not null,
    received_at  timestamp not null,
    format       varchar,
    status       varchar not null,
    reason_zh    varchar,
    reason_en    varchar,
    run_id       varchar not null,
    primary key (period, path)
);

-- Added after the first release: kept as ALTERs so that older warehouses gain them on the next run.
alter table ingest.files add column if not exists sender_code varchar;
