"""Scoring on the Spark engine: the same model and the same rows as ``score``, computed by Spark's workers.

The workers predict every visitor's probability in Arrow batches (``mapInPandas``). The driver receives the
(visitor, probability) pairs, which the serving copy needs anyway, and ranks them into deciles exactly as ``score``
does. The workers then compute the reason codes for the top decile only.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from models_py.config import Settings
from models_py.errors import JobFailed
from models_py.modeling import repeat_purchase
from models_py.modeling.model import ScoringModel
from models_py.modeling.ranking import by_visitor, deciles
from models_py.modeling.score import (
    REASON_DECILES,
    REASON_INDEX,
    REASONS,
    Scored,
    predict_probabilities,
    reasons_for,
    sample_modulus,
    scores_table,
)
from models_py.warehouse import spark as spark_engine
from models_py.warehouse.build_plan import FEATURES_MART
from models_py.warehouse.schema import SCORE_HISTORY

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# The columns of Spark's ml.visitor_propensity_score_history, as dbt registers it (macro register_score_history).
HISTORY_TYPES = (
    ("visitor_id", "bigint"), ("propensity", "double"), ("decile", "int"), ("segment", "string"),
    ("reason_1", "string"), ("reason_2", "string"), ("reason_3", "string"), ("model_version", "string"),
    ("run_id", "string"), ("scored_at", "timestamp"), ("as_of_date", "date"),
)  # fmt: skip


def score(spark: SparkSession, cfg: Settings, model: ScoringModel, as_of: date, run_id: str) -> Scored:
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    columns = repeat_purchase.mart_columns(model)
    # Probabilities travel as doubles and come back in the model's own type, so they equal ``score``'s bit for bit.
    p_type = predict_probabilities(model, np.zeros((1, len(columns)), np.float32))[1].dtype
    features = (
        spark.read.parquet(str(spark_engine.table_folder(cfg, FEATURES_MART)))
        .where(F.col("as_of_date") == F.lit(as_of))
        .select(F.col("visitor_id").cast("long"), *[F.col(c).cast("float").alias(c) for c in columns])
    )

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model.booster.set_param({"nthread": 1})  # one worker per core already
        for batch in batches:
            _, p = predict_probabilities(model, batch[columns].to_numpy(np.float32))
            yield pd.DataFrame({"visitor_id": batch["visitor_id"].to_numpy(), "propensity": p.astype(np.float64)})

    scored = features.mapInPandas(predict, "visitor_id long, propensity double").toArrow()
    if not scored.num_rows:
        raise JobFailed(f"no visitors to score at {as_of}: are features built for that date?")
    visitor_id, p = by_visitor(scored["visitor_id"].to_numpy(), scored["propensity"].to_numpy().astype(p_type))
    decile = deciles(visitor_id, p)
    reasons = np.full((p.size, REASONS), -1, REASON_INDEX)
    explained = np.flatnonzero(decile <= REASON_DECILES)
    if explained.size:
        top = spark.createDataFrame(pd.DataFrame({"visitor_id": visitor_id[explained]}))

        def explain(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for batch in batches:
                x, _ = predict_probabilities(model, batch[columns].to_numpy(np.float32))
                top_features = reasons_for(model, x, 1)
                yield pd.DataFrame(
                    {"visitor_id": batch["visitor_id"].to_numpy(),
                     **{f"r{k}": top_features[:, k] for k in range(REASONS)}}
                )  # fmt: skip

        schema = "visitor_id long, " + ", ".join(f"r{k} int" for k in range(REASONS))
        explained_rows = features.join(top, "visitor_id").mapInPandas(explain, schema).toArrow()
        if explained_rows.num_rows != explained.size:
            raise JobFailed(f"reason codes came back for {explained_rows.num_rows:,} of {explained.size:,} visitors")
        rows = np.searchsorted(visitor_id, explained_rows["visitor_id"].to_numpy())  # visitor_id is sorted
        reasons[rows] = np.column_stack([explained_rows[f"r{k}"].to_numpy() for k in range(REASONS)])
    sample = features.where(F.col("visitor_id") % sample_modulus(p.size) == 0).toArrow()
    sample_x = np.column_stack([sample[c].to_numpy(zero_copy_only=False) for c in columns]).astype(np.float32)
    return Scored(
        scores_table(model, as_of, run_id, visitor_id, p, decile, reasons),
        repeat_purchase.complete(model, sample_x),
    )


def write_scores_table(spark: SparkSession, cfg: Settings, scores: pa.Table) -> None:
    """Tonight's scores into Spark's score history: a date partition of Parquet (a rerun replaces its date), in the
    table's column types (dbt's on-run-start registers it, macro register_score_history)."""
    plain = pa.table({name: (column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column)
                      for name, column in zip(scores.column_names, scores.columns, strict=True)})  # fmt: skip
    typed = spark.createDataFrame(plain.to_pandas()).selectExpr(*[f"cast({c} as {t}) as {c}" for c, t in HISTORY_TYPES])
    typed.write.mode("overwrite").partitionBy("as_of_date").parquet(str(spark_engine.table_folder(cfg, SCORE_HISTORY)))
