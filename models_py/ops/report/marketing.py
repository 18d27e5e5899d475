"""The report's first section, for marketing: tonight's segments and deciles, what they mean, what changed."""

from __future__ import annotations

from pathlib import Path

import duckdb

from models_py.ops.report.page import Page, table
from models_py.warehouse.schema import night_of_scores, scored_days

TERMS = (
    "<p><b>Propensity</b>: the probability that a visitor buys at least once in the 7 days from the as-of date, "
    "calibrated so that among visitors scored 0.02 about 2 in 100 buy. <b>Expected buyers</b>: the sum of the "
    "propensities of a group, the number of its visitors expected to buy. <b>Decile</b> 1 is the tenth of the "
    "visitors with the highest propensity. <b>hot</b>: above the decision threshold chosen on past data for the "
    "best balance of precision and recall (a campaign's core list); <b>warm</b>: the rest of decile 1; "
    "<b>cold</b>: everyone else. Reason codes (reason_1..3) name the features that raised a decile-1 visitor's "
    "score most.</p>"
)

EXAMPLE_SQL = (
    "<pre>-- warehouse/serving.duckdb (read-only is enough)\n"
    "select visitor_id, propensity, reason_1, reason_2, reason_3\n"
    "from visitor_propensity_scores\n"
    "where segment = 'hot'            -- or: decile = 1\n"
    "order by propensity desc;</pre>"
)


def marketing_section(page: Page, con: duckdb.DuckDBPyConnection, history: Path | None) -> None:
    """Tonight's audiences, from the score history's folder (``history``): tonight's file and the night's before."""
    nights = scored_days(history)[::-1][:2] if history else []
    if not nights:
        page.section("Tonight's audiences", "<p>Nothing scored yet: run <code>propensity nightly</code>.</p>")
        return
    tonight, previous = nights[0], nights[1] if len(nights) > 1 else None
    both = " union all ".join(f"select * from {night_of_scores(history, night)}" for night in nights)
    segments = con.execute(
        f"""select segment, count(*) filter (where as_of_date = ?), sum(propensity) filter (where as_of_date = ?),
                   avg(propensity) filter (where as_of_date = ?), count(*) filter (where as_of_date = ?)
            from ({both}) group by 1
            order by case segment when 'hot' then 1 when 'warm' then 2 else 3 end""",
        [tonight, tonight, tonight, previous],
    ).fetchall()
    total = sum(r[1] for r in segments) or 1
    segment_rows = [
        [name, n, f"{100 * n / total:.2f}%", expected, mean, before, (n - before) if before else None]
        for name, n, expected, mean, before in segments
    ]
    deciles = con.execute(
        f"""select decile, count(*), min(propensity), max(propensity), sum(propensity)
            from {night_of_scores(history, tonight)} group by 1 order by 1""",
    ).fetchall()
    expected_all = sum(r[2] or 0 for r in segments)
    top = next((r[4] for r in deciles if r[0] == 1), 0.0)
    summary = (
        f"<p>Scores as of <b>{tonight}</b> for {total:,} visitors; {expected_all:,.0f} of them are expected to buy "
        f"in the next 7 days, {top:,.0f} ({100 * top / max(expected_all, 1e-9):.0f}%) of those in decile 1."
        + (f" Compared with the night of {previous}." if previous else "")
        + "</p>"
    )
    page.section(
        "Tonight's audiences",
        summary,
        table(["segment", "visitors", "share", "expected buyers", "mean propensity", "last night", "change"],
              segment_rows),
        table(["decile", "visitors", "lowest propensity", "highest propensity", "expected buyers"],
              [list(r) for r in deciles]),
        TERMS,
        EXAMPLE_SQL,
    )  # fmt: skip
