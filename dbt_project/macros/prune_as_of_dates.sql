{#- Retention, run after an incremental model adds its dates (post-hook): a table keeps its newest keep_newest
    as-of dates and, with keep_spine, every date of the training spine (var cutoff_anchor plus whole steps of var
    cutoff_step_days). A folded state needs only its newest date as the next night's base; the feature mart keeps
    the spine for training and the backtest, and the last nights for analysts. So a night adds a bounded number of
    rows for good, and the tables do not grow with every night the job has run. A date this build was asked for
    (a backtest's chosen cut-off off the spine) stays until a later build. -#}
{% macro prune_as_of_dates(relation, keep_newest, keep_spine=false) -%}
    {%- if not execute or load_relation(relation) is none -%}{{ return('') }}{%- endif -%}
    {%- set dates = run_query('select distinct as_of_date from ' ~ relation ~ ' order by 1').columns[0].values() -%}
    {%- set anchor = modules.datetime.date.fromisoformat(var('cutoff_anchor') | string) -%}
    {%- set step = var('cutoff_step_days') | int -%}
    {%- set building = cutoffs_to_build('features') | map(attribute='as_of_date') | list -%}
    {%- set doomed = [] -%}
    {%- for day in dates[:-(keep_newest | int)] if keep_newest | int > 0 -%}
        {%- if not (keep_spine and (day - anchor).days % step == 0) and day not in building -%}
            {%- do doomed.append(day) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if doomed -%}
        {{ return(adapter.dispatch('delete_as_of_dates', 'propensity')(relation, doomed)) }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}

{% macro default__delete_as_of_dates(relation, dates) -%}
    delete from {{ relation }}
    where as_of_date in ({% for d in dates %}cast('{{ d }}' as date){% if not loop.last %}, {% endif %}{% endfor %})
{%- endmacro %}

{% macro spark__delete_as_of_dates(relation, dates) -%}
    {#- A Spark table of Parquet files has no row deletes; its dates are partitions, dropped whole. -#}
    alter table {{ relation }} drop if exists
    {% for d in dates %}partition (as_of_date = '{{ d }}'){% if not loop.last %}, {% endif %}{% endfor %}
{%- endmacro %}
