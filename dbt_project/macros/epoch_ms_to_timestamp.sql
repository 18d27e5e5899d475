{#- The one engine-specific expression the models need: milliseconds since 1970 (UTC) to a timestamp. -#}
{% macro epoch_ms_to_timestamp(column) -%}
    {{ return(adapter.dispatch('epoch_ms_to_timestamp', 'propensity')(column)) }}
{%- endmacro %}

{% macro default__epoch_ms_to_timestamp(column) -%}
    timestamp_millis({{ column }})
{%- endmacro %}

{% macro duckdb__epoch_ms_to_timestamp(column) -%}
    epoch_ms({{ column }})
{%- endmacro %}
