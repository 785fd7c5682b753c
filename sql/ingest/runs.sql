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
comment on table ingest.runs is 'Runs of the monthly roll-up (one row per run) | 每次月度汇总运行';
comment on column ingest.runs.run_id is 'Run id (UUID) | 运行编号';
comment on column ingest.runs.period is 'Month rolled up, YYYY-MM | 汇总月份';
comment on column ingest.runs.flow_run_id is 'Prefect flow run id | Prefect 流程运行编号';
comment on column ingest.runs.started_at is 'Start time, UTC | 开始时间（UTC）';
comment on column ingest.runs.finished_at is 'End time, UTC | 结束时间（UTC）';
comment on column ingest.runs.inbox is 'Inbox folder read | 读取的收件目录';
comment on column ingest.runs.files is 'Files found | 文件数';
comment on column ingest.runs.files_rejected is 'Files that could not be read | 无法读取的文件数';
comment on column ingest.runs.rows_read is 'Data rows read | 读取的数据行数';
comment on column ingest.runs.rows_rejected is 'Rows kept out of the roll-up by an error | 因错误未纳入汇总的行数';
comment on column ingest.runs.status is 'completed, or failed | 运行状态';

alter table ingest.runs add column if not exists key_id varchar;
alter table ingest.runs add column if not exists files_reused integer;
comment on column ingest.runs.key_id is 'Fingerprint of the ID-hash key (never the key) | 哈希密钥指纹';
comment on column ingest.runs.files_reused is 'Unchanged files taken from the last run instead of being read again | 复用的未变文件数';
alter table ingest.runs add column if not exists validated_with varchar;
comment on column ingest.runs.validated_with is 'Fingerprint of the form schemas, registry and validation code the run validated with; a rerun keeps the results of unchanged files only under the same one | 校验依据（报表结构、区划登记册、校验程序）的指纹';
alter table ingest.runs add column if not exists read_with varchar;
comment on column ingest.runs.read_with is 'Digests of what decided what the files yielded (form schemas, reading code and libraries, registry, hashing key), JSON; a rerun takes unchanged files from the read cache only under the same ones | 读取依据（报表结构、读取程序、区划登记册、哈希密钥）的摘要';
