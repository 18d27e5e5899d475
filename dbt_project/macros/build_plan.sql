{#- The as-of dates a dbt build covers come from ml.build_plan, which the Python job writes before each dbt call
    (one row per as-of date: its day number, its cut-off instant, and whether this build makes its features and
    its labels). Reading them at compile time keeps the SQL free of per-night vars (so dbt never re-parses the
    project for a new date) and lets each model filter day ranges with literals the engine can prune on. -#}

{% macro cutoffs_to_build(kind) -%}
    {#- kind: 'features' or 'labels'. A list of {as_of_date, as_of_day, cutoff_ms, visitor_share}, oldest first. -#}
    {%- set plan = source('job', 'build_plan') -%}
    {#- Nothing to build while dbt only parses, or where the job never wrote a plan (sqlfluff's in-memory target). -#}
    {%- if not execute or load_relation(plan) is none -%}{{ return([]) }}{%- endif -%}
    {%- set rows = run_query(
        'select as_of_date, as_of_day, cutoff_ms, coalesce(visitor_share, 1) from ' ~ plan
        ~ ' where builds_' ~ kind ~ ' order by as_of_day'
    ) -%}
    {%- set out = [] -%}
    {%- for row in rows -%}
        {%- do out.append(
            {'as_of_date': row[0], 'as_of_day': row[1] | int, 'cutoff_ms': row[2] | int, 'visitor_share': row[3] | float}
        ) -%}
    {%- endfor -%}
    {{ return(out) }}
{%- endmacro %}

{% macro visitor_splits() -%}
    {#- The visitor ids at which a ranged insert starts a new range, ascending (ml.build_visitor_splits); none: one
        insert. Empty while dbt only parses, or where the job never wrote them. -#}
    {%- set splits = source('job', 'build_visitor_splits') -%}
    {%- if not execute or load_relation(splits) is none -%}{{ return([]) }}{%- endif -%}
    {%- set rows = run_query('select first_visitor_id from ' ~ splits ~ ' order by 1') -%}
    {{ return(rows.columns[0].values() | map('int') | list) }}
{%- endmacro %}

{% macro cutoff_values(cutoffs) -%}
    {#- The cut-offs as rows (as_of_date, as_of_day, cutoff_ms); one impossible row when there are none. -#}
    {%- for c in cutoffs %}
    select
        cast('{{ c.as_of_date }}' as date) as as_of_date,
        cast({{ c.as_of_day }} as integer) as as_of_day,
        cast({{ c.cutoff_ms }} as bigint) as cutoff_ms
    {% if not loop.last %}union all{% endif %}
    {%- else %}
    select
        cast(null as date) as as_of_date,
        cast(null as integer) as as_of_day,
        cast(null as bigint) as cutoff_ms
    where 1 = 0
    {%- endfor %}
{%- endmacro %}

{% macro latest_rolled_up_day(relation) -%}
    {#- The newest shop day an incremental rollup already holds; none on a first build. -#}
    {%- if not execute or not is_incremental() -%}{{ return(none) }}{%- endif -%}
    {%- set value = run_query('select max(shop_day) from ' ~ relation).columns[0].values()[0] -%}
    {{ return(none if value is none else value | int) }}
{%- endmacro %}

{% macro events_to_roll_up(from_day) -%}
    {#- A filter on stg_retailrocket__events for a daily rollup: from the start of shop day from_day (none: the
        first day) up to the day var rollup_until_day, exclusive, when a large first night rolls its history up in
        chunks of days (models_py/warehouse/build_plan.rollup_chunks); every loaded day otherwise. -#}
    {%- set until = var('rollup_until_day', none) -%}
    {%- set bounds = [] -%}
    {%- if from_day is not none -%}{%- do bounds.append('event_ms >= ' ~ day_start_ms(from_day)) -%}{%- endif -%}
    {%- if until is not none -%}{%- do bounds.append('event_ms < ' ~ day_start_ms(until | int)) -%}{%- endif -%}
    {{ return(bounds | join(' and ') if bounds else 'true') }}
{%- endmacro %}

{% macro shop_day(ms_column) -%}
    {#- The shop's day number (days since 1970-01-01 in shop time) of an instant in milliseconds. -#}
    cast(floor(({{ ms_column }} - {{ var('day_start_hour_utc') * 3600000 }}) / 86400000.0) as integer)
{%- endmacro %}

{% macro day_start_ms(day_number) -%}
    {{ return(day_number * 86400000 + var('day_start_hour_utc') * 3600000) }}
{%- endmacro %}

{% macro as_of_day_in(cutoffs) -%}
    {#- A filter on a folded table's as_of_day for these cut-offs (false when there are none). -#}
    {%- if cutoffs -%}
        as_of_day in ({% for c in cutoffs %}{{ c.as_of_day }}{% if not loop.last %}, {% endif %}{% endfor %})
    {%- else -%}
        1 = 0
    {%- endif -%}
{%- endmacro %}

{% macro in_visitor_sample(cutoffs, visitor_id='visitor_id', as_of_day='as_of_day') -%}
    {#- True for the visitors a cut-off keeps (rows keyed by as_of_day): all of them, or a uniform sample of its
        visitor_share (a large shop's past cut-offs, see PROPENSITY_MAX_CUTOFF_VISITORS). The sample is a function
        of the visitor alone: a multiplicative hash of the id (below 2^31, so the product fits a bigint on every
        engine) scaled to [0, 1). Buyers and non-buyers are kept alike, so nothing read from a sample needs weights.
        The multiplier is frac(sqrt 2) * 2^32, not a golden-ratio one like the Python samples' (dataset.hash_unit):
        two golden-ratio hashes are shifted copies of each other, and the validation sample drawn from a sampled
        cut-off came out empty. The per-visitor parts of a cut-off's features apply it too (its windows, its
        affinities, the mart's count of open carts), so they are worked out for its sample, not for every visitor.
        The folded state (totals, category views, carts) keeps every visitor: the next night folds forward from
        it, and the mart samples it where it reads it. -#}
    {%- set sampled = [] -%}
    {%- for c in cutoffs if c.get('visitor_share', 1) < 1 -%}{%- do sampled.append(c) -%}{%- endfor -%}
    {%- if sampled -%}
        case {{ as_of_day }}
            {%- for c in sampled %}
            when {{ c.as_of_day }}
                then cast(mod(mod(abs({{ visitor_id }}), 2147483648) * 1779033703, 4294967296) as double) / 4294967296
                < {{ c.visitor_share }}
            {%- endfor %}
            else true
        end
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}
