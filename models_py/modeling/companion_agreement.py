"""How closely the 14-feature companion (what ``predict`` answers the original API's payload with) follows the
nightly ranking, beside the most that any function of those 14 features could follow it.

The bound: Spearman's correlation of any f(x) with the nightly scores is the Pearson correlation of rank(f(x)), itself
a function of x, with the nightly ranks, and no function of x correlates with them more than their mean within each
distinct x does (the correlation ratio). Visitors with the same 14 values get the same answer from any model of
them, so when the nightly model tells such visitors apart by its other features, no 14-feature model can follow.
"""

from __future__ import annotations

from datetime import date

import duckdb
import numpy as np
from scipy.stats import rankdata, spearmanr

from models_py.errors import BadInputError
from models_py.modeling.dataset import FEATURES_TABLE, SEED_FEATURES, to_matrix
from models_py.modeling.model import ScoringModel, probabilities
from models_py.warehouse.connection import fetch_arrow
from models_py.warehouse.schema import SCORE_HISTORY


def payload_groups(x: np.ndarray) -> np.ndarray:
    """Each row's index among the distinct rows of ``x`` (missing values equal to each other)."""
    return np.unique(np.nan_to_num(x, nan=-np.inf), axis=0, return_inverse=True)[1].ravel()


def rank_correlation_bound(group: np.ndarray, target: np.ndarray) -> float:
    """The highest Spearman correlation with ``target`` that any function of the rows behind ``group`` (from
    ``payload_groups``) can reach."""
    ranks = rankdata(target)
    size = np.bincount(group)
    group_means = np.bincount(group, weights=ranks) / size
    mean = ranks.mean()
    total = ((ranks - mean) ** 2).sum()
    return float(np.sqrt((size * (group_means - mean) ** 2).sum() / total)) if total else 0.0


def night_model_version(con: duckdb.DuckDBPyConnection, as_of: date) -> str:
    """The model that scored ``as_of``."""
    versions = con.execute(
        f"select distinct model_version from {SCORE_HISTORY} where as_of_date = ?", [as_of]
    ).fetchall()
    if len(versions) != 1:
        raise BadInputError(f"{as_of} has no scores in {SCORE_HISTORY} (or several models'): score that night first")
    return versions[0][0]


def measure(con: duckdb.DuckDBPyConnection, model: ScoringModel, as_of: date, threads: int) -> dict:
    """``model``'s companion against the scores ``model`` gave every visitor on ``as_of``."""
    companion = getattr(model, "companion", None)
    if companion is None:
        raise BadInputError(f"model {model.version} has no 14-feature companion")
    columns = ", ".join(f"f.{c}" for c in SEED_FEATURES)
    table = fetch_arrow(
        con,
        f"""select h.propensity, {columns} from {SCORE_HISTORY} h
            join {FEATURES_TABLE} f using (visitor_id, as_of_date) where h.as_of_date = ? and h.model_version = ?""",
        [as_of, model.version],
    )
    if not table.num_rows:
        raise BadInputError(f"model {model.version} scored nobody on {as_of}")
    nightly = table["propensity"].to_numpy()
    x = to_matrix(table, list(SEED_FEATURES))
    on_demand = probabilities(companion, x, threads)
    group = payload_groups(x)
    top = nightly >= np.quantile(nightly, 0.9)
    return {
        "as_of_date": str(as_of),
        "model_version": model.version,
        "visitors": int(nightly.size),
        "distinct_payloads": int(group.max()) + 1,
        "spearman": float(spearmanr(nightly, on_demand).statistic),
        "spearman_top_decile": float(spearmanr(nightly[top], on_demand[top]).statistic),
        "bound": rank_correlation_bound(group, nightly),
    }
