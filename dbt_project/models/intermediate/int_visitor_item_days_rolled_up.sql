{{ config(materialized='incremental', unique_key='shop_day', partition_by=['shop_day']) }}
{#- What each visitor did to each item on each shop day, and whether that day was the first time the visitor saw,
    viewed or bought the item. Built only for days not yet rolled up: first times are decided once, against the
    days already here, so lifetime distinct counts become sums of daily ones. -#}
{%- set since = latest_rolled_up_day(this) -%}

with

events as (

    select * from {{ ref('stg_retailrocket__events') }}
    where {{ events_to_roll_up(none if since is none else since + 1) }}

),

days as (

    select
        shop_day,
        visitor_id,
        item_id,
        min(shop_date) as shop_date,
        {{ count_where('is_view') }} as num_views,
        {{ count_where('is_addtocart') }} as num_addtocarts,
        {{ count_where('is_transaction') }} as num_purchases,
        max(case when is_addtocart then event_ms end) as last_addtocart_ms,
        max(case when is_transaction then event_ms end) as last_purchase_ms

    from events
    group by 1, 2, 3

),

{{ first_times('item_id', {'sighting': '1', 'view': 'num_views', 'purchase': 'num_purchases'}, since) }},

final as (

    select
        shop_day,
        shop_date,
        visitor_id,
        item_id,
        num_views,
        num_addtocarts,
        num_purchases,
        last_addtocart_ms,
        last_purchase_ms,
        is_first_sighting,
        is_first_view,
        is_first_purchase

    from with_first_times

    -- Stored in day order: the nights' reads of recent days skip the older days' row groups.
    order by 1

)

select * from final
