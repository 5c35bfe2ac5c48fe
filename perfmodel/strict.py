"""Keys the parsers underneath let through, refused in one sentence: a config text (`--config`, a model file's
reference config) that names a key twice or has an item without a key, and a TOML document (a model file) with
an empty key. `kernels.workload.parse_config` keeps the last of two values and TOML accepts `"" = 1`; either
would be read as something the user did not mean.
"""

from __future__ import annotations

from kernels.workload import DTYPE_ALIASES, ConfigError, AttentionConfig
from kernels.workload import parse_config as _parse_config

_CAUSAL_FLAGS = ("causal", "full", "noncausal", "non-causal")


def _key(item: str) -> str:
    """The config key an item of a config text sets (flags included: `causal` sets causal, `bf16` sets dtype)."""
    if "=" not in item:
        flag = item.lower()
        return "causal" if flag in _CAUSAL_FLAGS else "dtype" if flag in DTYPE_ALIASES else flag
    key = item.split("=", 1)[0].strip()
    return key.upper() if key.upper() in ("B", "H", "S", "D") else key.lower()


def config_text_problem(text: str) -> str | None:
    """Why `text` names a config key twice or has an item with no key, or None."""
    seen: dict[str, str] = {}
    for raw in (text or "").split(","):
        item = raw.strip()
        if not item:
            continue
        key = _key(item)
        if not key:
            return f"config {text!r} has an item with no key ({item!r}); write KEY=VALUE, e.g. D=64"
        if key in seen:
            return f"config {text!r} sets {key} twice ({seen[key]!r} and {item!r}); give each key once"
        seen[key] = item
    return None


def parse_config(text: str) -> AttentionConfig:
    """`kernels.workload.parse_config`, refusing duplicate and empty keys (ConfigError, one sentence)."""
    problem = config_text_problem(text)
    if problem:
        raise ConfigError(problem + ".")
    return _parse_config(text)


def empty_toml_key(doc, where: str = "") -> str | None:
    """The dotted path of the first empty key in a parsed TOML document (tables and arrays of tables), or None."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            path = f"{where}.{key}" if where else key
            if not str(key).strip():
                return where or "the top level"
            found = empty_toml_key(value, path)
            if found:
                return found
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found = empty_toml_key(value, f"{where}[{i}]")
            if found:
                return found
    return None
