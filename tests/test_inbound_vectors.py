"""Known-answer vectors (shared/platforms.md §2.5, §6, §7, §10) for both sides of every callback:
the bot's verification (``bot/platforms/<platform>/inbound.py``) and the test's platform (``tests/fakes/chat.py``)."""

from __future__ import annotations

import pytest

from bot.confirming.inbound import occurrence_of_code, parse_reply, short_code
from bot.platforms.dingtalk import inbound as dingtalk_inbound
from bot.platforms.events import CallbackError
from bot.platforms.feishu import inbound as feishu_inbound
from bot.platforms.wecom import inbound as wecom_inbound
from tests.fakes import chat

WECOM_TOKEN = "123456"
WECOM_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
WECOM_CORP = "wx49f0ab532d5d035a"
ECHOSTR = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
VECTOR_ENCRYPT = (
    "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6y"
    "dJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/T"
    "ywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5"
    "t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=")
ENCRYPT_PLAIN = ("<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n"
                 "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]>"
                 "</ToUserName>\n<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>")
ENCRYPT_EXPECTED = (
    "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesE"
    "l5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsD"
    "f03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nT"
    "YjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3")


@pytest.mark.parametrize("sign", [wecom_inbound.signature, chat.wecom_signature])
def test_wecom_signatures_match_the_public_vectors(sign) -> None:  # type: ignore[no-untyped-def]
    assert sign(WECOM_TOKEN, "1411443780", "437374425", ECHOSTR) == "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96"
    assert sign(WECOM_TOKEN, "1411443780", "437374424", ECHOSTR) != "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96"
    assert sign(WECOM_TOKEN, "1411525903", "461056294", VECTOR_ENCRYPT) == "74d92dfeb87ba7c714f89d98870ae5eb62dff26d"
    assert sign(WECOM_TOKEN, "1411525903", "461056294", ENCRYPT_EXPECTED) == "407518b7649e86ef23978113f92d27afa9296533"


def test_wecom_crypto_matches_the_public_vectors_both_ways() -> None:
    assert wecom_inbound.decrypt(WECOM_KEY, ECHOSTR, WECOM_CORP) == "5927782489442352469"
    inner = wecom_inbound.decrypt(WECOM_KEY, VECTOR_ENCRYPT, WECOM_CORP)
    assert "<Content><![CDATA[test]]></Content>" in inner and "messense" in inner
    fixed = b"1234567890123456"
    assert wecom_inbound.encrypt(WECOM_KEY, ENCRYPT_PLAIN, WECOM_CORP, fixed) == ENCRYPT_EXPECTED
    assert chat.wecom_encrypt(WECOM_KEY, ENCRYPT_PLAIN, WECOM_CORP, fixed) == ENCRYPT_EXPECTED
    assert chat.wecom_decrypt(WECOM_KEY, ECHOSTR) == ("5927782489442352469", WECOM_CORP)
    # the group-robot callback's own vector: empty receive id
    robot = "IV7jph9Oxv4Nv6wmo9zvt54WxZL7TkLuGM4fD5TjOk0="
    assert chat.wecom_encrypt(WECOM_KEY, "hello", "", b"abcdefghijklmnop") == robot
    assert wecom_inbound.decrypt(WECOM_KEY, robot, "") == "hello"
    assert wecom_inbound.signature(WECOM_TOKEN, "1700000000", "n1", robot) == "82ca9bb87552400f05549377d017d636b5defd4f"


def test_wecom_decrypt_refuses_another_corp_and_garbage() -> None:
    for bad, corp in ((ECHOSTR, "wx-other"), ("not base64!!", WECOM_CORP), ("QUJD", WECOM_CORP)):
        with pytest.raises(CallbackError) as exc:
            wecom_inbound.decrypt(WECOM_KEY, bad, corp)
        assert exc.value.status == 400 and "解密" in str(exc.value)


@pytest.mark.parametrize("sign", [dingtalk_inbound.sign, chat.dingtalk_sign])
def test_dingtalk_callback_sign_matches_the_vectors(sign) -> None:  # type: ignore[no-untyped-def]
    assert sign("test-app-secret", "1577262236757") == "XbMT4mXjew04brIN5f9EjwUAOTHY6Gp6ui2bhlkV8kQ="
    assert sign("SEC-test-secret", "1700000000000") == "Mrhy389nC5p7fqYHgciQpNWFiBNjbTx4Rn5BqEH45jY="


