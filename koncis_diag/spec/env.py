"""Which environment variables run instructions may set for a command (``env:``).

A command sees only PATH, HOME and LANG of the admin's environment (nothing that could hold a
password); ``env:`` adds fixed values written in the spec, which the plan shows. Variables that
make a program load or run code its argv does not show (the dynamic loader's, interpreters'
start-up hooks, the JVM's agent options) are refused: with them, an innocent-looking
``java -version`` could run anything.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

#: Set by koncis-diag itself.
_OWN = frozenset(["PATH", "HOME"])

#: Make a program load code from elsewhere than its argv says.
_CODE_LOADING = frozenset(
    [
        "GCONV_PATH",
        "LOCPATH",
        "NLSPATH",
        "MALLOC_CHECK_",
        "BASH_ENV",
        "ENV",
        "SHELLOPTS",
        "PS4",
        "IFS",
        "PYTHONSTARTUP",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONINSPECT",
        "PERL5OPT",
        "PERL5LIB",
        "PERLLIB",
        "RUBYOPT",
        "RUBYLIB",
        "NODE_OPTIONS",
        "NODE_PATH",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "JAVA_OPTS",
        "CATALINA_OPTS",
        "CLASSPATH",
        "PAGER",
        "EDITOR",
        "VISUAL",
        "LESSOPEN",
        "LESSCLOSE",
    ]
)
_CODE_LOADING_PREFIXES = ("LD_", "DYLD_", "GLIBC_", "BASH_FUNC_")


def env_name_problem(name: object) -> str | None:
    """Why ``name`` cannot be set for a command, or ``None`` when it can."""
    if not isinstance(name, str) or not _NAME.match(name):
        return f"{name!r} is not a variable name (letters, digits and _, not first a digit)"
    if name in _OWN:
        return f"{name} is set by koncis-diag itself (give the program's full path instead)"
    upper = name.upper()
    if upper in _CODE_LOADING or upper.startswith(_CODE_LOADING_PREFIXES):
        return f"{name} makes programs load or run code their argv does not show: not allowed"
    return None
