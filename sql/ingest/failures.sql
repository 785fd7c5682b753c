-- Every failed check of every row: where it is in the sender's file and what to fix.
create table if not exists ingest.failures (
    period         varchar not null,
    form           varchar not null,
    path           varchar not null,
    sheet          varchar not null,
    excel_row      integer not null,
    field          varchar not null,
    column_header  varchar,
    value          varchar,
    rule           varchar not null,
    severity       varchar not null,
    message_zh     varchar not null,
    run_id         varchar not null
);

alter table ingest.failures add column if not exists detail_zh varchar;
