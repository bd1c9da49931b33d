"""Discovery of the application's database from its own configuration, and JDBC URL translation.

Samples: the shared corpus of real-world Atlassian configuration files (skipped when absent),
the demo server's dbconfig.xml, and files written here in the products' real formats.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from koncis_diag.collect.base import CollectContext
from koncis_diag.collect.databases import DatabaseURL
from koncis_diag.collect.databases.discovery import DiscoveredDatabase, discover_database
from koncis_diag.collect.databases.jdbc import translate_jdbc_url
from koncis_diag.errors import CollectionError

REPO = Path(__file__).resolve().parent.parent


def discover(root: Path, relative: str, text: str) -> DiscoveredDatabase:
    path = root / relative.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return discover_database(relative, CollectContext(root=root))


def jira_dbconfig(url: str, password: str = "secret", extra: str = "", user: str = "jira") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<jira-database-config>
  <name>defaultDS</name>
  <delegator-name>default</delegator-name>
  <database-type>postgres72</database-type>
  <schema-name>public</schema-name>
  <jdbc-datasource>
    <url>{url}</url>
    <driver-class>org.postgresql.Driver</driver-class>
    <username>{user}</username>
    <password>{password}</password>{extra}
    <pool-min-size>20</pool-min-size>
  </jdbc-datasource>
</jira-database-config>
"""


# ------------------------------------------------------------------------- JDBC URLs

