{#- The rows of a daily rollup that fall in the longest feature window before each cut-off, for the visitors the
    cut-off keeps (macro in_visitor_sample), with the cut-off's as_of_date and age_days (1 for the day just before
    the cut-off). The day range is a literal, so the engine reads only those days of the rollup. -#}
{% macro days_in_windows(rollup, cutoffs, longest) -%}
    select
        cutoff_days.as_of_date,
        cutoff_days.as_of_day - rollup.shop_day as age_days,
        rollup.*

    from {{ rollup }} as rollup
    inner join ({{ cutoff_values(cutoffs) }}) as cutoff_days
        on
            rollup.shop_day < cutoff_days.as_of_day
            and rollup.shop_day >= cutoff_days.as_of_day - {{ longest }}
            and {{ in_visitor_sample(cutoffs, 'rollup.visitor_id', 'cutoff_days.as_of_day') }}
    {%- if cutoffs %}
    where rollup.shop_day >= {{ cutoffs[0].as_of_day - longest }} and rollup.shop_day < {{ cutoffs[-1].as_of_day }}
    {%- endif %}
{%- endmacro %}
