"""What a work order can be about: device alarm categories and the patrol catalogue.

Device alarms map to a category and subcategory by event kind. Resident
reports (报事报修) and patrol findings use the grid patrol's 7 classes and
their items; each item is an Open311 GeoReport v2 *service* with the code
``{class}.{item}``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sc.contracts.messages import EventKind

__all__ = ["EVENT_CATEGORY", "PATROL_CLASSES", "SERVICES", "Service", "category_for"]

#: event kind -> (category, subcategory)
EVENT_CATEGORY: dict[EventKind, tuple[str, str]] = {
    EventKind.SMOKE_ALARM: ("fire", "smoke_alarm"),
    EventKind.HIGH_TEMPERATURE: ("fire", "high_temperature"),
    EventKind.BIN_FIRE: ("fire", "bin_fire"),
    EventKind.MANHOLE_OPEN: ("manhole", "cover_open"),
    EventKind.WATER_LEVEL_HIGH: ("manhole", "water_level_high"),
    EventKind.BIN_FULL: ("sanitation", "bin_full"),
    EventKind.DEVICE_FAULT: ("device", "fault"),
    EventKind.LOW_BATTERY: ("device", "low_battery"),
    EventKind.DEVICE_OFFLINE: ("device", "offline"),
    EventKind.DEVICE_ONLINE: ("device", "offline"),  # the clear of device_offline
    # gates (entry and entry_refused are records, never orders: see RECORD_KINDS)
    EventKind.TAILGATING: ("security", "tailgating"),
    EventKind.DOOR_FORCED: ("security", "door_forced"),
    EventKind.DOOR_HELD_OPEN: ("security", "door_held_open"),
    EventKind.DOOR_CLOSED: ("security", "door_held_open"),  # the clear of door_held_open
    EventKind.STRANGER_AT_GATE: ("security", "stranger_at_gate"),
    EventKind.CAMERA_OFFLINE: ("device", "camera_offline"),
    EventKind.CAMERA_ONLINE: ("device", "camera_offline"),  # the clear of camera_offline
    EventKind.LIGHTING_FAULT: ("device", "lighting_fault"),
    EventKind.LIGHTING_RESTORED: ("device", "lighting_fault"),  # the clear of lighting_fault
    # a gateway refused commands that were not the cloud's, or no longer valid: someone may hold a broker password
    EventKind.COMMAND_REFUSED: ("security", "command_refused"),
    # the cloud's own: a removed resident's face may still open that gate (cloud/privacy.py)
    EventKind.GALLERY_DELETE_OVERDUE: ("security", "gallery_delete_overdue"),
}


def category_for(kind: EventKind) -> tuple[str, str]:
    return EVENT_CATEGORY[kind]


#: The grid patrol's 7 classes and their 23 items (巡查 7 类 23 项).
PATROL_CLASSES: dict[str, dict[str, str]] = {
    "guard_booth": {
        "name": "门岗 Guard booth",
        "unattended": "无人值守 Unattended",
        "visitor_log": "访客未登记 Visitors not logged",
        "barrier_fault": "道闸故障 Barrier fault",
    },
    "refuse_room": {
        "name": "垃圾房 Refuse room",
        "overflow": "垃圾满溢 Overflowing",
        "not_sorted": "未分类 Not sorted",
        "odour": "异味 Odour",
        "door_broken": "门锁损坏 Door broken",
    },
    "bike_garage": {
        "name": "非机动车库 Bike garage",
        "indoor_charging": "违规充电 Illegal charging",
        "blocked_exit": "堵塞通道 Blocked exit",
        "lighting": "照明故障 Lighting out",
    },
    "water_pump": {
        "name": "水泵房 Water pump room",
        "leak": "漏水 Leak",
        "abnormal_noise": "异响 Abnormal noise",
        "door_unlocked": "门未上锁 Door unlocked",
    },
    "stairwell": {
        "name": "楼道 Stairwell",
        "clutter": "堆物 Clutter",
        "lighting": "照明故障 Lighting out",
        "fire_door": "防火门损坏 Fire door broken",
        "extinguisher": "灭火器缺失过期 Extinguisher missing/expired",
    },
    "substation": {
        "name": "配电房 Substation",
        "door_unlocked": "门未上锁 Door unlocked",
        "flooding": "进水 Flooding",
        "overheating": "过热 Overheating",
    },
    "other": {
        "name": "其他 Other",
        "road_damage": "路面破损 Road damage",
        "illegal_parking": "违章停车 Illegal parking",
        "facility_damage": "公共设施损坏 Public facility damaged",
    },
}


@dataclass(frozen=True)
class Service:
    """One Open311 service: what a resident can report."""

    code: str  # "{class}.{item}"
    name: str
    group: str  # the patrol class's name
    category: str  # the patrol class id, used by routing


SERVICES: dict[str, Service] = {
    f"{cls}.{item}": Service(f"{cls}.{item}", label, items["name"], cls)
    for cls, items in PATROL_CLASSES.items()
    for item, label in items.items()
    if item != "name"
}
