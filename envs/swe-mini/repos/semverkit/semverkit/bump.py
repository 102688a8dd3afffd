"""Incrementing versions, following the conventions of ``npm version``."""

from .version import Version

PARTS = ("major", "minor", "patch", "prerelease")


def bump(version, part, tag="rc"):
    """Return *version* incremented at *part*; build metadata is dropped.

    Bumping a prerelease to the release it leads up to finishes it:
    ``1.0.0-rc.1`` bumped at ``major`` is ``1.0.0``; ``1.2.0-beta`` bumped
    at ``minor`` is ``1.2.0``.
    """
    v = Version.parse(version)
    if part == "major":
        if v.prerelease and v.minor == 0 and v.patch == 0:
            return v.release()
        return Version(v.major + 1, 0, 0)
    if part == "minor":
        if v.prerelease and v.patch == 0:
            return v.release()
        return Version(v.major, v.minor + 1, 0)
    if part == "patch":
        if v.prerelease:
            return v.release()
        return Version(v.major, v.minor, v.patch + 1)
    if part == "prerelease":
        return _bump_prerelease(v, tag)
    raise ValueError(f"unknown part {part!r}; expected one of {PARTS}")


def _bump_prerelease(v, tag):
    """``1.0.0`` -> ``1.0.1-rc.0``; ``1.0.1-rc.0`` -> ``1.0.1-rc.1``.

    If the current prerelease does not start with *tag* the counter is
    restarted for the new tag: ``1.0.1-beta.3`` -> ``1.0.1-rc.0``.
    """
    if not v.prerelease:
        return Version(v.major, v.minor, v.patch + 1, (tag, "0"))
    pre = list(v.prerelease)
    if tag and pre[0] != tag:
        return Version(v.major, v.minor, v.patch, (tag, "0"))
    for index in range(len(pre) - 1, -1, -1):
        if pre[index].isdigit():
            pre[index] = str(int(pre[index]) + 1)
            break
    else:
        pre.append("0")
    return Version(v.major, v.minor, v.patch, pre)
