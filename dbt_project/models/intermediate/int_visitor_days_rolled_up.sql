{{ config(materialized='incremental', unique_key='shop_day', partition_by=['shop_day']) }}
{#- Each visitor's activity on each shop day: counts by event type, sessions started, first and last event, the
    items it touched for the first time ever. Built only for days not yet rolled up. A session starts at a
    visitor's first event or after a gap longer than var session_gap_minutes, so the previous day's events are
    read too (the gap is shorter than a day: nothing earlier can change a session start). -#}
{%- set since = latest_rolled_up_day(this) -%}
{%- if var('session_gap_minutes') >= 1440 -%}
    {{ exceptions.raise_compiler_error('var session_gap_minutes must be shorter than a day') }}
{%- endif %}

with

events as (

    select * from {{ ref('stg_retailrocket__events') }}
    where {{ events_to_roll_up(since) }}

),

item_days as (

    select * from {{ ref('int_visitor_item_days_rolled_up') }}
    {% if since is not none -%}
        where shop_day > {{ since }}
    {%- endif %}

),

transaction_days as (

    select * from {{ ref('int_visitor_transactions_rolled_up') }}
    {% if since is not none -%}
        where shop_day > {{ since }}
    {%- endif %}

),

sessionized as (

    select
        *,
        coalesce(
            event_ms - lag(event_ms) over (partition by visitor_id order by event_ms, event_type, item_id)
            > {{ var('session_gap_minutes') }} * 60000,
            true
        ) as is_session_start

    from events

),

activity as (

    select
        shop_day,
        visitor_id,
        min(shop_date) as shop_date,
        count(*) as num_events,
        {{ count_where('is_view') }} as num_views,
        {{ count_where('is_addtocart') }} as num_addtocarts,
        {{ count_where('is_transaction') }} as num_purchased_items,
        {{ count_where('is_session_start') }} as num_sessions,
        min(event_ms) as first_event_ms,
        max(event_ms) as last_event_ms,
        max(case when is_addtocart then event_ms end) as last_addtocart_ms,
        min(case when is_transaction then event_ms end) as first_transaction_ms,
        max(case when is_transaction then event_ms end) as last_transaction_ms

    from sessionized
    {% if since is not none -%}
        where shop_day > {{ since }}
    {%- endif %}
    group by 1, 2

),

new_items as (

    select
        shop_day,
        visitor_id,
        {{ count_where('is_first_sighting') }} as num_new_items

    from item_days
    group by 1, 2

),

new_transactions as (

    select
        shop_day,
        visitor_id,
        {{ count_where('is_first_day') }} as num_new_transactions

    from transaction_days
    group by 1, 2

),

final as (

    select
        activity.shop_day,
        activity.shop_date,
        activity.visitor_id,
        activity.num_events,
        activity.num_views,
        activity.num_addtocarts,
        activity.num_purchased_items,
        activity.num_sessions,
        activity.first_event_ms,
        activity.last_event_ms,
        activity.last_addtocart_ms,
        activity.first_transaction_ms,
        activity.last_transaction_ms,
        coalesce(new_items.num_new_items, 0) as num_new_items,
        coalesce(new_transactions.num_new_transactions, 0) as num_new_transactions

    from
        activity
    {%- for part in ['new_items', 'new_transactions'] %}
    left join {{ part }}
        on
            activity.shop_day = {{ part }}.shop_day
            and activity.visitor_id = {{ part }}.visitor_id
    {%- endfor %}

    -- Stored in day order: the nights' reads of recent days skip the older days' row groups.
    order by 1

)

select * from final
