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
comment on table ingest.failures is 'Validation failures, one row per failed check and row; errors keep the row out of the roll-up | 校验问题清单';
comment on column ingest.failures.period is 'Month, YYYY-MM | 报送月份';
comment on column ingest.failures.form is 'Form, SG-01..SG-06 | 报表';
comment on column ingest.failures.path is 'File path below <inbox>/<period>/ | 文件';
comment on column ingest.failures.sheet is 'Sheet name | 工作表';
comment on column ingest.failures.excel_row is 'Row number as the sender sees it in Excel | Excel 行号';
comment on column ingest.failures.field is 'Field name of the form schema | 字段';
comment on column ingest.failures.column_header is 'Column header as written in the file | 列标题';
comment on column ingest.failures.value is 'Value as the sender typed it; personal data is never shown | 填写的值（个人信息不显示）';
comment on column ingest.failures.rule is 'Rule broken: type, required, registry, sender_scope, range, min, max, after_month, enum, check_digit, old_id_number, sex_matches_id, le, required_when, min_when, registry_name (warning), warn_max (warning), population_share (warning), roster_conflict (warning), month_on_month (warning) | 规则';
comment on column ingest.failures.severity is 'error (row rejected) or warning (row kept) | 严重程度';
comment on column ingest.failures.message_zh is 'Message for the sender | 给报送单位的说明';
comment on column ingest.failures.run_id is 'Run that found it | 运行编号';

alter table ingest.failures add column if not exists detail_zh varchar;
comment on column ingest.failures.detail_zh is 'What is wrong and what to do, without the location | 问题说明（不含位置）';
