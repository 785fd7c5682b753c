"""The sample's story as data: where the city starts (the plan's 2022-08 baseline) and where it
ends by 2025-12 against the plan's targets, how fast people leave, when organisations and homes
open, and the words its names are made of. flows/tools/sample/world.py plays it out."""
from __future__ import annotations

# ---------------------------------------------------------------------------------------------
# The scenario. Pairs are (value at BASELINE_MONTH, value at TARGET_MONTH); the baseline values
# are the plan's own ("截至2022年8月…"), the 2025 ones a plausible outcome against its targets.
# ---------------------------------------------------------------------------------------------
BASELINE_MONTH = "2022-08"
TARGET_MONTH = "2025-12"
TALENTS = (1740, 2150)  # target 2100: met
CERTIFIED = (528, 720)  # target 750: missed
ELDERLY_FIELD_TALENTS = (312, 430)  # target 400: met
MINOR_FIELD_TALENTS = (205, 280)  # target 300: missed
URBAN_COMMUNITY_TALENTS_AVG = (1.55, 2.3)  # target 2: met
RURAL_COMMUNITY_TALENTS_AVG = (0.5, 0.85)  # target 1: missed
STATION_TALENTS_AVG = (2.6, 4.0)  # persons per township station in service
CITY_TALENTS = (150, 175)
COMMUNITY_WORKER_CERTIFIED_SHARE = (0.20, 0.38)  # target 35 %: met
URBAN_SECRETARY_CERTIFIED = (0.45, 0.97)  # reached by end of 2023, target 100 %: missed
RURAL_SECRETARY_CERTIFIED = (0.15, 0.50)
STATIONS_AND_ROOMS_BASELINE = 94
STATIONS_BASELINE = 31  # the rest open 2022-09..2022-12, the plan's deadline: met
STATION_OPENING_MONTHS = 4
ROOMS_AT_TARGET = 215
CHARITY_FUNDS = (12, 90)
PUBLIC_INSTITUTIONS = 19
PUBLIC_INSTITUTIONS_WITH_POSTS = 17  # the other two create posts in 2023-10 and 2025-03
PUBLIC_POSTS_CREATED = (14, 31)  # month offsets from the baseline
ORGS_BASELINE = 35
ORGS_CITY = 7
ORGS_INCUBATED = 22
ORGS_NEW_AT = (6, 11, 17, 23, 29, 35)  # month offsets of newly registered (incubated) orgs
ORGS_UNCOVERED_COVERED_AT = (7, 16, 27, None)  # 4 orgs without party building; one never
PRIVATE_HOMES_BASELINE = 10
PRIVATE_HOMES_NEW_AT = (9, 20, 30)
DUAL_LISTED = 20  # persons on two rosters in a month, counted once
DUAL_LISTED_CITY = 3  # of which county-level persons also listed by the city
MONTHLY_LEAVE_RATE = 0.0045
CITY_SUPPORT_CENTRE_OPENS = "2023-06"
OUTSTANDING_TALENTS = {2022: 2, 2023: 2, 2024: 3, 2025: 4}
PROVINCE_PASS_RATE = {2022: 23.6, 2023: 21.9, 2024: 25.3, 2025: 24.8}  # sample values
EXAM_REGISTRATION_MONTH = 4  # candidates are known from April, results from August
EXAM_RESULTS_MONTH = 8

# Not an issued county code, so no generated ID or credit code can belong to a real person or
# organisation, while it still looks local (5104xx) and passes every check-digit test.
ADDRESS_CODE = "510499"
ID_SEQ_REAL = (1, 800)  # sequence codes of the sample's persons; 801-999 are for fault rows
ORGCODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)

# Names: common surnames and given-name characters, plus a few Yi names as the area has them.
SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕"
             "丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏付方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚邵万严武戴向汤")
GIVEN_F = "丽娟敏静婷雪琳燕芳霞玲倩颖洁萍慧欣悦佳琴红梅兰艳蕾瑶璐薇晶莉雯露怡妍秀英凤丹"
GIVEN_M = "伟强磊军勇杰涛明超刚平辉鹏华飞斌俊浩宇峰波亮林东健龙鑫凯博文斌成荣"
GIVEN_FIRST = "小晓文子思雨嘉海春建志永国德家玉金天"
YI_NAMES = ("吉克阿依", "沙马拉哈", "阿苏石布", "海来木呷", "俄木尔古", "吉克伍沙", "阿约阿呷")

