"""What a team does between nights: `lact-audio nightly status` and `lact-audio nightly rollback`.

rollback swaps the two aliases: `champion` goes back to the version `previous-champion` names, and
`previous-champion` to the version that was serving (so a second rollback undoes the first). It
holds the nightly lock while it moves them and records a `rolled-back` decision.
"""

from __future__ import annotations

from datetime import datetime, timezone

from omegaconf import DictConfig

from jobs.nightly import decision as decisions
from jobs.nightly import frozen as frozen_split
from jobs.nightly.config import training_config
from jobs.nightly.lock import NightLock, holder
from jobs.nightly.run import output_of
from jobs.runs import tracking
from pipeline.errors import UserError


def _model(nightly: DictConfig) -> str:
    cfg = training_config(nightly)
    return tracking.registered_name(cfg.task, cfg.model.architecture, cfg.tracking.registered_name)


def rollback(nightly: DictConfig) -> dict:
    tracking.use_store()
    output, name = output_of(nightly), _model(nightly)
    alias, previous_alias = nightly.promotion.alias, nightly.promotion.previous_alias
    with NightLock(output, nightly.lock_hours, "rollback"):
        serving = tracking.version_with_alias(name, alias)
        previous = tracking.version_with_alias(name, previous_alias)
        if previous is None:
            raise UserError(f"{name}@{previous_alias} does not exist: there is no earlier champion to roll back to")
        if serving is None:
            raise UserError(f"{name}@{alias} does not exist: nothing to roll back")
        decision = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "action": decisions.ROLLED_BACK, "registered_name": name, "alias": alias,
                    "previous_alias": previous_alias, "champion_version": serving,
                    "serving_version": previous, "previous_champion_version": serving,
                    "reason": f"rolled back by hand: {alias} {serving} -> {previous}, {previous_alias} -> {serving}"}
        decision["decision_file"] = decisions.write_new_decision(output, decision)
        tracking.set_alias(name, alias, previous)
        tracking.set_alias(name, previous_alias, serving)
        tracking.tag_version(name, serving, {"rolled_back_at": decision["date"]})
    return decision


def status(nightly: DictConfig) -> tuple[list[str], bool]:
    """(lines to print, alert): the aliases, the last nights, the frozen test split and the lock;
    alert is True when the latest night failed the same way as the one before."""
    tracking.use_store()
    output, name = output_of(nightly), _model(nightly)
    alias, previous_alias = nightly.promotion.alias, nightly.promotion.previous_alias
    lines = [f"model: {name}@{alias} is version {tracking.version_with_alias(name, alias) or 'none'}; "
             f"@{previous_alias} is version {tracking.version_with_alias(name, previous_alias) or 'none'}"]
    history = decisions.all_decisions(output)
    nights = [d for d in history if d.get("action") != decisions.ROLLED_BACK]
    if not history:
        lines.append(f"nights: none yet in {output}")
    else:
        last = history[-1]
        lines.append(f"last: {last['date']} {last['action']}: {last.get('reason') or last.get('error')} "
                     f"({last['decision_file']})")
        ok = [d for d in nights if d["action"] != decisions.FAILED]
        lines.append(f"last finished night: {ok[-1]['date']} {ok[-1]['action']}" if ok else "last finished night: none")
        failures = 0
        for d in reversed(nights):
            if d["action"] != decisions.FAILED:
                break
            failures += 1
        lines.append(f"failed nights in a row: {failures}")
    alert = bool(nights) and bool(nights[-1].get("repeated_failure"))
    if alert:
        lines.append(nights[-1]["alert"])
    frozen = frozen_split.read_frozen(output)
    lines.append(f"test split: {frozen['test_split']} frozen {frozen['frozen_at']} "
                 f"(hash {frozen['content_hash'][:12]}, {len(frozen['speakers'])} speakers)"
                 if frozen else "test split: not frozen yet (the first night does)")
    lease = holder(output)
    lines.append("lock: free" if lease is None else
                 f"lock: {'EXPIRED ' if lease['expired'] else ''}held by {lease['owner']} ({lease.get('action')}) "
                 f"since {lease.get('acquired')}, expires {lease['expires']}")
    return lines, alert
