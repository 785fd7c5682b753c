"""Writing a sheet's cells as offices' programs do: xlsx (Excel), xls (Excel 97-2003, by xlwt) and
CSV in GBK or UTF-8 with a BOM. Fixed workbook properties: the same cells give the same bytes."""
from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

import xlsxwriter

from flows.errors import ShegongError

Grid = list[list]  # rows of cells: str, int, float or None
_CREATED = datetime(2022, 10, 17, 9, 0, 0)  # workbook property, fixed for byte-identical files


def cell_text(v) -> str:
    """A cell as Excel saves it in a CSV: integers without a decimal point, at most two decimals."""
    if v is None:
        return ""
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else f"{v:.2f}".rstrip("0")
    return str(v)


def write_xlsx(path: Path, grids: list[tuple[str, Grid]]):
    wb = xlsxwriter.Workbook(str(path), {"in_memory": True})
    wb.set_properties({"created": _CREATED, "author": "Administrator"})
    for name, grid in grids:
        ws = wb.add_worksheet(name)
        for r, row in enumerate(grid):
            for c, v in enumerate(row):
                if v is None:
                    continue
                if isinstance(v, str):
                    ws.write_string(r, c, v)
                else:
                    ws.write_number(r, c, v)
    wb.close()


def write_xls(path: Path, grids: list[tuple[str, Grid]]):
    try:
        import xlwt  # the optional extra `sample`: the product reads .xls, only the sample writes it
    except ImportError:
        raise ShegongError("writing .xls needs xlwt: pip install -e '.[sample]' (make install does)") from None
    wb = xlwt.Workbook(encoding="utf-8")
    for name, grid in grids:
        ws = wb.add_sheet(name)
        for r, row in enumerate(grid):
            for c, v in enumerate(row):
                if v is not None:
                    ws.write(r, c, v)
    wb.save(str(path))


def write_csv(path: Path, grid: Grid, encoding: str):
    buf = io.StringIO()
    # Excel pads every row to the width of the used range and ends lines with CRLF.
    csv.writer(buf, lineterminator="\r\n").writerows([[cell_text(v) for v in row] for row in grid])
    path.write_bytes(buf.getvalue().encode(encoding))
