-- Reporting completeness by month, county and form: how many of the units expected to report
-- did, and on time. The city's own forms (SG-04..SG-06 at city level) form a row of the city.
select
    r.period,
    coalesce(r.county_code, r.unit_code) as area_code,
    u.name as area_name,
    r.form,
    count(*) as expected,
    count(*) filter (where r.received) as received,
    count(*) filter (where r.on_time) as on_time,
    round(100.0 * count(*) filter (where r.received) / count(*), 1) as received_pct,
    round(100.0 * count(*) filter (where r.on_time) / count(*), 1) as on_time_pct,
    sum(r.data_rows) as data_rows,
    sum(r.rows_rejected) as rows_rejected
from mart.reporting_completeness as r
join intermediate.units as u on u.code = coalesce(r.county_code, r.unit_code)
group by r.period, coalesce(r.county_code, r.unit_code), u.name, r.form
