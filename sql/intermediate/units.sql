-- The registry's units with what the counting rules need: level rank and community type.
-- Counting rule 4: a community is urban or rural by its committee type (名称以居民委员会结尾 =
-- urban) unless data/settings.toml switches to the NBS urban-rural code (1xx urban, 2xx rural).
with registry as (
    select * from ref.units
),

typed as (
    select
        code,
        name,
        level,
        parent_code,
        urban_rural_code,
        case level when 'city' then 1 when 'county' then 2 when 'township' then 3 when 'village' then 4 end
            as level_rank,
        case
            when level <> 'village' then null
            when getvariable('community_rule') = 'nbs_code'
                then case when urban_rural_code like '1%' then 'urban' else 'rural' end
            when name like '%居民委员会' then 'urban'
            when name like '%村民委员会' then 'rural'
            else case when urban_rural_code like '1%' then 'urban' else 'rural' end
        end as community_type
    from registry
)

select * from typed
