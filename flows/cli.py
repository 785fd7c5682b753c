"""The `shegong` command: sample data, monthly runs, and what they computed."""
from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

# Offline and quiet by default: no telemetry from Prefect or Great Expectations (it would log an
# ERROR line with no network), and Prefect's and Dask's own INFO chatter (temporary server, cluster
# start and stop) hidden unless asked for. Set before Prefect is imported, which reads them once.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
PREFECT_LEVEL_CHOSEN = "PREFECT_LOGGING_LEVEL" in os.environ
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # the Dask runner's start and stop chatter

from flows.config import DEFAULT_DB, DEFAULT_INBOX  # noqa: E402
from flows.errors import ShegongError  # noqa: E402

log = logging.getLogger("shegong")


def cmd_run(args) -> int:
    from flows.outputs import missing
    from flows import progress, stopping
    from flows.config import check_period
    months: list[str] = []
    finished: list[str] = []
    # First, before Prefect or a reader starts any thread or process (see flows/stopping.py).
    stopping.install(lambda signum, swaps: interrupted_line(signum, months, swaps, finished))
    if args.period:
        months.append(check_period(args.period))
    elif args.start and args.end:
        from flows.config import month_range
        months.extend(month_range(check_period(args.start), check_period(args.end)) or [args.start])
    elif args.start or args.end:
        raise ShegongError("give both --from YYYY-MM and --to YYYY-MM")
    else:
        from flows.config import load_settings, previous_month
        months.append(previous_month(load_settings()))  # as the schedule does
    _preflight(Path(args.inbox), Path(args.db))  # before Prefect is imported: a refusal comes at once
    from flows import server
    # Chosen before Prefect is imported, which reads PREFECT_API_URL; said with the results, so that
    # a refused or interrupted run prints nothing on stdout (its one line is on stderr).
    server_line = server.for_run()
    temporary = None
    if not os.environ.get("PREFECT_API_URL"):
        # Started now, it comes up while this process imports what the run needs (server.Temporary).
        temporary = server.Temporary()
        atexit.register(temporary.stop)  # before Prefect's own exit hooks, so it stops after them
        from flows.validate import suites
        suites.import_early()  # in the time the server takes to start
    from flows.monthly import monthly_rollup
    from flows.outputs.report import completeness_table, indicator_table, published
    _quiet_known_errors()
    with progress.shown(len(months)), (temporary.serving() if temporary else contextlib.nullcontext()):
        for period in months:
            progress.month(period)
            # The validation site's index once, with the last month: it lists every stored result.
            s = monthly_rollup(period=period, inbox=str(args.inbox), db=str(args.db), full=args.full,
                               data_docs_index=period == months[-1])
            finished.append(period)
            progress.month_done()
            print(f"{period}: 文件 {s['files']} 个（无法读取 {s['files_rejected']}），数据行 {s['rows']} 行"
                  f"（未通过校验 {s['rows_rejected']}），问题反馈表 {len(s['feedback'])} 份"
                  + (f"：{s['feedback_dir']}/" if s["feedback"] else ""))
    print(server_line)
    print(f"月报：{'，'.join(s['reports'].values())}")
    print(f"校验结果（Great Expectations Data Docs）：{s['data_docs']}")
    if len(months) == 1:
        with published(Path(args.db), months[0]):
            print()
            print(completeness_table(Path(args.db), months[0]))
            print(missing.run_line(Path(args.db), months[0], s["reminders"]))
            print()
            print(indicator_table(Path(args.db), months[0]))
    return 0


def _in_spare(argv: list[str]) -> int | None:
    """`shegong run` in the spare process beside a server `shegong server start` left running
    (flows/spare.py): its exit status, or None to run it here."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    from flows import server, spare
    state = server.running()
    return spare.delegate(argv, state["api"]) if state else None


def cmd_missing(args) -> int:
    from flows.outputs.missing import table
    print(table(Path(args.db), args.period, args.unit))
    return 0


def interrupted_line(signum: int, months: list[str], swaps: int, finished: list[str]) -> str:
    """What an interrupted run says: that the published warehouse is unchanged, or else which
    months it published, and whether the last of them still needs its feedback and report."""
    name = signal.Signals(signum).name
    if not swaps:
        return (f"shegong: 中止（{name}）：已发布的数据仓库未改变 / "
                f"interrupted ({name}); the published warehouse is unchanged")
    published, last = months[:swaps], months[swaps - 1]
    zh = f"中止（{name}）：已发布 {'、'.join(published)}"
    en = f"interrupted ({name}) after publishing {', '.join(published)}"
    if swaps < len(months):
        zh, en = zh + "，之后的月份未发布", en + "; the months after it are unchanged"
    if last not in finished:
        zh += f"；{last} 的反馈表和月报未写完，请重新运行该月"
        en += f"; run {last} again to write its feedback and report"
    return f"shegong: {zh} / {en}"


def _quiet_known_errors() -> None:
    """A flow run stopped by a known error logs its reason line (flows/monthly.py _KnownFailure);
    main prints that line itself, once, so the flow's copy is left out here (but at DEBUG)."""
    if log.getEffectiveLevel() <= logging.DEBUG:
        return
    for handler in logging.getLogger().handlers:
        handler.addFilter(lambda record: not getattr(record, "reason_line", False))


