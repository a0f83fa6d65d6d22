"""Provider names to provider classes and settings.

Built-in providers are imported only when first used. A name that is neither built in nor
configured is looked up in the ``llmos.providers`` entry-point group, so a third-party package can
add a provider without touching llmos::

    [project.entry-points."llmos.providers"]
    acme = "acme_llmos:AcmeProvider"
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from llmos.errors import ConfigurationError
from llmos.providers.base import Provider, ProviderSettings

__all__ = ["BUILTIN_KINDS", "ENTRY_POINT_GROUP", "PRESETS", "ProviderRegistry"]

ENTRY_POINT_GROUP = "llmos.providers"

#: Provider kinds shipped with llmos, imported lazily as "module:Class".
BUILTIN_KINDS: dict[str, str] = {
    "openai": "llmos.providers.openai:OpenAIProvider",
    "ai21": "llmos.providers.ai21:AI21Provider",
    "huggingface": "llmos.providers.huggingface:HuggingFaceProvider",
    "openai-compatible": "llmos.providers.compatible:CompatibleProvider",
    "local": "llmos.providers.local:LocalProvider",
}

#: Names for common OpenAI-compatible servers that run without a key; base URLs are overridable
#: by settings or by LLMOS_<NAME>_BASE_URL (e.g. LLMOS_VLLM_BASE_URL).
PRESETS: dict[str, dict[str, Any]] = {
    "ollama": {"kind": "openai-compatible", "base_url": "http://localhost:11434/v1"},
    "lmstudio": {"kind": "openai-compatible", "base_url": "http://localhost:1234/v1"},
    "llamacpp-server": {
        "kind": "openai-compatible",
        "base_url": "http://localhost:8080/v1",
        "server": "llamacpp",
    },
    "vllm": {"kind": "openai-compatible", "base_url": "http://localhost:8000/v1"},
}

#: Other spellings accepted for provider names.
ALIASES: dict[str, str] = {"hf": "huggingface", "llamacpp": "llamacpp-server"}


def _import(path: str) -> type[Provider]:
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, attr)
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ConfigurationError(f"{path} is not an llmos Provider subclass")
    return cls


def _env_name(name: str) -> str:
    return "LLMOS_" + name.upper().replace("-", "_")


class ProviderRegistry:
    """Resolves provider names for one client: its configured providers, presets and plugins."""

    def __init__(
        self,
        configs: Mapping[str, Mapping[str, Any] | ProviderSettings] | None = None,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._env = dict(os.environ) if env is None else dict(env)
        self._configs: dict[str, Mapping[str, Any] | ProviderSettings] = {}
        for name, config in (configs or {}).items():
            if not isinstance(config, (Mapping, ProviderSettings)):
                raise ConfigurationError(
                    f"providers[{name!r}] must be a dict of settings, got {type(config).__name__}"
                )
            self._configs[ALIASES.get(name, name)] = config
        self._classes: dict[str, type[Provider]] = {}
        self._plugins: dict[str, Any] | None = None

    # ------------------------------------------------------------------ names

    def canonical(self, name: str) -> str:
        """The registry's spelling of a provider name."""
        return ALIASES.get(name, name)

    def known_names(self) -> list[str]:
        """Every provider name this client can reach, built-in ones first."""
        names = [n for n in BUILTIN_KINDS if n != "openai-compatible"]
        names += [n for n in PRESETS if n not in names]
        names += [n for n in self._configs if n not in names]
        names += [n for n in self._plugin_names() if n not in names]
        return names

    def _plugin_names(self) -> list[str]:
        return sorted(self._load_plugins())

    def _load_plugins(self) -> dict[str, Any]:
        if self._plugins is None:
            from importlib.metadata import entry_points

            self._plugins = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        return self._plugins

    def register(self, name: str, cls: type[Provider], **settings: Any) -> None:
        """Make ``name`` resolve to ``cls`` with ``settings`` (for code that builds providers)."""
        self._classes[name] = cls
        self._configs[name] = {**settings, "kind": name} if "kind" not in settings else settings

    # ------------------------------------------------------------------ resolution

    def _raw_config(self, name: str) -> dict[str, Any]:
        config = self._configs.get(name)
        preset = PRESETS.get(name, {})
        if isinstance(config, ProviderSettings):
            return {"__settings__": config, **preset}
        return {**preset, **dict(config or {})}

    def provider_class(self, name: str) -> type[Provider]:
        """The Provider subclass serving ``name``; ConfigurationError if there is none."""
        name = self.canonical(name)
        if name in self._classes:
            return self._classes[name]
        config = self._raw_config(name)
        settings_obj = config.get("__settings__")
        kind = config.get("kind") or (settings_obj.kind if settings_obj is not None else None)
        kind = ALIASES.get(kind or name, kind or name)
        cls: type[Provider] | None = None
        if kind in BUILTIN_KINDS:
            cls = _import(BUILTIN_KINDS[kind])
        elif kind in self._classes:
            cls = self._classes[kind]
        else:
            plugin = self._load_plugins().get(kind)
            if plugin is not None:
                loaded = plugin.load()
                if not (isinstance(loaded, type) and issubclass(loaded, Provider)):
                    raise ConfigurationError(
                        f"entry point {kind!r} in group {ENTRY_POINT_GROUP!r} does not name an "
                        "llmos Provider subclass"
                    )
                cls = loaded
        if cls is None:
            known = ", ".join(self.known_names())
            raise ConfigurationError(
                f"unknown provider {name!r}; known providers: {known}. "
                f"Configure one with providers={{{name!r}: {{'kind': 'openai-compatible', "
                "'base_url': ...}} or install a package that registers it"
            )
        self._classes[name] = cls
        return cls

    def settings_for(self, name: str) -> ProviderSettings:
        """Validated settings for ``name``: explicit settings over env variables over presets."""
        name = self.canonical(name)
        cls = self.provider_class(name)
        explicit = self._configs.get(name)
        if isinstance(explicit, ProviderSettings):
            return explicit
        # Precedence, lowest first: preset, provider env vars, LLMOS_<NAME>_* vars, explicit.
        merged: dict[str, Any] = dict(PRESETS.get(name, {}))
        merged.update(cls.settings_from_env(self._env))
        prefix = _env_name(name)
        if self._env.get(prefix + "_BASE_URL"):
            merged["base_url"] = self._env[prefix + "_BASE_URL"]
        if self._env.get(prefix + "_API_KEY"):
            merged["api_key"] = self._env[prefix + "_API_KEY"]
        merged.update(explicit or {})
        try:
            return cls.settings_class.model_validate(merged)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "settings"
            allowed = ", ".join(sorted(cls.settings_class.model_fields))
            raise ConfigurationError(
                f"providers[{name!r}].{where}: {err['msg']}; settings accepted by "
                f"{cls.__name__}: {allowed}",
                provider=name,
            ) from None

    def create(self, name: str) -> Provider:
        """A new provider instance for ``name``."""
        name = self.canonical(name)
        cls = self.provider_class(name)
        return cls(name, self.settings_for(name))
