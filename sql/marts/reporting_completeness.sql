-- Completeness and timeliness of reporting, in the manner of DHIS2's reporting rates but exact:
-- one row per period, form and expected unit. A form of kind 'rows' (SG-01, SG-03, SG-06) is
-- expected as a row for every unit of its levels, whoever sends it; a form of kind 'senders'
-- (rosters, lists of organisations and institutions) as a sheet from every sending unit.
-- Received means sent and readable (rejected rows included: they are the sender's to fix); on
-- time means received by the deadline (the 5th of the next month by default, data/settings.toml).
-- Rates are counts of these rows, so they can never exceed 100 %.
-- For what was not received, who should send it and what happened instead (analysis.missing):
-- the sender is the unit itself for a list, and for a row the nearest unit above it (or itself)
-- at a level that sends the form (a village's township for SG-01). Refused: that sender's file
-- or sheet of the form was refused this month, or a file of it could not be read at all while
-- nothing of the form came from it readable. Carried: its rows of an earlier month were carried
-- forward (sql/staging/carry_forward.sql).
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

senders as (
    select e.form, e.unit_code, arg_min(a.code, c.depth) as sender_code
    from expected as e
    join forms as f on f.form = e.form
    join intermediate.unit_closure as c on c.descendant_code = e.unit_code
    join units as a on a.code = c.ancestor_code and list_contains(f.senders, a.level)
    group by e.form, e.unit_code
),

-- The rows of the forms expected as rows, sent this month (not carried).
rows_read as (
    select r.form, r.unit_code, r.source_file, r.accepted
    from staging.form_rows as r
    join forms as f on f.form = r.form and f.expected = 'rows'
    where r.period = getvariable('period') and r.carried_from is null
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

sent_readable as (
    select distinct s.form, f.sender_code
    from ingest.sheets as s
    join ingest.files as f on f.period = s.period and f.path = s.path
    where s.period = getvariable('period') and s.status = 'read'
),

refusals as (
    select s.form, f.sender_code, s.path, s.sheet, s.reason_zh, f.received_at
    from ingest.sheets as s
    join ingest.files as f on f.period = s.period and f.path = s.path
    where s.period = getvariable('period') and s.status = 'rejected' and s.form is not null
    union all
    select fm.form, f.sender_code, f.path, null, f.reason_zh, f.received_at
    from ingest.files as f
    cross join forms as fm
    where f.period = getvariable('period') and f.status = 'rejected'
      and not exists (select 1 from sent_readable as r where r.form = fm.form and r.sender_code = f.sender_code)
),

latest_refusal as (
    select form, sender_code, path, sheet, reason_zh
    from refusals
    where sender_code is not null
    qualify row_number() over (partition by form, sender_code order by received_at desc, path, sheet) = 1
),

-- A row is carried for its unit; a list for the unit that sent it.
carried as (
    select r.form, case when fm.expected = 'rows' then r.unit_code else r.sender_code end as unit_code,
           max(r.carried_from) as carried_from
    from staging.form_rows as r
    join forms as fm on fm.form = r.form
    where r.period = getvariable('period') and r.carried_from is not null and r.counted
    group by all
),

joined as (
    select
        getvariable('period') as period,
        getvariable('period_start') as period_start,
        e.form,
        e.unit_code,
        e.unit_name,
        e.unit_level,
        c.county_code,
        coalesce(r.received_at, s.received_at) as received_at,
        coalesce(r.data_rows, s.data_rows, 0) as data_rows,
        coalesce(r.rows_rejected, s.rows_rejected, 0) as rows_rejected,
        sd.sender_code,
        cf.carried_from,
        lr.path as refused_path,
        lr.sheet as refused_sheet,
        lr.reason_zh as refused_reason_zh
    from expected as e
    left join counties as c on c.unit_code = e.unit_code
    left join by_rows as r on e.expected = 'rows' and r.form = e.form and r.unit_code = e.unit_code
    left join by_senders as s on e.expected = 'senders' and s.form = e.form and s.unit_code = e.unit_code
    left join senders as sd on sd.form = e.form and sd.unit_code = e.unit_code
    left join carried as cf on cf.form = e.form and cf.unit_code = e.unit_code
    left join latest_refusal as lr on lr.form = e.form and lr.sender_code = sd.sender_code
),

judged as (
    select
        *,
        received_at is not null as received,
        coalesce(received_at <= getvariable('deadline_utc')::timestamp, false) as on_time
    from joined
)

-- What was received needs no word of how it was missed.
select
    * replace (
        case when received then null else carried_from end as carried_from,
        case when received then null else refused_path end as refused_path,
        case when received then null else refused_sheet end as refused_sheet,
        case when received then null else refused_reason_zh end as refused_reason_zh
    )
from judged
