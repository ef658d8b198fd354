"""The control-room page's labels: every status, action, severity and event kind named in both languages."""

from __future__ import annotations

import pytest

from cloud.web.i18n import ACTION, HISTORY, KIND, LANGS, SEVERITY, STATUS, Lang, labels, pick_lang
from cloud.workorders.states import Action, HistoryEvent, Status
from sc.contracts.messages import EventKind, Severity


def test_every_enum_value_has_a_label_in_every_language() -> None:
    assert set(STATUS) == set(Status)
    assert set(ACTION) == set(Action)
    assert set(HISTORY) == set(HistoryEvent)
    assert set(SEVERITY) == set(Severity)
    assert set(KIND) == set(EventKind)
    en, zh = labels(Lang.EN), labels(Lang.ZH)
    assert en.keys() == zh.keys()
    for key in en:
        assert en[key].strip() and zh[key].strip(), key
    assert (en["status.on_site"], zh["status.on_site"]) == ("On site", "已到场")
    assert (en["kind.tailgating"], zh["kind.tailgating"]) == ("Tailgating", "尾随")
    assert (en["action.acknowledge"], zh["action.acknowledge"]) == ("Acknowledge", "确认")


def test_the_chinese_table_is_chinese() -> None:
    zh = labels(Lang.ZH)
    untranslated = [k for k, v in zh.items() if v == labels(Lang.EN)[k] and not k.startswith("level.")]
    assert untranslated == []


@pytest.mark.parametrize(
    ("asked", "cookie", "accept", "want"),
    [
        (None, None, None, Lang.EN),
        (None, None, "zh-CN,zh;q=0.9", Lang.ZH),
        (None, None, "en-GB,zh;q=0.5", Lang.EN),
        (None, "zh", "en", Lang.ZH),  # the cookie the page set beats the browser
        ("en", "zh", "zh", Lang.EN),  # ?lang= beats both
        ("fr", None, "zh-TW", Lang.ZH),  # an unknown ?lang= is ignored
        (None, "xx", None, Lang.EN),
    ],
)
def test_the_language_is_picked_from_the_query_the_cookie_then_the_browser(
    asked: str | None, cookie: str | None, accept: str | None, want: Lang
) -> None:
    assert pick_lang(asked=asked, cookie=cookie, accept_language=accept) is want
    assert want in LANGS
