{#- The spine of as-of dates: var as_of_date and var history_cutoffs weekly cut-offs before it;
    needs_features marks the dates whose features this run builds (the rest are already in the mart).
    A cut-off is the instant the as-of date begins in the shop's local time. -#}
{%- set dates = as_of_dates() -%}
{%- set build_dates = feature_build_dates() -%}

with

cutoffs as (

    {% for day in dates %}
        select
            cast('{{ day }}' as date) as as_of_date,
            cast({{ cutoff_ms(day) }} as bigint) as cutoff_ms,
            {{ 'true' if day in build_dates else 'false' }} as needs_features
        {% if not loop.last %}union all{% endif %}
    {%- endfor %}

),

final as (

    select
        as_of_date,
        cutoff_ms,
        needs_features,
        cutoff_ms + {{ var('label_horizon_days') * (day_ms() | int) }} as label_end_ms

    from cutoffs

)

select * from final