LEVELS_NEW = (("助理社会工作师", 0.88), ("社会工作师", 0.12))
LEVELS_OLD = (("助理社会工作师", 0.74), ("社会工作师", 0.25), ("高级社会工作师", 0.01))

# Employer kinds of persons serving at county or city level: post type, employer name pattern,
# fields they naturally serve, weights for the 老年/未成年人 fields and for holding a certificate,
# share of full-timers, share of joiners.
KINDS = {
    "org": ("社会工作服务机构", None, ("社区治理", "社会救助", "残障康复", "禁毒", "社区矫正"), 1.2, 1.0, 1.25, 0.95, 0.42),
    "public": ("民政事业单位", None, ("社会救助",), 1.0, 1.0, 1.0, 1.0, 0.05),
    "hospital": ("其他事业单位", "{u}人民医院", ("医务",), 0.6, 0.2, 0.6, 0.8, 0.07),
    "mental": ("其他事业单位", "{u}精神卫生服务中心", ("精神卫生", "医务"), 0.4, 0.2, 0.7, 0.9, 0.04),
    "school": ("其他事业单位", "{u}实验学校", ("学校",), 0.02, 3.0, 0.5, 0.6, 0.08),
    "youth": ("群团组织", "共青团{u}委员会", ("其他",), 0.05, 4.0, 0.6, 0.7, 0.04),
    "women": ("群团组织", "{u}妇女联合会", ("其他", "社会救助"), 0.3, 3.0, 0.6, 0.7, 0.05),
    "disabled": ("群团组织", "{u}残疾人联合会", ("残障康复",), 0.3, 0.3, 0.6, 0.7, 0.04),
    "bureau": ("其他", "{u}民政局", ("社会救助", "社区治理"), 0.8, 0.6, 0.8, 0.9, 0.09),
    "justice": ("其他", "{u}司法局", ("社区矫正",), 0.05, 0.3, 0.6, 0.9, 0.05),
    "drugs": ("其他", "{u}禁毒委员会办公室", ("禁毒",), 0.05, 0.5, 0.6, 0.9, 0.04),
    "home": ("其他", None, ("社会救助", "医务"), 6.0, 0.02, 0.6, 1.0, 0.03),
    "village": ("社区专职工作者", None, ("社区治理", "社会救助", "残障康复"), 1.0, 0.8, 1.3, 1.0, 0.0),
    "village_other": ("其他", None, ("社区治理", "社会救助"), 0.8, 0.6, 0.6, 0.4, 0.0),
    "station": ("社工站驻站社工", None, ("社区治理", "社会救助", "残障康复", "社区矫正", "禁毒"), 1.3, 1.2, 1.5, 1.0, 0.0),
    "township": ("其他", None, ("社区治理", "社会救助"), 0.9, 0.6, 0.6, 0.5, 0.0),
}
# Public civil-affairs institutions: type, name pattern, (elderly, minor) field weights.
PUBLIC_KINDS = {
    "city": (("养老机构", "{u}社会福利院"), ("儿童福利机构", "{u}儿童福利院"),
             ("社会救助服务机构", "{u}救助管理站"), ("殡葬服务机构", "{u}殡仪馆")),
    "county": (("养老机构", "{u}社会福利院"), ("社会救助服务机构", "{u}救助管理站"),
               ("养老机构", "{t}中心敬老院")),
}
INSTITUTION_WEIGHTS = {"养老机构": (6.0, 0.02), "儿童福利机构": (0.02, 8.0), "未成年人救助保护机构": (0.02, 8.0),
                        "社会救助服务机构": (1.0, 2.0), "殡葬服务机构": (0.5, 0.05)}
ORG_WORDS = ("阳光", "同心", "益民", "善行", "馨悦", "启航", "和谐", "聚力", "暖阳", "德馨", "康宁", "向日葵",
              "春晖", "心桥", "博爱", "仁爱", "携手", "乐群", "筑梦", "众和", "安心", "明德", "新希望", "绿荫")
ORG_SUFFIXES = ("社会工作服务中心", "社会工作服务中心", "社会工作发展中心", "社会工作服务社", "社工事务所")
HOME_WORDS = ("康乐", "颐年", "福寿", "安康", "夕阳红", "松鹤", "馨和", "乐龄", "长青", "金色年华", "怡养", "福康")
HOME_SUFFIXES = ("养老院", "老年公寓", "颐养中心")
