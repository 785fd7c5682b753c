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
        count(*) filter (where serves_minors) as minor_talents,
        count(education_on_track) as certified_with_education_known,
        count(*) filter (where education_on_track) as certified_education_on_track,
        sum(allowance_yuan) as community_allowance_yuan
    from intermediate.talent_assignments
    where period = getvariable('period')
    group by unit_code
),

orgs as (
    select
        unit_code,
        count(*) as service_orgs,
        count(*) filter (where incubated_locally) as incubated_orgs,
        count(party_building_form) as orgs_party_form_known,
        count(*) filter (where party_building_form <> '未覆盖') as orgs_party_covered,
        count(*) filter (where party_members >= 3) as orgs_ge3_party_members,
        count(*) filter (where party_members >= 3 and party_building_form = '单独建立党组织') as orgs_ge3_standalone
    from staging.sg04
    where period = getvariable('period') and counted
    group by unit_code
),

institutions as (
    select
        unit_code,
        count(*) filter (where civil_affairs_public) as civil_affairs_institutions,
        count(*) filter (where civil_affairs_public and social_work_posts >= 1) as civil_affairs_institutions_with_post,
        count(*) filter (where institution_type = '养老机构' and residents > 100) as elder_institutions_over_100,
        count(*) filter (where institution_type = '养老机构' and residents > 100
                         and (social_work_posts >= 1 or buys_social_work_services)) as elder_institutions_over_100_served
    from staging.sg05
    where period = getvariable('period') and counted
    group by unit_code
),

facts as (
    select
        getvariable('period') as period,
        getvariable('period_start') as period_start,
        u.code as unit_code,
        -- Counts: 0 for a unit with no roster row, organisation or institution (rule 2).
        coalesce(columns(t.* exclude (unit_code)), 0),
        coalesce(columns(o.* exclude (unit_code)), 0),
        coalesce(columns(i.* exclude (unit_code)), 0),
        coalesce(u.community_type = 'urban', false)::int as urban_communities,
        coalesce(u.community_type = 'rural', false)::int as rural_communities,
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
        (u.level = 'county')::int as counties,
        (u.level = 'county' and s6.general_station_in_service is true)::int as counties_with_station,
        (u.level = 'city' and s6.general_station_in_service is true)::int as city_support_centre,
        case when u.level = 'city' then s6.outstanding_talents end as outstanding_talents,
        -- Year-to-date exam figures as the unit's own SG-06 row states them (see unit_rollup).
        case when s6.exam_passes_ytd is not null then s6.exam_candidates_ytd end as own_exam_candidates,
        case when s6.exam_candidates_ytd is not null then s6.exam_passes_ytd end as own_exam_passes,
        case when u.level = 'city' then s6.province_pass_rate_pct end as province_pass_rate,
        -- Communities of over 1000 elderly (known from SG-01 only) with at least one talent.
        coalesce(s1.elderly_population > 1000, false)::int as communities_elderly_1000,
        coalesce(s1.elderly_population > 1000 and coalesce(t.talents, 0) >= 1, false)::int as communities_elderly_1000_with_talent,
        -- Child directors (SG-01) and child supervisors (SG-03), where the trained count is known too.
        case when s1.child_directors_trained is not null then s1.child_directors end
            as child_directors_known,
        case when s1.child_directors is not null then s1.child_directors_trained end as child_directors_trained,
        case when s3.child_supervisors_trained is not null then s3.child_supervisors end as child_supervisors_known,
        case when s3.child_supervisors is not null then s3.child_supervisors_trained end as child_supervisors_trained,
        -- Coverages over urban communities count every one of the registry (rule 2): a community
        -- that did not report does not meet the bar (false, never NULL).
        coalesce(u.community_type = 'urban' and s1.community_workers_certified >= 2, false)::int as urban_communities_certified_ge2,
        coalesce(u.community_type = 'urban' and s1.party_secretary_certified is true, false)::int as urban_communities_secretary_certified,
        coalesce(u.community_type = 'urban' and coalesce(t.talents, 0) >= 2, false)::int as urban_communities_talent_ge2,
        coalesce(u.community_type = 'rural' and coalesce(t.talents, 0) >= 1, false)::int as rural_communities_talent_ge1,
        -- Averages of form fields count the communities that reported the field (rule 3).
        case when u.community_type = 'urban' then s1.community_social_orgs end as urban_community_social_orgs,
        coalesce(u.community_type = 'urban' and s1.community_social_orgs is not null, false)::int as urban_communities_reporting_orgs,
        coalesce(u.community_type = 'urban' and s1.community_social_orgs >= 12, false)::int as urban_communities_orgs_ge12,
        case when u.community_type = 'rural' then s1.community_social_orgs end as rural_community_social_orgs,
        coalesce(u.community_type = 'rural' and s1.community_social_orgs is not null, false)::int as rural_communities_reporting_orgs,
        coalesce(u.community_type = 'rural' and s1.community_social_orgs >= 5, false)::int as rural_communities_orgs_ge5,
        s1.volunteer_teams,
        (s1.volunteer_teams is not null)::int as communities_reporting_teams,
        coalesce(s1.volunteer_teams >= 1, false)::int as communities_teams_ge1,
        coalesce(u.level = 'township' and s3.station_in_service is true and s3.station_workers_certified >= 1, false)::int
            as stations_certified_staffed
    from units as u
    left join talents as t on t.unit_code = u.code
    -- A form's counted rows are one per form key (staging marks repeats and superseded files).
    left join staging.sg01 as s1 on s1.unit_code = u.code and s1.period = getvariable('period') and s1.counted
    left join staging.sg03 as s3 on s3.unit_code = u.code and s3.period = getvariable('period') and s3.counted
    left join orgs as o on o.unit_code = u.code
    left join institutions as i on i.unit_code = u.code
    left join staging.sg06 as s6 on s6.unit_code = u.code and s6.period = getvariable('period') and s6.counted
)

select * from facts
