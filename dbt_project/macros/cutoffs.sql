{#- The as-of dates of a run, computed at compile time so the SQL stays portable.
    A cut-off is the start of the shop's local day (var day_start_hour_utc), in UTC milliseconds. -#}
{% macro as_of_dates() -%}
    {%- set as_of = modules.datetime.date.fromisoformat(var('as_of_date') | string) -%}
    {%- set dates = [] -%}
    {%- for k in range(var('history_cutoffs') | int, -1, -1) -%}
        {%- do dates.append(as_of - modules.datetime.timedelta(days=k * (var('cutoff_step_days') | int))) -%}
    {%- endfor -%}
    {{ return(dates) }}
{%- endmacro %}

{#- The as-of dates whose features this run (re)builds: var feature_dates if the job passes it, else all. -#}
{% macro feature_build_dates() -%}
    {%- set requested = var('feature_dates', none) -%}
    {%- if requested is none -%}
        {{ return(as_of_dates()) }}
    {%- endif -%}
    {%- set dates = [] -%}
    {%- for day in requested -%}
        {%- do dates.append(modules.datetime.date.fromisoformat(day | string | trim)) -%}
    {%- endfor -%}
    {{ return(dates) }}
{%- endmacro %}

{% macro cutoff_ms(day) -%}
    {%- set start = modules.datetime.datetime(day.year, day.month, day.day, var('day_start_hour_utc') | int) -%}
    {%- set epoch = modules.datetime.datetime(1970, 1, 1) -%}
    {{ return(((start - epoch).days * 86400 + (start - epoch).seconds) * 1000) }}
{%- endmacro %}

{% macro day_ms() -%}86400000{%- endmacro %}
