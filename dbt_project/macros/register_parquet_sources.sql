{#- The sources on an engine that reads files: on Spark, the raw tables and the job's build plan are Parquet folders
    under PROPENSITY_PARQUET_DIR (<schema>.<table>/), registered as tables before every build (on-run-start) and
    refreshed, so a night's new files are seen. On DuckDB the sources are the warehouse's own tables: nothing to do. -#}
{% macro register_parquet_sources() -%}
    {{ return(adapter.dispatch('register_parquet_sources', 'propensity')()) }}
{%- endmacro %}

{% macro default__register_parquet_sources() -%}
    {{ return('') }}
{%- endmacro %}

{% macro spark__register_parquet_sources() -%}
    {%- set folder = env_var('PROPENSITY_PARQUET_DIR', '') -%}
    {%- if not execute or not folder -%}{{ return('') }}{%- endif -%}
    {%- for source_name in ['retailrocket', 'job'] -%}
        {%- for node in graph.sources.values() if node.source_name == source_name -%}
            {%- do run_query('create database if not exists ' ~ node.schema) -%}
            {%- set table = node.schema ~ '.' ~ node.identifier -%}
            {%- do run_query(
                'create table if not exists ' ~ table ~ " using parquet location '" ~ folder ~ '/' ~ table ~ "'"
            ) -%}
            {%- do run_query('refresh table ' ~ table) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- do register_score_history() -%}
    {{ return('') }}
{%- endmacro %}

{#- The job writes each night's scores as a date partition of Parquet under Spark's tables (models_py/modeling/
    score_in_spark.py); here they become the table ml.visitor_propensity_score_history with every night written so
    far (the job's own Spark cannot open dbt's local metastore, so a night shows in the catalog from the next build
    on). The columns are the serving table's. -#}
{% macro register_score_history() -%}
    {%- set folder = env_var('PROPENSITY_SPARK_DIR', '') -%}
    {%- if not folder -%}{{ return('') }}{%- endif -%}
    {%- do run_query('create database if not exists ml') -%}
    {%- do run_query(
        'create table if not exists ml.visitor_propensity_score_history ('
        ~ 'visitor_id bigint, propensity double, decile int, segment string, reason_1 string, reason_2 string, '
        ~ 'reason_3 string, model_version string, run_id string, scored_at timestamp, as_of_date date) '
        ~ "using parquet partitioned by (as_of_date) location '" ~ folder
        ~ "/tables/ml.db/visitor_propensity_score_history'"
    ) -%}
    {%- do run_query('alter table ml.visitor_propensity_score_history recover partitions') -%}
{%- endmacro %}
