-- Month-on-month jumps, in the manner of DHIS2's min-max outlier checks: a figure that at least
-- doubles or at least halves since last month is worth a second look by its sender. Warnings
-- only: the row still counts. Small bases are left alone (3 to 6 talents is no news).
with months as (
    select
        getvariable('period') as period,
        strftime(strptime(getvariable('period') || '-01', '%Y-%m-%d') - interval 1 month, '%Y-%m') as previous
),

current_rows as (
    select s.*
    from staging.sg01 as s
    where s.period = getvariable('period') and s.counted
),

previous_rows as (
    select s.*
    from staging.sg01 as s, months as m
    where s.period = m.previous and s.counted
),

field_pairs as (
    select c.source_file, c.source_sheet, c.excel_row, c.unit_code, f.field, f.now, f.before
    from current_rows as c
    join previous_rows as p using (unit_code)
    cross join lateral (
        values
            ('registered_population', c.registered_population, p.registered_population, 100),
            ('elderly_population', c.elderly_population, p.elderly_population, 50),
            ('community_workers', c.community_workers, p.community_workers, 4)
    ) as f(field, now, before, base)
    where f.now is not null and f.before is not null and greatest(f.now, f.before) >= f.base
),

talent_pairs as (
    select c.source_file, c.source_sheet, c.excel_row, c.unit_code, 'talents' as field,
           fn.talents as now, fp.talents as before
    from current_rows as c, months as m
    join intermediate.unit_facts as fn on fn.period = m.period
    join intermediate.unit_facts as fp on fp.period = m.previous and fp.unit_code = fn.unit_code
    where fn.unit_code = c.unit_code and greatest(fn.talents, fp.talents) >= 4
),

jumps as (
    select * from field_pairs
    union all
    select * from talent_pairs
)

select
    'SG-01' as form,
    source_file as path,
    source_sheet as sheet,
    excel_row,
    unit_code,
    field,
    now,
    before
from jumps
where now >= 2 * before or now * 2 <= before
order by path, sheet, excel_row, field
