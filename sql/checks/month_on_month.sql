-- Month-on-month jumps, in the manner of DHIS2's min-max outlier checks: a figure that changes by
-- at least its factor since last month (2: doubles or halves) is worth a second look by its
-- sender. Warnings only: the row still counts. Which fields, their factors and the size below
-- which a change is no news are the form schema's bounds (warn_change, warn_change_from), in
-- `change_fields`; the form's rows are `staging_table`, its counted rows of the month
-- `month_rows` (flows/warehouse/rollup.py). Talents, which the pipeline counts from the rosters
-- rather than reads from a form, are checked on the village rows (SG-01): 3 to 6 talents is no
-- news.
with months as (
    select
        getvariable('period') as period,
        strftime(getvariable('period_start') - interval 1 month, '%Y-%m') as previous
),

bounds as (
    select unnest(getvariable('change_fields'), recursive := true)
),

previous_rows as (
    select s.*
    from query_table(getvariable('staging_table')) as s, months as m
    where s.period = m.previous and s.counted
),

field_pairs as (
    select c.source_file, c.source_sheet, c.excel_row, c.unit_code, b.field,
           (to_json(c) ->> b.field)::double as now, (to_json(p) ->> b.field)::double as before, b.factor, b.base
    from month_rows as c
    join previous_rows as p using (unit_code)
    cross join bounds as b
),

talent_pairs as (
    select c.source_file, c.source_sheet, c.excel_row, c.unit_code, 'talents' as field,
           fn.talents::double as now, fp.talents::double as before, 2.0 as factor, 4.0 as base
    from month_rows as c, months as m
    join intermediate.unit_facts as fn on fn.period = m.period
    join intermediate.unit_facts as fp on fp.period = m.previous and fp.unit_code = fn.unit_code
    where getvariable('form') = 'SG-01' and fn.unit_code = c.unit_code
),

jumps as (
    select * from field_pairs
    union all
    select * from talent_pairs
)

select
    getvariable('form') as form,
    source_file as path,
    source_sheet as sheet,
    excel_row,
    unit_code,
    field,
    now,
    before
from jumps
where now is not null and before is not null and greatest(now, before) >= base
  and (now >= factor * before or now * factor <= before)
order by path, sheet, excel_row, field
