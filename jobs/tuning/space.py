"""The search space of a study: which parameters may vary, how each maps onto the training
config, and the list of trial points (grid or seeded random draws, plus the ablation arms).

A point is a small dict such as {"chunk_size": 64, "update_rule": "muon", "arm": "lact",
"seed": 1}; `overrides(point)` turns it into the training config's key=value overrides. An arm is
one of the model architectures (models/arms.py); a parameter an arm does not use (the chunk size
of full attention) is dropped from its points, so the grid trains each distinct model once.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping

from models.arms import ARCHITECTURES
from pipeline.errors import UserError

# The fast-weight update rule: plain gradient step, with momentum, with Muon, or both.
UPDATE_RULES = {
    "plain": {"model.config.use_momentum": False, "model.config.use_muon": False},
    "momentum": {"model.config.use_momentum": True, "model.config.use_muon": False},
    "muon": {"model.config.use_momentum": False, "model.config.use_muon": True},
    "momentum+muon": {"model.config.use_momentum": True, "model.config.use_muon": True},
}
# The comparison arms: the model architectures, each parameter-matched to the LaCT config.
ARMS = {name: {"model.architecture": name} for name in ARCHITECTURES}
# What an arm's model does not read: fast-weight update settings where nothing is updated, the
# window and LaCT heads where there is no LaCT layer.
UNUSED = {
    "lact": set(),
    "window": {"chunk_size", "base_lr", "update_rule"},
    "static_fast_weights": {"chunk_size", "base_lr", "update_rule"},
    "full_attention": {"chunk_size", "base_lr", "update_rule", "window_size", "num_lact_heads"},
}
# Numeric parameters: name -> (training config key, type).
NUMBERS = {
    "chunk_size": ("model.config.chunk_size", int),
    "window_size": ("model.config.window_size", int),
    "num_lact_heads": ("model.config.num_lact_heads", int),
    "base_lr": ("model.config.base_lr", float),
    "lr": ("optim.lr", float),
}
NAMED = {"update_rule": UPDATE_RULES, "arm": ARMS}
PARAMETERS = sorted([*NUMBERS, *NAMED])


def validate_space(space: Mapping, method: str, arms) -> None:
    """One-line UserError naming the key for an unknown parameter, an empty choice list, a value
    of the wrong type, or a range where grid search needs a list."""
    if not space and not arms:
        raise UserError("search.space: empty; give at least one parameter or an arm")
    for name, values in space.items():
        key = f"search.space.{name}"
        if name not in PARAMETERS:
            raise UserError(f"{key}: unknown parameter (known: {', '.join(PARAMETERS)})")
        if isinstance(values, Mapping):
            check_range(key, name, values, method)
            continue
        if not isinstance(values, (list, tuple)):
            raise UserError(f"{key}: expected a list of values, got {values!r}")
        if not values:
            raise UserError(f"{key}: empty choice list")
        for value in values:
            check_value(key, name, value)
    for arm in arms:
        if arm not in ARMS:
            raise UserError(f"search.arms: {arm!r} is not one of {list(ARMS)}")
        values = arms[arm] if isinstance(arms, Mapping) else None
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise UserError(f"search.arms.{arm}: expected a mapping of parameter: value, got {values!r}")
        for name, value in values.items():
            if name not in PARAMETERS or name == "arm":
                raise UserError(f"search.arms.{arm}.{name}: unknown parameter (known: "
                                f"{', '.join(p for p in PARAMETERS if p != 'arm')})")
            check_value(f"search.arms.{arm}.{name}", name, value)


def check_value(key: str, name: str, value) -> None:
    if name in NAMED:
        if value not in NAMED[name]:
            raise UserError(f"{key}: {value!r} is not one of {list(NAMED[name])}")
        return
    kind = NUMBERS[name][1]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            kind is int and not isinstance(value, int)):
        raise UserError(f"{key}: {value!r} is not {'an integer' if kind is int else 'a number'}")
    if not value > 0:
        raise UserError(f"{key}: {value!r} must be > 0")


def check_range(key: str, name: str, spec: Mapping, method: str) -> None:
    """A random-search range {min: a, max: b, log: true|false} of a numeric parameter."""
    if method != "random":
        raise UserError(f"{key}: grid search needs a list of values, not a range")
    if name not in NUMBERS:
        raise UserError(f"{key}: a range needs a numeric parameter; give a list of choices")
    unknown = set(spec) - {"min", "max", "log"}
    if unknown or "min" not in spec or "max" not in spec:
        raise UserError(f"{key}: a range is {{min: A, max: B, log: true|false}}, got {dict(spec)}")
    check_value(key, name, spec["min"])
    check_value(key, name, spec["max"])
    if spec["min"] > spec["max"]:
        raise UserError(f"{key}: min {spec['min']} is above max {spec['max']}")


def trial_points(space: Mapping, method: str, num_samples: int, seed: int, arms,
                 seeds: list | None = None) -> list[dict]:
    """Grid: every combination of the lists. Random: num_samples draws (seeded, so a restored
    study sees the same points). Then one point per extra arm: `arms` a list of names (at the
    base config's values) or a mapping name -> {parameter: value} (each arm at its own values).
    Points that differ only in what their arm does not use are one point. With `seeds`, every
    point once per training seed."""
    points = [without_unused(p) for p in _space_points(space, method, num_samples, seed)]
    extra = arms.items() if isinstance(arms, Mapping) else ((arm, {}) for arm in arms)
    points += [without_unused({**dict(values or {}), "arm": arm}) for arm, values in extra]
    unique = []
    for p in points:
        if p not in unique:
            unique.append(p)
    if seeds:
        return [{**p, "seed": s} for p in unique for s in seeds]
    return unique


def without_unused(point: dict) -> dict:
    return {k: v for k, v in point.items() if k not in UNUSED[point.get("arm", "lact")]}


def _space_points(space: Mapping, method: str, num_samples: int, seed: int) -> list[dict]:
    names = list(space)
    if method == "grid":
        points = [dict(zip(names, combo)) for combo in itertools.product(*(space[n] for n in names))]
    else:
        # one random stream per parameter: adding a parameter leaves the others' draws alone
        streams = {n: random.Random(f"{seed}:{n}") for n in names}
        points = [{n: draw(streams[n], n, space[n]) for n in names} for _ in range(num_samples)]
    return [p for p in points if p]


def draw(rng: random.Random, name: str, values):
    if not isinstance(values, Mapping):
        return rng.choice(list(values))
    low, high = values["min"], values["max"]
    if values.get("log"):
        x = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        x = rng.uniform(low, high)
    return round(x) if NUMBERS[name][1] is int else x


def overrides(point: Mapping) -> dict:
    """Training config keys -> values of one trial point."""
    out: dict = {}
    for name, value in point.items():
        if name == "seed":
            out["train.seed"] = value
        elif name in NAMED:
            out.update(NAMED[name][value])
        else:
            out[NUMBERS[name][0]] = value
    return out
