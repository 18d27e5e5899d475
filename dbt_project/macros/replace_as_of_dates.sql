{#- Incremental strategy replace_as_of_dates, for the models that add whole as-of dates of tonight's build plan
    (the features' dates in ml.build_plan): those dates' rows are replaced by what the model's query makes, read
    once. dbt-duckdb's delete+insert first copies the query's result into a temporary table and then copies it
    again into the model's table; for a night's 1.4M-row feature mart that extra copy cost more than the query.
    Here the temporary relation is a view, and the dates to replace come from the plan, not from the view (which
    would run the query a second time). Spark's insert_overwrite of the date partitions is the same idea. -#}

{% macro get_incremental_replace_as_of_dates_sql(arg_dict) -%}
    {{ return(adapter.dispatch('replace_as_of_dates_sql', 'propensity')(arg_dict)) }}
{%- endmacro %}

{% macro default__replace_as_of_dates_sql(arg_dict) -%}
    {#- A model configured with insert_in_visitor_ranges inserts once per visitor-id range of the plan (see
        visitor_splits): the filter reaches every per-visitor scan under the view, so each insert joins and groups
        only its range's visitors, within DuckDB's memory, where one insert of a large shop's night spilled. -#}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- set dates = cutoffs_to_build('features') | map(attribute='as_of_date') | list -%}
    {%- set bounds = [none] + (visitor_splits() if config.get('insert_in_visitor_ranges') else []) + [none] -%}
    {%- if dates %}
    {{ adapter.dispatch('delete_as_of_dates', 'propensity')(target, dates) }};
    {%- endif %}
    {%- for first_id in bounds[:-1] %}
    {%- set next_id = bounds[loop.index] %}
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ arg_dict['temp_relation'] }}
    {%- if first_id is not none %}
    where visitor_id >= {{ first_id }}{% if next_id is not none %} and visitor_id < {{ next_id }}{% endif %}
    {%- elif next_id is not none %}
    where visitor_id < {{ next_id }}
    {%- endif %}
    {%- if not loop.last %};{% endif %}
    {%- endfor %}
{%- endmacro %}

{#- The temporary relation of an incremental model: a view for replace_as_of_dates (read once, by the insert),
    dbt-duckdb's temporary table for every other strategy. -#}
{% macro duckdb__create_table_as(temporary, relation, compiled_code, language='sql', partitioned_by=none, sorted_by=none) -%}
    {%- if temporary and language == 'sql' and config.get('incremental_strategy') == 'replace_as_of_dates' -%}
        create or replace temporary view {{ relation.include(database=false, schema=false) }} as (
            {{ compiled_code }}
        )
    {%- else -%}
        {{ return(dbt.duckdb__create_table_as(temporary, relation, compiled_code, language, partitioned_by, sorted_by)) }}
    {%- endif -%}
{%- endmacro %}

{% macro replacing_as_of_dates() -%}
    {#- The incremental strategy of a model that replaces whole as-of dates: ours on DuckDB, Spark's own
        insert_overwrite of the date partitions there. -#}
    {{ return('insert_overwrite' if target.type == 'spark' else 'replace_as_of_dates') }}
{%- endmacro %}
