{{
    config(
        materialized='incremental',
        unique_key='as_of_date',
        incremental_strategy=replacing_as_of_dates(),
        insert_in_visitor_ranges=true,
        partition_by=['as_of_date'],
        on_schema_change='append_new_columns',
        post_hook="{{ prune_as_of_dates(this, keep_newest=var('keep_nightly_features'), keep_spine=true) }}",
    )
}}
{#- One row per visitor per as-of date: the lifetime totals folded to the cut-off, the recent windows, what the
    visitor viewed lately and its taste, joined. Every visitor on a scored night; on a large shop's past cut-offs a
    uniform sample of them (macro in_visitor_sample). Incremental by as-of date: a night adds its own date (and any
    training spine date the mart lacks); the rest is never rebuilt. Point in time: every intermediate model sees
    only shop days before the cut-off (the cut-off is the start of the as-of date in shop time). -#}
{%- set build = cutoffs_to_build('features') -%}
{%- set windows = var('feature_windows_days') -%}
{%- set day = 86400000 -%}
{%- set local_offset_ms = var('day_start_hour_utc') * 3600000 -%}

with

totals as (

    select * from {{ ref('int_visitor_totals_folded') }}
    where {{ as_of_day_in(build) }} and {{ in_visitor_sample(build) }}

),

recent_activity as (

    select * from {{ ref('int_visitor_windows_aggregated') }}

),

item_focus as (

    select * from {{ ref('int_visitor_item_focus_aggregated') }}

),

category_affinities as (

    select * from {{ ref('int_visitor_category_affinities_weighed') }}

),

purchase_categories as (

    select * from {{ ref('int_visitor_purchase_categories_weighed') }}

),

carts as (

    select * from {{ ref('int_carts_matched_to_purchases') }}
    where {{ as_of_day_in(build) }} and {{ in_visitor_sample(build) }}

),

open_carts as (

    select
        carts.as_of_date,
        carts.visitor_id,
        {{ count_where('carts.is_open_cart') }} as num_open_carts,
        {{ count_where(
            'carts.is_open_cart and carts.last_addtocart_ms >= cast(carts.as_of_day as bigint) * ' ~ day ~ ' + '
            ~ (local_offset_ms - 7 * day)
        ) }} as num_open_carts_7d

    from carts
    group by 1, 2

),

joined as (

    -- Each part has at most one row per (as_of_date, visitor_id); USING keeps one copy of the key (every engine
    -- we target supports it) where ON would need every other column listed.
    select *  -- noqa: RF02
    from
        totals
    {%- for part in ['recent_activity', 'item_focus', 'category_affinities', 'purchase_categories', 'open_carts'] %}
    left join {{ part }} using (as_of_date, visitor_id)  -- noqa: ST07
    {%- endfor %}

),

final as (

    select
        as_of_date,
        visitor_id,
        {%- for n in windows | sort(reverse=true) %}
            coalesce(total_events_{{ n }}d, 0) as total_events_{{ n }}d,
            coalesce(num_views_{{ n }}d, 0) as num_views_{{ n }}d,
            coalesce(num_addtocart_{{ n }}d, 0) as num_addtocart_{{ n }}d,
            coalesce(num_unique_items_{{ n }}d, 0) as num_unique_items_{{ n }}d,
        {%- endfor %}
        cast(floor(cast(cutoff_ms - last_event_ms as double) / {{ day }}) as integer) as days_since_last_event,
        {{ safe_ratio('coalesce(num_addtocart_7d, 0)', 'coalesce(num_views_7d, 0)') }} as add_to_cart_rate_7d,
        {%- for n in windows %}
            coalesce(num_sessions_{{ n }}d, 0) as num_sessions_{{ n }}d,
            coalesce(num_transactions_{{ n }}d, 0) as num_transactions_{{ n }}d,
        {%- endfor %}
        total_events_all,
        num_views_all,
        num_addtocart_all,
        num_sessions_all,
        num_transactions_all,
        num_purchased_items_all,
        num_unique_items_all,
        num_active_days,
        cast(cutoff_ms - first_event_ms as double) / {{ day }} as days_since_first_event,
        cast(cutoff_ms - last_event_ms as double) / 3600000 as hours_since_last_event,
        cast(cutoff_ms - last_addtocart_ms as double) / 3600000 as hours_since_last_addtocart,
        cast(cutoff_ms - last_transaction_ms as double) / {{ day }} as days_since_last_transaction,
        num_purchase_days_all,
        cast(cutoff_ms - first_transaction_ms as double) / {{ day }} as days_since_first_transaction,
        case
            when num_purchase_days_all > 1
                then
                    cast(last_transaction_ms - first_transaction_ms as double)
                    / {{ day }} / (num_purchase_days_all - 1)
        end as avg_days_between_purchase_days,
        coalesce(num_open_carts, 0) as num_open_carts,
        coalesce(num_open_carts_7d, 0) as num_open_carts_7d,
        {{ safe_ratio('coalesce(total_events_1d, 0)', 'coalesce(total_events_7d, 0)') }} as events_1d_to_7d_ratio,
        {{ safe_ratio('coalesce(total_events_7d, 0)', 'coalesce(total_events_30d, 0)') }} as events_7d_to_30d_ratio,
        {{ safe_ratio('coalesce(num_sessions_7d, 0)', 'coalesce(num_sessions_30d, 0)') }} as sessions_7d_to_30d_ratio,
        cast(floor(cast((last_event_ms - {{ local_offset_ms }}) % {{ day }} as double) / 3600000) as integer)
            as last_event_local_hour,
        cast((floor(cast(last_event_ms - {{ local_offset_ms }} as double) / {{ day }}) + 3) % 7 as integer)
            as last_event_weekday,
        coalesce(max_views_of_one_item_7d, 0) as max_views_of_one_item_7d,
        avg_item_conversion_rate_7d,
        max_item_conversion_rate_7d,
        category_conversion_rate,
        top_category_view_share,
        coalesce(num_categories_viewed, 0) as num_categories_viewed,
        purchased_category_repeat_rate

    from joined
    {%- if build | length > 1 %}
    -- Stored in as-of date order: reading one date (gates, scoring, training) skips the others' row groups.
    order by as_of_date
    {%- endif %}

)

select * from final
