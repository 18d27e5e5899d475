{#- Count the rows meeting a condition, as a plain bigint (DuckDB's sum of integers is a HUGEINT). -#}
{% macro count_where(condition) -%}
    cast(sum(case when {{ condition }} then 1 else 0 end) as bigint)
{%- endmacro %}

{#- a / b, or 0 when b is 0 (the seed's convention for add_to_cart_rate_7d). -#}
{% macro safe_ratio(numerator, denominator) -%}
    case when {{ denominator }} > 0 then cast({{ numerator }} as double) / {{ denominator }} else 0.0 end
{%- endmacro %}
