"""``keys`` rules: the value of a secret setting disappears in every syntax."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pytest

from koncis_diag.redaction import Redactor, build_redactor
from koncis_diag.redaction.keys import CACHE_SIZE, KeysCursor, KeysDetector
from koncis_diag.redaction.matching import Batch
from koncis_diag.redaction.ruleset import default_rules

M = "[REDACTED:secret-keys]"


@pytest.fixture
def redactor(tmp_path: Path) -> Redactor:
    return build_redactor(state_dir=tmp_path / "state")


def redact(redactor: Redactor, text: str, fmt: str) -> str:
    return redactor.redact_text(text, fmt=fmt)[0]


CASES = [
    # XML
    ("xml", "<password>Tr0ub4dor</password>", f"<password>{M}</password>"),
    (
        "xml",
        "<ns:password type='x'>p&lt;3</ns:password>",
        f"<ns:password type='x'>{M}</ns:password>",
    ),
    (
        "xml",
        '<Connector keystorePass="changeit" port="8443"/>',
        f'<Connector keystorePass="{M}" port="8443"/>',
    ),
    ("xml", "<Realm connectionPassword='pw1' />", f"<Realm connectionPassword='{M}' />"),
    (
        "xml",
        '<property name="hibernate.connection.password">\n   s3cret\n</property>\n',
        f'<property name="hibernate.connection.password">\n   {M}\n</property>\n',
    ),
    ("xml", '<entry key="password" value="EntryVal"/>', f'<entry key="password" value="{M}"/>'),
    ("xml", '<entry key="db.password">ElemVal</entry>', f'<entry key="db.password">{M}</entry>'),
    (
        "xml",
        "<init-param>\n  <param-name>password</param-name>\n  <param-value>V1</param-value>\n",
        f"<init-param>\n  <param-name>password</param-name>\n  <param-value>{M}</param-value>\n",
    ),
    ("xml", "<password><![CDATA[a</b]]></password>", f"<password>{M}</password>"),
    ("xml", "<password/><password></password>", "<password/><password></password>"),
    ("xml", "<password>{ATL_SECURED}</password>", "<password>{ATL_SECURED}</password>"),
    # a secret element with child elements or mixed content: its text is still redacted
    (
        "xml",
        "<password>\n  <value>V2</value>\n  <b>V3</b>\n</password><x>kept</x>",
        f"<password>\n  <value>{M}</value>\n  <b>{M}</b>\n</password><x>kept</x>",
    ),
    ("xml", "<password>V4<br/>V5</password>", f"<password>{M}<br/>{M}</password>"),
    ("log", "<pass>V6<", f"<pass>{M}<"),
    # properties
    ("properties", "a.password : Prop Val With Spaces\n", f"a.password : {M}\n"),
    ("properties", "b.password=Cont\\\n   inued\nnext=1\n", f"b.password={M}\nnext=1\n"),
    ("properties", "c.password\tTabbed value\n", f"c.password\t{M}\n"),
    ("properties", "password.policy.min.length=8\n", "password.policy.min.length=8\n"),
    # YAML
    ("yaml", 'password: "quoted val"\n', f'password: "{M}"\n'),
    ("yaml", "secret: 'it''s'\n", f"secret: '{M}'\n"),
    ("yaml", "token: plain # comment\n", f"token: {M} # comment\n"),
    ("yaml", "api_key:\n  verylongkey\nother: x\n", f"api_key:\n  {M}\nother: x\n"),
    (
        "yaml",
        "db:\n  password: |\n    l1\n    l2\n  user: x\n",
        f"db:\n  password: |\n    {M}\n  user: user-",
    ),
    (
        "yaml",
        "passwords:\n  - a1\n  - 'b2'\nnext: 1\n",
        f"passwords:\n  - {M}\n  - '{M}'\nnext: 1\n",
    ),
    ("yaml", "- password: listed\n", f"- password: {M}\n"),
    (
        "yaml",
        "password: ${DB_PASSWORD}\ntoken_type: bearer\n",
        "password: ${DB_PASSWORD}\ntoken_type: bearer\n",
    ),
    # JSON
    ("json", '{"password": "js\\"on", "a": 1}', f'{{"password": "{M}", "a": 1}}'),
    ("json", '{"token": 12345}', f'{{"token": {M}}}'),
    ("json", '{"secret": null, "password": ""}', '{"secret": null, "password": ""}'),
    ("json", '{"passwords": ["a", "b"]}', f'{{"passwords": [{M}]}}'),
    (
        "json",
        '[{"name": "DB_PASSWORD", "value": "EnvVal"}]',
        f'[{{"name": "DB_PASSWORD", "value": "{M}"}}]',
    ),
    # INI
    ("ini", "[db]\npassword = ini val\nport = 5432\n", f"[db]\npassword = {M}\nport = 5432\n"),
    (
        "ini",
        "secret =\n    line1\n    line2\nport = 5432\n",
        f"secret =\n    {M}\n    {M}\nport = 5432\n",
    ),
    # shell
    ("shell", "export DB_PASSWORD=ShellVal\n", f"export DB_PASSWORD={M}\n"),
    ("shell", 'X_PASSWORD="multi\nline" # c\n', f'X_PASSWORD="{M}" # c\n'),
    (
        "shell",
        'JAVA_OPTS="-Dtrust.password=JvmVal -Xmx1g"\n',
        f'JAVA_OPTS="-Dtrust.password={M} -Xmx1g"\n',
    ),
    ("shell", "PWD=/opt/x\nOLDPWD=/tmp\n", "PWD=/opt/x\nOLDPWD=/tmp\n"),
    # logs and text
    ("log", 'login {"password":"LogJs","n":1}', f'login {{"password":"{M}","n":1}}'),
    ("log", 'body={\\"password\\":\\"Esc\\"}', f'body={{\\"password\\":\\"{M}\\"}}'),
    ("log", "args -Dx.password=Jvm2 -Xmx1g", f"args -Dx.password={M} -Xmx1g"),
    ("log", "ERROR password: colonval, next", f"ERROR password: {M}, next"),
    ("log", "map {password=MapVal, token=T2}", f"map {{password={M}, token={M}}}"),
    ("log", "p password=a,b;c end", f"p password={M} end"),
    ("log", "GET /x?os_password=qs1&b=2", "GET /x?os_password=[REDACTED:url-secret-params]&b=2"),
    ("log", "--password s3cr3t --verbose", f"--password {M} --verbose"),
    ("log", "--password --verbose", "--password --verbose"),
    ("log", "Password is required", "Password is required"),
    ("log", "Password: ****", "Password: ****"),
    ("text", "bindpw sostestpassword\n", f"bindpw {M}\n"),
    ("text", "password reset requested by bob\n", "password reset requested by bob\n"),
    ("text", "ldap_default_authtok = 50 Leagues Under the Sea\n", f"ldap_default_authtok = {M}\n"),
    ("csv", "id,password\n1,abc\n", "id,password\n1,abc\n"),
]


@pytest.mark.parametrize(("fmt", "text", "expected"), CASES)
def test_keys(redactor: Redactor, fmt: str, text: str, expected: str) -> None:
    out = redact(redactor, text, fmt)
    if expected.endswith("user-"):
        assert out.startswith(expected), out
    else:
        assert out == expected


def test_line_formats_never_reach_across_lines(redactor: Redactor) -> None:
    text = "<password>\n  secret-on-next-line\n</password>\n"
    assert redact(redactor, text, "log") == text  # logs are line by line (documented)
    assert "secret-on-next-line" not in redact(redactor, text, "xml")


def test_user_names_are_pseudonymised_consistently(redactor: Redactor) -> None:
    out = redact(
        redactor,
        '<username>jira</username>\n<property name="hibernate.connection.username">jira</property>\n',
        "xml",
    )
    first, second = (line.split(">")[1].split("<")[0] for line in out.splitlines())
    assert first == second and first.startswith("user-")
    log = redact(redactor, "pgbadger user=jira,db=jiradb,app=psql", "log")
    assert log == f"pgbadger user={first},db=jiradb,app=psql"


def test_custom_keys_rule_with_exclusions(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(
        "version: 1\nrules:\n  - name: pins\n    keys: ['*pin*']\n    exclude_keys: ['spinner*']\n",
        encoding="utf-8",
    )
    redactor = build_redactor([rules], state_dir=tmp_path / "s")
    out, counts = redactor.redact_text("user_pin=1234 spinner_style=dots", fmt="log")
    assert out == "user_pin=[REDACTED:pins] spinner_style=dots"
    assert counts == {"pins": 1}


# ------------------------------------------------------------------ key tokens and the cursor

LONG = "a" * 70  # longer than the window the key token is widened by in one step


@pytest.mark.parametrize(
    ("fmt", "text", "expected"),
    [
        # the whole token decides, however long: ``max_*`` excludes it, ``*.user`` would not
        ("log", f"x max_{LONG}.user=bob y", f"x max_{LONG}.user=bob y"),
        ("log", f"x {LONG}.{LONG}.password=LongKey y", f"x {LONG}.{LONG}.password={M} y"),
        ("log", "password=AtStart", f"password={M}"),
        ("log", "x tokenpassword=Both y", f"x tokenpassword={M} y"),  # two triggers, one key
        ("log", "p user=postgres;db=jira", "p user=user-"),  # ';' then key=value ends it
        ("log", "p password=a;b c", f"p password={M} c"),
        ("log", 'p password=ab\\"cd', f'p password={M}\\"cd'),  # no escaped quote in it
        ("log", "p password=a\\b c", f"p password={M} c"),
        ("log", "p password=x),", f"p password={M}),"),
        ("log", "p password=)), q", "p password=)), q"),
    ],
)
def test_key_tokens_and_values(redactor: Redactor, fmt: str, text: str, expected: str) -> None:
    out = redact(redactor, text, fmt)
    if expected.endswith("user-"):
        assert out.startswith(expected) and ";db=jira" in out, out
    else:
        assert out == expected


def _secret_keys_cursor(text: bytes, fmt: str = "log") -> Optional[KeysCursor]:
    rule = next(r for r in default_rules() if r.name == "secret-keys")
    return KeysDetector(rule, 7).begin(Batch(text, fmt))


def test_cursor_hits_in_order_and_never_backwards() -> None:
    text = b"password=a x.token=b secret=c"
    cursor = _secret_keys_cursor(text)
    assert cursor is not None
    first = cursor.next_hit(0)
    assert first is not None
    assert (first.start, first.end, first.rule_index, first.spans) == (0, 10, 7, ((9, 10),))
    # a key that starts before ``pos`` is not reported, even though its trigger comes after it
    second = cursor.next_hit(13)
    assert second is not None and (second.start, second.spans) == (21, ((28, 29),))
    # asking again from further back never repeats or goes back past the last hit's key
    assert cursor.next_hit(0) is None
    assert cursor.next_hit(0) is None


def test_cursor_overlapping_positions() -> None:
    text = b"a.password=one b.password=two"
    cursor = _secret_keys_cursor(text)
    assert cursor is not None
    starts = []
    pos = 0
    while (hit := cursor.next_hit(pos)) is not None:
        starts.append(hit.start)
        pos = hit.start + 1
    assert starts == [0, 15]


def test_cursor_absent_triggers() -> None:
    assert _secret_keys_cursor(b"nothing to see here") is None
    cursor = _secret_keys_cursor(b"password reset requested")
    assert cursor is not None
    assert cursor.next_hit(0) is None


def test_wanted_memo_agrees_and_stays_bounded() -> None:
    rule = next(r for r in default_rules() if r.name == "secret-keys")
    detector = KeysDetector(rule, 0)
    keys = [b"password", b"password.policy", b"-Dx.password", b"--token", b"token_type"]
    keys += [b"k%d.password" % i for i in range(5000)]
    for key in keys + keys[:5]:
        assert detector.wanted_cached(key) == detector.wanted(key)
    assert [detector.wanted_cached(k) for k in keys[:5]] == [True, False, True, True, False]
    assert len(detector._wanted) <= CACHE_SIZE


S = "[REDACTED:secret-keys]"

CONTINUED_KEYS = [
    # java.util.Properties joins the lines: the key is jdbc.password
    ("jdbc.pass\\\n    word=S3cretPw\n", f"jdbc.pass\\\n    word={S}\n"),
    ("x.pa\\\nssw\\\nord : Hidden2\n", f"x.pa\\\nssw\\\nord : {S}\n"),
    ("db.pass\\\r\n  word = CrLf9\r\n", f"db.pass\\\r\n  word = {S}\r\n"),
    ("api.to\\\n  ken S3cretTok\n", f"api.to\\\n  ken {S}\n"),  # blank as the separator
    ("pass\\u0077\\\n  ord.x=Esc4ped\n", f"pass\\u0077\\\n  ord.x={S}\n"),
    # the value continues too: all of it goes
    ("jdbc.pass\\\n word=part1\\\n   part2\nnext=1\n", f"jdbc.pass\\\n word={S}\nnext=1\n"),
    # a key that is not secret once joined is left alone
    ("safe.key\\\n  name=visible\n", "safe.key\\\n  name=visible\n"),
    # an even number of backslashes ends the line: no continuation
    ("dir.pass\\\\\nword=kept\n", "dir.pass\\\\\nword=kept\n"),
]


@pytest.mark.parametrize(("text", "expected"), CONTINUED_KEYS)
def test_properties_keys_continued_over_a_line_end(
    redactor: Redactor, text: str, expected: str
) -> None:
    assert redact(redactor, text, "properties") == expected


def test_continued_keys_keep_order_with_other_keys(redactor: Redactor) -> None:
    text = "a.password=one\njdbc.pass\\\n  word=two\nb.password=three\nc.pass\\\nword=four\n"
    assert redact(redactor, text, "properties") == (
        f"a.password={S}\njdbc.pass\\\n  word={S}\nb.password={S}\nc.pass\\\nword={S}\n"
    )


def test_continued_keys_are_a_properties_form_only(redactor: Redactor) -> None:
    """In a log a trailing backslash is not a continuation (line formats never cross lines)."""
    text = "copying C:\\data\\pass\\\nword=kept\n"
    assert redact(redactor, text, "log") == text
