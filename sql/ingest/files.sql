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
comment on table ingest.files is 'Files of each month''s inbox, one row per file, whether it could be read or not | 每月收到的文件';
comment on column ingest.files.period is 'Month, YYYY-MM | 报送月份';
comment on column ingest.files.path is 'Path below <inbox>/<period>/ | 文件路径';
comment on column ingest.files.sha256 is 'SHA-256 of the file''s bytes | 文件内容哈希';
comment on column ingest.files.size_bytes is 'Size in bytes | 文件大小（字节）';
comment on column ingest.files.received_at is 'Modification time of the file, UTC | 收到时间（文件修改时间，UTC）';
comment on column ingest.files.format is 'File extension | 文件格式';
comment on column ingest.files.status is 'read, or rejected (whole file) | 读取状态';
comment on column ingest.files.reason_zh is 'Why the file was rejected, for the sender | 拒收原因';
comment on column ingest.files.reason_en is 'Why the file was rejected, in English for the team | 拒收原因（英文）';
comment on column ingest.files.run_id is 'Run that read the file | 运行编号';

-- Added after the first release: kept as ALTERs so that older warehouses gain them on the next run.
alter table ingest.files add column if not exists sender_code varchar;
comment on column ingest.files.sender_code is 'Unit that sent the file: named in a sheet (填报单位), else the nearest unit covering its rows, else a folder named after a unit | 报送单位代码';
