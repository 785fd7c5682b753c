-- Each unit's figures for the month over its whole subtree (itself and every descendant).
-- Population (rule 5): the reference figure for the city and counties (latest year not after
-- the month), below that the sum of the accepted SG-01 rows.
with facts as (
    select * from intermediate.unit_facts where period = getvariable('period')
),

closure as (
    select * from intermediate.unit_closure
),

summed as (
    select
        c.ancestor_code as unit_code,
        sum(f.talents) as talents,
        sum(f.certified_talents) as certified_talents,
        sum(f.elderly_talents) as elderly_talents,
        sum(f.minor_talents) as minor_talents,
        sum(f.urban_communities) as urban_communities,
        sum(f.rural_communities) as rural_communities,
        sum(f.urban_community_talents) as urban_community_talents,
        sum(f.rural_community_talents) as rural_community_talents,
        sum(f.sg01_registered_population) as sg01_registered_population,
        sum(f.community_workers) as community_workers,
        sum(f.community_workers_certified) as community_workers_certified,
        sum(f.village_rooms) as village_rooms,
        sum(f.charity_funds) as charity_funds,
        sum(f.townships) as townships,
        sum(f.townships_with_station) as townships_with_station,
        sum(f.townships_with_station) + sum(f.village_rooms) as stations_and_rooms,
        sum(f.service_orgs) as service_orgs,
        sum(f.incubated_orgs) as incubated_orgs,
        sum(f.orgs_party_form_known) as orgs_party_form_known,
        sum(f.orgs_party_covered) as orgs_party_covered,
        sum(f.civil_affairs_institutions) as civil_affairs_institutions,
        sum(f.civil_affairs_institutions_with_post) as civil_affairs_institutions_with_post,
        sum(f.counties) as counties,
        sum(f.counties_with_station) as counties_with_station,
        sum(f.outstanding_talents) as outstanding_talents
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
        s.*,
        case
            when u.level in ('city', 'county') then p.registered_population
            else s.sg01_registered_population
        end as population
    from summed as s
    join intermediate.units as u on u.code = s.unit_code
    left join reference_population as p on p.code = s.unit_code
)

select * from rolled
