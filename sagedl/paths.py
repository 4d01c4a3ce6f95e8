"""Where sagedl keeps its configuration and its caches (XDG base directories).

The environment is a mapping passed in (default ``os.environ``) so tests and
callers can inject one instead of patching the process environment.
"""

from __future__ import absolute_import

import os

APP = "sagedl"


def _home(env):
    home = env.get("HOME")
    if home:
        return home
    # No HOME in the mapping (a stripped environment, or Windows): let the
    # OS decide (USERPROFILE on Windows, the password database on POSIX).
    return os.path.expanduser("~")


def _xdg(env, variable, default_under_home):
    value = env.get(variable)
    # The XDG spec says relative paths in these variables are invalid and
    # must be ignored.
    if value and os.path.isabs(value):
        return os.path.join(value, APP)
    return os.path.join(_home(env), default_under_home, APP)


def config_dir(env=None):
    """$XDG_CONFIG_HOME/sagedl, default ~/.config/sagedl (not created here)."""
    return _xdg(os.environ if env is None else env, "XDG_CONFIG_HOME", ".config")


def cache_dir(env=None):
    """$XDG_CACHE_HOME/sagedl, default ~/.cache/sagedl (not created here)."""
    return _xdg(os.environ if env is None else env, "XDG_CACHE_HOME", ".cache")
