{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='as_of_date',
        on_schema_change='fail',
    )
}}
{#- Incremental by as-of date: a cut-off's features never change once its day has passed, so a run builds only
    the dates in var feature_dates (tonight's, and any the spine lacks) and replaces exactly those.
    Point in time: every expression below sees only events with event_ms < cutoff_ms of its as-of date. -#}
{%- set windows = var('feature_windows_days') -%}
{%- set day = day_ms() | int -%}
{%- set local_offset_ms = var('day_start_hour_utc') * 3600000 -%}

with

cutoffs as (

    select * from {{ ref('int_cutoffs_generated') }}
    where needs_features

),

events as (

    select * from {{ ref('int_events_sessionized') }}

),

item_conversions as (

    select * from {{ ref('int_item_conversions_aggregated') }}

),

category_conversions as (

    select * from {{ ref('int_category_conversions_aggregated') }}

),

item_categories as (

    select * from {{ ref('stg_retailrocket__item_categories') }}

),

carts as (

    select * from {{ ref('int_carts_matched_to_purchases') }}

),

events_before_cutoff as (

    select
        cutoffs.as_of_date,
        cutoffs.cutoff_ms,
        events.visitor_id,
        events.item_id,
        events.transaction_id,
        events.event_ms,
        events.shop_date,
        events.is_view,
        events.is_addtocart,
        events.is_transaction,
        events.is_session_start

    from cutoffs
    inner join events
        on cutoffs.cutoff_ms > events.event_ms

),

activity as (

    select
        as_of_date,
        visitor_id,
        max(cutoff_ms) as cutoff_ms,
        {%- for n in windows %}
            {%- set in_window = 'event_ms >= cutoff_ms - ' ~ (n * day | int) %}
            {{ count_where(in_window) }} as total_events_{{ n }}d,
            {{ count_where(in_window ~ ' and is_view') }} as num_views_{{ n }}d,
            {{ count_where(in_window ~ ' and is_addtocart') }} as num_addtocart_{{ n }}d,
            {{ count_where(in_window ~ ' and is_session_start') }} as num_sessions_{{ n }}d,
        {%- endfor %}
        count(*) as total_events_all,
        {{ count_where('is_view') }} as num_views_all,
        {{ count_where('is_addtocart') }} as num_addtocart_all,
        {{ count_where('is_session_start') }} as num_sessions_all,
        {{ count_where('is_transaction') }} as num_purchased_items_all,
        min(event_ms) as first_event_ms,
        max(event_ms) as last_event_ms,
        max(case when is_addtocart then event_ms end) as last_addtocart_ms,
        max(case when is_transaction then event_ms end) as last_transaction_ms

    from events_before_cutoff
    group by 1, 2

),

{#- Distinct counts as sums over pre-grouped rows: an item (or transaction, or day) is in the n-day window
    exactly when its latest event before the cut-off is. Much faster than count(distinct case ...). #}

visitor_items as (

    select
        as_of_date,
        visitor_id,
        item_id,
        max(cutoff_ms) as cutoff_ms,
        max(event_ms) as last_event_ms

    from events_before_cutoff
    group by 1, 2, 3

),

item_breadth as (

    select
        as_of_date,
        visitor_id,
        {%- for n in windows %}
            {{ count_where('last_event_ms >= cutoff_ms - ' ~ (n * day | int)) }} as num_unique_items_{{ n }}d,
        {%- endfor %}
        count(*) as num_unique_items_all

    from visitor_items
    group by 1, 2

),

visitor_transactions as (

    select
        as_of_date,
        visitor_id,
        transaction_id,
        max(cutoff_ms) as cutoff_ms,
        max(event_ms) as last_event_ms

    from events_before_cutoff
    where is_transaction
    group by 1, 2, 3

),

purchase_history as (

    select
        as_of_date,
        visitor_id,
        {%- for n in windows %}
            {{ count_where('last_event_ms >= cutoff_ms - ' ~ (n * day | int)) }} as num_transactions_{{ n }}d,
        {%- endfor %}
        count(*) as num_transactions_all

    from visitor_transactions
    group by 1, 2

),

active_days as (

    select
        as_of_date,
        visitor_id,
        count(*) as num_active_days

    from (
        select distinct
            as_of_date,
            visitor_id,
            shop_date
        from events_before_cutoff
    ) as visitor_days
    group by 1, 2

),

item_views_7d as (

    select
        as_of_date,
        visitor_id,
        item_id,
        count(*) as num_views

    from events_before_cutoff
    where is_view and event_ms >= cutoff_ms - {{ 7 * day }}
    group by 1, 2, 3

),

item_focus as (

    select
        item_views_7d.as_of_date,
        item_views_7d.visitor_id,
        max(item_views_7d.num_views) as max_views_of_one_item_7d,
        -- Exact decimal sums: a double sum depends on the order threads add it up, and retraining on the same
        -- events must give the same model.
        cast(avg(cast(item_conversions.item_conversion_rate as decimal(18, 15))) as double)
            as avg_item_conversion_rate_7d,
        max(item_conversions.item_conversion_rate) as max_item_conversion_rate_7d

    from item_views_7d
    left join item_conversions
        on
            item_views_7d.as_of_date = item_conversions.as_of_date
            and item_views_7d.item_id = item_conversions.item_id
    group by 1, 2

),

category_views as (

    select
        events_before_cutoff.as_of_date,
        events_before_cutoff.visitor_id,
        item_categories.category_id,
        count(*) as num_views

    from events_before_cutoff
    inner join item_categories
        on events_before_cutoff.item_id = item_categories.item_id
    where events_before_cutoff.is_view
    group by 1, 2, 3

),

category_affinity as (

    select
        category_views.as_of_date,
        category_views.visitor_id,
        cast(
            sum(category_views.num_views * cast(category_conversions.category_conversion_rate as decimal(18, 15)))
            / sum(category_views.num_views) as double
        ) as category_conversion_rate,
        cast(max(category_views.num_views) as double) / sum(category_views.num_views) as top_category_view_share,
        count(*) as num_categories_viewed

    from category_views
    inner join category_conversions
        on
            category_views.as_of_date = category_conversions.as_of_date
            and category_views.category_id = category_conversions.category_id
    group by 1, 2

),

open_carts as (

    select
        carts.as_of_date,
        carts.visitor_id,
        {{ count_where('carts.is_open_cart') }} as num_open_carts,
        {{ count_where('carts.is_open_cart and carts.last_addtocart_ms >= cutoffs.cutoff_ms - ' ~ (7 * day)) }}
            as num_open_carts_7d

    from carts
    inner join cutoffs
        on carts.as_of_date = cutoffs.as_of_date
    group by 1, 2

),

final as (

    select
        activity.as_of_date,
        activity.visitor_id,
        {%- for n in windows | sort(reverse=true) %}
            activity.total_events_{{ n }}d,
            activity.num_views_{{ n }}d,
            activity.num_addtocart_{{ n }}d,
            item_breadth.num_unique_items_{{ n }}d,
        {%- endfor %}
        cast(floor((activity.cutoff_ms - activity.last_event_ms) / {{ day }}.0) as integer) as days_since_last_event,
        {{ safe_ratio('activity.num_addtocart_7d', 'activity.num_views_7d') }} as add_to_cart_rate_7d,
        {%- for n in windows %}
            activity.num_sessions_{{ n }}d,
            coalesce(purchase_history.num_transactions_{{ n }}d, 0) as num_transactions_{{ n }}d,
        {%- endfor %}
        activity.total_events_all,
        activity.num_views_all,
        activity.num_addtocart_all,
        activity.num_sessions_all,
        coalesce(purchase_history.num_transactions_all, 0) as num_transactions_all,
        activity.num_purchased_items_all,
        item_breadth.num_unique_items_all,
        active_days.num_active_days,
        (activity.cutoff_ms - activity.first_event_ms) / {{ day }}.0 as days_since_first_event,
        (activity.cutoff_ms - activity.last_event_ms) / 3600000.0 as hours_since_last_event,
        (activity.cutoff_ms - activity.last_addtocart_ms) / 3600000.0 as hours_since_last_addtocart,
        (activity.cutoff_ms - activity.last_transaction_ms) / {{ day }}.0 as days_since_last_transaction,
        coalesce(open_carts.num_open_carts, 0) as num_open_carts,
        coalesce(open_carts.num_open_carts_7d, 0) as num_open_carts_7d,
        {{ safe_ratio('activity.total_events_1d', 'activity.total_events_7d') }} as events_1d_to_7d_ratio,
        {{ safe_ratio('activity.total_events_7d', 'activity.total_events_30d') }} as events_7d_to_30d_ratio,
        {{ safe_ratio('activity.num_sessions_7d', 'activity.num_sessions_30d') }} as sessions_7d_to_30d_ratio,
        cast(
            floor(((activity.last_event_ms - {{ local_offset_ms }}) % {{ day }}) / 3600000.0) as integer
        ) as last_event_local_hour,
        cast((floor((activity.last_event_ms - {{ local_offset_ms }}) / {{ day }}.0) + 3) % 7 as integer)
            as last_event_weekday,
        coalesce(item_focus.max_views_of_one_item_7d, 0) as max_views_of_one_item_7d,
        item_focus.avg_item_conversion_rate_7d,
        item_focus.max_item_conversion_rate_7d,
        category_affinity.category_conversion_rate,
        category_affinity.top_category_view_share,
        coalesce(category_affinity.num_categories_viewed, 0) as num_categories_viewed

    from activity
    inner join item_breadth
        on
            activity.as_of_date = item_breadth.as_of_date
            and activity.visitor_id = item_breadth.visitor_id
    inner join active_days
        on
            activity.as_of_date = active_days.as_of_date
            and activity.visitor_id = active_days.visitor_id
    left join purchase_history
        on
            activity.as_of_date = purchase_history.as_of_date
            and activity.visitor_id = purchase_history.visitor_id
    left join item_focus
        on
            activity.as_of_date = item_focus.as_of_date
            and activity.visitor_id = item_focus.visitor_id
    left join category_affinity
        on
            activity.as_of_date = category_affinity.as_of_date
            and activity.visitor_id = category_affinity.visitor_id
    left join open_carts
        on
            activity.as_of_date = open_carts.as_of_date
            and activity.visitor_id = open_carts.visitor_id

)

select * from final
