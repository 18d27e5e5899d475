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
    {{ return('') }}
{%- endmacro %}
