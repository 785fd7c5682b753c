-- The plan's indicators for every unit and month: value, numerator, denominator, target, gap
-- (the mart adds the status against the deadline from the months so far).
-- Definitions are data (ref.indicators, from data/plan/<plan id>/indicators.toml): an indicator is
-- a numerator and an optional denominator among the columns of intermediate.unit_rollup, times a
-- scale. Values are unrounded, in the plan's own unit (rule 7).
-- Each month is judged against the plan in force (flows/warehouse/rollup.py sets plan_id); a month no plan
-- covers has its values computed with the indicators of the nearest plan (indicator_plan), and no
-- target, comparison, type or deadline: never an earlier plan's stale deadline.
with rolled_up as (
    select
        period,
        unit_code,
        columns(* exclude (period, period_start, unit_code))::double
    from intermediate.unit_rollup
    where period = getvariable('period')
),

-- Long form, one row per unit and figure; NULLs kept, since a missing figure is not zero.
figures as (
    select *
    from rolled_up
    unpivot include nulls (amount for figure in (columns(* exclude (period, unit_code))))
),

definitions as (
    select * from ref.indicators
    where plan_id = getvariable('indicator_plan')
),

plan as (
    select plan_id, name as plan_name
    from ref.plans
    where plan_id = getvariable('plan_id')
),

units as (
    select * from intermediate.units
),

-- Each join reads only the figures of its own role: a unit has some 60 figures and an indicator
-- uses at most four, so joining all of them four times (2 million rows at a province's 33,000
-- units) cost four times what the whole query costs now.
numerators as (
    select * from figures where figure in (select numerator from definitions)
),

denominators as (
    select * from figures where figure in (select denominator from definitions)
),

target_figures as (
    select * from figures where figure in (select target_figure from definitions)
),

meeting_figures as (
    select * from figures where figure in (select meeting from definitions)
),

computed as (
    select
        getvariable('period') as period,
        getvariable('period_start') as period_start,
        u.code as unit_code,
        u.name as unit_name,
        u.level as unit_level,
        d.id as indicator_id,
        d.name_zh as indicator_name,
        n.amount as numerator,
        dn.amount as denominator,
        case
            when d.denominator is null then n.amount * d.scale
            when dn.amount is null or dn.amount = 0 then null
            else n.amount * d.scale / dn.amount
        end as value,
        d.unit,
        case when p.plan_id is not null and list_contains(d.target_levels, u.level)
            then coalesce(d.target, t.amount) end as target,
        case when dn.amount > 0 then m.amount * 100 / dn.amount end as share_meeting,
        case when p.plan_id is not null then d.comparison end as comparison,
        case when p.plan_id is not null then d.target_type end as target_type,
        case when p.plan_id is not null then d.deadline end as deadline,
        d.headline,
        p.plan_id,
        p.plan_name
    from units as u
    join definitions as d on list_contains(d.levels, u.level)
    left join numerators as n on n.unit_code = u.code and n.figure = d.numerator
    left join denominators as dn on dn.unit_code = u.code and dn.figure = d.denominator
    left join target_figures as t on t.unit_code = u.code and t.figure = d.target_figure
    left join meeting_figures as m on m.unit_code = u.code and m.figure = d.meeting
    left join plan as p on true
),

judged as (
    select
        *,
        case
            when target is null or value is null then null
            when comparison = '>=' then value >= target
            when comparison = '<=' then value <= target
        end as met,
        -- How far there is still to go: positive while short of the target.
        case
            when target is null or value is null then null
            when comparison = '>=' then target - value
            when comparison = '<=' then value - target
        end as gap
    from computed
)

select * from judged