JDBC_CASES = [
    # PostgreSQL
    ("jdbc:postgresql://db:5432/jiradb", "postgresql://db:5432/jiradb"),
    ("jdbc:postgresql://db/jiradb", "postgresql://db/jiradb"),
    ("jdbc:postgresql://db1:5432,db2:5433/jiradb?targetServerType=primary", "postgresql://db1:5432/jiradb"),
    ("jdbc:postgresql://[::1]:5432/jira", "postgresql://[::1]:5432/jira"),
    ("jdbc:postgresql:jiradb", "postgresql://localhost/jiradb"),
    ("jdbc:postgresql://db/j?ssl=true", "postgresql://db/j?sslmode=verify-full"),
    ("jdbc:postgresql://db/j?ssl=true&sslfactory=org.postgresql.ssl.NonValidatingFactory", "postgresql://db/j?sslmode=require"),
    ("jdbc:postgresql://db/j?ssl=true&amp;sslmode=require", "postgresql://db/j?sslmode=require"),
    ("jdbc:postgresql://db/j?sslmode=verify-ca&sslrootcert=/etc/ssl/db.pem", "postgresql://db/j?sslmode=verify-ca&sslrootcert=/etc/ssl/db.pem"),
    ("jdbc:postgresql://db/j?currentSchema=jiraschema", "postgresql://db/j?schema=jiraschema"),
    # MySQL / MariaDB
    ("jdbc:mysql://mysql:3306/jiradb?useUnicode=true&amp;characterEncoding=UTF8", "mysql://mysql:3306/jiradb"),
    ("jdbc:mysql://db/jira?useSSL=false", "mysql://db/jira?ssl=disabled"),
    ("jdbc:mysql://db/jira?useSSL=true&verifyServerCertificate=false", "mysql://db/jira?ssl=required"),
    ("jdbc:mysql://db/jira?useSSL=true", "mysql://db/jira?ssl=verify_ca"),
    ("jdbc:mysql://db/jira?sslMode=VERIFY_IDENTITY", "mysql://db/jira?ssl=verify_identity"),
    ("jdbc:mysql://db/jira?sslMode=REQUIRED", "mysql://db/jira?ssl=required"),
    ("jdbc:mariadb://db:3307/jira?sslMode=verify-full", "mysql://db:3307/jira?ssl=verify_identity"),
    ("jdbc:mariadb://db/jira?useSsl=true&trustServerCertificate=true", "mysql://db/jira?ssl=required"),
    ("jdbc:mysql://address=(protocol=tcp)(host=db.example)(port=3307)/jira", "mysql://db.example:3307/jira"),
    ("jdbc:mysql://(host=db.example,port=3308,user=x)/jira", "mysql://db.example:3308/jira"),
    ("jdbc:mysql:loadbalance://db1:3306,db2:3306/jira", "mysql://db1:3306/jira"),
    ("jdbc:mysql:replication://address=(host=a)(port=1),address=(host=b)(port=2)/jira", "mysql://a:1/jira"),
    # SQL Server (Microsoft driver and jTDS)
    ("jdbc:sqlserver://db:1433;databaseName=jiradb", "sqlserver://db:1433/jiradb"),
    ("jdbc:sqlserver://db\\SQLEXPRESS;databaseName=jira", "sqlserver://db/jira?instance=SQLEXPRESS"),
    ("jdbc:sqlserver://db\\SQLEXPRESS:1500;databaseName=jira", "sqlserver://db:1500/jira?instance=SQLEXPRESS"),
    ("jdbc:sqlserver://db;instanceName=INST;database=jira;portNumber=1501", "sqlserver://db:1501/jira?instance=INST"),
    ("jdbc:sqlserver://db:1433;databaseName=jira;encrypt=true;trustServerCertificate=true", "sqlserver://db:1433/jira?encrypt=required&trust_server_certificate=true"),
    ("jdbc:sqlserver://db;databaseName=jira;encrypt=false", "sqlserver://db/jira?encrypt=off"),
    ("jdbc:sqlserver://db;databaseName=jira;encrypt=strict", "sqlserver://db/jira?encrypt=strict"),
    ("jdbc:jtds:sqlserver://db:1433/jiradb;instance=INST;ssl=require", "sqlserver://db:1433/jiradb?instance=INST&encrypt=required&trust_server_certificate=true"),
    # Oracle thin
    ("jdbc:oracle:thin:@db:1521:ORCL", "oracle://db:1521?sid=ORCL"),
    ("jdbc:oracle:thin:@//db:1521/jira.example", "oracle://db:1521/jira.example"),
    ("jdbc:oracle:thin:@db:1521/JIRAPDB", "oracle://db:1521/JIRAPDB"),
    ("jdbc:oracle:thin:@tcps://db:2484/JIRAPDB", "oracle://db:2484/JIRAPDB?protocol=tcps"),
    (
        "jdbc:oracle:thin:@(DESCRIPTION=(ADDRESS=(PROTOCOL=TCP)(HOST=dbhost)(PORT=1522))"
        "(CONNECT_DATA=(SERVICE_NAME=jira.world)))",
        "oracle://dbhost:1522/jira.world",
    ),
    (
        "jdbc:oracle:thin:@(DESCRIPTION=(ADDRESS=(PROTOCOL=TCPS)(HOST=h)(PORT=2484))(CONNECT_DATA=(SID=J1)))",
        "oracle://h:2484?protocol=tcps&sid=J1",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("jdbc", "display"), JDBC_CASES)
def test_jdbc_url_translation(jdbc: str, display: str) -> None:
    url, credentials = translate_jdbc_url(jdbc)
    assert url.display() == display
    assert credentials.password is None


def test_oracle_credentials_in_the_url_are_taken_not_shown() -> None:
    url, credentials = translate_jdbc_url("jdbc:oracle:thin:jira/Pa55-in-url@db:1521/JIRAPDB")
    assert (credentials.user, credentials.password) == ("jira", "Pa55-in-url")
    assert "Pa55-in-url" not in url.display()


@pytest.mark.parametrize(
    ("jdbc", "message"),
    [
        ("postgresql://db/jira", "not a JDBC URL: 'postgresql://db/jira'"),
        ("jdbc:db2://db:50000/jira", "unsupported JDBC database 'db2' in 'jdbc:db2://db:50000/jira'"),
        ("jdbc:postgresql://db:99999/jira", "bad port '99999' in the postgresql JDBC URL"),
        ("jdbc:postgresql:///jira", "no host in the postgresql JDBC URL"),
        ("jdbc:oracle:thin:@JIRA_TNS_ALIAS", "the oracle JDBC URL names a TNS alias, which needs tnsnames.ora: declare a connection with url: oracle://user@host:1521/SERVICE"),
        ("jdbc:oracle:oci:@db:1521:ORCL", "only the Oracle thin JDBC driver's URLs can be translated (jdbc:oracle:thin:@…)"),
        ("jdbc:sqlserver://db;databaseName=jira;integratedSecurity=true", "the sqlserver connection uses Windows authentication (integratedSecurity/domain), which koncis-diag cannot use: declare a connection with url: and a SQL login"),
        ("jdbc:oracle:thin:@(DESCRIPTION=(ADDRESS=(HOST=h)))", "the oracle connect descriptor has no HOST or no SERVICE_NAME/SID"),
    ],
)  # fmt: skip
def test_untranslatable_jdbc_urls(jdbc: str, message: str) -> None:
    with pytest.raises(CollectionError) as caught:
        translate_jdbc_url(jdbc)
    assert str(caught.value) == message


def test_unsupported_jdbc_message_hides_credentials() -> None:
    with pytest.raises(CollectionError) as caught:
        translate_jdbc_url("jdbc:oracle:thin:scott/T1ger-pw@JIRA_TNS")
    assert "T1ger-pw" not in str(caught.value)


# ------------------------------------------------------------------- configuration files


def test_jira_dbconfig_in_clear(tmp_path: Path) -> None:
    found = discover(
        tmp_path,
        "/var/atlassian/application-data/jira/dbconfig.xml",
        jira_dbconfig("jdbc:postgresql://db.internal:5432/jiradb", "s3cret&amp;more"),
    )
    assert found.url.display() == "postgresql://jira@db.internal:5432/jiradb?schema=public"
    assert found.password == "s3cret&more"  # XML entities decoded
    assert "s3cret" not in repr(found)
    assert found.source == "/var/atlassian/application-data/jira/dbconfig.xml"


def test_jira_dbconfig_base64_cipher_is_decoded(tmp_path: Path) -> None:
    encoded = base64.b64encode(b"b64-Pa55word").decode()
    extra = "\n    <atlassian-password-cipher-provider>com.atlassian.db.config.password.ciphers.base64.Base64Cipher</atlassian-password-cipher-provider>"
    found = discover(
        tmp_path, "/jira/dbconfig.xml", jira_dbconfig("jdbc:postgresql://db/j", encoded, extra)
    )
    assert found.password == "b64-Pa55word"


def test_jira_dbconfig_aes_cipher_needs_the_password(tmp_path: Path) -> None:
    stored = (
        '{"encryptedPassword":"Zm9vYmFy","algorithm":"AES/CBC/PKCS5Padding","keyFilePath":"/k"}'
    )
    extra = "\n    <atlassian-password-cipher-provider>com.atlassian.db.config.password.ciphers.algorithm.AlgorithmCipher</atlassian-password-cipher-provider>"
    found = discover(
        tmp_path, "/jira/dbconfig.xml", jira_dbconfig("jdbc:postgresql://db/j", stored, extra)
    )
    assert found.password is None
    assert (
        found.password_problem
        == "the password in /jira/dbconfig.xml is encrypted (AlgorithmCipher)"
    )


def test_atl_secured_needs_the_password(tmp_path: Path) -> None:
    found = discover(
        tmp_path, "/jira/dbconfig.xml", jira_dbconfig("jdbc:postgresql://db/j", "{ATL_SECURED}")
    )
    assert found.password is None
    assert found.password_problem == (
        "the password in /jira/dbconfig.xml is in the application's secret store ({ATL_SECURED})"
    )


def test_missing_password(tmp_path: Path) -> None:
    found = discover(tmp_path, "/jira/dbconfig.xml", jira_dbconfig("jdbc:postgresql://db/j", ""))
    assert found.password is None
    assert found.password_problem == "/jira/dbconfig.xml holds no database password"


def test_confluence_cfg_xml(tmp_path: Path) -> None:
    text = """<?xml version="1.0" encoding="UTF-8"?>
<confluence-configuration>
  <setupStep>complete</setupStep>
  <setupType>custom</setupType>
  <buildNumber>9012</buildNumber>
  <properties>
    <!-- <property name="hibernate.connection.url">jdbc:postgresql://old/confluence</property> -->
    <property name="confluence.setup.server.id">B6VQ-ABCD-1234-WXYZ</property>
    <property name="hibernate.connection.driver_class">com.mysql.cj.jdbc.Driver</property>
    <property name="hibernate.connection.password">conf&lt;pw&gt;</property>
    <property name="hibernate.connection.url">jdbc:mysql://mysql.internal:3306/confluence?useSSL=false&amp;allowPublicKeyRetrieval=true</property>
    <property name="hibernate.connection.username">confuser</property>
    <property name="hibernate.dialect">com.atlassian.confluence.impl.hibernate.dialect.MySQLDialect</property>
  </properties>
</confluence-configuration>
"""
    found = discover(tmp_path, "/var/atlassian/confluence/confluence.cfg.xml", text)
    assert found.url.display() == "mysql://confuser@mysql.internal:3306/confluence?ssl=disabled"
    assert found.password == "conf<pw>"


def test_confluence_encrypted_password(tmp_path: Path) -> None:
    text = """<confluence-configuration><properties>
    <property name="hibernate.connection.url">jdbc:postgresql://db/confluence</property>
    <property name="hibernate.connection.username">conf</property>
    <property name="hibernate.connection.password">{"keyFilePath":"/k","algorithm":"AES/GCM/NoPadding"}</property>
    <property name="jdbc.password.decrypter.classname">com.atlassian.db.config.password.ciphers.algorithm.AlgorithmCipher</property>
    </properties></confluence-configuration>"""
    found = discover(tmp_path, "/c/confluence.cfg.xml", text)
    assert found.password is None
    assert "encrypted (AlgorithmCipher)" in found.password_problem


def test_bitbucket_properties(tmp_path: Path) -> None:
    text = (
        "# Bitbucket shared configuration\n"
        "setup.displayName=ACME Bitbucket\n"
        "jdbc.driver=org.postgresql.Driver\n"
        "jdbc.url=jdbc\\:postgresql\\://pg.internal\\:5432/bitbucket?ssl\\=true\n"
        "jdbc.user=bitbucketuser\n"
        "jdbc.password=bb-pa\\u00dfword \\\n"
        "    continued\n"
    )
    found = discover(
        tmp_path, "/var/atlassian/application-data/bitbucket/shared/bitbucket.properties", text
    )
    assert (
        found.url.display()
        == "postgresql://bitbucketuser@pg.internal:5432/bitbucket?sslmode=verify-full"
    )
    assert found.password == "bb-paßword continued"


def test_bitbucket_base64_password(tmp_path: Path) -> None:
    text = (
        "jdbc.url=jdbc:mysql://db:3306/bitbucket\n"
        "jdbc.user=bb\n"
        f"jdbc.password={base64.b64encode(b'bb-secret').decode()}\n"
        "encrypted-property.cipher.classname=com.atlassian.db.config.password.ciphers.base64.Base64Cipher\n"
    )
    assert discover(tmp_path, "/b/bitbucket.properties", text).password == "bb-secret"


@pytest.mark.parametrize(
    ("relative", "text", "message"),
    [
        ("/j/dbconfig.xml", "<jira-database-config><jndi-datasource><jndi-name>java:comp/env/jdbc/JiraDS</jndi-name></jndi-datasource></jira-database-config>",
         "/j/dbconfig.xml uses a JNDI datasource (defined in the application server's configuration): declare the connection with url: instead"),
        ("/j/dbconfig.xml", jira_dbconfig("jdbc:h2:file:/var/atlassian/jira/database/h2db"),
         "/j/dbconfig.xml points at an embedded database (H2/HSQLDB), which cannot be queried while the application runs"),
        ("/j/dbconfig.xml", "<jira-database-config><jdbc-datasource></jdbc-datasource></jira-database-config>",
         "no <url> in the <jdbc-datasource> of /j/dbconfig.xml"),
        ("/b/bitbucket.properties", "setup.displayName=x\n",
         "no jdbc.url in /b/bitbucket.properties (Bitbucket then uses its embedded database, which cannot be queried while it runs)"),
        ("/etc/hosts", "127.0.0.1 localhost\n",
         "/etc/hosts is not a database configuration koncis-diag knows (Jira dbconfig.xml, Confluence confluence.cfg.xml, Bitbucket bitbucket.properties)"),
    ],
)  # fmt: skip
def test_unusable_configurations(tmp_path: Path, relative: str, text: str, message: str) -> None:
    with pytest.raises(CollectionError) as caught:
        discover(tmp_path, relative, text)
    assert str(caught.value) == message


def test_missing_and_oversized_configuration(tmp_path: Path) -> None:
    ctx = CollectContext(root=tmp_path)
    with pytest.raises(
        CollectionError, match=r"^application configuration not found: /nope/dbconfig\.xml$"
    ):
        discover_database("/nope/dbconfig.xml", ctx)
    (tmp_path / "dir").mkdir()
    with pytest.raises(CollectionError, match=r"^application configuration is a directory: /dir$"):
        discover_database("/dir", ctx)
    (tmp_path / "big.xml").write_bytes(b"<jira-database-config>" + b" " * (1024 * 1024 + 1))
    with pytest.raises(CollectionError, match=r"larger than 1048576 bytes"):
        discover_database("/big.xml", ctx)


def test_entities_are_never_expanded(tmp_path: Path) -> None:
    text = jira_dbconfig("jdbc:postgresql://db/j", "&lol9;").replace(
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol9 "&lol;&lol;">]>',
    )
    found = discover(tmp_path, "/j/dbconfig.xml", text)
    assert found.password == "&lol9;"  # taken literally (and would simply fail to log in)


