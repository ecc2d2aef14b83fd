"""Operator arguments named like ``BaseOperator``'s: a record's ``email`` is not the alert address.

Airflow gives ``BaseOperator``'s argument names its own meaning in three places (3.3.2,
``airflow/sdk/bases/operator.py`` and ``definitions/mappedoperator.py``):

1. The operator metaclass fills every ``__init__`` parameter that ``default_args`` names and the call
   omits: with ``default_args={"email": "oncall@example.com"}`` (the failure-alert address) a plain
   ``email`` parameter would receive the alert address as a record's e-mail.
2. ``partial()`` copies ``default_args["email"]`` into the partial's kwargs, where a mapped task's alert
   address is read (``MappedOperator.email``: the scheduler and the dag processor send alerts to it), and
   unmapping passes it back to ``__init__`` as ``email=``: a record's e-mail given to ``partial()`` would
   receive the alerts, and the alert address would become every mapped record's e-mail.
3. For the same reason ``expand(email=[...])`` fails ("unmappable or already specified argument: email")
   in a DAG whose ``default_args`` set ``email``.

:class:`ShadowedArgs` keeps the two meanings apart while the name stays in the class's typed, visible
signature. A class lists the names in ``shadowed_args`` (the records operators derive them from their
fields); then:

* its ``__init__`` takes them like any argument, with its own default when omitted, never from
  ``default_args`` (the metaclass finds them already given);
* ``partial()``, ``expand()`` and ``expand_kwargs()`` carry them under one key, :data:`FIELDS_KEY`, so in
  every kwargs dict Airflow handles, ``email`` means the alert address and nothing else;
* when Airflow rebuilds a mapped task, its ``email`` goes back in as ``default_args["email"]`` (so
  ``BaseOperator.email`` gets it) and the carried fields come out as the arguments.

The class must not store the field as ``self.email`` (that attribute is ``BaseOperator.email``): the
records operators keep their fields in ``self.record``; a sensor would keep ``self.user_email``. Use::

    class MySensor(ShadowedArgs, BaseSensorOperator):
        shadowed_args = frozenset({"email"})

        def __init__(self, *, email: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.user_email = email
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import XComArg
    from airflow.sdk.bases.operator import BaseOperatorMeta
    from airflow.sdk.definitions.mappedoperator import (
        MappedOperator,
        OperatorPartial,
        validate_mapping_kwargs,
    )
else:
    BaseOperatorMeta = type(BaseOperator)
    try:  # Airflow 3
        from airflow.sdk import XComArg
        from airflow.sdk.definitions.mappedoperator import OperatorPartial, validate_mapping_kwargs
    except ImportError:  # Airflow 2
        from airflow.models.mappedoperator import OperatorPartial, validate_mapping_kwargs
        from airflow.models.xcom_arg import XComArg

# The key that carries shadowed fields through partial()/expand() (and that __init__ also accepts).
FIELDS_KEY = "shadowed_fields"
# What MappedOperator.unmap() adds to the kwargs of the operator it builds for one map index.
_FROM_MAPPED = "_airflow_from_mapped"
# Names with a meaning of their own to Airflow: every parameter of BaseOperator.__init__.
BASE_OPERATOR_ARGS: frozenset[str] = frozenset(inspect.signature(BaseOperator.__init__).parameters) - {
    "self",
    "kwargs",
}


def _guard(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap a class's (already metaclass-wrapped) ``__init__``: see the module docstring."""
    raw = inspect.unwrap(init)
    params = inspect.signature(raw).parameters

    @functools.wraps(init)
    def __init__(self: ShadowedArgs, *args: Any, **kwargs: Any) -> None:
        names = type(self).shadowed_args
        if kwargs.get(_FROM_MAPPED):  # only the outermost __init__ sees it (the metaclass pops it)
            airflows = {name: kwargs.pop(name) for name in names if name in kwargs}
            if airflows:
                kwargs["default_args"] = {**(kwargs.get("default_args") or {}), **airflows}
        kwargs.update(kwargs.pop(FIELDS_KEY, None) or {})
        for name in names & params.keys():
            if name not in kwargs:
                default = params[name].default
                if default is inspect.Parameter.empty:
                    raise TypeError(f"missing keyword argument {name!r}")
                kwargs[name] = default  # given, so the metaclass does not fill it from default_args
        init(self, *args, **kwargs)

    __init__.__wrapped__ = raw  # what Airflow and inspect unwrap to
    # The names Airflow's partial()/expand() accept for this __init__: also the key that carries fields.
    accepted: set[str] = getattr(init, "_BaseOperatorMeta__param_names", set())
    __init__._BaseOperatorMeta__param_names = {*accepted, FIELDS_KEY}  # type: ignore[attr-defined]
    return __init__


