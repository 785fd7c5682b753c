-- Every sheet of every readable file: which form it holds and how many rows it gave.
create table if not exists ingest.sheets (
    period         varchar not null,
    path           varchar not null,
    sheet          varchar not null,
    form           varchar,
    header_row     integer,
    sender         varchar,
    data_rows      integer not null,
    rows_rejected  integer not null,
    status         varchar not null,
    reason_zh      varchar,
    reason_en      varchar,
    run_id         varchar not null
);

alter table ingest.sheets add column if not exists sender_code varchar;
alter table ingest.sheets add column if not exists headers varchar;
