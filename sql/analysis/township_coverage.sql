-- Each township/street by month: whether its social-work station is in service (the plan: every
-- township by 2025), as its SG-03 row says; a township with no counted row has no station in
-- service that month (counting rule 2), and `reported` tells the two cases apart.
with townships as (
    select t.code, t.name, t.parent_code as county_code, c.name as county_name
    from intermediate.units as t
    join intermediate.units as c on c.code = t.parent_code
    where t.level = 'township'
),

stations as (
    select period, unit_code, station_in_service, station_workers, station_workers_certified, carried_from
    from staging.sg03
    where counted
)

select
    f.period,
    t.county_code,
    t.county_name,
    t.code as township_code,
    t.name as township_name,
    f.townships_with_station = 1 as station_in_service,
    s.unit_code is not null as reported,
    s.carried_from,
    s.station_workers,
    s.station_workers_certified,
    f.stations_certified_staffed = 1 as certified_staffed
from intermediate.unit_facts as f
join townships as t on t.code = f.unit_code
left join stations as s on s.period = f.period and s.unit_code = f.unit_code
