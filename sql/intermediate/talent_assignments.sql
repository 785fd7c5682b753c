-- One row per person and month: the unit where the person counts (counting rule 1).
-- A person listed by several units is assigned to the most local one (village before township
-- before county before city), ties broken by the smallest unit code; every level then counts
-- the person there. The person's attributes are those of the assigned row.
with rosters as (
    select *
    from staging.sg02
    where period = getvariable('period') and counted and person_key is not null
),

ranked as (
    select
        r.*,
        count(distinct r.unit_code) over (partition by r.person_key) as roster_count,
        row_number() over (
            partition by r.person_key order by u.level_rank desc, r.unit_code, r.source_file, r.excel_row
        ) as pick
    from rosters as r
    join intermediate.units as u on u.code = r.unit_code
),

assigned as (
    select
        period,
        person_key,
        unit_code,
        post_type,
        full_time,
        certificate_level,
        coalesce(certificate_level in ('助理社会工作师', '社会工作师', '高级社会工作师'), false) as certified,
        coalesce(list_contains(service_fields, '老年'), false) as serves_elderly,
        coalesce(list_contains(service_fields, '未成年人'), false) as serves_minors,
        roster_count
    from ranked
    where pick = 1
)

select * from assigned
