"""The search space of a study: which parameters may vary, how each maps onto the training
config, and the list of trial points (grid or seeded random draws, plus the ablation arms).

A point is a small dict such as {"chunk_size": 64, "update_rule": "muon", "arm": "lact"};
`overrides(point)` turns it into the training config's key=value overrides.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping

from pipeline.errors import UserError

# The fast-weight update rule: plain gradient step, with momentum, with Muon, or both.
UPDATE_RULES = {
    "plain": {"model.config.use_momentum": False, "model.config.use_muon": False},
    "momentum": {"model.config.use_momentum": True, "model.config.use_muon": False},
    "muon": {"model.config.use_momentum": False, "model.config.use_muon": True},
    "momentum+muon": {"model.config.use_momentum": True, "model.config.use_muon": True},
}
# The component ablations: what each arm removes from (or swaps in) the LaCT model.
ARMS = {
    "lact": {},
    "window_only": {"model.config.use_fast_weights": False},
    "fast_weights_only": {"model.config.use_window_attention": False},
    "linear_fast_weight": {"model.config.fast_weight": "linear"},
    "full_attention": {"model.architecture": "baseline"},  # the reference arm
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


def validate_space(space: Mapping, method: str, arms: list) -> None:
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


def trial_points(space: Mapping, method: str, num_samples: int, seed: int, arms: list) -> list[dict]:
    """Grid: every combination of the lists. Random: num_samples draws (seeded, so a restored
    study sees the same points). Then one point per extra arm, at the base config's values."""
    names = list(space)
    if method == "grid":
        points = [dict(zip(names, combo)) for combo in itertools.product(*(space[n] for n in names))]
    else:
        # one random stream per parameter: adding a parameter leaves the others' draws alone
        streams = {n: random.Random(f"{seed}:{n}") for n in names}
        points = [{n: draw(streams[n], n, space[n]) for n in names} for _ in range(num_samples)]
    return [p for p in points if p] + [{"arm": arm} for arm in arms]


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
        if name in NAMED:
            out.update(NAMED[name][value])
        else:
            out[NUMBERS[name][0]] = value
    return out
