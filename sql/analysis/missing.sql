-- Who still owes what (催报): for each month, every expected unit and form that was not received:
-- sent nothing, sent something refused, or only had an earlier month's rows carried forward. With
-- its county and township, the unit that should send it, and how many months in a row (up to and
-- including this one, each rolled up) it has been missing or late. Built from
-- mart.reporting_completeness, which says for every expected unit and form what came.
with completeness as (
    select
        *,
        cast(substr(period, 1, 4) as integer) * 12 + cast(substr(period, 6, 2) as integer) as month_no
    from mart.reporting_completeness
),

-- Runs of consecutive months in the same state (on time or not): a month never rolled up breaks
-- a run, since nothing is known of it.
runs as (
    select
        *,
        month_no - row_number() over (partition by form, unit_code, on_time order by month_no) as run_key
    from completeness
),

streaks as (
    select
        *,
        month_no - min(month_no) over (partition by form, unit_code, on_time, run_key) + 1 as months_in_row,
        min(period) over (partition by form, unit_code, on_time, run_key) as missing_since,
        max(case when received then period end) over (
            partition by form, unit_code order by month_no rows between unbounded preceding and 1 preceding
        ) as last_received
    from runs
),

townships as (
    select c.descendant_code as unit_code, u.code as township_code, u.name as township_name
    from intermediate.unit_closure as c
    join intermediate.units as u on u.code = c.ancestor_code and u.level = 'township'
),

missing as (
    select
        s.period,
        s.county_code,
        g.name as county_name,
        t.township_code,
        t.township_name,
        s.unit_code,
        s.unit_name,
        s.unit_level,
        s.form,
        f.name as form_name,
        s.sender_code,
        sd.name as sender_name,
        case
            when s.refused_path is not null then 'refused'
            when s.carried_from is not null then 'carried'
            else 'not_received'
        end as status,
        case
            when s.refused_path is not null then '报送被拒收'
            when s.carried_from is not null then '沿用往月数据'
            else '未报送'
        end as status_zh,
        case
            when s.refused_path is not null then
                '文件「' || s.refused_path || '」' || coalesce('工作表「' || s.refused_sheet || '」', '')
                || '：' || coalesce(s.refused_reason_zh, '')
                || coalesce('；暂沿用 ' || s.carried_from || ' 的数据', '')
            when s.carried_from is not null then '本月未报送，暂沿用 ' || s.carried_from || ' 的数据'
            else '本月未报送'
        end as detail_zh,
        s.carried_from,
        s.refused_path,
        s.refused_sheet,
        s.refused_reason_zh,
        s.months_in_row,
        s.missing_since,
        s.last_received
    from streaks as s
    left join intermediate.units as g on g.code = s.county_code
    left join townships as t on t.unit_code = s.unit_code
    left join ref.forms as f on f.form = s.form
    left join intermediate.units as sd on sd.code = s.sender_code
    where not s.received
)

select * from missing
