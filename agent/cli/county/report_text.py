"""The report's words in Chinese and English: a small table, not a gettext catalog (the county
tools are run by technicians, in either language; the stationctl catalog is for village admins).
"""

from __future__ import annotations

from agent.cli.i18n import pick_language

LABELS: dict[str, tuple[str, str]] = {
    "title": ("Viewing report", "远程教育收看统计"),
    "county": ("County", "县"),
    "all_counties": ("all counties", "全部县"),
    "month": ("Month", "月份"),
    "as_of": ("Data up to", "数据截至"),
    "terminal": ("Station", "站点"),
    "scheduled": ("Scheduled", "计划场次"),
    "completed": ("Completed (≥ {pct} %)", "完整收看（≥{pct}%）"),
    "partial": ("Partial", "部分收看"),
    "missed": ("Missed or skipped", "未播放"),
    "missed_reasons": ("Why missed", "未播原因"),
    "viewing_rate": ("Viewing rate", "收看率"),
    "collective_sessions": ("Collective sessions (target {target})", "集中学习（目标{target}次）"),
    "target_met": ("Target met", "达标"),
    "attendance": ("Attendance", "参学人次"),
    "on_demand_plays": ("On-demand plays", "点播次数"),
    "on_demand_minutes": ("On-demand minutes", "点播分钟"),
    "days_online": ("Days online", "在线天数"),
    "last_seen": ("Last seen", "最后联系"),
    "silent_days": ("Silent (days)", "失联天数"),
    "silent": ("Silent", "失联"),
    "alarms_raised": ("Alarms raised", "告警次数"),
    "alarms_open": ("Alarms open", "未消除告警"),
    "open_alarms": ("Open alarms", "未消除告警项"),
    "content_missing_alarms": ("Missing-course alarms", "缺课件告警"),
    "courses_missing": ("Courses missing before their slot", "课前缺失课件"),
    "stations": ("Stations", "站点数"),
    "stations_meeting_target": ("Stations meeting the target", "达标站点"),
    "stations_below_target": ("Stations below the target", "未达标站点"),
    "silent_stations": ("Silent for more than {days} days", "失联超过{days}天"),
    "totals": ("County totals", "全县合计"),
    "per_station": ("Per station (below the target first)", "各站点（未达标在前）"),
    "chart_sessions": (
        "Collective sessions per station (line: target)",
        "各站点集中学习次数（线：目标）",
    ),
    "chart_rate": ("Viewing rate per station", "各站点收看率"),
    "chart_online": ("Days online per station", "各站点在线天数"),
    "rate_rule": (
        "Viewing rate = completed scheduled sessions / scheduled sessions; completed = watched to "
        "at least {pct} % of the course.",
        "收看率 = 完整收看的计划场次 / 计划场次；完整收看 = 播放达到课程的{pct}%以上。",
    ),
    "none": ("none", "无"),
    "yes": ("yes", "是"),
    "no": ("no", "否"),
}


class Words:
    """Labels in one language; ``zh`` for Chinese, anything else English."""

    def __init__(self, lang: str | None) -> None:
        self.zh = pick_language(lang) == "zh_CN"
        self.lang = "zh-CN" if self.zh else "en"

    def __call__(self, key: str, **fmt: object) -> str:
        en, zh = LABELS[key]
        return (zh if self.zh else en).format(**fmt)
