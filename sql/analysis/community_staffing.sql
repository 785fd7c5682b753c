-- Each village/community by month: the talents counted there (counting rule 1) against the bar
-- of the plan in force that month, which is the target of the per-community averages (2 in an
-- urban community, 1 in a rural one in the 2021-2025 plan, taken from ref.indicators so the view
-- follows the plans' data). A month no plan covers has no bar.
with communities as (
    select v.code, v.name, v.community_type, t.code as township_code, t.name as township_name,
           c.code as county_code, c.name as county_name
    from intermediate.units as v
    join intermediate.units as t on t.code = v.parent_code
    join intermediate.units as c on c.code = t.parent_code
    where v.level = 'village'
),

bars as (
    select
        p.from_period,
        p.to_period,
        max(i.target) filter (where i.id = 'urban_community_talent_avg') as urban_bar,
        max(i.target) filter (where i.id = 'rural_community_talent_avg') as rural_bar
    from ref.plans as p
    join ref.indicators as i on i.plan_id = p.plan_id
    group by p.from_period, p.to_period
)

select
    f.period,
    c.county_code,
    c.county_name,
    c.township_code,
    c.township_name,
    c.code as community_code,
    c.name as community_name,
    c.community_type,
    f.talents,
    f.certified_talents,
    case c.community_type when 'urban' then b.urban_bar else b.rural_bar end as bar,
    f.talents >= case c.community_type when 'urban' then b.urban_bar else b.rural_bar end as meets_bar
from intermediate.unit_facts as f
join communities as c on c.code = f.unit_code
left join bars as b on f.period between b.from_period and b.to_period