def _preflight(inbox: Path, db: Path) -> None:
    """What would stop a run, checked before the flow starts, so the operator gets one clear
    line instead of a flow run's traceback."""
    from flows.config import load_settings
    from flows.pii import load_key
    from flows.warehouse.publish import run_lock
    load_settings()
    load_key()
    if not inbox.is_dir():
        raise ShegongError(f"inbox {inbox} does not exist; pass --inbox DIR (files go in DIR/YYYY-MM/)")
    with run_lock(db):
        pass


def cmd_show(args) -> int:
    from flows.outputs.report import indicator_table
    print(indicator_table(Path(args.db), args.period, args.unit))
    return 0


def cmd_report(args) -> int:
    """The month's report again, from the published warehouse, without a run."""
    from flows.outputs.webpage import write_page
    from flows.outputs.workbook import report_dir, write_workbook
    out = Path(args.out) if args.out else report_dir(Path(args.db), args.period)
    print(f"月报：{write_workbook(Path(args.db), args.period, out)}，{write_page(Path(args.db), args.period, out)}")
    return 0


def cmd_sample(args) -> int:
    from flows.config import load_settings
    from flows.tools.sample import generate_province, generate_sample
    inbox = Path(args.inbox)
    if args.scale == "province":
        # Its own folder by default: the province's registry and settings are written beside its month.
        inbox = Path("data/province") if args.inbox == DEFAULT_INBOX else inbox
        period = args.period or "2025-06"
        out = generate_province(inbox, period, seed=args.seed)
        u = out["units"]
        print(f"样例省数据已写入 {inbox}：{period} 月文件 {out['files_written']} 个（县 {u['county']:,}、"
              f"乡镇街道 {u['township']:,}、村社区 {u['village']:,}），登记册与设置：{out['settings']}")
        print(f"运行：SHEGONG_SETTINGS={out['settings']} {sys.argv[0]} run --period {period} --inbox {inbox} "
              f"--db {inbox / 'warehouse.duckdb'}")
        return 0
    s = load_settings()
    generate_sample(inbox, s.units_csv, s.population_csv, seed=args.seed, start=args.start, end=args.end)
    # `make demo` regenerates a sample that was interrupted half-way: the marker comes last.
    (inbox / ".sample-complete").write_text(f"{args.start} {args.end} {args.seed}\n")
    print(f"样例数据已写入 {args.inbox}（{args.start} 至 {args.end}，种子 {args.seed}）")
    return 0


def cmd_server(args) -> int:
    from flows import server, spare
    if args.action == "start":
        state, started = server.start(args.host, args.port)
        print(f"Prefect 服务器{'已启动' if started else '已在运行'}：界面 {state['url']}，API {state['api']}"
              f"（进程 {state['pid']}，日志 {state['log']}）；shegong run 将使用它")
        print(_spare_line(spare.start_beside(state["api"])))
        return 0
    if args.action == "stop":
        spare.stop()
        state = server.stop()
        print(f"Prefect 服务器已停止（{state['url']}，进程 {state['pid']}）" if state else
              "没有由 shegong server start 启动的 Prefect 服务器")
        return 0
    state = server.running()
    if state:
        print(f"Prefect 服务器运行中：界面 {state['url']}，API {state['api']}（进程 {state['pid']}，"
              f"自 {state['started']}，日志 {state['log']}）")
        print(_spare_line(spare.ready()))
        return 0
    print(f"没有运行中的 Prefect 服务器（{server.state_file()}）；shegong run 将启动临时服务器")
    return 3


