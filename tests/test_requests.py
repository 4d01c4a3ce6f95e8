"""A parsed command line becomes immutable values (options.RunSettings and
one request per command) in one place, options.run_settings/request; the
layers below never see argparse's Namespace.  So: every option a parser
defines must be carried into those values (or be named in NOT_CARRIED with
its reason), the values cannot change once built, and no module but the
command line reads ``.args``."""

import argparse
import io
import os
import tokenize

import pytest

from pyz import REPO
from sagedl import options
from sagedl.options import (DownloadRequest, FetchRequest, MakeMirrorRequest, MirrorsRequest,
                            RunSettings, VerifyRequest, run_settings, split_command)

pytestmark = pytest.mark.timeout(60)

SAGEDL = os.path.join(REPO, "sagedl")
COMMANDS = (None, "download", "list-mirrors", "make-mirror", "verify")


class ReadRecorder(object):
    """A parsed Namespace that remembers which of its attributes were read."""

    def __init__(self, namespace):
        self._namespace = namespace
        self._read = set()

    def __getattr__(self, name):
        self._read.add(name)
        return getattr(self._namespace, name)


def dests(parser):
    return set(a.dest for a in parser._actions if not isinstance(a, argparse._HelpAction))


def parsed(command, argv):
    found, parser, rest = split_command(([command] if command else []) + argv)
    assert found == command
    return parser, parser.parse_args(rest)


# Each command line once per branch of options.request: the union of what
# was read must be every option of the command's parser.
BRANCHES = {
    None: [["https://h/f.tar.gz", "out"], ["--print-fastest-mirror"]],
    "download": [["six"]],
    "list-mirrors": [[]],
    "make-mirror": [["dir"]],
    "verify": [["dir"]],
}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c or "fetch")
def test_every_option_is_carried_into_the_settings_or_the_request(command):
    read = set()
    for argv in BRANCHES[command]:
        parser, args = parsed(command, argv)
        recorder = ReadRecorder(args)
        run_settings(recorder)
        options.request(command, recorder)
        read |= recorder._read
    missing = dests(parser) - read - set(options.NOT_CARRIED)
    assert not missing, "options no request carries: %s" % sorted(missing)
    assert not set(options.NOT_CARRIED) & read, "carried, yet named in NOT_CARRIED"


SAGE_PACKAGE_ARGV = {"list": ["--exclude", "a", "b", "--exclude", "c"], "properties": ["six"],
                     "tarball": ["six"], "name": ["six-1.0.tar.gz"]}


@pytest.mark.parametrize("command", sorted(SAGE_PACKAGE_ARGV))
def test_every_sage_package_option_is_carried_into_its_request(command):
    from sagedl.commands.sagepackage import make_parser
    parser = make_parser(command)
    recorder = ReadRecorder(parser.parse_args(SAGE_PACKAGE_ARGV[command]))
    req = options.sage_package_request(command, recorder)
    missing = dests(parser) - recorder._read - set(options.SAGE_PACKAGE_NOT_CARRIED)
    assert not missing, "options no request carries: %s" % sorted(missing)
    assert req.command == command
    if command == "list":
        assert req.exclude == (("a", "b"), ("c",)) and req.package_class == (":all-or-nothing:",)
    with pytest.raises(AttributeError):
        req.command = "download"


def test_not_carried_names_only_real_options():
    every = set()
    for command in COMMANDS:
        every |= dests(parsed(command, BRANCHES[command][0])[0])
    assert set(options.NOT_CARRIED) <= every


def test_each_command_gets_its_own_request():
    kinds = {None: FetchRequest, "download": DownloadRequest, "list-mirrors": MirrorsRequest,
             "make-mirror": MakeMirrorRequest, "verify": VerifyRequest}
    for command, argv in BRANCHES.items():
        assert isinstance(options.request(command, parsed(command, argv[0])[1]), kinds[command])
    fastest = options.request(None, parsed(None, ["--print-fastest-mirror"])[1])
    assert fastest == MirrorsRequest(fastest=True, no_probe=False)


def test_the_values_carry_what_the_command_line_said():
    _, args = parsed("download", ["--exclude", "a", "b", "--exclude", "c", "-j", "2",
                                  "--log", "WARNING", "--mirror", "http://127.0.0.1:1/",
                                  "--no-check-certificate", "six", "pari"])
    settings, req = run_settings(args), options.request("download", args)
    assert req.exclude == ("a", "b", "c")
    assert req.packages == ("six", "pari") and req.jobs == 2
    assert settings.quiet and not settings.debug and not settings.check_certificate
    assert settings.mirrors == ("http://127.0.0.1:1/",)
    _, args = parsed(None, ["https://h/f.tar.gz", "a", "b", "--sha256", "00"])
    req = options.request(None, args)
    assert req.positionals == ("https://h/f.tar.gz", "a", "b") and req.sha256 == "00"


def test_the_values_cannot_change():
    _, args = parsed("make-mirror", ["dir", "six"])
    settings, req = run_settings(args), options.request("make-mirror", args)
    for value, field in ((settings, "timeout"), (req, "packages"), (req, "new_field")):
        with pytest.raises(AttributeError):
            setattr(value, field, 1)
        with pytest.raises(AttributeError):
            delattr(value, field)
    # Sequences are tuples: nothing can be appended to a request's packages.
    assert all(not isinstance(v, (list, dict, set)) for v in settings.fields().values())
    assert all(not isinstance(v, (list, dict, set)) for v in req.fields().values())
    assert req == options.request("make-mirror", args) and hash(req) == hash(
        options.request("make-mirror", args))


def test_a_value_needs_every_field_and_no_other():
    with pytest.raises(TypeError):
        MirrorsRequest(fastest=True)
    with pytest.raises(TypeError):
        MirrorsRequest(fastest=True, no_probe=False, colour="red")
# Reading a Namespace is the command line's job: below it, options come as
# the values above (RunSettings through the Session, and each command's request).
NAMESPACE_READERS = ("cli.py", "options.py")


def names(path):
    with io.open(path, "rb") as f:
        return [(t.string, t.start[0]) for t in tokenize.tokenize(f.readline)
                if t.type in (tokenize.NAME, tokenize.OP)]


def test_no_module_below_the_command_line_reads_args():
    offences = []
    for top, _, files in os.walk(SAGEDL):
        for n in files:
            rel = os.path.relpath(os.path.join(top, n), SAGEDL)
            if not n.endswith(".py") or rel in NAMESPACE_READERS:
                continue
            toks = names(os.path.join(SAGEDL, rel))
            for i, (tok, line) in enumerate(toks):
                # "x.args": a Namespace (an exception's .args is e.args,
                # ex.args, ...: allowed by name).
                if tok == "args" and i and toks[i - 1][0] == "." and \
                        toks[i - 2][0] not in ("e", "exc", "error"):
                    offences.append("%s:%d: .args" % (rel, line))
                if tok == "getattr" and toks[i + 2][0] in ("a", "args"):
                    offences.append("%s:%d: getattr(%s, ...)" % (rel, line, toks[i + 2][0]))
    assert offences == []
