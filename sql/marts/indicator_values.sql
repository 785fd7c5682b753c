-- The plan's indicators for every unit and month, as analysts read them: the figures of
-- intermediate.indicator_figures (value, numerator, denominator, target, met, gap, share of
-- communities meeting a per-community bar) with their status against the deadline.
with figures as (
    select * from intermediate.indicator_figures
),

this_month as (
    select * from figures where period = getvariable('period')
),

-- Carried rows (a sender that sent nothing this month, see sql/staging/carry_forward.sql):
-- for each indicator, how many units of the subtree its figures took from an earlier month.
carried_rows as (
    select form, unit_code
    from staging.form_rows
    where period = getvariable('period') and carried_from is not null and counted
),

-- The forms each indicator's figures come from (ref.figure_sources: a staging table's form, or
-- the forms under a table built from them). An indicator counts the same in every plan that
-- has it (flows/registry.py checks), so its sources are those of any plan.
indicator_forms as (
    select distinct i.id as indicator_id, s.form
    from ref.indicators as i
    join ref.figure_sources as s
      on s.figure in (i.numerator, i.denominator, i.meeting)
    where s.form is not null
),

carried as (
    select c.ancestor_code as unit_code, s.indicator_id, count(distinct r.unit_code) as units_carried
    from carried_rows as r
    join indicator_forms as s on s.form = r.form
    join intermediate.unit_closure as c on c.descendant_code = r.unit_code
    group by all
),

-- Status against the deadline. Due (the month is the deadline's or later): met or not_met.
-- Not yet due: a straight line fitted by least squares to this unit's values of the last 12
-- months (this one included, at least 3 of them) is extended to the deadline month; on_track
-- if that projection meets the target or the value already does and is not falling, at_risk
-- otherwise. With fewer than 3 months the value as it stands decides. A month no plan covers
-- (flows/warehouse/rollup.py sets no_plan) has status no_plan throughout, and no target.
history as (
    select unit_code, indicator_id, period_start, value
    from figures
    where period_start <= getvariable('period_start')
      and period_start >= getvariable('period_start') - interval 11 month
      and value is not null
),

trend as (
    select
        unit_code,
        indicator_id,
        count(*) as months,
        regr_slope(value, date_diff('month', date '2000-01-01', period_start))
            as slope_per_month
    from history
    group by unit_code, indicator_id
),

projected as (
    select
        j.*,
        date_diff('month', j.period_start, date_trunc('month', j.deadline)::date)
            as months_to_deadline,
        case when tr.months >= 3 then tr.slope_per_month end as slope_per_month
    from (
        select t.*, coalesce(ca.units_carried, 0) as units_carried
        from this_month as t
        left join carried as ca using (unit_code, indicator_id)
    ) as j
    left join trend as tr using (unit_code, indicator_id)
),

statused as (
    select
        * exclude (months_to_deadline, slope_per_month),
        case
            when value is null or months_to_deadline is null then null
            when months_to_deadline <= 0 then value
            else value + coalesce(slope_per_month, 0) * months_to_deadline
        end as projected,
        slope_per_month,
        case
            when getvariable('no_plan') then 'no_plan'
            when target is null or value is null or deadline is null then null
            when months_to_deadline <= 0 then case when met then 'met' else 'not_met' end
            when met and coalesce(slope_per_month, 0) >= 0 then 'on_track'
            when slope_per_month is not null and (
                (comparison = '>=' and value + slope_per_month * months_to_deadline >= target)
                or (comparison = '<=' and value + slope_per_month * months_to_deadline <= target)
            ) then 'on_track'
            else 'at_risk'
        end as status
    from projected
)

select * from statused