def _spare_line(state: dict | None) -> str:
    from flows import server, spare
    if state:
        return f"预热进程就绪（进程 {state['pid']}）：shegong run 在其中运行，免去导入所需的数秒"
    return (f"预热进程未就绪（日志 {server.prefect_home() / spare.LOG_NAME}）：shegong run 将在新进程中运行；"
            f"上一次运行刚结束时，新的预热进程需要几秒")


def cmd_explain(args) -> int:
    from flows.outputs.explain import explain
    print(explain(Path(args.db), args.indicator, args.unit, args.period, args.limit))
    return 0


def cmd_serve(args) -> int:
    from flows.deploy import DEPLOYMENT, api_url, cron_expression, serve
    from flows.config import load_settings
    api_url()
    _preflight(Path(args.inbox), Path(args.db))  # now, not at 02:00 on the 6th
    if not PREFECT_LEVEL_CHOSEN:
        # The served runs' logs are what the UI shows of them (stages, the month's summary): INFO,
        # as a worker's runs log. Prefect is not imported yet, and the runs inherit the setting.
        os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"
    s = load_settings()
    print(f"serving monthly-rollup/{DEPLOYMENT}: cron '{cron_expression(s)}' ({s.timezone}), "
          f"inbox {Path(args.inbox).resolve()}, warehouse {Path(args.db).resolve()}; Ctrl-C stops it")
    serve(Path(args.inbox), Path(args.db))
    return 0


def cmd_deploy(args) -> int:
    from flows.deploy import DEPLOYMENT, api_url, cron_expression, deploy
    from flows.config import load_settings
    api_url()
    _preflight(Path(args.inbox), Path(args.db))
    deployment_id = deploy(args.pool, Path(args.inbox), Path(args.db))
    s = load_settings()
    print(f"deployed monthly-rollup/{DEPLOYMENT} ({deployment_id}) to work pool {args.pool}: cron "
          f"'{cron_expression(s)}' ({s.timezone}), inbox {Path(args.inbox).resolve()}, warehouse "
          f"{Path(args.db).resolve()}, runs start in {Path.cwd().resolve()}")
    print(f"its runs wait for a worker: {Path(sys.executable).with_name('prefect')} worker start --pool {args.pool}")
    return 0


def cmd_templates(args) -> int:
    from flows.outputs.templates import write_templates
    paths = write_templates(args.period, Path(args.out), db=Path(args.db), unit=args.unit)
    print(f"{args.period} 报表模板 {len(paths)} 份：{Path(args.out) / args.period}/")
    return 0


