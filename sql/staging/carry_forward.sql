-- Carry forward (the policy): a sending unit that sent nothing readable of a form this month
-- has the counted rows of its latest earlier submission of that form, at most
-- `carry_forward_months` old, copied into this month, marked with carried_from and
-- stale_months. Only real submissions are carried, never carried copies, so a row is never
-- older than the limit. Run once per form; `staging_table` is that form's table.
with missing as (
    select u.code as sender_code
    from ref.units as u
    where list_contains(getvariable('senders'), u.level)
      and u.code not in (
          select f.sender_code
          from ingest.sheets as s
          join ingest.files as f on f.period = s.period and f.path = s.path
          where s.period = getvariable('period') and s.form = getvariable('form') and s.status = 'read'
            and f.sender_code is not null
      )
),

last_sent as (
    select f.sender_code, max(s.period) as carried_from
    from ingest.sheets as s
    join ingest.files as f on f.period = s.period and f.path = s.path
    where s.form = getvariable('form') and s.status = 'read'
      and s.period < getvariable('period')
      and s.period >= strftime(strptime(getvariable('period') || '-01', '%Y-%m-%d')
                               - to_months(getvariable('carry_months')), '%Y-%m')
    group by f.sender_code
),

carried as (
    select
        r.* exclude (carried_from, stale_months)
            replace (getvariable('period') as period, false as superseded, true as counted),
        l.carried_from,
        date_diff('month', strptime(l.carried_from || '-01', '%Y-%m-%d'),
                  strptime(getvariable('period') || '-01', '%Y-%m-%d')) as stale_months
    from query_table(getvariable('staging_table')) as r
    join ingest.files as f on f.period = r.period and f.path = r.source_file
    join last_sent as l on l.sender_code = f.sender_code and l.carried_from = r.period
    join missing as m on m.sender_code = f.sender_code
    where r.counted and r.carried_from is null
)

select * from carried
