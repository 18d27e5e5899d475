{{ config(materialized='incremental', unique_key='shop_day', partition_by=['shop_day']) }}
{#- Each visitor's purchases by transaction and shop day, and whether it is the first day that transaction id
    appears for the visitor (a transaction counts once however many items and days it spans). -#}
{%- set since = latest_rolled_up_day(this) -%}

with

events as (

    select * from {{ ref('stg_retailrocket__events') }}
    where is_transaction and {{ events_to_roll_up(none if since is none else since + 1) }}

),

days as (

    select
        shop_day,
        visitor_id,
        transaction_id,
        min(shop_date) as shop_date,
        count(*) as num_items

    from events
    group by 1, 2, 3

),

{{ first_times('transaction_id', {'day': '1'}, since) }},

final as (

    select
        shop_day,
        shop_date,
        visitor_id,
        transaction_id,
        num_items,
        is_first_day

    from with_first_times

    -- Stored in day order: the nights' reads of recent days skip the older days' row groups.
    order by 1

)

select * from final