def cmd_keygen(args) -> int:
    from flows.pii import make_key_file
    path, created = make_key_file(Path(args.file) if args.file else None, force=args.force)
    print(f"{'created' if created else 'kept existing'} ID-hash key {path} (owner-only; never commit it)")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shegong", description="Monthly roll-up of social-work workforce reports")
    sub = p.add_subparsers(dest="command", required=True)
    # Another region's settings.toml (its registry, plan and options): the generated province, say.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--settings", type=Path, help="settings file (default $SHEGONG_SETTINGS or data/settings.toml)")

    r = sub.add_parser("run", parents=[common], help="roll up a month (or a range of months) and publish the warehouse")
    r.add_argument("--period", help="month, YYYY-MM (default: last month)")
    r.add_argument("--from", dest="start", help="first month of a range, YYYY-MM")
    r.add_argument("--to", dest="end", help="last month of a range, YYYY-MM")
    r.add_argument("--inbox", type=Path, default=DEFAULT_INBOX, help="inbox folder (default %(default)s)")
    r.add_argument("--db", type=Path, default=DEFAULT_DB, help="warehouse file (default %(default)s)")
    r.add_argument("--full", action="store_true",
                   help="read and validate every file again, taking nothing from the month's last run")
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("show", help="print a unit's indicators for a month (default: the city)")
    s.add_argument("--period", required=True)
    s.add_argument("--unit", help="12-digit unit code (default: the city)")
    s.add_argument("--db", type=Path, default=DEFAULT_DB)
    s.set_defaults(func=cmd_show)

    w = sub.add_parser("missing", help="list who still owes what for a month (催报): units and forms not received, "
                                        "refused or only carried forward")
    w.add_argument("--period", required=True, help="YYYY-MM")
    w.add_argument("--unit", help="only this unit's subtree (12-digit code of a county or township)")
    w.add_argument("--db", type=Path, default=DEFAULT_DB)
    w.set_defaults(func=cmd_missing)

    m = sub.add_parser("report", help="write a month's report (xlsx and HTML) again from the published warehouse")
    m.add_argument("--period", required=True, help="YYYY-MM")
    m.add_argument("--db", type=Path, default=DEFAULT_DB)
    m.add_argument("--out", type=Path, help="folder (default: reports/<period>/ beside the warehouse)")
    m.set_defaults(func=cmd_report)

    g = sub.add_parser("sample", parents=[common], help="write the sample inbox for the real tree")
    g.add_argument("--inbox", type=Path, default=DEFAULT_INBOX)
    g.add_argument("--seed", type=int, default=20221017)
    g.add_argument("--from", dest="start", default="2022-08")
    g.add_argument("--to", dest="end", default="2025-12")
    g.add_argument("--scale", choices=("city", "province"), default="city",
                   help="city: the real tree, every month from --from to --to; province: a generated tree of "
                        "Sichuan's size (183 counties, 3,100 townships, 30,000 villages), one month (--period), "
                        "with its registry and settings.toml written into --inbox (default data/province)")
    g.add_argument("--period", help="the month of a province sample, YYYY-MM (default 2025-06)")
    g.set_defaults(func=cmd_sample)

    sv = sub.add_parser("server", help="start, stop or show a Prefect server in the background (its UI shows the "
                                       "runs; `shegong run` uses it instead of a temporary server)")
    sv.add_argument("action", choices=("start", "stop", "status"))
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    sv.add_argument("--port", type=int, help="port (default: a free one)")
    sv.set_defaults(func=cmd_server)

    e = sub.add_parser("explain", help="the units, rows and files behind an indicator's value")
    e.add_argument("indicator", help="indicator id, e.g. urban_community_talent_avg")
    e.add_argument("--unit", required=True, help="12-digit unit code")
    e.add_argument("--period", required=True, help="YYYY-MM")
    e.add_argument("--limit", type=int, default=None, help="at most this many units and rows per figure")
    e.add_argument("--db", type=Path, default=DEFAULT_DB)
    e.set_defaults(func=cmd_explain)

    v = sub.add_parser("serve", parents=[common], help="run the monthly schedule against a Prefect server (PREFECT_API_URL)")
    v.add_argument("--inbox", type=Path, default=DEFAULT_INBOX)
    v.add_argument("--db", type=Path, default=DEFAULT_DB)
    v.set_defaults(func=cmd_serve)

    d = sub.add_parser("deploy", parents=[common],
                       help="put the monthly schedule on a process work pool of a Prefect server (PREFECT_API_URL), "
                            "for `prefect worker start --pool NAME` to run")
    d.add_argument("--pool", required=True, help="the work pool (`prefect work-pool create NAME --type process`)")
    d.add_argument("--inbox", type=Path, default=DEFAULT_INBOX)
    d.add_argument("--db", type=Path, default=DEFAULT_DB)
    d.set_defaults(func=cmd_deploy)

    t = sub.add_parser("templates", help="write each reporting unit's xlsx for a month, its own rows filled in")
    t.add_argument("--period", required=True, help="the month the templates are for, YYYY-MM")
    t.add_argument("--unit", help="one unit's template only (12-digit code)")
    t.add_argument("--out", type=Path, default=Path("data/templates"), help="folder (default %(default)s)")
    t.add_argument("--db", type=Path, default=DEFAULT_DB, help="warehouse with last month's values")
    t.set_defaults(func=cmd_templates)

    k = sub.add_parser("keygen", help="create the key that hashes ID numbers, if absent")
    k.add_argument("--file", help="key file (default $SHEGONG_ID_KEY_FILE or .secrets/id-hash.key)")
    k.add_argument("--force", action="store_true", help="replace an existing key (every month must be rerun)")
    k.set_defaults(func=cmd_keygen)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(os.environ.get("SHEGONG_LOG_LEVEL", "WARNING"))
    log.propagate = False
    if args.func is cmd_run:
        status = _in_spare(argv)
        if status is not None:
            return status
    if getattr(args, "settings", None):
        # Through the environment, so that the flow's tasks (and Dask workers) see it too.
        os.environ["SHEGONG_SETTINGS"] = str(args.settings.resolve())
    try:
        return args.func(args)
    except ShegongError as exc:
        log.debug("what stopped the run", exc_info=True)
        print(f"shegong: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
