"""``dataclass`` and ``field`` for records on hako-runtime's start-up path.

The dataclasses module pulls in inspect, ast, re and typing, and compiles a fresh ``__init__``
per class: several milliseconds on every ``hako-runtime create`` and ``exec``. The records on
that path (spec objects, cgroup resources, mount options) only need keyword/positional
construction with defaults and default factories, ``==``, a readable repr and, where asked,
``frozen`` (immutable and hashable) and ``order``; the type checker sees the real dataclasses
and the interpreter runs this stand-in. No asdict/fields/replace/__post_init__.
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

    def _frozen_setattr(self, name, value):
        raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")

    def dataclass(cls=None, *, eq=True, repr=True, frozen=False, order=False, **_options):
        if cls is None:
            return lambda c: dataclass(c, eq=eq, repr=repr, frozen=frozen, order=order)
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
                    set_(self, n, kwargs[n])
                elif n in defaults:
                    d = defaults[n]
                    set_(self, n, d.make() if isinstance(d, _Field) else d)
                else:
                    raise TypeError(f"{cls.__name__}() missing required argument {n!r}")

        set_ = object.__setattr__
        cls.__init__ = __init__
        cls.__match_args__ = names
        if eq:
            def __eq__(self, other):
                if other.__class__ is not self.__class__:
                    return NotImplemented
                return all(getattr(self, n) == getattr(other, n) for n in names)

            cls.__eq__ = __eq__
            if frozen:
                def __hash__(self):
                    return hash(tuple(getattr(self, n) for n in names))

                cls.__hash__ = __hash__
            else:
                cls.__hash__ = None  # as dataclasses do for eq=True, frozen=False
        if frozen:
            cls.__setattr__ = _frozen_setattr
            cls.__delattr__ = _frozen_setattr
        if order:
            def key(self):
                return tuple(getattr(self, n) for n in names)

            def compare(op):
                def method(self, other):
                    if other.__class__ is not self.__class__:
                        return NotImplemented
                    return op(key(self), key(other))

                return method

            cls.__lt__ = compare(lambda a, b: a < b)
            cls.__le__ = compare(lambda a, b: a <= b)
            cls.__gt__ = compare(lambda a, b: a > b)
            cls.__ge__ = compare(lambda a, b: a >= b)
        if repr:
            def __repr__(self):
                return f"{cls.__qualname__}(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in names) + ")"

            cls.__repr__ = __repr__
        return cls
