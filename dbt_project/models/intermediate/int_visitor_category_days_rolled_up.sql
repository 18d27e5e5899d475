{{ config(materialized='incremental', unique_key='shop_day', partition_by=['shop_day']) }}
{#- What each visitor viewed and bought of each category on each shop day, the category being the one the item
    had in the snapshot in force when the event happened (so no snapshot from after a cut-off reaches its
    features), and whether that day was the visitor's first view or purchase in the category. -#}
{%- set since = latest_rolled_up_day(this) -%}

with

events as (

    select * from {{ ref('stg_retailrocket__events') }}
    where (is_view or is_transaction) and {{ events_to_roll_up(none if since is none else since + 1) }}

),

item_categories as (

    select * from {{ ref('stg_retailrocket__item_categories') }}

),

days as (

    select
        events.shop_day,
        events.visitor_id,
        item_categories.category_id,
        min(events.shop_date) as shop_date,
        {{ count_where('events.is_view') }} as num_views,
        {{ count_where('events.is_transaction') }} as num_purchases

    from events
    inner join item_categories
        on
            events.item_id = item_categories.item_id
            and events.event_ms >= item_categories.valid_from_ms
            and events.event_ms < item_categories.valid_to_ms
    group by 1, 2, 3

),

{{ first_times('category_id', {'view': 'num_views', 'purchase': 'num_purchases'}, since) }},

final as (

    select
        shop_day,
        shop_date,
        visitor_id,
        category_id,
        num_views,
        num_purchases,
        is_first_view,
        is_first_purchase

    from with_first_times

    -- Stored in day order: the nights' reads of recent days skip the older days' row groups.
    order by 1

)

select * from final
