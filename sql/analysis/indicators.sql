-- The plan's indicators by unit and month, with the county each unit lies in, the gap as a
-- share of the target and the status in Chinese: the view to start from. Columns are only ever
-- added, never renamed or removed, so analysts' queries keep working.
with counties as (
    select c.descendant_code as unit_code, u.code as county_code, u.name as county_name
    from intermediate.unit_closure as c
    join intermediate.units as u on u.code = c.ancestor_code and u.level = 'county'
)

select
    v.period,
    v.unit_code,
    v.unit_name,
    v.unit_level,
    c.county_code,
    c.county_name,
    v.indicator_id,
    v.indicator_name,
    v.headline,
    v.value,
    v.unit,
    v.target,
    v.comparison,
    v.target_type,
    v.deadline,
    v.gap,
    case when v.target <> 0 then v.gap / abs(v.target) end as gap_ratio,
    v.met,
    v.status,
    case v.status
        when 'met' then '达标' when 'not_met' then '未达标'
        when 'on_track' then '进度正常' when 'at_risk' then '有风险' when 'no_plan' then '无规划'
    end as status_zh,
    v.projected,
    v.share_meeting,
    v.numerator,
    v.denominator,
    v.units_carried,
    v.plan_id,
    v.plan_name
from mart.indicator_values as v
left join counties as c on c.unit_code = v.unit_code
