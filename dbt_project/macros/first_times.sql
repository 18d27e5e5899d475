{#- For rollup rows of new days (CTE `days`: shop_day, visitor_id, the key, and measures), flag the day each
    visitor first did something with the key: the first such day among the new ones, and only if the days
    already rolled up (the model's own table) show none. flags maps a flag name to the measure that must be
    positive ('1' for any activity), so is_first_<name> is true on exactly one day per visitor and key.

    Emits the CTEs first_days_in_batch, earlier and with_first_times (days plus the is_first_* columns). -#}
{% macro first_times(key, flags, since) -%}

first_days_in_batch as (

    select
        *,
        {%- for flag, measure in flags.items() %}
        min(case when {{ measure }} > 0 then shop_day end) over (partition by visitor_id, {{ key }})
            as first_{{ flag }}_day{% if not loop.last %},{% endif %}
        {%- endfor %}

    from days

),

earlier as (

    select
        {%- if since is not none %}
        rolled_up.visitor_id,
        rolled_up.{{ key }},
        {%- for flag, measure in flags.items() %}
        max(case when {{ measure }} > 0 then 1 else 0 end) as had_{{ flag }}{% if not loop.last %},{% endif %}
        {%- endfor %}

    from {{ this }} as rolled_up
    inner join (select distinct visitor_id, {{ key }} from days) as tonight
        on
            rolled_up.visitor_id = tonight.visitor_id
            and rolled_up.{{ key }} = tonight.{{ key }}
    group by 1, 2
        {%- else %}
        visitor_id,
        {{ key }},
        {%- for flag in flags %}
        0 as had_{{ flag }}{% if not loop.last %},{% endif %}
        {%- endfor %}

    from days
    where 1 = 0
        {%- endif %}

),

with_first_times as (

    select
        days.*,
        {%- for flag in flags %}
        coalesce(days.shop_day = days.first_{{ flag }}_day and coalesce(earlier.had_{{ flag }}, 0) = 0, false)
            as is_first_{{ flag }}{% if not loop.last %},{% endif %}
        {%- endfor %}

    from first_days_in_batch as days
    left join earlier
        on
            days.visitor_id = earlier.visitor_id
            and days.{{ key }} = earlier.{{ key }}

)
{%- endmacro %}
