"""configlite - a small INI-style configuration library.

Example::

    from configlite import Config

    cfg = Config.from_string(TEXT)
    cfg.apply_env(os.environ, prefix="MYAPP")
    port = cfg.get_int("server", "port")
"""

from .config import Config
from .convert import parse_duration, to_bool, to_float, to_int, to_list
from .errors import ConfigError, ConversionError, InterpolationError, ParseError
from .interpolate import interpolate
from .parser import parse
from .writer import dump

__all__ = [
    "Config",
    "ConfigError",
    "ConversionError",
    "InterpolationError",
    "ParseError",
    "dump",
    "interpolate",
    "parse",
    "parse_duration",
    "to_bool",
    "to_float",
    "to_int",
    "to_list",
]

__version__ = "0.4.1"
