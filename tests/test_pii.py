"""No name, ID number or phone number of the input reaches the warehouse, in any column."""
from __future__ import annotations

import hashlib
import os
import stat

from fixtures.build_fixtures import C1, P1, P2, P3, P4, P5_BAD, P6, P7, R1, R2, R3

IDS = [P1, P2, P3, P4, P5_BAD, P6, P7, R1, R2, R3, C1]
NAMES = ["赵一", "钱二", "孙三", "李四", "周五", "吴六", "郑七", "冯八", "陈九", "褚十", "卫十一", "张三"]
PHONES = ["13900000000", "13900000001"]


def test_no_personal_data_in_any_column(con):
    cols = con.execute("select table_schema, table_name, column_name from information_schema.columns "
                       "where data_type in ('VARCHAR', 'VARCHAR[]')").fetchall()
    assert len(cols) > 50
    needles = IDS + NAMES + PHONES + [i[-6:] for i in IDS]
    for schema, table, column in cols:
        text = con.execute(f'select string_agg(cast("{column}" as varchar), \'|\') from {schema}.{table}').fetchone()[0]
        for needle in needles:
            assert needle not in (text or ""), f"{needle!r} found in {schema}.{table}.{column}"


def test_person_key_is_keyed_not_a_plain_hash(con):
    keys = {r[0] for r in con.execute("select person_key from staging.sg02").fetchall()}
    assert len(keys) == 11  # 10 persons plus one invalid ID number, each hashed
    plain = {hashlib.sha256(i.encode()).hexdigest()[:32] for i in IDS} | {hashlib.md5(i.encode()).hexdigest() for i in IDS}
    assert not keys & plain


def test_published_warehouse_is_readable_by_its_owner_only(month_db):
    assert stat.S_IMODE(os.stat(month_db).st_mode) == 0o600
