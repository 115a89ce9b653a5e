"""``dataclass`` and ``field`` for records on hako-runtime's start-up path.

The dataclasses module pulls in inspect, ast, re and typing, and compiles a fresh ``__init__``
per class: several milliseconds on every ``hako-runtime create`` and ``exec``. The records on
that path (spec objects, cgroup resources, mount options) only need keyword/positional
construction with defaults and default factories, plus ``==`` and a readable repr, so the type
checker sees the real dataclasses and the interpreter runs this stand-in.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as true
if TYPE_CHECKING:
    from dataclasses import dataclass, field
else:
    _MISSING = object()

    class _Field:
        __slots__ = ("default", "make")

        def __init__(self, default, make):
            self.default = default
            self.make = make

    def field(*, default=_MISSING, default_factory=None):
        return _Field(default, default_factory)

    def dataclass(cls=None, *, eq=True, repr=True, **_options):
        if cls is None:
            return lambda c: dataclass(c, eq=eq, repr=repr)
        names = tuple(cls.__dict__.get("__annotations__", {}))
        defaults = {}
        for n in names:
            if n in cls.__dict__:
                d = cls.__dict__[n]
                if isinstance(d, _Field):
                    if d.make is None and d.default is _MISSING:
                        raise TypeError(f"{cls.__name__}.{n}: field() needs a default or a factory")
                    d = d if d.make is not None else d.default
                defaults[n] = d
                delattr(cls, n)

        def __init__(self, *args, **kwargs):
            if len(args) > len(names):
                raise TypeError(f"{cls.__name__}() takes {len(names)} positional arguments, got {len(args)}")
            for n, v in zip(names, args, strict=False):
                if n in kwargs:
                    raise TypeError(f"{cls.__name__}() got multiple values for argument {n!r}")
                kwargs[n] = v
            for n in kwargs:
                if n not in names:
                    raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {n!r}")
            for n in names:
                if n in kwargs:
                    setattr(self, n, kwargs[n])
                elif n in defaults:
                    d = defaults[n]
                    setattr(self, n, d.make() if isinstance(d, _Field) else d)
                else:
                    raise TypeError(f"{cls.__name__}() missing required argument {n!r}")

        cls.__init__ = __init__
        cls.__match_args__ = names
        if eq:
            def __eq__(self, other):
                if other.__class__ is not self.__class__:
                    return NotImplemented
                return all(getattr(self, n) == getattr(other, n) for n in names)

            cls.__eq__ = __eq__
            cls.__hash__ = None  # as dataclasses do for eq=True, frozen=False
        if repr:
            def __repr__(self):
                return f"{cls.__qualname__}(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in names) + ")"

            cls.__repr__ = __repr__
        return cls
