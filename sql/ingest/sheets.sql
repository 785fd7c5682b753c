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
comment on table ingest.sheets is 'Sheets of the month''s files, one row per table of a sheet (a sheet may hold several, each under its own header; a hidden or unrecognised sheet is one row) | 每个工作表（表格）的识别结果';
comment on column ingest.sheets.period is 'Month, YYYY-MM | 报送月份';
comment on column ingest.sheets.path is 'File path below <inbox>/<period>/ | 文件路径';
comment on column ingest.sheets.sheet is 'Sheet name (the file stem for CSV) | 工作表名称';
comment on column ingest.sheets.form is 'Form recognised from the content: SG-01..SG-06 | 识别出的报表';
comment on column ingest.sheets.header_row is 'Excel row number of the header | 表头所在行';
comment on column ingest.sheets.sender is 'Sender named in the sheet (填报单位), if any | 填报单位';
comment on column ingest.sheets.data_rows is 'Data rows read | 数据行数';
comment on column ingest.sheets.rows_rejected is 'Data rows rejected by validation | 未通过校验的行数';
comment on column ingest.sheets.status is 'read, skipped (no form, empty, instructions, hidden) or rejected (whole table) | 状态';
comment on column ingest.sheets.reason_zh is 'Why skipped or rejected, for the sender | 原因';
comment on column ingest.sheets.reason_en is 'Why skipped or rejected, in English for the team | 跳过或拒收原因（英文）';
comment on column ingest.sheets.run_id is 'Run that read the sheet | 运行编号';

alter table ingest.sheets add column if not exists sender_code varchar;
comment on column ingest.sheets.sender_code is 'Registry unit named by 填报单位, if it names one unambiguously | 填报单位代码';
alter table ingest.sheets add column if not exists headers varchar;
comment on column ingest.sheets.headers is 'Field to header text as written in the sheet, JSON | 各字段的列标题（JSON）';
