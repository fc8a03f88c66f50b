"""Which service modules are installed, and loading a service class by name or path."""

import importlib
import os
import pkgutil
import sys
from pathlib import Path

# the checkout that holds pamong/ (an editable install): `module:Class` specs such as
# tests.kernel_services:X import from here without PYTHONPATH, from any directory
PROJECT_ROOT = Path(__file__).resolve().parents[1]


# the suite's modules in dependency order (the directory first: the others keep replicas of
# it); `pamong run` gives each a fixed port, first port + this index, whoever else is adopted
SUITE_ORDER = ("directory", "attendance", "letters", "permits", "notify")


def module_ports(modules, first_port):
    """``{name: port}`` in start order: the suite's modules at fixed offsets, any other module
    after the suite's ports (from ``first_port`` when no suite module runs)."""
    known = [name for name in SUITE_ORDER if name in modules]
    others = sorted(name for name in modules if name not in SUITE_ORDER)
    ports = {name: first_port + SUITE_ORDER.index(name) for name in known}
    after = first_port + len(SUITE_ORDER) if known else first_port
    ports.update({name: after + i for i, name in enumerate(others)})
    return ports


def load_service(spec):
    """``"services.letters.service:LettersService"`` or an installed module name -> class."""
    if ":" not in spec:
        # only the module asked for is imported: another module's broken configuration (a
        # notify rules file, say) must not stop this one
        modules = installed(only=spec)
        if spec not in modules:
            listed = ", ".join(installed()) or "none"
            raise SystemExit(f"unknown module {spec!r}; installed: {listed}")
        return modules[spec]
    module_name, class_name = spec.split(":", 1)
    # after everything installed, so a project directory never shadows an installed package
    for path in (os.getcwd(), str(PROJECT_ROOT)):
        if path not in sys.path:
            sys.path.append(path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise SystemExit(f"cannot import {module_name!r} for {spec!r}: {exc} (looked in the "
                         f"installed packages, {os.getcwd()} and {PROJECT_ROOT})") from exc
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise SystemExit(f"{module_name} has no {class_name!r} (from {spec!r})") from None


def installed(only=None):
    """``{name: service class}`` for every ``services/<name>/service.py`` present (or only
    the one named ``only``).

    ``PAMONG_MODULES=directory,letters`` restricts it to the modules an OPD adopted.
    """
    import services

    wanted = {m.strip() for m in os.environ.get("PAMONG_MODULES", "").split(",") if m.strip()}
    found = {}
    for info in pkgutil.iter_modules(services.__path__):
        if not info.ispkg or (wanted and info.name not in wanted) \
                or (only is not None and info.name != only):
            continue
        try:
            module = importlib.import_module(f"services.{info.name}.service")
        except ModuleNotFoundError as exc:
            if exc.name != f"services.{info.name}.service":
                raise  # a missing dependency of a module must not hide the module
            continue
        service_cls = getattr(module, "SERVICE", None)
        if service_cls is not None:
            found[service_cls.name] = service_cls
    return dict(sorted(found.items()))