# ---------------------------------------------------------------------- real samples


def test_demo_server_dbconfig() -> None:
    demo = REPO / "koncis_diag" / "data" / "demo"
    found = discover_database("/dbconfig.xml", CollectContext(root=demo))
    assert found.url.display() == (
        "postgresql://jira_svc@db01.acme-corp.example:5432/jiradb?sslmode=require&schema=public"
    )
    assert found.password == "Tr0ub4dor&3-demo"


CORPUS_SAMPLES = [
    ("codeclou__docker-atlassian-jira-data-center/dbconfig.xml", "postgresql://jira@jira-cluster-db/jira?schema=public", "jira"),
    ("FrontendSolutionsGmbH__jira-mysql-https-docker-compose/dbconfig.xml", "mysql://JIRA_MYSQL_USER@mysql:3306/jiradb", "JIRA_MYSQL_PASSWORD"),
]  # fmt: skip


@pytest.mark.parametrize(("relative", "display", "password"), CORPUS_SAMPLES)
def test_corpus_samples(corpus: Path, relative: str, display: str, password: str) -> None:
    root = corpus / "atlassian-config"
    found = discover_database("/" + relative, CollectContext(root=root))
    assert found.url.display() == display
    assert found.password == password


def test_discovered_url_is_a_plain_database_url(tmp_path: Path) -> None:
    found = discover(tmp_path, "/j/dbconfig.xml", jira_dbconfig("jdbc:postgresql://db/j"))
    assert isinstance(found.url, DatabaseURL)
    assert found.url.raw == found.url.display()
