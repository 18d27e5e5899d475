{#- Each visitor's activity in the last 1, 7 and 30 days (var feature_windows_days) before each cut-off this build
    makes, for the visitors active in the longest window: counts summed over the daily rollups of those days, and
    distinct items and transactions counted over them (an item is in an n-day window exactly when the visitor's
    latest day with it before the cut-off is). A night reads only the days of its longest window. -#}
{%- set build = cutoffs_to_build('features') -%}
{%- set windows = var('feature_windows_days') -%}
{%- set longest = windows | max -%}

with

visitor_days as (

    {{ days_in_windows(ref('int_visitor_days_rolled_up'), build, longest) }}

),

item_days as (

    {{ days_in_windows(ref('int_visitor_item_days_rolled_up'), build, longest) }}

),

transaction_days as (

    {{ days_in_windows(ref('int_visitor_transactions_rolled_up'), build, longest) }}

),

activity as (

    select
        as_of_date,
        visitor_id,
        {%- for n in windows %}
            {%- set in_window = 'age_days <= ' ~ n %}
            cast(sum(case when {{ in_window }} then num_events else 0 end) as bigint) as total_events_{{ n }}d,
            cast(sum(case when {{ in_window }} then num_views else 0 end) as bigint) as num_views_{{ n }}d,
            cast(sum(case when {{ in_window }} then num_addtocarts else 0 end) as bigint) as num_addtocart_{{ n }}d,
            cast(sum(case when {{ in_window }} then num_sessions else 0 end) as bigint) as num_sessions_{{ n }}d
            {%- if not loop.last %},{% endif %}
        {%- endfor %}

    from visitor_days
    group by 1, 2

),

{#- Distinct items and transactions: each one's latest day before the cut-off decides the windows it is in. #}
{%- for days, key, breadth, column in [
    ('item_days', 'item_id', 'item_breadth', 'num_unique_items'),
    ('transaction_days', 'transaction_id', 'purchase_breadth', 'num_transactions'),
] %}

    {{ breadth }}_last_seen as (

        select
            as_of_date,
            visitor_id,
            {{ key }},
            min(age_days) as age_days

        from {{ days }}
        group by 1, 2, 3

    ),

    {{ breadth }} as (

        select
            as_of_date,
            visitor_id,
            {%- for n in windows %}
                {{ count_where('age_days <= ' ~ n) }} as {{ column }}_{{ n }}d{% if not loop.last %},{% endif %}
            {%- endfor %}

        from {{ breadth }}_last_seen
        group by 1, 2

    ),
{%- endfor %}

final as (

    select
        activity.*,
        {%- for n in windows %}
            item_breadth.num_unique_items_{{ n }}d,
            coalesce(purchase_breadth.num_transactions_{{ n }}d, 0) as num_transactions_{{ n }}d
            {%- if not loop.last %},{% endif %}
        {%- endfor %}

    from
        activity
    {%- for part in ['item_breadth', 'purchase_breadth'] %}
    left join {{ part }}
        on
            activity.as_of_date = {{ part }}.as_of_date
            and activity.visitor_id = {{ part }}.visitor_id
    {%- endfor %}

)

select * from final
