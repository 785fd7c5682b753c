-- Each unit's figures for the month over its whole subtree (itself and every descendant).
-- Every column of intermediate.unit_facts is summed over the subtree, so a new figure there is
-- rolled up without touching this file; a few are then combined or taken as stated:
-- population (rule 5): the reference figure for the city and counties (latest year not after
-- the month), below that the sum of the accepted SG-01 rows; year-to-date exam figures: the
-- unit's own SG-06 row where it states them, else the sum of its descendants'; the provincial
-- pass rate: the city's SG-06 row, for every unit.
with facts as (
    select * exclude (period, period_start) from intermediate.unit_facts where period = getvariable('period')
),

closure as (
    select * from intermediate.unit_closure
),

summed as (
    select
        c.ancestor_code as unit_code,
        sum(columns(f.* exclude (unit_code, own_exam_candidates, own_exam_passes, province_pass_rate)))
    from closure as c
    join facts as f on f.unit_code = c.descendant_code
    group by c.ancestor_code
),

exams as (
    select
        c.ancestor_code as unit_code,
        coalesce(max(f.own_exam_candidates) filter (where c.depth = 0),
                 sum(f.own_exam_candidates) filter (where c.depth > 0)) as exam_candidates,
        coalesce(max(f.own_exam_passes) filter (where c.depth = 0),
                 sum(f.own_exam_passes) filter (where c.depth > 0)) as exam_passes
    from closure as c
    join facts as f on f.unit_code = c.descendant_code
    group by c.ancestor_code
),

reference_population as (
    select code, registered_population
    from ref.population
    where year <= cast(left(getvariable('period'), 4) as integer)
    qualify row_number() over (partition by code order by year desc) = 1
),

rolled as (
    select
        getvariable('period') as period,
        getvariable('period_start') as period_start,
        s.*,
        s.townships_with_station + s.village_rooms as stations_and_rooms,
        case when s.child_directors_known is null and s.child_supervisors_known is null then null
             else coalesce(s.child_directors_known, 0) + coalesce(s.child_supervisors_known, 0)
        end as child_workers,
        case when s.child_directors_trained is null and s.child_supervisors_trained is null then null
             else coalesce(s.child_directors_trained, 0) + coalesce(s.child_supervisors_trained, 0)
        end as child_workers_trained,
        e.exam_candidates,
        e.exam_passes,
        (select max(province_pass_rate) from facts) as province_pass_rate,
        case
            when u.level in ('city', 'county') then p.registered_population
            else s.sg01_registered_population
        end as population
    from summed as s
    join exams as e using (unit_code)
    join intermediate.units as u on u.code = s.unit_code
    left join reference_population as p on p.code = s.unit_code
)

select * from rolled
