-- A unit's figure above a share of its county's registered population (the reference figure of
-- the registry, data/registry/population.csv: the latest year not after the month, else the
-- earliest) is possible only as a slip of the keyboard or a county's figure in a village's row.
-- Warnings only: the row still counts. Which fields and shares are the form schema's bounds
-- (warn_population_share), in `share_fields`; the form's counted rows of the month are
-- `month_rows` (flows/warehouse/rollup.py). It needs no earlier month, so it works on a
-- warehouse's first month too.
with bounds as (
    select unnest(getvariable('share_fields'), recursive := true)
),

field_values as (
    select c.source_file, c.source_sheet, c.excel_row, c.unit_code, b.field, b.share,
           (to_json(c) ->> b.field)::double as value
    from month_rows as c
    cross join bounds as b
),

counties as (
    select c.descendant_code as unit_code, u.code as county_code, u.name as county_name
    from intermediate.unit_closure as c
    join intermediate.units as u on u.code = c.ancestor_code and u.level = 'county'
),

population as (
    select code, registered_population
    from ref.population
    qualify row_number() over (
        partition by code
        order by year <= year(getvariable('period_start')) desc,
                 case when year <= year(getvariable('period_start')) then -year else year end
    ) = 1
)

select
    getvariable('form') as form,
    v.source_file as path,
    v.source_sheet as sheet,
    v.excel_row,
    v.unit_code,
    v.field,
    v.value,
    v.share,
    k.county_name,
    p.registered_population as county_population
from field_values as v
join counties as k using (unit_code)
join population as p on p.code = k.county_code
where v.value > v.share * p.registered_population
order by path, sheet, excel_row, field
