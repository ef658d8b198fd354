"""Every label the control-room page shows, in English and Chinese.

Statuses, actions, history events, severities and event kinds are keyed by their enums (the
state machine and the contracts own the values; this module only names them
for people), so a new status without a label fails a test rather than showing
a raw id. The page gets the chosen language's table as JSON.
"""

from __future__ import annotations

from enum import StrEnum

from cloud.workorders.states import Action, HistoryEvent, Status
from sc.contracts.messages import EventKind, Severity

__all__ = ["LANGS", "Lang", "labels", "pick_lang"]


class Lang(StrEnum):
    EN = "en"
    ZH = "zh"


LANGS = tuple(Lang)

_UI: dict[str, tuple[str, str]] = {
    "app": ("Control room", "指挥中心"),
    "nav.wall": ("Alarms", "告警墙"),
    "nav.orders": ("Work orders", "工单"),
    "nav.devices": ("Devices", "设备"),
    "nav.supervision": ("Supervision", "督办考核"),
    "nav.site": ("Gates & garage", "门禁与车库"),
    "signin": ("Sign in", "登录"),
    "signout": ("Sign out", "退出"),
    "username": ("User", "用户名"),
    "password": ("Password", "密码"),
    "signin.failed": ("Wrong user or password", "用户名或密码错误"),
    "sound.on": ("Sound on", "声音开"),
    "sound.off": ("Sound off", "声音关"),
    "live.connected": ("Live", "实时"),
    "live.reconnecting": ("Reconnecting…", "重新连接中…"),
    "wall.title": ("Live alarms", "实时告警"),
    "wall.empty": ("No open alarms", "暂无未处理告警"),
    "wall.unacked": ("new", "未确认"),
    "wall.acked_by": ("acknowledged by", "已确认："),
    "wall.alarms": ("alarms", "次告警"),
    "wall.cleared": ("device says cleared", "设备已恢复"),
    "dispatch.to": ("Dispatch to", "派单给"),
    "note": ("Note", "备注"),
    "rating": ("Rating", "评分"),
    "comment": ("Resident's comment", "居民评价"),
    "orders.title": ("Work orders", "工单看板"),
    "orders.closed_recent": ("Closed (recent)", "已办结（最近）"),
    "due.respond": ("respond", "响应"),
    "due.resolve": ("resolve", "办结"),
    "due.overdue": ("overdue", "已超时"),
    "escalated": ("Escalated", "已升级"),
    "order.history": ("History", "处理记录"),
    "order.events": ("Device events", "设备事件"),
    "order.assignee": ("Assignee", "处理人"),
    "order.department": ("Department", "部门"),
    "order.location": ("Location", "位置"),
    "order.created": ("Opened", "创建"),
    "order.reading": ("Last reading", "最新读数"),
    "order.none_selected": ("Pick an order", "请选择工单"),
    "devices.title": ("Devices", "设备"),
    "devices.all": ("All", "全部"),
    "devices.grid": ("Grid", "网格"),
    "devices.kind": ("Kind", "类型"),
    "devices.state": ("State", "状态"),
    "devices.online": ("online", "在线"),
    "devices.offline": ("offline", "离线"),
    "devices.unknown": ("unknown", "未知"),
    "devices.since": ("since", "自"),
    "devices.last_seen": ("Last seen", "最后上报"),
    "devices.reading": ("Last reading", "最新读数"),
    "devices.battery": ("Battery", "电量"),
    "devices.history": ("readings", "读数曲线"),
    "devices.no_history": ("No readings stored for this device", "该设备无历史读数"),
    "devices.pick": ("Pick a device to see its readings", "选择设备查看读数曲线"),
    "sup.title": ("Supervision", "督办考核"),
    "sup.period": ("Period", "时间段"),
    "sup.by": ("Group by", "分组"),
    "sup.by.department": ("Department", "部门"),
    "sup.by.grid": ("Grid", "网格"),
    "sup.by.community": ("Community", "社区"),
    "sup.by.property_company": ("Property company", "物业公司"),
    "sup.by.category": ("Category", "类别"),
    "sup.days": ("days", "天"),
    "sup.custom": ("From … to …", "自定义"),
    "sup.from": ("From", "从"),
    "sup.to": ("to (inclusive)", "到（含）"),
    "sup.orders": ("Orders", "工单数"),
    "sup.response_min": ("Avg response (min)", "平均响应（分钟）"),
    "sup.resolution_min": ("Avg resolution (min)", "平均办结（分钟）"),
    "sup.respond_met": ("Response on time %", "按时响应率 %"),
    "sup.resolve_met": ("Resolved on time %", "按时办结率 %"),
    "sup.escalated": ("Escalated", "升级数"),
    "sup.reopen": ("Reopened %", "返工率 %"),
    "sup.rating": ("Avg rating", "平均评分"),
    "sup.ratings": ("Ratings", "评价数"),
    "site.entries": ("Recent entries", "最近通行"),
    "site.no_entries": ("No one has come through a gate yet", "暂无通行记录"),
    "site.gate": ("Gate", "门禁"),
    "site.when": ("When", "时间"),
    "site.who": ("Who", "人员"),
    "site.method": ("How", "方式"),
    "site.granted": ("let in", "放行"),
    "site.refused": ("refused", "拒绝"),
    "site.garage": ("Garage", "车库"),
    "site.lights_full": ("lights full", "盏灯全亮"),
    "site.tracks": ("tracked", "跟踪中"),
    "site.car": ("car", "车辆"),
    "site.person": ("person", "行人"),
    "site.stale": ("no fresh state from the gateway", "网关状态未更新"),
    "site.no_state": ("nothing heard from the gateway yet", "尚未收到网关状态"),
    "site.override": ("Lights", "灯光"),
    "site.smoke": ("smoke alarm: all lights full", "烟雾告警：全部全亮"),
    "site.faults": ("Faults", "故障"),
    "level.full": ("Full", "全亮"),
    "level.standby": ("Standby", "待机"),
    "level.off": ("Off", "关闭"),
    "level.auto": ("Auto", "自动"),
    "error": ("Error", "错误"),
    "loading": ("Loading…", "加载中…"),
    "role.operator": ("operator", "值班员"),
    "role.grid_worker": ("grid worker", "网格员"),
    "role.department": ("department", "部门"),
    "role.resident": ("resident", "居民"),
    "role.admin": ("admin", "管理员"),
}

