-- Each unit's own contributions for the month, before rolling up: one row per registry unit.
-- Counts of persons, units and organisations are 0 when there are none (rule 2); sums of form
-- fields are NULL when nobody reported them (rule 3: missing is never zero).
with units as (
    select * from intermediate.units
),

talents as (
    select
        unit_code,
        count(*) as talents,
        count(*) filter (where certified) as certified_talents,
        count(*) filter (where serves_elderly) as elderly_talents,
        count(*) filter (where serves_minors) as minor_talents
    from intermediate.talent_assignments
    where period = getvariable('period')
    group by unit_code
),

-- Counted rows are one per form key (staging marks repeats and superseded files).
sg01 as (
    select * from staging.sg01 where period = getvariable('period') and counted
),

sg03 as (
    select * from staging.sg03 where period = getvariable('period') and counted
),

sg04 as (
    select * from staging.sg04 where period = getvariable('period') and counted
),

sg05 as (
    select * from staging.sg05 where period = getvariable('period') and counted
),

sg06 as (
    select * from staging.sg06 where period = getvariable('period') and counted
),

orgs as (
    select
        unit_code,
        count(*) as service_orgs,
        count(*) filter (where incubated_locally) as incubated_orgs,
        count(party_building_form) as orgs_party_form_known,
        count(*) filter (where party_building_form <> '未覆盖') as orgs_party_covered
    from sg04
    group by unit_code
),

institutions as (
    select
        unit_code,
        count(*) filter (where civil_affairs_public) as civil_affairs_institutions,
        count(*) filter (where civil_affairs_public and social_work_posts >= 1) as civil_affairs_institutions_with_post
    from sg05
    group by unit_code
),

facts as (
    select
        getvariable('period') as period,
        u.code as unit_code,
        coalesce(t.talents, 0) as talents,
        coalesce(t.certified_talents, 0) as certified_talents,
        coalesce(t.elderly_talents, 0) as elderly_talents,
        coalesce(t.minor_talents, 0) as minor_talents,
        (u.community_type = 'urban')::int as urban_communities,
        (u.community_type = 'rural')::int as rural_communities,
        case when u.community_type = 'urban' then coalesce(t.talents, 0) else 0 end as urban_community_talents,
        case when u.community_type = 'rural' then coalesce(t.talents, 0) else 0 end as rural_community_talents,
        s1.registered_population as sg01_registered_population,
        -- A share counts a community only where both of its figures were reported (rule 3).
        case when s1.community_workers_certified is not null then s1.community_workers end as community_workers,
        case when s1.community_workers is not null then s1.community_workers_certified end
            as community_workers_certified,
        (s1.has_social_work_room is true)::int as village_rooms,
        (s1.has_charity_fund is true)::int as charity_funds,
        (u.level = 'township')::int as townships,
        (u.level = 'township' and s3.station_in_service is true)::int as townships_with_station,
        coalesce(o.service_orgs, 0) as service_orgs,
        coalesce(o.incubated_orgs, 0) as incubated_orgs,
        coalesce(o.orgs_party_form_known, 0) as orgs_party_form_known,
        coalesce(o.orgs_party_covered, 0) as orgs_party_covered,
        coalesce(i.civil_affairs_institutions, 0) as civil_affairs_institutions,
        coalesce(i.civil_affairs_institutions_with_post, 0) as civil_affairs_institutions_with_post,
        (u.level = 'county')::int as counties,
        (u.level = 'county' and s6.general_station_in_service is true)::int as counties_with_station,
        case when u.level = 'city' then s6.outstanding_talents end as outstanding_talents
    from units as u
    left join talents as t on t.unit_code = u.code
    left join sg01 as s1 on s1.unit_code = u.code
    left join sg03 as s3 on s3.unit_code = u.code
    left join orgs as o on o.unit_code = u.code
    left join institutions as i on i.unit_code = u.code
    left join sg06 as s6 on s6.unit_code = u.code
)

select * from facts