class ShadowedArgsMeta(BaseOperatorMeta):
    """The operator metaclass, plus :func:`_guard` around each ``__init__`` it has wrapped."""

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any) -> Any:
        cls = super().__new__(mcs, name, bases, namespace, **kwargs)
        if "__init__" in namespace:
            cls.__init__ = _guard(cls.__init__)
        return cls


class ShadowedArgs(metaclass=ShadowedArgsMeta):
    """Mix in before ``BaseOperator`` (or a subclass); name the shadowed arguments in ``shadowed_args``."""

    shadowed_args: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def partial(cls, **kwargs: Any) -> OperatorPartial:
        """``BaseOperator.partial()``, with the shadowed fields carried apart from Airflow's own arguments."""
        fields = {name: kwargs.pop(name) for name in cls.shadowed_args if name in kwargs}
        if fields:
            kwargs[FIELDS_KEY] = fields
        plain: OperatorPartial = super().partial(**kwargs)  # type: ignore[misc]
        plain._expand_called = True  # replaced by the one below: no "was never mapped" warning
        return ShadowedPartial(operator_class=plain.operator_class, kwargs=plain.kwargs, params=plain.params)


def _field(name: str) -> Callable[[Any], dict[str, Any]]:
    def as_field(value: Any) -> dict[str, Any]:
        return {name: value}

    return as_field


def _carry(names: frozenset[str]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    def carried(kwargs: Mapping[str, Any]) -> dict[str, Any]:
        fields = {key: value for key, value in kwargs.items() if key in names}
        rest = {key: value for key, value in kwargs.items() if key not in names}
        return {**rest, FIELDS_KEY: fields} if fields else rest

    return carried


class ShadowedPartial(OperatorPartial):
    """What :meth:`ShadowedArgs.partial` returns: ``expand`` and ``expand_kwargs`` carry shadowed fields."""

    def expand(self, **mapped_kwargs: Any) -> MappedOperator:
        validate_mapping_kwargs(self.operator_class, "expand", mapped_kwargs)  # the names the user typed
        names = [name for name in mapped_kwargs if name in self._shadowed]
        for name in names:
            if name in self.kwargs.get(FIELDS_KEY, {}):
                raise TypeError(f"unmappable or already specified argument: {name}")
        if len(names) > 1:
            raise TypeError(f"expand() maps one of {', '.join(names)} at a time: use expand_kwargs()")
        if names:
            value = mapped_kwargs.pop(names[0])
            if isinstance(value, XComArg):
                mapped_kwargs[FIELDS_KEY] = value.map(_field(names[0]))
            elif isinstance(value, Sequence) and not isinstance(value, str):
                mapped_kwargs[FIELDS_KEY] = [{names[0]: item} for item in value]
            else:
                raise TypeError(
                    f"expand({names[0]}=...) takes a list or an XComArg, not {type(value).__name__}"
                )
        return super().expand(**mapped_kwargs)

    def expand_kwargs(self, kwargs: Any, *, strict: bool = True) -> MappedOperator:
        carried = _carry(self._shadowed)
        if isinstance(kwargs, XComArg):
            kwargs = kwargs.map(carried)
        elif isinstance(kwargs, Sequence):
            if any(isinstance(item, XComArg) for item in kwargs):
                raise TypeError(
                    "expand_kwargs() takes a list of dicts or one XComArg, not a list of XComArgs"
                )
            kwargs = [carried(item) if isinstance(item, Mapping) else item for item in kwargs]
        return super().expand_kwargs(kwargs, strict=strict)

    @property
    def _shadowed(self) -> frozenset[str]:
        return getattr(self.operator_class, "shadowed_args", frozenset())