STATUS: dict[Status, tuple[str, str]] = {
    Status.OPEN: ("Open", "待派单"),
    Status.DISPATCHED: ("Dispatched", "已派单"),
    Status.ACCEPTED: ("Accepted", "已接单"),
    Status.ON_SITE: ("On site", "已到场"),
    Status.RESOLVED: ("Resolved", "已处置"),
    Status.CLOSED: ("Closed", "已办结"),
    Status.REOPENED: ("Reopened", "已重开"),
}

ACTION: dict[Action, tuple[str, str]] = {
    Action.ACKNOWLEDGE: ("Acknowledge", "确认"),
    Action.DISPATCH: ("Dispatch", "派单"),
    Action.ACCEPT: ("Accept", "接单"),
    Action.ARRIVE: ("Arrived", "到场"),
    Action.RESOLVE: ("Resolved", "处置完成"),
    Action.CLOSE: ("Close", "办结"),
    Action.REOPEN: ("Reopen", "重开"),
}

HISTORY: dict[HistoryEvent, tuple[str, str]] = {
    HistoryEvent.OPEN: ("Opened", "立单"),
    HistoryEvent.ALARM_AGAIN: ("Alarm again", "再次告警"),
    HistoryEvent.DEVICE_CLEARED: ("Device cleared", "设备恢复"),
    HistoryEvent.ESCALATE: ("Escalated", "升级督办"),
}

SEVERITY: dict[Severity, tuple[str, str]] = {
    Severity.CRITICAL: ("Critical", "紧急"),
    Severity.MAJOR: ("Major", "重要"),
    Severity.WARNING: ("Warning", "一般"),
    Severity.INFO: ("Info", "提示"),
}

KIND: dict[EventKind, tuple[str, str]] = {
    EventKind.SMOKE_ALARM: ("Smoke alarm", "烟雾告警"),
    EventKind.HIGH_TEMPERATURE: ("High temperature", "高温告警"),
    EventKind.DEVICE_FAULT: ("Device fault", "设备故障"),
    EventKind.LOW_BATTERY: ("Low battery", "电量低"),
    EventKind.MANHOLE_OPEN: ("Manhole cover open", "井盖开启"),
    EventKind.WATER_LEVEL_HIGH: ("Water level high", "水位过高"),
    EventKind.BIN_FULL: ("Bin full", "垃圾桶满溢"),
    EventKind.BIN_FIRE: ("Bin fire", "垃圾桶起火"),
    EventKind.DEVICE_OFFLINE: ("Device offline", "设备离线"),
    EventKind.DEVICE_ONLINE: ("Device online", "设备上线"),
    EventKind.ENTRY: ("Entry", "通行"),
    EventKind.ENTRY_REFUSED: ("Entry refused", "拒绝通行"),
    EventKind.STRANGER_AT_GATE: ("Stranger at the gate", "陌生人逗留"),
    EventKind.TAILGATING: ("Tailgating", "尾随"),
    EventKind.DOOR_HELD_OPEN: ("Door held open", "门长时间未关"),
    EventKind.DOOR_CLOSED: ("Door closed", "门已关闭"),
    EventKind.DOOR_FORCED: ("Door forced", "强行开门"),
    EventKind.CAMERA_OFFLINE: ("Camera offline", "摄像头离线"),
    EventKind.CAMERA_ONLINE: ("Camera online", "摄像头上线"),
    EventKind.LIGHTING_FAULT: ("Lighting fault", "照明故障"),
    EventKind.LIGHTING_RESTORED: ("Lighting restored", "照明恢复"),
    EventKind.COMMAND_REFUSED: ("Command refused (forged or expired)", "指令被拒(伪造或过期)"),
    EventKind.GALLERY_DELETE_OVERDUE: ("Removed resident not deleted at the gate", "已注销住户未从门禁删除"),
}


def labels(lang: Lang) -> dict[str, str]:
    """The flat table the page uses: ``ui key``, ``status.<s>``, ``action.<a>``, ``history.<h>``, ``severity.<s>``,
    ``kind.<k>``."""
    i = 0 if lang is Lang.EN else 1
    out = {k: v[i] for k, v in _UI.items()}
    tables = (("status", STATUS), ("action", ACTION), ("history", HISTORY), ("severity", SEVERITY), ("kind", KIND))
    for prefix, table in tables:
        out.update({f"{prefix}.{k.value}": v[i] for k, v in table.items()})
    return out


def pick_lang(*, asked: str | None, cookie: str | None, accept_language: str | None) -> Lang:
    """``?lang=`` first, then the cookie the page set, then the browser's first preference; English otherwise."""
    for value in (asked, cookie):
        if value in {lang.value for lang in LANGS}:
            return Lang(value)
    first = (accept_language or "").split(",")[0].strip().lower()
    return Lang.ZH if first.startswith("zh") else Lang.EN
