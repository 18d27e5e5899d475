{#- Means that every engine computes to the same double, bit for bit. A double sum depends on the order the engine
    adds in (threads, partitions), and decimals round differently on each engine (Spark rounds a quotient of wide
    decimals to 6 places; casts to double differ in the last bit). So values are summed in fixed point, 12 decimals
    as 64-bit integers (exact in any order), and every step after is one IEEE double operation. A rate is at most 1
    and a weight a count of events, so the sums stay far below 2^63. -#}
{% macro fixed_point(value) -%}
    cast(round({{ value }} * 1e12) as bigint)
{%- endmacro %}

{% macro exact_mean(value) -%}
    cast(sum({{ fixed_point(value) }}) as double) / 1e12 / count({{ value }})
{%- endmacro %}

{% macro exact_weighted_mean(value, weight) -%}
    cast(sum({{ weight }} * {{ fixed_point(value) }}) as double) / 1e12 / sum({{ weight }})
{%- endmacro %}
