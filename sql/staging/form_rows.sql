-- Every form's staging rows in one long view, one row per row of a staging table: what every
-- form's rows have (period, unit, file, sheet, row, whether it counts, whether it was carried),
-- its form, and the unit that sent its file (for a carried row, the file of the month it was
-- carried from). `form_tables` is the staging tables of ref.forms stacked, each row with its
-- form and the columns all of them share: flows/warehouse/load.py writes it from ref.forms,
-- so that a new form needs no SQL here or in what reads this view.
select
    r.form,
    r.period,
    r.period_start,
    r.unit_code,
    f.sender_code,
    r.source_file,
    r.source_sheet,
    r.excel_row,
    r.received_at,
    r.accepted,
    r.superseded,
    r.counted,
    r.carried_from,
    r.stale_months
from form_tables as r
left join ingest.files as f on f.period = coalesce(r.carried_from, r.period) and f.path = r.source_file
