-- Every run's indicator values, kept: what was reported for a month on a given day, beside
-- what is known now (mart.indicator_values). Appended by each run, never rewritten.
with this_run as (
    select
        getvariable('run_id') as run_id,
        getvariable('run_at')::timestamp as computed_at,
        v.*
    from mart.indicator_values as v
    where v.period = getvariable('period')
)

select * from this_run
