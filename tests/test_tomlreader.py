"""The subset TOML reader agrees with tomllib, or refuses with MetadataError."""

import os
import tomllib

import pytest
from hypothesis import given, settings, strategies as st

from sagedl.errors import MetadataError
from sagedl.mirrors.tomlreader import loads, loads_subset, loads_tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def typed(value):
    """A comparable form that tells True from 1 (they are == in Python)."""
    if isinstance(value, dict):
        return ("dict", sorted((k, typed(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    return (type(value).__name__, value)


def differential(doc):
    """'equal', 'refused' (valid TOML outside the subset) or 'invalid'."""
    try:
        expected = tomllib.loads(doc)
    except tomllib.TOMLDecodeError:
        with pytest.raises(MetadataError):
            loads_subset(doc)
        with pytest.raises(MetadataError):
            loads_tomllib(doc)
        return "invalid"
    try:
        got = loads_subset(doc)
    except MetadataError:
        return "refused"
    assert typed(got) == typed(expected)
    return "equal"


IN_SUBSET = [
    "",
    "# only a comment\n\n   \n",
    'a = "x"',
    "a = 'lit \\n not an escape'",
    'a = "tab\\there \\"q\\" back\\\\slash \\b\\f\\r\\n"',
    'a = "\\u00e9\\U0001F600\\u0000"',
    'a = "é ☃ 😀"',
    "a = 0\nb = -0\nc = +7\nd = 9223372036854775807\ne = -9223372036854775808",
    "t = true\nf = false",
    "a = []\nb = [ ]\nc = ['x']\nd = [\"x\", 'y',]\ne = [ \"a\" , \"b\" ]",
    "[t]\nk = 1\n[u]\n[v]",
    "[ spaced ]\n[[ arr ]]\nx = 1",
    "[[m]]\nurl = \"u1\"\n[[m]]\n[[m]]\nurl = 'u3'",
    "top = 1\n[[m]]\nk = 2 # trailing\n[t] # comment\n",
    "a = 1\r\nb = 2\r\n",
    "\tindented = \"x\"\t# tabbed comment",
    "a=1#x\nb=\"#not a comment\"",
    "key-with_dash9 = 1\n123 = 2",
    "a = \"x\" # comment with é and \t tab",
]

OUTSIDE_SUBSET = [
    "a = 1.5", "a = 1e3", "a = inf", "a = nan", "a = -inf",
    "a = 0x1F", "a = 0o17", "a = 0b101", "a = 1_000",
    "a = 1979-05-27", "a = 1979-05-27T07:32:00Z", "a = 07:32:00",
    "a = 1979-05-27 07:32:00",
    'a = """multi"""', "a = '''multi'''", 'a = """\nline\n"""',
    "a = [1, 2]", "a = [true]", "a = [[\"x\"]]", "a = [\n\"x\",\n]",
    "a = [\"x\", # c\n]",
    "a = { x = 1 }", "a.b = 1", "[a.b]", "[[a.b]]", '"quoted" = 1',
    "'lit' = 1", '["quoted"]', "a = 99999999999999999999",
]

INVALID = [
    "a", "a =", "= 1", "a = 1 2", "a = \"x", "a = 'x", "a = \"\\x41\"",
    "a = \"\\q\"", "a = \"\\u12\"", "a = \"\\ud800\"", "a = \"\\U00110000\"",
    "a = 01", "a = +", "a = truex", "a = True",
    "a = 1\na = 2", "[t]\n[t]", "[t]\n[[t]]", "[[t]]\n[t]", "a = 1\n[a]",
    "a = ['x']\n[[a]]", "[t", "[[t]", "[[t] ]", "[ [t]]", "[]", "[[]]",
    "a = [\"x\"", "a = [\"x\" \"y\"]", "a = [,]", "a = \"x\" junk",
    "a = \"ctl \x01\"", "# ctl \x7f in comment", "a = 1\rb = 2",
    "a = \"x\"\n\x00", "\ufeffa = 1", "a = [\"x\",,]",
]


@pytest.mark.parametrize("doc", IN_SUBSET)
def test_subset_documents_parse_like_tomllib(doc):
    assert differential(doc) == "equal"


@pytest.mark.parametrize("doc", OUTSIDE_SUBSET)
def test_valid_toml_outside_the_subset_is_refused_not_misread(doc):
    assert differential(doc) == "refused"


@pytest.mark.parametrize("doc", INVALID)
def test_invalid_toml_is_a_metadata_error(doc):
    assert differential(doc) == "invalid"


def test_shipped_mirrors_toml_reads_identically():
    with open(os.path.join(ROOT, "sagedl", "mirrors.toml"), "rb") as f:
        data = f.read()
    assert differential(data.decode("utf-8")) == "equal"
    assert typed(loads_subset(data, "mirrors.toml")) == typed(tomllib.loads(data.decode()))


def test_errors_name_file_and_line():
    with pytest.raises(MetadataError) as e:
        loads_subset("a = 1\n\nb = oops\n", "conf/x.toml")
    assert (e.value.path, e.value.lineno) == ("conf/x.toml", 3)
    assert str(e.value).startswith("conf/x.toml:3: ")
    with pytest.raises(MetadataError) as e:
        loads_tomllib("a = 1\n\nb = oops\n", "conf/x.toml")
    assert (e.value.path, e.value.lineno) == ("conf/x.toml", 3)
    assert "(at line" not in str(e.value)


def test_bytes_must_be_utf8_and_the_error_names_the_line():
    assert loads_subset("a = 'é'".encode("utf-8")) == {"a": "é"}
    for reader in (loads_subset, loads_tomllib, loads):
        with pytest.raises(MetadataError) as e:
            reader(b"a = 1\nb = '\xff'\n", "f.toml")
        assert e.value.lineno == 2


def test_loads_uses_tomllib_when_the_stdlib_has_it():
    # 1.5 is outside the subset: only tomllib accepts it.
    assert loads("a = 1.5") == {"a": 1.5}


def test_tomllib_crashes_become_metadata_errors():
    # tomllib recurses on nested arrays and int() refuses huge digit strings.
    for doc in ("a = " + "[" * 5000, "a = " + "9" * 5000):
        with pytest.raises(MetadataError):
            loads(doc)
        with pytest.raises(MetadataError):
            loads_subset(doc)


# ---- generated documents inside the subset --------------------------------

bare_keys = st.text(alphabet="abcXYZ019_-", min_size=1, max_size=8)
string_values = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
int_values = st.integers(min_value=-2 ** 63, max_value=2 ** 63 - 1)
scalar_values = st.one_of(string_values, int_values, st.booleans(),
                          st.lists(string_values, max_size=4))
key_values = st.dictionaries(bare_keys, scalar_values, max_size=5)


@st.composite
def documents(draw):
    names = draw(st.lists(bare_keys, unique=True, max_size=6))
    top = draw(key_values)
    root = dict(top)
    sections = []
    for name in names:
        if name in root:
            continue
        if draw(st.booleans()):
            root[name] = draw(key_values)
            sections.append(("table", name, root[name]))
        else:
            root[name] = draw(st.lists(key_values, min_size=1, max_size=3))
            sections.append(("array", name, root[name]))
    return root, top, sections


def toml_string(s, rnd):
    can_be_literal = "'" not in s and all(c == "\t" or (ord(c) >= 0x20 and c != "\x7f") for c in s)
    if can_be_literal and rnd.random() < 0.3:
        return "'" + s + "'"
    out = []
    short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n",
             "\f": "\\f", "\r": "\\r"}
    for c in s:
        if c in short and (c not in "\t" or rnd.random() < 0.5):
            out.append(short[c])
        elif ord(c) < 0x20 or c == "\x7f" or rnd.random() < 0.1:
            out.append("\\u%04x" % ord(c) if ord(c) <= 0xFFFF and rnd.random() < 0.7
                       else "\\U%08X" % ord(c))
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_value(v, rnd):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return ("+" if v > 0 and rnd.random() < 0.2 else "") + str(v)
    if isinstance(v, list):
        sep = rnd.choice([",", ", ", " , "])
        tail = rnd.choice(["", ",", " "]) if v else ""
        return "[" + sep.join(toml_string(s, rnd) for s in v) + tail + "]"
    return toml_string(v, rnd)


def serialise(top, sections, rnd):
    lines = []

    def pad():
        return rnd.choice(["", " ", "\t"])

    def comment():
        return rnd.choice(["", " # note", "\t#é"])

    def pairs(d):
        for k, v in d.items():
            lines.append("%s%s%s=%s%s%s" % (pad(), k, pad(), pad(), toml_value(v, rnd), comment()))
            if rnd.random() < 0.2:
                lines.append(rnd.choice(["", "# c", "  "]))

    pairs(top)
    for kind, name, body in sections:
        if kind == "table":
            lines.append("[%s%s%s]%s" % (pad(), name, pad(), comment()))
            pairs(body)
        else:
            for element in body:
                lines.append("[[%s%s%s]]%s" % (pad(), name, pad(), comment()))
                pairs(element)
    return rnd.choice(["\n", "\r\n"]).join(lines) + rnd.choice(["", "\n"])


@settings(max_examples=300, deadline=None)
@given(documents(), st.randoms(use_true_random=False))
def test_generated_subset_documents_round_trip(doc, rnd):
    root, top, sections = doc
    text = serialise(top, sections, rnd)
    assert typed(tomllib.loads(text)) == typed(root)
    assert typed(loads_subset(text)) == typed(root)


# ---- fuzzing: nothing but MetadataError escapes ---------------------------

tomlish = st.text(alphabet="[]=\"'#\\ \t\n\r.,{}-+_:0129aeflrstuxUE\x00\x7fé😀", max_size=60)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=80), tomlish))
def test_arbitrary_text_raises_only_metadata_error(text):
    for reader in (loads_subset, loads):
        try:
            result = reader(text)
        except MetadataError:
            continue
        assert isinstance(result, dict)


@settings(max_examples=200, deadline=None)
@given(tomlish)
def test_fuzzed_text_never_parses_differently(text):
    differential(text)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=60))
def test_arbitrary_bytes_raise_only_metadata_error(data):
    for reader in (loads_subset, loads):
        try:
            reader(data)
        except MetadataError:
            pass
