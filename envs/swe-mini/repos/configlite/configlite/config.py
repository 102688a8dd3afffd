"""The :class:`Config` object: lookup, typed getters, env overrides, merging."""

from . import convert
from .errors import ConfigError
from .interpolate import interpolate
from .parser import parse
from .writer import dump

_MISSING = object()


class Config:
    """A set of named sections, each mapping lower-case keys to raw strings."""

    def __init__(self, sections=None):
        self._sections = {
            name: dict(values) for name, values in (sections or {}).items()
        }

    # -- construction -------------------------------------------------
    @classmethod
    def from_string(cls, text):
        """Build a config from INI-like *text*."""
        return cls(parse(text))

    @classmethod
    def from_file(cls, path, encoding="utf-8"):
        """Read and parse the file at *path*."""
        with open(path, encoding=encoding) as handle:
            return cls.from_string(handle.read())

    # -- introspection ------------------------------------------------
    def sections(self):
        """Return the section names in definition order."""
        return list(self._sections)

    def has_section(self, section):
        return section in self._sections

    def has_option(self, section, key):
        return key.lower() in self._sections.get(section, {})

    def options(self, section):
        """Return the keys of *section*; raise ConfigError if it is missing."""
        if section not in self._sections:
            raise ConfigError(f"no section [{section}]")
        return list(self._sections[section])

    # -- lookup -------------------------------------------------------
    def get_raw(self, section, key, default=_MISSING):
        """Return the value of *key* without interpolation."""
        try:
            return self._sections[section][key.lower()]
        except KeyError:
            if default is not _MISSING:
                return default
            raise ConfigError(f"no option {key!r} in section [{section}]") from None

    def get(self, section, key, default=_MISSING):
        """Return the interpolated string value of *key*.

        *default* is returned unchanged when the option does not exist.
        """
        if default is not _MISSING and not self.has_option(section, key):
            return default
        return interpolate(self._sections, section, self.get_raw(section, key))

    def _typed(self, converter, section, key, default):
        if default is not _MISSING and not self.has_option(section, key):
            return default
        return converter(self.get(section, key))

    def get_int(self, section, key, default=_MISSING):
        return self._typed(convert.to_int, section, key, default)

    def get_float(self, section, key, default=_MISSING):
        return self._typed(convert.to_float, section, key, default)

    def get_bool(self, section, key, default=_MISSING):
        return self._typed(convert.to_bool, section, key, default)

    def get_list(self, section, key, default=_MISSING):
        return self._typed(convert.to_list, section, key, default)

    def get_duration(self, section, key, default=_MISSING):
        """Return a duration such as ``"5m"`` as a number of seconds."""
        return self._typed(convert.parse_duration, section, key, default)

    # -- modification -------------------------------------------------
    def set(self, section, key, value):
        """Set *key* in *section* (created if needed) to ``str(value)``."""
        self._sections.setdefault(section, {})[key.lower()] = str(value)

    def apply_env(self, environ, prefix):
        """Override options from environment variables, in place.

        ``{PREFIX}_{SECTION}__{KEY}`` sets *KEY* in *SECTION*; matching of
        the prefix and of existing section names ignores case.  Returns the
        number of options that were set.
        """
        head = prefix.upper().rstrip("_") + "_"
        by_lower = {name.lower(): name for name in self._sections}
        applied = 0
        for name in sorted(environ):
            if not name.upper().startswith(head):
                continue
            section, sep, key = name[len(head):].partition("__")
            if not sep or not section or not key:
                continue
            section = by_lower.get(section.lower(), section.lower())
            self.set(section, key, environ[name])
            applied += 1
        return applied

    def merged(self, *others):
        """Return a new config with *others* layered on top of this one.

        Later configs win for keys they define; sections and keys that only
        exist in a lower layer are kept.  No input config is modified.
        """
        result = Config()
        result._sections = dict(self._sections)
        for other in others:
            for name, values in other._sections.items():
                result._sections.setdefault(name, {}).update(values)
        return result

    # -- export -------------------------------------------------------
    def to_dict(self, resolve=True):
        """Return a plain nested dict, interpolated unless *resolve* is false."""
        if not resolve:
            return {name: dict(values) for name, values in self._sections.items()}
        return {
            name: {key: self.get(name, key) for key in values}
            for name, values in self._sections.items()
        }

    def dump(self):
        """Return the raw (uninterpolated) configuration as INI text."""
        return dump(self._sections)

    def __repr__(self):
        return f"Config(sections={self.sections()!r})"
