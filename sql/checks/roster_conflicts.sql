-- A person on two units' rosters in one month: counted once, where counting rule 1 put them
-- (intermediate.talent_assignments), and listed as a warning on each of their roster rows,
-- naming the other units, never the person. Carried rows are not the sender's to fix.
with roster_rows as (
    select source_file, source_sheet, excel_row, unit_code, person_key
    from staging.sg02
    where period = getvariable('period') and counted and carried_from is null and person_key is not null
),

units_per_person as (
    select distinct r.person_key, r.unit_code, u.name
    from roster_rows as r
    join ref.units as u on u.code = r.unit_code
),

listed as (
    select
        r.source_file,
        r.source_sheet,
        r.excel_row,
        string_agg(o.name || '（' || o.unit_code || '）', '、' order by o.unit_code) as others,
        any_value(c.name) as counted_at
    from roster_rows as r
    join units_per_person as o on o.person_key = r.person_key and o.unit_code <> r.unit_code
    join intermediate.talent_assignments as a on a.period = getvariable('period') and a.person_key = r.person_key
    join ref.units as c on c.code = a.unit_code
    group by r.source_file, r.source_sheet, r.excel_row
)

select * from listed
order by source_file, source_sheet, excel_row
