-- Each run's indicator values, kept: what was reported for a month on a given day, beside what
-- is known now (mart.indicator_values). Appended, never rewritten, and only the rows that differ
-- from their unit's and indicator's latest (rollup.APPEND_ONLY): all of them on a month's first
-- run, none on a rerun that changes nothing.
with this_run as (
    select
        getvariable('run_id') as run_id,
        getvariable('run_at')::timestamp as computed_at,
        v.*
    from mart.indicator_values as v
    where v.period = getvariable('period')
)

select * from this_run
