"""Test helper: seeded variants of one package's checksums.ini and package-version.txt.

Each case is what a Sage tree's metadata can look like, right or wrong,
built from the format's own pieces so that most cases get deep into both
programs: sections and the one-record form, ``tarball=`` templates with
every VERSION placeholder, digests right, stale, upper-case, truncated,
empty or missing, repeated keys and sections, lines Sage ignores (spaces
around ``=``, indentation, junk, a BOM), three kinds of line end, versions
with and without patch levels.  The digests are those of the case's own
payload, so a well-formed case downloads and verifies.

    case = make_case(random.Random(seed), index)
    case.checksums_ini   text, or None for no file
    case.version_text    text, or None for no file
    case.payload         the bytes a mirror serves for it
    case.mirror          "ok", "corrupt" (bytes flipped) or "missing"
"""

import hashlib

PACKAGE = "fuzz"

VERSIONS = [None, "", "1.2.3", "1.2.3.p4", "2.3.p1.post2", "10", "1.0\r\n", " 4.4.1p5 \n",
            "1.p2.p3", "0.9.8.p0\n\n", "1.2.3.4.5", "2.0b1", "7.1.p12\n"]
TEMPLATES = ["fuzz-VERSION.tar.gz", "fuzz-${VERSION}.tar.bz2",
             "fuzz-VERSION_MAJOR.VERSION_MINOR.tgz", "fuzz-${VERSION_MICRO}.zip",
             "fuzz.tar.gz", "fuzz-VERSION-py3-none-any.whl", "fuzz-vVERSION.tar.xz",
             "", "fuzz-${REVISION}.tgz", "sub/fuzz-VERSION.tgz", "fuzz VERSION.tgz",
             "fuzz-VERSION.tar.gz ", "Fuzz-VERSION_MAJOR-VERSION.tar.gz", "..",
             "fuzz-VERSION-cp312-cp312-manylinux_2_17_x86_64.whl"]
NEWLINES = ["\n", "\n", "\n", "\r\n", "\r"]
JUNK = ["# comment", "; comment", "", "   ", "junk", "[", "[]", "= value", "md5=0123",
        "cksum=42", "upstream_url=https://example.org/fuzz-VERSION.tar.gz",
        "upstream_url=https://example.org/${VERSION_MAJOR}/x"]


def _payload(index):
    return ("fuzz payload %d\n" % index).encode() * 7


class Case(object):
    def __init__(self, index, checksums_ini, version_text, payload, mirror, about):
        self.index = index
        self.checksums_ini = checksums_ini
        self.version_text = version_text
        self.payload = payload
        self.mirror = mirror
        self.about = about

    def __repr__(self):
        return "Case(%d, %s, version=%r, mirror=%s, ini=%r)" % (
            self.index, self.about, self.version_text, self.mirror, self.checksums_ini)


def _digest(rnd, name, right):
    """A sha256= or sha1= value: mostly right, sometimes broken."""
    choice = rnd.random()
    if choice < 0.8:
        return right
    return rnd.choice([right.upper(), right[:-1], right + "0", "", right + " ",
                       " " + right, "g" * len(right), hashlib.sha256(b"other").hexdigest()
                       [:len(right)]])


def _key_line(rnd, key, value):
    """``key=value``, or a spelling of it Sage ignores (now and then)."""
    if rnd.random() < 0.9:
        return "%s=%s" % (key, value)
    return rnd.choice(["%s = %s", " %s=%s", "%s =%s", "%s:%s", "%s\t=%s"]) % (
        key.upper() if rnd.random() < 0.3 else key, value)


def _record(rnd, template, payload):
    sha256 = hashlib.sha256(payload).hexdigest()
    sha1 = hashlib.sha1(payload).hexdigest()
    lines = []
    keys = [("tarball", template)]
    if rnd.random() < 0.93:
        keys.append(("sha256", _digest(rnd, "sha256", sha256)))
    if rnd.random() < 0.6:
        keys.append(("sha1", _digest(rnd, "sha1", sha1)))
    if rnd.random() < 0.2:
        keys.append(("upstream_url", "https://example.org/" + template))
    if rnd.random() < 0.1:
        keys = keys[1:]     # no tarball=
    rnd.shuffle(keys)
    for key, value in keys:
        lines.append(_key_line(rnd, key, value))
        if rnd.random() < 0.08:   # a repeated key: the last value counts
            lines.append("%s=%s" % (key, _digest(rnd, key, value) if key.startswith("sha")
                                    else rnd.choice(TEMPLATES)))
        if rnd.random() < 0.15:
            lines.append(rnd.choice(JUNK))
    return lines


def _expanded(template, version):
    """The file a template probably names (a guess for ``name`` queries)."""
    v = (version or "1.0").strip().split(".p")[0]
    parts = (v.split(".") + ["0", "0", "0"])[:3]
    for var, value in (("${VERSION_MAJOR}", parts[0]), ("${VERSION_MINOR}", parts[1]),
                       ("${VERSION_MICRO}", parts[2]), ("VERSION_MAJOR", parts[0]),
                       ("VERSION_MINOR", parts[1]), ("VERSION_MICRO", parts[2]),
                       ("${VERSION}", v), ("VERSION", v)):
        template = template.replace(var, value)
    return template


def make_case(rnd, index):
    version = rnd.choice(VERSIONS)
    payload = _payload(index)
    form = rnd.random()
    lines = []
    about = []
    if rnd.random() < 0.1:
        lines.append(rnd.choice(JUNK))
    if form < 0.05:
        ini = None
        about.append("no checksums.ini")
    else:
        if form < 0.6:
            about.append("one record")
            lines += _record(rnd, rnd.choice(TEMPLATES), payload)
        else:
            count = rnd.choice([1, 1, 2, 3])
            about.append("%d section(s)" % count)
            if rnd.random() < 0.15:
                lines += _record(rnd, rnd.choice(TEMPLATES), payload)   # before any section
            names = []
            for _ in range(count):
                template = rnd.choice(TEMPLATES)
                section = _expanded(template, version) if rnd.random() < 0.8 else template
                if rnd.random() < 0.1:
                    section = rnd.choice(["other.whl", "", "a b.whl", section + "x"])
                if names and rnd.random() < 0.1:
                    section = names[0]      # a repeated section starts afresh
                names.append(section)
                lines.append("[%s]%s" % (section, rnd.choice(["", "", " # c", "x"])))
                lines += _record(rnd, template, payload)
        if rnd.random() < 0.05 and lines:
            lines[0] = "\ufeff" + lines[0]     # a BOM: Sage does not skip it
        newline = rnd.choice(NEWLINES)
        ini = newline.join(lines) + (newline if rnd.random() < 0.9 else "")
    mirror = rnd.choice(["ok"] * 8 + ["corrupt", "missing"])
    return Case(index, ini, version, payload, mirror, ", ".join(about))


def guesses(case):
    """File names to ask ``name`` about: what the templates in the case
    seem to name, and a name no package has."""
    found = []
    for line in (case.checksums_ini or "").replace("\r", "\n").split("\n"):
        if line.startswith("tarball="):
            found.append(_expanded(line[len("tarball="):], case.version_text))
    return (found or ["fuzz-1.0.tar.gz"])[:2] + ["nothing-1.0.tar.gz"]