def test_feishu_crypto_and_signature_match_the_vectors() -> None:
    assert feishu_inbound.decrypt("test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=") == "hello world"
    assert chat.feishu_decrypt("test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=") == "hello world"
    plain = '{"challenge":"ch-123","token":"vtoken","type":"url_verification"}'
    own = ("MDEyMzQ1Njc4OWFiY2RlZr9mjJZCSmmyX3XSBiO2k0wIAGBUDZ171rQ6Js+5RUVtCIxtVb+e2+8Fs9z4S1LV8qaFbkkd/5G420kl/wNX"
           "Gz79BXY2Wx6KSGIJcGnq6umO")
    assert chat.feishu_encrypt("test key", plain, b"0123456789abcdef") == own
    assert feishu_inbound.encrypt("test key", plain, b"0123456789abcdef") == own
    for sign in (feishu_inbound.signature, chat.feishu_signature):
        assert sign("1700000000", "nonce-abc", "test key", f'{{"encrypt":"{own}"}}'.encode()) == \
            "71ae2d39020c6fbf86ff83354b76140bae79938c3e62019235007feb33a13582"
        assert sign("1700000000", "nonce-abc", "test key",
                    b'{"encrypt":"P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk="}') == \
            "651c41e37268e4e00e77ccde1b4b9d16e624029b82bafa51660c3a382d4f0588"


def test_slack_signature_matches_the_public_and_own_vectors() -> None:
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
            b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
            b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
            b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    assert chat.slack_signature("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body) == \
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert chat.slack_signature("SEC-test-secret", "1700000000", b'{"type":"event_callback"}') == \
        "v0=5f62fcc18a7393d43c0eba48428dcf45cfae4ae59bbcce314f49062501e691d8"


def test_short_codes_are_stable_distinct_and_decode_back() -> None:
    codes = {short_code(i) for i in range(1, 5001)}
    assert len(codes) == 5000
    for i in (1, 2, 77, 4999, 923_520):
        assert occurrence_of_code(short_code(i)) == i
        assert occurrence_of_code(short_code(i).lower()) == i
    assert short_code(42) == short_code(42)
    assert occurrence_of_code("O0I1") is None  # ambiguous letters are never used


@pytest.mark.parametrize(("text", "code", "note"), [
    ("收到", None, None),
    ("确认", None, None),
    ("已完成 参加23人", None, "参加23人"),
    ("完成，参加23人", None, "参加23人"),
    (f"确认 {short_code(7)}", short_code(7), None),
    (f"已完成 {short_code(7).lower()} 参加23人", short_code(7), "参加23人"),
    # no space between the word and what follows, where that is unambiguous
    ("已完成参加23人", None, "参加23人"),
    ("已完成23人参加", None, "23人参加"),
    (f"收到{short_code(7)}", short_code(7), None),
    (f"收到{short_code(7).lower()}参加23人", short_code(7), "参加23人"),
    ("收到了", None, None),
    ("已完成啦，参加23人", None, "参加23人"),
    ("收到了参加23人", None, "参加23人"),
    ("确认收到", None, None),
    ("收到收到", None, None),
    ("收到👍", None, "👍"),
    # full-width spaces and punctuation
    (f"确认，{short_code(7)}", short_code(7), None),
    ("收到！", None, None),
    (f"确认\u3000{short_code(7)}\u3000参加23人", short_code(7), "参加23人"),
    (f"已完成；{short_code(7)}：参加23人", short_code(7), "参加23人"),
    ("收到～", None, None),
])
def test_replies_that_confirm(text: str, code: str | None, note: str | None) -> None:
    reply = parse_reply(text)
    assert reply is not None and reply.code == code and reply.note == note


@pytest.mark.parametrize("text", [
    "", "你好", "确认一下时间", "不确认", "请问收到了吗",
    # the word inside a sentence, or glued into a question, a denial or another phrase
    "我没收到通知", "没收到", "未完成", "收到的通知在哪里", "收到了吗", "收到？", "收到吗", "收到了没有",
    "确认一下", "确认是明天吗", "确认参加", "已完成的同志请回复收到", "已完成吗", "已完成情况统计如下",
    "完成率", "完成任务", "收到没", "确认不了",
    # a glued ASCII run that is no code: a typo'd code must not confirm the oldest open one
    "收到ABCDE", "收到2345", "确认OK",
])
def test_texts_that_are_no_confirmation(text: str) -> None:
    assert parse_reply(text) is None
