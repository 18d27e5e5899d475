{#- `dbt run-operation drop_derived_schemas --args '{schemas: [...]}'`: drop what dbt derived from the events, tables
    and files, so the next build makes it anew (the job calls it on Spark; on DuckDB it drops the schemas itself). -#}
{% macro drop_derived_schemas(schemas) -%}
    {%- for schema in schemas -%}
        {%- do adapter.drop_schema(api.Relation.create(schema=schema)) -%}
    {%- endfor -%}
{%- endmacro %}
