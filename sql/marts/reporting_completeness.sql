-- Completeness and timeliness of reporting, in the manner of DHIS2's reporting rates but exact:
-- one row per period, form and expected unit. A form of kind 'rows' (SG-01, SG-03, SG-06) is
-- expected as a row for every unit of its levels, whoever sends it; a form of kind 'senders'
-- (rosters, lists of organisations and institutions) as a sheet from every sending unit.
-- Received means sent and readable (rejected rows included: they are the sender's to fix); on
-- time means received by the deadline (the 5th of the next month by default, data/settings.toml).
-- Rates are counts of these rows, so they can never exceed 100 %.
with forms as (
    select * from ref.forms
),

units as (
    select * from intermediate.units
),

counties as (
    select c.descendant_code as unit_code, c.ancestor_code as county_code
    from intermediate.unit_closure as c
    join units as u on u.code = c.ancestor_code and u.level = 'county'
),

expected as (
    select f.form, f.expected, u.code as unit_code, u.name as unit_name, u.level as unit_level
    from forms as f
    join units as u on list_contains(case when f.expected = 'rows' then f.unit_levels else f.senders end, u.level)
),

rows_read as (
    select 'SG-01' as form, unit_code, source_file, accepted from staging.sg01
    where period = getvariable('period') and carried_from is null
    union all
    select 'SG-03', unit_code, source_file, accepted from staging.sg03
    where period = getvariable('period') and carried_from is null
    union all
    select 'SG-06', unit_code, source_file, accepted from staging.sg06
    where period = getvariable('period') and carried_from is null
),

by_rows as (
    select
        r.form,
        r.unit_code,
        min(f.received_at) as received_at,
        count(*) as data_rows,
        count(*) filter (where not r.accepted) as rows_rejected
    from rows_read as r
    join ingest.files as f on f.period = getvariable('period') and f.path = r.source_file
    group by r.form, r.unit_code
),

by_senders as (
    select
        s.form,
        f.sender_code as unit_code,
        min(f.received_at) as received_at,
        sum(s.data_rows) as data_rows,
        sum(s.rows_rejected) as rows_rejected
    from ingest.sheets as s
    join ingest.files as f on f.period = s.period and f.path = s.path
    where s.period = getvariable('period') and s.status = 'read' and f.sender_code is not null
    group by s.form, f.sender_code
),

joined as (
    select
        getvariable('period') as period,
        e.form,
        e.unit_code,
        e.unit_name,
        e.unit_level,
        c.county_code,
        coalesce(r.received_at, s.received_at) as received_at,
        coalesce(r.data_rows, s.data_rows, 0) as data_rows,
        coalesce(r.rows_rejected, s.rows_rejected, 0) as rows_rejected
    from expected as e
    left join counties as c on c.unit_code = e.unit_code
    left join by_rows as r on e.expected = 'rows' and r.form = e.form and r.unit_code = e.unit_code
    left join by_senders as s on e.expected = 'senders' and s.form = e.form and s.unit_code = e.unit_code
),

judged as (
    select
        *,
        received_at is not null as received,
        coalesce(received_at <= getvariable('deadline_utc')::timestamp, false) as on_time
    from joined
)

select * from judged
