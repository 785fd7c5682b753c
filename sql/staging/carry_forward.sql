-- Carry forward (the policy): a sending unit that sent nothing readable of a form this month
-- has the counted rows of its latest earlier submission of that form, at most
-- `carry_months` old, copied into this month, marked with carried_from and stale_months.
-- Only real submissions are carried, never carried copies, so a row is never older than the
-- limit. The rows to carry, of every form (ref.forms) at once: flows/warehouse/load.py copies them.
with sent as (
    select s.form, s.period, f.sender_code
    from ingest.sheets as s
    join ingest.files as f on f.period = s.period and f.path = s.path
    where s.status = 'read' and f.sender_code is not null
),

missing as (
    select fm.form, u.code as sender_code
    from ref.forms as fm
    join ref.units as u on list_contains(fm.senders, u.level)
    where not exists (
        select 1 from sent as s
        where s.form = fm.form and s.sender_code = u.code and s.period = getvariable('period')
    )
),

last_sent as (
    select form, sender_code, max(period) as carried_from
    from sent
    where period < getvariable('period')
      and period >= strftime(getvariable('period_start') - to_months(getvariable('carry_months')), '%Y-%m')
    group by form, sender_code
)

select
    r.form,
    r.source_file,
    r.source_sheet,
    r.excel_row,
    l.carried_from,
    date_diff('month', r.period_start, getvariable('period_start')) as stale_months
from staging.form_rows as r
join last_sent as l on l.form = r.form and l.sender_code = r.sender_code and l.carried_from = r.period
join missing as m on m.form = r.form and m.sender_code = r.sender_code
where r.counted and r.carried_from is null
