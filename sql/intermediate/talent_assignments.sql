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
            partition by r.person_key order by u.level_rank desc, r.unit_code, r.source_file, r.source_sheet, r.excel_row
        ) as pick
    from rosters as r
    join intermediate.units as u on u.code = r.unit_code
),

assigned as (
    select
        period,
        getvariable('period_start') as period_start,
        person_key,
        unit_code,
        post_type,
        full_time,
        certificate_level,
        coalesce(certificate_level in ('助理社会工作师', '社会工作师', '高级社会工作师'), false) as certified,
        coalesce(list_contains(service_fields, '老年'), false) as serves_elderly,
        coalesce(list_contains(service_fields, '未成年人'), false) as serves_minors,
        registration_start,
        continuing_education_hours,
        roster_count,
        source_file,
        source_sheet,
        excel_row
    from ranked
    where pick = 1
),

-- Continuing education (the plan: 72 h per 3-year registration for 助理社会工作师, 90 h for
-- 社会工作师 and 高级社会工作师), judged pro rata to the months of the period elapsed by the end
-- of this month. Only where both the start and the hours are known (rule 3).
judged as (
    select
        *,
        case
            when not certified or registration_start is null or continuing_education_hours is null then null
            else continuing_education_hours >= (case when certificate_level = '助理社会工作师' then 72 else 90 end)
                * least(36, greatest(0, date_diff('month', registration_start, period_start) + 1)) / 36.0
        end as education_on_track,
        -- The plan's monthly allowance for certified full-time community workers (yuan).
        case
            when post_type = '社区专职工作者' and full_time is true then
                case certificate_level when '助理社会工作师' then 100 when '社会工作师' then 300
                                       when '高级社会工作师' then 500 else 0 end
            else 0
        end as allowance_yuan
    from assigned
)

select * from judged
