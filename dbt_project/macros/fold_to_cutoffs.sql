{#- Running state at each cut-off, folded forward from daily rollups instead of recomputed from every event.

    For the cut-offs this build makes (cutoffs: a list from cutoffs_to_build), the state of each key at a cut-off is
    the state at the latest cut-off the table already holds before them (its "base"), plus what the rollup rows of
    the days in between add. A night with one new day reads the base and one day of rollups; a first build has no
    base and folds every day once. Sums add, kept bigint at every step: a sum of sums widens to a 128-bit integer,
    which Spark lacks, every reader pays to decode, and every base row pays to add (casting the accumulated deltas
    back took scale 10's visitor totals from 7.5-7.8 to 6.0-6.5 CPU seconds). Mins and maxes take the least and
    greatest (both skip nulls). The model passes base_day (from fold_base_day, called by the model itself so that
    unit tests can override it).

    Emits the CTEs cutoffs (the cut-offs built), deltas, accumulated_deltas, base and folded; the calling model's
    rollup CTE feeds it. `folded` has as_of_day, cutoff_ms, as_of_date, the keys and the state. -#}
{% macro fold_to_cutoffs(rollup, keys, sums={}, mins={}, maxs={}, cutoffs=[], base_day=none) -%}
    {%- set measures = [] -%}
    {%- for name, expression in sums.items() -%}
        {%- do measures.append((name, 'cast(sum(' ~ expression ~ ') as bigint)', 'cast(sum(deltas.' ~ name ~ ') as bigint)', 'coalesce(base.' ~ name ~ ', 0) + coalesce(accumulated_deltas.' ~ name ~ ', 0)')) -%}
    {%- endfor -%}
    {%- for name, expression in mins.items() -%}
        {%- do measures.append((name, 'min(' ~ expression ~ ')', 'min(deltas.' ~ name ~ ')', 'least(base.' ~ name ~ ', accumulated_deltas.' ~ name ~ ')')) -%}
    {%- endfor -%}
    {%- for name, expression in maxs.items() -%}
        {%- do measures.append((name, 'max(' ~ expression ~ ')', 'max(deltas.' ~ name ~ ')', 'greatest(base.' ~ name ~ ', accumulated_deltas.' ~ name ~ ')')) -%}
    {%- endfor %}

cutoffs as (

    {{ cutoff_values(cutoffs) }}

),

deltas as (

    {#- One block per cut-off over the days since the previous one; with no cut-offs, one block that is empty. #}
    {%- for c in (cutoffs or [none]) %}
    {%- set from_day = base_day if loop.first else cutoffs[loop.index0 - 1].as_of_day %}

    select
        cast({{ "'" ~ c.as_of_date ~ "'" if c else 'null' }} as date) as as_of_date,
        {% for key in keys %}{{ key }},
        {% endfor -%}
        {%- for name, aggregate, _, _ in measures %}
        {{ aggregate }} as {{ name }}{% if not loop.last %},{% endif %}
        {%- endfor %}

    from {{ rollup }}
    where
        {% if c %}shop_day < {{ c.as_of_day }}{% else %}1 = 0{% endif %}
        {%- if from_day is not none %} and shop_day >= {{ from_day }}{% endif %}
    group by {% for key in keys %}{{ key }}{% if not loop.last %}, {% endif %}{% endfor %}

    {% if not loop.last %}union all{% endif %}
    {%- endfor %}

),

accumulated_deltas as (

    select
        cutoffs.as_of_date,
        {% for key in keys %}deltas.{{ key }},
        {% endfor -%}
        {%- for name, _, aggregate, _ in measures %}
        {{ aggregate }} as {{ name }}{% if not loop.last %},{% endif %}
        {%- endfor %}

    from deltas
    inner join cutoffs
        on deltas.as_of_date <= cutoffs.as_of_date
    group by cutoffs.as_of_date{% for key in keys %}, deltas.{{ key }}{% endfor %}

),

base as (

    select
        {% for key in keys %}{{ key }},
        {% endfor -%}
        {%- for name, _, _, _ in measures %}
        {{ name }}{% if not loop.last %},{% endif %}
        {%- endfor %}

    {%- if base_day is not none %}
    from {{ this }}
    where as_of_day = {{ base_day }}
    {%- else %}
    from accumulated_deltas
    where 1 = 0
    {%- endif %}

),

based_cutoffs as (

    select
        cutoffs.as_of_date,
        base.*

    from base
    cross join cutoffs

),

folded_state as (

    select
        coalesce(accumulated_deltas.as_of_date, base.as_of_date) as as_of_date,
        {% for key in keys %}coalesce(accumulated_deltas.{{ key }}, base.{{ key }}) as {{ key }},
        {% endfor -%}
        {%- for name, _, _, combined in measures %}
        {{ combined }} as {{ name }}{% if not loop.last %},{% endif %}
        {%- endfor %}

    from based_cutoffs as base
    full outer join accumulated_deltas
        on
            base.as_of_date = accumulated_deltas.as_of_date
            {% for key in keys %}and base.{{ key }} = accumulated_deltas.{{ key }}
            {% endfor %}

),

folded as (

    select
        cutoffs.as_of_day,
        cutoffs.cutoff_ms,
        folded_state.*

    from folded_state
    inner join cutoffs
        on folded_state.as_of_date = cutoffs.as_of_date
    {%- if cutoffs | length > 1 %}
    -- Stored in cut-off order: reading one cut-off (the next night's base) skips the others' row groups.
    order by folded_state.as_of_date
    {%- endif %}

)
{%- endmacro %}

{% macro fold_base_day(cutoffs) -%}
    {#- The latest cut-off day the model's table already holds before the first one being built; none on a first
        build (or a full refresh), when everything is folded from the first day. -#}
    {%- if not execute or not cutoffs or not is_incremental() -%}{{ return(none) }}{%- endif -%}
    {%- set value = run_query(
        'select max(as_of_day) from ' ~ this ~ ' where as_of_day < ' ~ cutoffs[0].as_of_day
    ).columns[0].values()[0] -%}
    {{ return(none if value is none else value | int) }}
{%- endmacro %}
