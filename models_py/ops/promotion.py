"""Conditional promotion: a challenger replaces the champion only if it ranks the same cut-off better by a margin."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import duckdb

from models_py.config import Settings
from models_py.modeling import evaluate, repeat_purchase
from models_py.modeling.dataset import labelled, validation_share
from models_py.modeling.model import ScoringModel, probabilities
from models_py.modeling.train import STOPPING, validation_roles
from models_py.ops import registry


def validation_auc(con: duckdb.DuckDBPyConnection, model: ScoringModel, as_of: date, cfg: Settings) -> float:
    """A model's ROC AUC on the half of a cut-off's (sampled) visitors that no model's early stopping saw."""
    share = validation_share(con, as_of, cfg.max_validation_rows)
    va = labelled(con, [as_of], repeat_purchase.mart_columns(model), visitor_share=share)
    half = validation_roles(va.visitor_id, share) != STOPPING
    return evaluate.metrics(va.y[half], probabilities(model, va.x[half], cfg.threads), 0.5)["roc_auc"]


def challenger_wins(
    con: duckdb.DuckDBPyConnection, meta: registry.ModelMetadata, cfg: Settings, say: Callable[[str], None]
) -> bool:
    """Whether the challenger should replace the champion: there is none yet, or it beats it by the margin on the
    same latest cut-off. Nothing is changed here: the nightly job promotes only once tonight's gates have passed."""
    current = registry.load_champion(con)
    if current is None:
        say(f"  no champion yet: {meta.version} will be promoted if tonight's gates pass")
        return True
    if current.version == meta.version:
        say(f"  retrained model is identical to the champion {meta.version}: nothing to promote")
        return False
    validation = date.fromisoformat(meta.validation_as_of_date)
    challenger = registry.load_version(con, meta.version)
    champ_auc = validation_auc(con, current, validation, cfg)
    chall_auc = validation_auc(con, challenger, validation, cfg)
    better = chall_auc >= champ_auc + cfg.promotion_margin
    say(
        f"  on {validation}: challenger {meta.version} ROC AUC {chall_auc:.4f} vs champion "
        f"{current.version} {champ_auc:.4f} (margin {cfg.promotion_margin}): "
        + ("challenger wins" if better else "champion kept")
    )
    return better


def promote_if_better(
    con: duckdb.DuckDBPyConnection, meta: registry.ModelMetadata, cfg: Settings, say: Callable[[str], None]
) -> bool:
    """`propensity train`: promote at once if the challenger wins (no night's gates to wait for)."""
    wins = challenger_wins(con, meta, cfg, say)
    if wins:
        registry.set_champion(con, meta.version)
        say(f"  {meta.version} promoted")
    return wins


def previous_champion(con: duckdb.DuckDBPyConnection) -> str | None:
    """The most recently retired model: what `propensity rollback` goes back to."""
    row = con.execute(
        "select model_version from ml.model_registry where status = 'retired' order by status_changed_at desc limit 1"
    ).fetchone()
    return row[0] if row else None
